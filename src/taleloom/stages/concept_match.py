"""The concepts a scene names word for word: "The rocket takes off from the launchpad" names `rocket`,
"Oscar sits on the branch, looking up at the stars" names `star` and `glowing star`.

Why: the stage used to pick a page's setting as the concept nearest to the whole scene sentence (MiniLM).
A sentence is mostly people and verbs, so its nearest concept was often one the scene never mentions:
"Theo fetches the coffee from the fridge" → `taxi`, "Ben runs towards Juno near the water" → `person
playing water polo` (benchmarks/scene_concepts.py). A concept is named when the scene has its head noun
("tree" for `deciduous tree`, "beach" for `beach with umbrella`) or its whole name; which of several named
concepts fits best is still MiniLM's call (stage.scene_setting).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from taleloom.backends.vision.facts import COLOUR_NAMES, LIGHT_WORDS

_LINKS = (" with ", " in ", " on ", " at ", " over ", " behind ", " without ", " showing ", " of ")
_PEOPLE = ("person", "people", "man", "woman", "men", "women")  # "person walking": the person, not the walk
# heads that a scene uses about its characters, not about things to draw beside them
# (and "picture": a scene is a picture's description, "A warm picture shows Otto …"; "light": scenes tell of
# warm or soft light, not of traffic lights)
# a character's limbs: no concept with one as its head is drawn beside the hero ("moving her arms and legs" drew
# `poultry leg`, stop 27's fish book)
LIMBS = frozenset({"leg", "arm", "foot", "wing", "tail", "paw", "tooth", "lip"})
NOT_THINGS = frozenset({"face", "eye", "eyes", "ear", "nose", "mouth", "tongue", "biceps", "selfie", "hand",
                        "silhouette", "head", "sparkle", "print", "person", "people", "picture", "light", *LIMBS,
                        # hand signs: an apple book's "looking for signs of other animals" drew `sign of the horns`
                        "sign of the horns", "love-you gesture", "vulcan salute", "gesture", "salute"})
# heads a story mostly says in another sense: such a concept is named by its whole name only ("searching for his
# way home" drew `milky way` as the baboon book's dark forest; "at the next stop", "a game of tag")
WHOLE_NAME_ONLY = frozenset({"way", "stop", "game", "ice"})  # "on the ice" drew `shaved ice` (the friends photo's
# book of a dog who learns to skate)
_IRREGULAR = {"leaves": "leaf", "mice": "mouse", "geese": "goose", "children": "child", "feet": "foot",
              "teeth": "tooth", "wolves": "wolf", "knives": "knife", "sheep": "sheep", "fish": "fish",
              "dishes": "dish", "glasses": "glass", "buses": "bus", "beaches": "beach", "boxes": "box",
              "peaches": "peach", "benches": "bench", "branches": "branch", "sandwiches": "sandwich"}


# Words a story's scene often uses for a place or thing no concept is called, and the concept that draws it
# (used when the vocabulary has that concept): indoors is a house, open water is a wave, and so on.
STAND_INS = {
    "house": ("room", "bedroom", "kitchen", "home", "sofa", "couch", "bed", "fireplace", "door", "window"),
    "water wave": ("sea", "ocean", "lake", "pond", "river", "stream", "water", "wave"),
    "evergreen tree": ("forest", "wood", "woods", "pine"),
    "hot beverage": ("coffee", "tea", "cocoa", "espresso", "cup", "mug"),
    "night with stars": ("night",),
    "cloud": ("sky",),
    "snowflake": ("snow", "snowy"),
    "cityscape": ("city", "town", "street"),
    "seedling": ("grass", "meadow", "field", "garden"),
    # story characters the emoji vocabulary has no picture of, drawn as the person nearest to them: MiniLM's
    # nearest concept to "pirate" is `penguin`, to "wizard" `dragon`, to "witch" `snake`
    "man": ("pirate", "knight", "king"),
    "old man": ("wizard", "grandpa", "grandfather"),
    "old woman": ("witch", "grandma", "granny", "grandmother"),
    "princess": ("queen", "fairy"),
}
# Animals, fruit and nuts a story calls by their everyday name, whose emoji is called otherwise: v2's nearest concept
# to "squirrel" was `rabbit` (the squirrel book's hero was drawn as a lavender rabbit), to "orange" `red apple`, to
# "hen" `rooster`, to "lamb" `goat`. Also the word the translate stage looks up (glossary.py).
EVERYDAY_NAMES = {"squirrel": "chipmunk", "orange": "tangerine", "clementine": "tangerine", "mandarin": "tangerine",
                  "lamb": "ewe", "sheep": "ewe", "hen": "chicken", "bunny": "rabbit", "puppy": "dog",
                  "kitten": "cat", "acorn": "chestnut", "nut": "chestnut",
                  # the captioner's "ladybird" (ImageNet's) is CLDR's lady beetle; by MiniLM it was a bird
                  "ladybird": "lady beetle", "ladybug": "lady beetle",
                  # the captioner's and the stories' "hippo": Qwen's Spanish made it "hipo", a hiccup
                  "hippo": "hippopotamus",
                  # ImageNet's "soccer ball" is the captioner's "football" (British English, as the books are):
                  # drawn as `american football` by its head noun, a football photo's hero was an egg-shaped ball
                  "football": "soccer ball",
                  # a bare "tree" is the plain tree: MiniLM drew a turtle book's "pond near a tree" as `tanabata tree`
                  "tree": "deciduous tree"}
_EVERYDAY_OF: dict[str, set[str]] = {}  # concept → its everyday names
for _word, _concept in EVERYDAY_NAMES.items():
    STAND_INS[_concept] = (*STAND_INS.get(_concept, ()), _word)
    _EVERYDAY_OF.setdefault(_concept, set()).add(_word)


def singular(word: str) -> str:
    """A plural English noun's singular, by rule ('stars' → 'star', 'berries' → 'berry'); others as given."""
    w = word.lower()
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


