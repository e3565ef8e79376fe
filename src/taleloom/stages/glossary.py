"""The words a book's translation must get right: its animals and things, in the reader's language, from the names
that Unicode's CLDR gives each emoji (the `emoji` package, BSD-3, already a dependency, carries them for 13
languages besides English).

Why: Qwen2.5-Coder-1.5B translated the squirrel book's hero into German as "Schnecke" (snail) on three pages and
"Schwalbe" (swallow) on the first, and a lemon into French as "citrouille" (pumpkin). The book's words that name an
emoji are the ones its pictures draw, so the translation is told them: "squirrel = écureuil". Only a CLDR name that
is the emoji's own English name (not an alias: "cat" is 🐈 "Katze", not 🐱 "Katzengesicht"), of an animal, a food,
a place or an activity, and one word in the target language is used: "cara de gato" (cat face) is Spanish for 🐱's picture,
not for a cat (Portuguese "rosto de raposa", fox face, is "raposa" once its picture words go: _PICTURE_OF).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence

from taleloom.stages import story_text as st
from taleloom.stages.concept_match import EVERYDAY_NAMES, shipped_vocabulary

# Everyday names (concept_match.EVERYDAY_NAMES) that mean the emoji's animal itself, so its CLDR name translates them
# (🐿's is "écureuil", "ardilla", "リス"; German says "Streifenhörnchen", of the squirrel family). Not "acorn"
# (drawn as a chestnut, translated as one it would be wrong), "orange" (a tangerine) nor "puppy" or "lamb".
SAME_ANIMAL = frozenset({"squirrel", "bunny", "hen", "sheep", "ladybird", "ladybug", "hippo"})
# Words for an emoji's animal that the stage draws by their head noun already, so not everyday names there (one
# would count twice and make a page's lost chick its setting instead of a third thing beside it): the plots' lost
# chick (write.PLOTS), which Qwen's Spanish made "la chica" (the girl) in a bridge photo's book
ANIMAL_WORDS = {"chick": "baby chick"}
LIMIT = 5  # words told at most: the book's most frequent ones (a longer request costs every translation's time)
# The words of a CLDR name that say how the emoji shows its animal, in a language that says them apart: Portuguese
# names 🦊, 🐻 and 🐼 "rosto de raposa", "rosto de urso", "rosto de panda" (a face) and 🐤 "pintinho de perfil" (in
# profile), so a Portuguese fox book was never told "raposa" and its cover called the hero "leão", a lion
_PICTURE_OF = {"pt": re.compile(r"^rosto_de_|_de_perfil$")}
_NO_MATCH = re.compile(r"(?!)")
_COMPOUND = re.compile(r"[_\s]|の|顔|的|얼굴")  # "tête_de_chat", "キツネの顔": a picture's name, not the animal's


# The illustrator vocabulary's groups whose names are things a story's characters are or meet; not objects, symbols
# or people ("watch", "ring" and "bow" are verbs too), and not these, said as verbs or colours as often as nouns.
GROUPS = frozenset({"animals-nature", "food-drink", "travel-places", "activities"})
NOT_TOLD = frozenset({"fly", "duck", "bat", "seal", "watch", "fire", "rose", "date", "squash", "orange", "star",
                      "bowling", "kiss", "wave",
                      # CLDR names of the picture, not the word: "電車正面" (a train seen from the front), "丸太"
                      # (a log) for wood, German "Tennisball" for tennis
                      "train", "wood", "tennis"})


# A story's set phrases, which a small model translates word by word: Qwen gave "Once upon a time" as "Einmal
# vorher", "Une fois au fil d'un temps" and "Una vez antes de todo", "Suddenly" as German "Schnell" (quickly) and
# French "Au moment d'un coup", "One day" as "Ein Tag" (story_quality's stop 27 translations). Told as terms, in the
# languages in Latin letters (the only ones told terms: translate.py).
STORY_PHRASES: dict[str, dict[str, str]] = {
    "once upon a time": {"de": "Es war einmal", "es": "Érase una vez", "fr": "Il était une fois", "id": "Pada zaman "
                         "dahulu", "it": "C'era una volta", "nl": "Er was eens", "pl": "Dawno, dawno temu", "pt": "Era "
                         "uma vez", "sv": "Det var en gång", "tr": "Bir varmış bir yokmuş", "vi": "Ngày xửa ngày xưa"},
    "one day": {"de": "Eines Tages", "es": "Un día", "fr": "Un jour", "id": "Suatu hari", "it": "Un giorno",
                "nl": "Op een dag", "pl": "Pewnego dnia", "pt": "Um dia", "sv": "En dag", "tr": "Bir gün",
                "vi": "Một ngày nọ"},
    "suddenly": {"de": "Plötzlich", "es": "De repente", "fr": "Soudain", "id": "Tiba-tiba", "it": "All'improvviso",
                 "nl": "Plotseling", "pl": "Nagle", "pt": "De repente", "sv": "Plötsligt", "tr": "Birden",
                 "vi": "Đột nhiên"},
}


def story_phrases(texts: Sequence[str], code: str) -> dict[str, str]:
    """The STORY_PHRASES that `texts` say, in `code` (English phrase → the language's own phrase)."""
    said = " ".join(texts).lower()
    return {phrase: by_code[code] for phrase, by_code in STORY_PHRASES.items()
            if code in by_code and re.search(rf"\b{phrase}\b", said)}


@functools.cache
def _emoji_by_name() -> dict[str, str]:
    """The illustrator vocabulary's names (the aligned encoder's: CLDR's own English names) in GROUPS → emoji."""
    return {c["name"].lower(): c["emoji"] for c in shipped_vocabulary()
            if c["group"] in GROUPS and c["name"] not in NOT_TOLD}


@functools.cache
def languages() -> frozenset[str]:
    import emoji

    return frozenset(emoji.LANGUAGES) - {"en"}


def _concept(english: str) -> str:
    """The illustrator vocabulary's name for an English word ("bunny" → "rabbit", "chick" → "baby chick")."""
    word = english.strip().lower()
    return EVERYDAY_NAMES[word] if word in SAME_ANIMAL else ANIMAL_WORDS.get(word, word)


@functools.cache
def _animals_and_plants() -> frozenset[str]:
    return frozenset(c["name"].lower() for c in shipped_vocabulary() if c["group"] == "animals-nature")


def word_in(english: str, code: str) -> str | None:
    """The CLDR name, in `code`, of the emoji that `english` names ("squirrel" → 🐿 → "écureuil"), or None."""
    char = _emoji_by_name().get(_concept(english))
    if char is None or code not in languages():
        return None
    import emoji

    name = _PICTURE_OF.get(code, _NO_MATCH).sub("", emoji.demojize(char, language=code, delimiters=("", "")).strip())
    if not name or name == char or _COMPOUND.search(name):
        return None
    return name.capitalize() if code == "de" else name  # German nouns are written with a capital


def glossary(texts: Sequence[str], code: str, limit: int = LIMIT, kinds: Sequence[str] = ()) -> dict[str, str]:
    """English word → its word in `code` (the same word too), for the words of `texts` said in two texts or more
    that name an emoji (most frequent first): the book's characters and things, not a word said once in passing;
    the cast's `kinds` said anywhere, first (a kind may be said only on the cover: the dandelion photo's rabbit
    hero was "ratón", a mouse, there); then the story's set phrases (story_phrases)."""
    if code not in languages():
        return story_phrases(texts, code)
    seen = Counter(w for t in texts for w in {w.lower() for w in st.words(t)})
    out: dict[str, str] = {}
    for kind in dict.fromkeys(k.strip().lower() for k in kinds):
        if seen[kind] and len(out) < limit and len(kind) > 2 and (found := word_in(kind, code)):
            out[kind] = found
    for word, n in seen.most_common():
        if n < 2 or len(out) >= limit:
            break
        # a word the language writes alike is told too: the Suzanne book's Italian made its "pizza" a "piatto" (dish)
        if word not in out and len(word) > 2 and (found := word_in(word, code)):
            out[word] = found
    return out | story_phrases(texts, code)


def said_creatures(texts: Sequence[str], code: str, told: dict[str, str]) -> dict[str, str]:
    """English word → its word in `code`, for the animals and plants `texts` say that the glossary does not tell
    (`told`: said once, or past its LIMIT): not told, to keep the request short, but a translation that lacks the
    word is asked again with it (translate.soft_flaws). Qwen made a lost chick said on one page a German "Drachen"
    (a dragon) and a Spanish "perro" (a dog), and a wolf a French "renard" (a fox): the picture shows the animal."""
    if code not in languages():
        return {}
    said = dict.fromkeys(w.lower() for t in texts for w in st.words(t))
    return {w: found for w in said if w not in told and len(w) > 2 and _concept(w) in _animals_and_plants()
            and (found := word_in(w, code))}


# A colour's CLDR name comes from its heart emoji ("cœur vert", "grünes Herz"): the picture-book colours
_HEARTS = {"red": "❤️", "orange": "🧡", "yellow": "💛", "green": "💚", "blue": "💙", "purple": "💜", "brown": "🤎",
           "black": "🖤", "white": "🤍", "grey": "🩶", "pink": "🩷"}
_COLOUR_SYNONYMS = {"gray": "grey"}


def _colour_of(word: str) -> str:
    """The colour an English word says: "gray" is grey, and "greenish", "reddish", "bluish" say green, red, blue
    (a wine glass's "greenish reflections" came back French "reflets bleus")."""
    word = _COLOUR_SYNONYMS.get(word, word)
    if word.endswith("ish") and len(word) > 5:
        base = word[:-3]
        for colour in (base, base[:-1], base + "e"):  # green-ish, redd-ish, blu-ish
            if colour in _COLOUR_SYNONYMS or colour in _HEARTS:
                return _COLOUR_SYNONYMS.get(colour, colour)
    return word


@functools.cache
def colour_words(code: str) -> dict[str, str]:
    """English colour → its word in `code` as CLDR names the coloured heart ("grey" → "gris", German "graues"),
    lower-cased; {} for a language the emoji package lacks or one not written in Latin letters."""
    if code not in languages():
        return {}
    import emoji

    names = {c: emoji.demojize(e, language=code, delimiters=("", "")).lower().split("_") for c, e in _HEARTS.items()}
    shared = Counter(w for words in names.values() for w in set(words))
    out = {}
    for colour, words in names.items():
        own = [w for w in words if shared[w] < len(names) // 2]  # the heart's word is in every name
        if len(own) != 1 or not own[0].isalpha():
            continue
        if any(ord(ch) > 0x24F for ch in own[0]):
            return {}  # not in Latin letters
        out[colour] = own[0]
    return out


@functools.cache
def colour_stems(code: str) -> dict[str, str]:
    """English colour → the start every form of its word in `code` shares ("grey" → "gri" for French "gris",
    "grise"; "grau" for German "graue", "grauen"): colour_words without their gender and number endings."""
    return {c: re.sub(r"(?:es|e|s|o|a)$", "", w) if len(w) > 3 else w for c, w in colour_words(code).items()}


def changed_colours(source: str, got: str, code: str) -> list[str]:
    """The English colours `source` says whose word `got` lacks while it says another colour the source does not:
    Qwen wrote "grey and white" as German "grün und weiß" (the nuthatch book's cover) and "brown and white" as
    Spanish "blanco y negro" (the dandelion book's). A word outside the CLDR names ("brun" for brown) is no
    other colour, so nothing is said about it."""
    stems = colour_stems(code)
    if not stems:
        return []
    said = {_colour_of(w) for w in re.findall(r"[a-z]+", source.lower())} & set(stems)
    words = re.findall(r"[^\W\d_]+", got.lower())

    def present(colour: str) -> bool:
        stem = stems[colour]
        return any(w.startswith(stem) and len(w) <= len(stem) + 4 for w in words)

    others = [c for c in stems if c not in said and present(c)]
    return [c for c in said if not present(c)] if others else []