# nouns that end in -ing: the thing itself, not someone doing something ("office building" is a building; read as
# a doing, its head was "office", and a building photo's hero was drawn as `building construction`, a crane)
NOUNS_IN_ING = frozenset({"building", "ring", "king", "wing", "string", "spring", "swing", "ceiling", "painting",
                          "clothing", "pudding", "wedding", "dumpling", "earring", "stocking", "evening", "morning",
                          "icing", "thing", "sling", "lightning"})


@lru_cache(maxsize=4096)  # asked for every concept of the vocabulary on every page
def head(concept: str) -> str:
    """The noun a concept's name is about: 'deciduous tree' → 'tree', 'beach with umbrella' → 'beach',
    'person in bed' → 'person', 'full moon face' → 'face', 'index pointing up' → 'index'."""
    name = f" {concept.lower()} "
    for link in _LINKS:
        if link in name:
            name = name.split(link)[0] + " "
    words = name.split()
    if not words:
        return ""
    if words[0] in _PEOPLE:
        return words[0]
    doing = next((i for i, w in enumerate(words) if i and w.endswith("ing") and w not in NOUNS_IN_ING), len(words))
    return singular(words[doing - 1])  # 'index pointing up' → 'index', 'leaf fluttering' → 'leaf'


def not_a_thing(concept: str) -> bool:
    """A concept that is only a body part or the like ('eyes', 'nose', 'poultry leg'): no drawing of a character
    ('dog face' is one: a dog)."""
    return singular(concept.lower()) in NOT_THINGS or concept.lower() in NOT_THINGS or head(concept) in LIMBS


def doing(concept: str) -> bool:
    """A concept that shows someone doing something ('person pouting', 'people wrestling'): a scene may
    show it, but it is no drawing of a cast member."""
    words = concept.lower().split()
    return len(words) > 1 and words[0] in _PEOPLE


# The animals-nature group's concepts that are no creature: plants, and what an animal leaves or is made of
_NOT_CREATURES = frozenset({"tree", "leaf", "flower", "blossom", "clover", "shamrock", "seedling", "cactus", "tulip",
                            "rose", "hibiscus", "sunflower", "rice", "herb", "mushroom", "rosette", "bouquet", "plant",
                            "lotus", "hyacinth", "coral", "shell", "nose", "print", "web", "feather", "nest", "wing",
                            "microbe"})


@lru_cache(maxsize=1)
def shipped_vocabulary() -> tuple[dict, ...]:
    """The embedded illustrator's concepts as shipped (assets/aligned/vocabulary.json: name, emoji, CLDR group)."""
    import json
    from importlib import resources

    return tuple(json.loads(resources.files("taleloom.assets").joinpath("aligned/vocabulary.json")
                            .read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def _groups() -> dict[str, str]:
    """Each shipped concept's CLDR group, by its lower-case name."""
    return {c["name"].lower(): c["group"] for c in shipped_vocabulary()}


def creature(concept: str) -> bool:
    """Whether `concept` draws an animal (CLDR's animals-nature group, less its plants and parts): what a story
    meets and a page should show, a lost chick or a friendly hedgehog."""
    return _groups().get(concept.lower()) == "animals-nature" and head(concept) not in _NOT_CREATURES


_LINK_WORDS = {w.strip() for w in _LINKS} | {"and", "a", "an", "the"}


# what a caption says of the photo itself ("in grey and green tones, in soft, warm light"), which stories copy
PHOTO_WORDS = frozenset({*COLOUR_NAMES, *LIGHT_WORDS, "light", "tone", "tones"})


def without_photo_words(text: str) -> str:
    """`text` without the caption's colour and light words: they say how the photo looks, not what to draw."""
    return " ".join(w for w in re.split(r"\s+", text) if w.lower().strip(",.;:!?") not in PHOTO_WORDS)


def said_words(text: str) -> set[str]:
    """The words of `text`, lower-case, each also in singular."""
    words = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z-]*", text)]
    return {singular(w) for w in words} | set(words)


def strength(concept: str, said: set[str]) -> int:
    """How many of the said words belong to `concept`: its name's words and its stand-in words ('a mug of
    coffee' says two of `hot beverage`'s — mug, coffee — and one of `beer mug`'s)."""
    own = {singular(w) for w in concept.lower().split()} - _LINK_WORDS
    everyday = _EVERYDAY_OF.get(concept, set())  # a deliberate name counts twice: "football" beats `american football`
    return len(said & (own | set(STAND_INS.get(concept, ())))) + len(said & everyday)


# a colour that is also a thing's everyday name, said as the colour of what follows it: "his orange feathers" drew a
# `tangerine` beside an owl (a wallpaper's book); "an orange", "orange juice" and "orange trees" are the fruit
_THING_COLOURS = "|".join(c for c in COLOUR_NAMES if c in EVERYDAY_NAMES)  # "orange": a fruit's name too
_COLOUR_OF_NEXT = re.compile(rf"\b(?:{_THING_COLOURS})\s+"
                             r"(?!(?:and|or|is|was|are|were|juice|trees?|peels?|slices?|seeds?)\b)(?=[a-z])", re.IGNORECASE)


# and said among other colours, or as a colour: "warm colors of orange and pink" (a kite wallpaper's sunset) drew a
# `tangerine` where the sun sets
_OTHER_COLOURS = "|".join((*COLOUR_NAMES, "gold", "golden", "violet"))
_JOIN = r"(?:,\s*|\s+(?:and|or)\s+)"
_COLOUR_AMONG = (re.compile(rf"(\b(?:{_OTHER_COLOURS}){_JOIN}|\b(?:colors|colours|shades|tones) of )(?:{_THING_COLOURS})\b",
                            re.IGNORECASE),
                 re.compile(rf"\b(?:{_THING_COLOURS})({_JOIN}(?:{_OTHER_COLOURS})\b)", re.IGNORECASE))


def _without_colour_lists(text: str) -> str:
    """`text` without the thing-colours (_THING_COLOURS) it says among other colours or as "colours of"."""
    after, before = _COLOUR_AMONG
    return before.sub(r" \1", after.sub(r"\1 ", text))


def named_concepts(text: str, vocabulary: Iterable[str]) -> list[str]:
    """The concepts of `vocabulary` that `text` names, those it says most words of first: by the head noun (in
    singular or plural), the whole name, or a stand-in word; heads that describe a character's body (face,
    eyes …) do not count."""
    said = said_words(_COLOUR_OF_NEXT.sub(" ", _without_colour_lists(text)))
    words = re.findall(r"[a-z][a-z-]*", text.lower())
    joined = f" {' '.join(words)} | {' '.join(singular(w) for w in words)} "  # "the glowing stars" names it too
    found = []
    # a head that is a concept of its own names that concept, not the compounds ending in it: "the dog" is no
    # `hot dog`, "a bear" no `teddy bear` (the friends photo's dogs named `hot dog` beside `dog`)
    bare = {c.lower() for c in vocabulary}
    for concept in vocabulary:
        if concept.lower() in NOT_THINGS:  # a hand sign is named by no "sign"
            continue
        h = head(concept)
        by_name = f" {concept.lower()} " in joined and not not_a_thing(concept)
        by_head = h in said and h not in NOT_THINGS and h not in WHOLE_NAME_ONLY and (h == concept.lower() or h not in bare)
        if by_head or by_name or said & set(STAND_INS.get(concept, ())):
            found.append(concept)
    return sorted(found, key=lambda c: -strength(c, said))
