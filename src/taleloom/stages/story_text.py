"""Plain-text helpers for the write stage: sentences, pages, word limits and the checks that catch a
small model's usual failures (loops, copied examples, missing hero). Pure functions, no model."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

_SENTENCE_END = re.compile(r"(?<=[.!?])['\"”’]?\s+(?=[\"'“‘]?[A-Z0-9])")
_WORD = re.compile(r"[A-Za-z']+")


def words_per_page(age: int) -> int:
    """Most words on one page for a reader of `age` (picture books: a line or two for the youngest)."""
    for limit_age, words in ((4, 25), (6, 40), (8, 60), (10, 80)):
        if age <= limit_age:
            return words
    return 100


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def clean(text: str) -> str:
    """One line, single spaces, straight from the model otherwise."""
    return " ".join(text.replace("\\n", " ").split())


def sentences(text: str) -> list[str]:
    """Complete sentences of `text`; a trailing fragment (cut off by a length limit) is dropped."""
    parts = [p.strip() for p in _SENTENCE_END.split(clean(text)) if p.strip()]
    if parts and not re.search(r"[.!?]['\"”’]?$", parts[-1]):
        parts.pop()
    return parts


def longest_sentence(text: str) -> int:
    """How many words the longest sentence of `text` has (the whole text when it has no finished sentence)."""
    return max(map(len, map(words, sentences(text) or [text])))


# words no English sentence ends on: a text that stops on one was cut, and gets no full stop
NEVER_LAST = frozenset("a an the and or but of to with for from by into onto than because if their its my your our "
                       "every each".split())


def with_full_stop(text: str, limit: int) -> str:
    """`text` with a full stop where its last sentence ends on a word (and it is not near `limit` words, where the
    schema may have cut it): Qwen wrote pages as its outline lines, "Sami follows Theo to find the chick's family,
    who are waiting for her return", and the coins book lost all three whole answers (3 minutes on two cores)
    for "no finished sentence". Not a label of a few words ("1. Nora and Otto - the story"): 6 words at least;
    and only after a whole word, a name or one English's word list knows: a turtle book copied its outline lines,
    cut at their length, as pages ("He feels excited and imag")."""
    text = _CUT_GLITCH.sub("", clean(text))
    if not (re.search(r"[A-Za-z0-9]$", text) and 6 <= len(words(text)) < limit and not _NOT_PROSE.search(text)):
        return text
    from taleloom.stages.translate import word_counts  # (translate imports this module)

    last = text.split()[-1].split("-")[-1]
    if last.lower() in NEVER_LAST:  # a cut: "He found a little lost chick and" (story_quality's kite book)
        return text
    known = word_counts("en")
    return text + "." if last[:1].isupper() or last.isdigit() or known is None or last.lower() in known else text




def trim_words(text: str, limit: int) -> str:
    """`text` cut to whole sentences within `limit` words (at least its first sentence, cut at a word)."""
    out: list[str] = []
    for s in sentences(text) or [clean(text)]:
        if out and len(words(" ".join(out + [s]))) > limit:
            break
        out.append(s)
    result = " ".join(out)
    if len(words(result)) > limit:  # a single sentence longer than the limit
        result = " ".join(result.split()[:limit]).rstrip(",;:") + "…"
    return result


# Two sentences joined by a conjunction, the second with its own subject: "Mina looks confused, but Theo goes on
# looking at her." The clause before the comma has 3+ words, so that a list ("Mina, Theo, and Otto went") stays.
_JOINED = re.compile(r"(?P<before>(?:^|[.!?;,]\s*)(?:[^.!?;,]+))(?P<join>,\s+(?P<word>and then|and|but|so|then)\s+)"
                     r"(?P<adverb>(?:suddenly|soon|later|now|finally|slowly|quickly),?\s+)?(?P<subject>[A-Za-z']+)\b",
                     re.IGNORECASE)
_SUBJECT_PRONOUNS = frozenset("he she they it we i you there".split())


def short_sentences(text: str, names: Sequence[str] = ()) -> str:
    """`text` with two sentences joined by ", and / but / so / then" told as two, when the second has its own
    subject (a pronoun or a cast name): "Mina looks confused, but Theo continues to look at her." → "Mina
    looks confused. But Theo continues to look at her." Why: Qwen's sentences run long for a young reader
    (story_quality's reading level: mean Flesch-Kincaid grade 5 for 4–6-year-olds), and asking for shorter
    sentences did not shorten them; this split keeps every word the model chose but the joining 'and'. Clauses
    joined by semicolons are told as sentences too (the espresso book's page 2 was four clauses and 44 words)."""
    subjects = _SUBJECT_PRONOUNS | {n.lower() for n in names}

    def split(m: re.Match[str]) -> str:
        before, word, subject = m["before"], m["word"].lower(), m["subject"]
        if re.sub(r"'(?:s|re|ll|d|m)$", "", subject.lower()) not in subjects or len(words(before)) < 3:
            return m[0]
        lead = "" if word == "and" else ("Then" if word == "and then" else word.capitalize()) + " "
        rest = f"{m['adverb'] or ''}{subject}"
        return f"{before}. {lead}{rest if lead else rest[0].upper() + rest[1:]}"

    def split_all(part: str) -> str:
        part = _semicolons(part)
        for _ in range(3):  # "It was big, and it was red, and it was fun.": each split makes the next one's clause
            part, before = _JOINED.sub(split, part), part
            if part == before:
                break
        return part

    # what someone says stays as they say it: split in a quote, a later check that drops a copied sentence left
    # half a quote behind ("… looks at Otto's coffee mug. I can make coffee.'", the espresso book)
    return "".join(part if i % 2 else split_all(part) for i, part in enumerate(_QUOTED.split(text)))


def _semicolons(text: str) -> str:
    """`text` with each semicolon between two clauses of 3+ words a full stop ("…drinking his coffee; suddenly, a
    small chick jumps out" → "…drinking his coffee. Suddenly, a small chick jumps out"); a list's stays."""
    pieces = re.split(r";\s+", text)
    out = pieces[0]
    for piece in pieces[1:]:
        last = re.split(r"[.!?]\s+", out)[-1]
        if len(words(last)) >= 3 and len(words(re.split(r"[.!?]", piece)[0])) >= 3:
            out += ". " + piece[:1].upper() + piece[1:]
        else:
            out += "; " + piece
    return out


# A quotation: in double quotes, or in single quotes that are no apostrophes ("'I'm hungry,' said Pip").
_QUOTED = re.compile(r"([\"“][^\"”]*[\"”]?|(?<![A-Za-z])['‘](?=[A-Za-z]).*?['’](?![A-Za-z])|(?<![A-Za-z])['‘](?=[A-Za-z]).*$)")


def split_pages(text: str, pages: int) -> list[str] | None:
    """Share the sentences of `text` out over `pages` pages, balancing words; None if too few sentences."""
    sents = sentences(text)
    if len(sents) < pages:
        return None
    counts = [len(words(s)) for s in sents]
    out: list[str] = []
    start = 0
    for page in range(pages):
        left_pages = pages - page
        target = sum(counts[start:]) / left_pages
        end, total = start + 1, counts[start]
        # take more sentences while it brings the page closer to its share and leaves one per later page
        while (end < len(sents) - (left_pages - 1)
               and abs(total + counts[end] - target) <= abs(total - target)):
            total += counts[end]
            end += 1
        if page == pages - 1:
            end = len(sents)
        out.append(" ".join(sents[start:end]))
        start = end
    return out


def repetition(text: str, n: int = 4) -> str | None:
    """What repeats in `text` (a sentence said twice, or an n-word run said three times), else None."""
    seen: set[str] = set()
    for s in sentences(text):
        key = " ".join(words(s.lower()))
        if len(key.split()) >= 4 and key in seen:
            return f"a sentence is repeated ({s[:60]!r})"
        seen.add(key)
    w = [x.lower() for x in words(text)]
    grams = Counter(tuple(w[i:i + n]) for i in range(len(w) - n + 1))
    gram, count = grams.most_common(1)[0] if grams else ((), 0)
    if count >= 3:
        return f"the words {' '.join(gram)!r} repeat {count} times"
    return None


_NOT_PROSE = re.compile(r"[{}\[\]<>_=|\\#*]")


def not_prose(text: str, min_words: int = 4) -> str | None:
    """Why `text` is not a page of story (markup or code, a JSON echo like `{ { 'n_2' }}`, a few stray
    words, no finished sentence), else None. A small model sometimes answers a schema with such junk."""
    if m := _NOT_PROSE.search(text):
        return f"the text has markup or code in it ({m.group()!r})"
    if len(words(text)) < min_words:
        return f"fewer than {min_words} words"
    if not sentences(text):
        return "no finished sentence"
    return None


_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<!--.*?-->|<[A-Za-z/!][^<>]*$")
_EMPHASIS = re.compile(r"\*\*|__|`+|^#+\s*|^\s*[-*•]\s+", re.MULTILINE)
_LABEL = re.compile(r"^\s*(?:(?:page\s*)?\d+|text|scene|story|title)\s*[:.)\-–—]\s*", re.IGNORECASE)
# Talk no story has: the come-alive line's words that are not story ("a lemon that can move, talk and feel" is
# fine in a story, "not a person or an animal" and "come to life:" are the request's), and a film's camera ("The
# camera zooms in to show Theo's wings and body.": the butterfly book's page 2, from its scene "A close-up shot
# of Theo's wings"). Dropped from a page, and a page that is nothing else is asked again (request_talk). A scene
# may show a close-up.
_REQUEST_TALK = (r"\b(?:can't|cannot|can not) move, talk\b|\bnot a person or an animal\b|\bcom(?:es?|ing) to life:"
                 # (and "comes to life:": the request's line as a page of its own, "Nora comes to life: a building
                 # that can move, talk and feel.", sklearn's china photo's book)
                 r"|\bthe camera (?:zooms|pans|shows|focuses|moves|cuts|follows)\b|\bclose-up (?:shot|view)\b"
                 # talk of the book itself: a bicycle book's last page, "The end of the story, with Leo's bicycle
                 # picture again and the reader leaving the book."
                 r"|\bthe reader\b|\bthe end of (?:the|this|our) (?:story|book)\b|\bin the \w+ picture\b"
                 # a sentence that is a caption: "A picture of a motorbike in brown and grey tones." (skimage's
                 # motorcycle book, pages 1 and 4: "A picture of Lila with Priya after the hug.")
                 r"|(?:^|(?<=[.!?]\s))(?:an?|one|this|that) (?:picture|photo|photograph|image|drawing|illustration) of\b")
_PROMPT_ECHO = re.compile(r"year-old reader|outline line|cast sheet|\bJSON\b|plain text only|answer with|"
                          r"words for a \d+|\bnaming\b|\bTone:|\bReader:|\bAbout:|\bshows:|"
                          r"\b(?:photo|picture|image) shows\b", re.IGNORECASE)
# the ending's request said back as a sentence: "…with some effort from Milo, she is able to fix it. The problem is
# solved. Milo is glad" (the dragonfly photo's last page); dropped from a page (drop_asides)
# ... and the come-alive request's own words, said as a page's sentence: "Sami's football can move, talk and feel."
# (the footballer photo's page 3; write.py's request tells a thing from the photo it "can move, talk and feel")
# (a story's "there was an apple that could move, talk and feel" stays), the request's "X is the building, come to
# life." (OpenCV's home photo's page 1) and a story told about: "The story ends with Finn eating the pear."
_PLAN_TALK = re.compile(r"\bthe problem (?:is|was|has been|gets|got) solved\b"
                        r"|\bcan move, talk,? (?:and|or) feel\b"
                        r"|\b(?:is|was) (?:the|a|an) [\w' -]{1,40}, come to life\b"
                        r"|\bthe story (?:ends|ended|begins|began|starts|started) (?:with|when)\b", re.IGNORECASE)


def strip_markup(text: str) -> str:
    """`text` without HTML tags (a dangling '<img src=' too), markdown emphasis, bullets or headings, the
    JSON debris a field can end in ('…a soft blanket around.}': Qwen, which cost a whole book's answer) or the
    next field glued on (_GLUED_FIELD),
    the request's 'from the photo' (_PHOTO_PHRASE), and without the punctuation a cut left hanging
    ('Ben — a bear, <img src=' → 'Ben — a bear')."""
    text = _PHOTO_PHRASE.sub("", _EMPHASIS.sub("", _TAG.sub(" ", _GLUED_FIELD.sub(lambda m: m[0][0] if m[0][0] in ".!?" else "", text))))
    return clean(text).rstrip(" ,;:—–-{}[]")


# The answer's next field glued into a string, to the end: OpenCV's Leuven street book printed page 3 as "Tom starts
# feeling the wind. . scene":"Tom is standing on top of the building, …" (and its translation took the scene too).
_GLUED_FIELD = re.compile(r"[\s.,;{\"]*\b(?:text|scene|title|outline|look|kind|name|pages|hero|friend)\"\s*:.*$",
                          re.DOTALL)


# The book's request says "Mina is the cat from the photo." and "The photo shows cat, sofa and house.": words
# a reader of the book has no photo for. Qwen copied them into pages ("Mina is the cup of coffee from the
# photo."; "The photo shows cup of coffee with a brown and yellow color": the coffee book, page 1; "...in a
# sunny garden with a photo of herself": the cat book). The phrase is cut from any field; a sentence that still
# speaks of the photo is dropped from a page (drop_asides).
_PHOTO_PHRASE = re.compile(r",?\s+(?:(?:from|in|of|on) (?:the|this|that|our|your|her|his|its|their) (?:photo|photograph)\b"
                           r"|(?:from|in|of|on) (?:the|this|that|our|your) picture\b"
                           r"|from (?:photo|photograph)\b"  # the building book's hero: "building, building from photo"
                           # a photo's background: "…a computer mouse on a white and beige background" (an LLM caption)
                           r"|(?:on|against) an? (?:[a-z]+,? )?(?:and [a-z]+ )?background(?=\s*[.,;!?]|\s*$)"
                           r"|with a (?:photo|photograph) of (?:her|him|it|them)sel(?:f|ves)\b)", re.IGNORECASE)
# "The picture shows Mina sitting on a wooden floor." (story_quality); the line that tells a thing from the photo
# to come alive (write._book_prompt), copied back: "It can't move, talk or feel, not a person or an animal."
_PHOTO_TALK = re.compile(r"\b(?:the|this|that|our|your) (?:photo|photograph)\b|\b(?:photo|picture|image|scene) shows\b|"
                         + _REQUEST_TALK, re.IGNORECASE)


def drop_labels(text: str) -> str:
    """A page's text without a leading 'Page 2:' / 'Text:' / 'Scene:' label that the model added, and
    without its notes about its own writing (drop_asides)."""
    return drop_asides(_LABEL.sub("", clean(text)))


_SHOWS = re.compile(r"^(?:(?:the |this |our |an? )?(?:photo|picture|image|scene|illustration) (?:shows|is of):?|"
                    r"an? (?:photo|picture|image) of)\s+",
                    re.IGNORECASE)


def scene_of(text: str) -> str:
    """A picture's description as drop_labels gives it, its opening "The scene shows …" said as what it shows
    (a page's sentence of such talk is dropped, drop_asides; a picture's description is all about it)."""
    return drop_labels(_SHOWS.sub("", clean(text)))


_ASIDE = re.compile(r"\(\s*(?:note|p\.?s\.?)\b[^)]*(?:\)|$)"  # (Note: this story has been modified ...)
                    # a picture's description as a stage direction: "(Mina and Sora) playing in the park, laughing."
                    r"|\((?-i:[A-Z][a-z]+)(?:,? (?:and )?(?-i:[A-Z][a-z]+))*\)\s+[a-z][^.!?]*(?:[.!?]+|$)"
                    r"|(?:^|(?<=[.!?]\s))(?:note|p\.s\.)\s*:[^\n]*$"  # Note: ... to the end
                    r"|(?:^|(?<=[.!?]\s))the end(?:[.!]+(?=\s|$)|$)"  # The end. (a sentence of its own)
                    # the plan's parts named as labels: "There's a small problem: Theo wants to play outside…"
                    r"|(?:^|(?<=[.!?]\s))(?:there(?:'s| is) (?:a|one) (?:small |little )?problem|the (?:small )?"
                    r"problem is|(?:and )?(?:a |the )?happy ending|the beginning)\s*:\s*(?=\w)"
                    # and said as a sentence's start: "The happy ending is that Lena is happy and Theo is happy too."
                    # (the cameraman book's last page)
                    r"|(?:^|(?<=[.!?]\s))(?:and )?(?:in )?(?:a |the )?happy ending,?(?: is)?(?: that)?\s+(?=\w)"
                    # "The small problem is that Milo is scared of the dark." (a robot idea's last page)
                    r"|(?:^|(?<=[.!?]\s))the (?:small |little )?problem is that\s+(?=\w)",
                    re.IGNORECASE)


_ASSISTANT_TALK = re.compile(r"\b(?:let me know(?: if|[.!]|$)|feel free to|i hope you (?:enjoy|like)\w*|if you (?:want|would like|'d like|"
                             r"need) (?:any|more|me|a different)|this story (?:has been|was) (?:modified|written|adapted))\b",
                             re.IGNORECASE)


# How a picture feels, said as the photo's description, not the story: "The sun was shining brightly outside the
# window, creating a warm and inviting atmosphere." (the espresso book's page 1: the clause goes, the sun stays);
# "It is a bright and lively color combination that creates a vibrant and inviting atmosphere for Theo." (a
# paintbrush photo's page 1: the sentence goes); the footballer book's "…, adding an eerie atmosphere to the scene".
_MOOD_CLAUSE = re.compile(r",\s*(?:creating|adding|providing|giving|setting) (?:a|an|the) [^.!?]{0,60}?atmosphere\b"
                          r"[^.!?]*", re.IGNORECASE)
_MOOD_TALK = re.compile(r"\bcolou?r combination\b|\b(?:creates?|adds?|provides?|gives?|sets?) (?:a|an|the) "
                        r"[\w ,-]{0,40}?atmosphere\b", re.IGNORECASE)


def drop_asides(text: str) -> str:
    """A page's text without the model's notes about its own writing ('The end. (Note: This story has been
    modified slightly from the original request to ensure it is appropriate for 9-year-olds.) If you'd like
    any changes, let me know!'): the notes, 'The end' and the sentences that talk to the one who asked, and
    the sentences that speak of the photo, echo our prompt or hold another script (kept when they are all the page
    says: its checks decide then)."""
    parts = re.findall(r"[^.!?]+(?:[.!?]+['\"”’]?|$)", clean(_MOOD_CLAUSE.sub("", _ASIDE.sub(" ", text))))
    # a part's leading comma is debris: 'Tom talks and feels. , "I feel good!"' (the apple book)
    kept = [t.strip().lstrip(",;: ").strip() for t in parts if not _ASSISTANT_TALK.search(t)]
    # a sentence whose plan label went opens with a capital: "The problem is that he cannot…" → "He cannot…"
    kept = [t[:1].upper() + t[1:] for t in kept if t]
    story = [t for t in kept if not _PHOTO_TALK.search(t) and not foreign_script(t) and not _PROMPT_ECHO.search(t)
             and not _PLAN_TALK.search(t) and not _MOOD_TALK.search(t)]
    # the request's photo lines, copied (_PHOTO_PHRASE), a sentence with a Chinese word in it, and one of our prompt's
    # words: a rocket book's happy last page came back ending "The cast sheet: Ivy: dog, brown and white fur, …"
    return clean(" ".join(story or kept))


def has_markup(text: str) -> bool:
    return _NOT_PROSE.search(text) is not None


def request_talk(text: str) -> bool:
    """Whether a page's text still holds talk no story has (_REQUEST_TALK, or the photo: _PHOTO_TALK) once
    drop_asides kept it because it was all the page said. A page that only speaks of the photo is asked again:
    told "Lila is the dog from the photo", Qwen wrote OpenCV's dog photo's page 2 as "Lila looked at the photo
    and thought about her day." """
    return _PHOTO_TALK.search(text) is not None


def leaks_request(text: str) -> bool:
    """Whether a page's text holds our prompt's words or talk no story has: it is no page of the story."""
    return echoes_prompt(text) or request_talk(text)


def without_leaked_sentences(text: str) -> str:
    """A short field (a cast member's kind or look) without its sentences that hold our prompt's words or
    photo talk, when another sentence is left: Qwen wrote the apple's look as "golden, soft, and warm, with a
    golden color. The photo shows apple.", and refusing the plan for it cost the whole book's answer (40 s on
    two cores), after which the next answer made the apple's hero an animal."""
    said = [s.strip() for s in _SENTENCE_END.split(clean(text)) if s.strip()]
    kept = [s for s in said if not leaks_request(s)]
    return " ".join(kept).rstrip(".") if kept and len(kept) < len(said) else text


# A last page that leaves the hero in trouble: sad or danger words and none of a happy ending. On the stored
# story_quality books (422 written by Qwen) it flags 26 last pages, nearly all real ("She felt scared and alone.
# Ella the owl was missing.", "The waves become stronger, making it harder for Ivy to swim back home.").
_TROUBLE = re.compile(r"\b(?:scared|afraid|alone|lost|missing|sad|cr(?:y|ies|ied|ying)|harder|danger\w*|too late|hurt|"
                      r"broke\w*|worr\w*|frighten\w*|stuck|trapped|could ?n[o']t|no longer|gone)\b", re.IGNORECASE)
_HAPPY = re.compile(r"\b(?:happ\w*|smil\w*|laugh\w*|glad|hug\w*|safe\w*|together|lov\w*|joy\w*|cheer\w*|"
                    r"thank\w*|celebrat\w*|fun|proud|grin\w*|best friends?|delight\w*|excit\w*|relie\w*|found|"
                    # home reached, not home still to reach ("harder for Ivy to swim back home")
                    r"(?:went|go|goes|came|come|comes|got|gets|returned|returns|arrived|arrives|flew|walked|ran)"
                    r"(?: back)? home|(?:took|takes|brought|brings|carried|carries|led|leads|helped|helps)(?: \w+){1,4}? "
                    r"(?:back )?home|at home|home again)\b", re.IGNORECASE)


# Words that close a story without being happy ones: "From that day on…", "…fell asleep", "waved goodbye".
_CLOSING = re.compile(r"\b(?:from (?:that|this) (?:day|night|moment)|ever after|finally|at last|in the end|always|"
                      r"fell asleep|went to (?:bed|sleep)|good ?night|goodbye|waved|never forg[eo]t\w*)\b", re.IGNORECASE)


def open_ending(text: str) -> bool:
    """Whether a book's last page stops without an end: no trouble, and nothing happy or closing either. Qwen ended
    OpenCV's smarties book on "But when Tom looks closely into the room, he can see Oscar the owl sitting on top of
    the door.", and 91 of 198 distinct last pages of the stored story_quality books (most from before the books
    were told a small problem) had nothing that ends a story ("Pip asked Hana what she wanted to do.")."""
    if _UNRESOLVED.search((sentences(text) or [text])[-1]):  # "…, as he looked at the vast distance ahead": its
        return True  # happy words ("a mix of excitement and fear") do not end it
    return _HAPPY.search(text) is None and _CLOSING.search(text) is None and _TROUBLE.search(text) is None


# A last sentence that leaves the story's question open: an idea's turtle book ended "But he was still unsure of
# what lay ahead. He felt a mix of excitement and fear, as he looked at the vast distance ahead." (no stored
# story_quality last page, 91 distinct, ends so)
_UNRESOLVED = re.compile(r"\bstill (?:unsure|not sure|wonder\w*|lost|scared|afraid)\b|\bwhat (?:lay|lies|would happen|"
                         r"will happen|was next|is next)\b|\bwonder(?:ed|s|ing)? (?:what|if|whether)\b|\b(?:looked|"
                         r"looks|looking|stared|stares|staring) (?:at|into) the (?:vast )?(?:distance|unknown)\b",
                         re.IGNORECASE)


def unhappy_ending(text: str) -> bool:
    """Whether a book's last page ends it in trouble (the brief asks for a happy ending)."""
    return _TROUBLE.search(text) is not None and _HAPPY.search(text) is None


def echoes_prompt(text: str) -> bool:
    """Words of our own prompts ('cast sheet', 'JSON', 'Reader:') in an answer meant for the book."""
    return _PROMPT_ECHO.search(text) is not None


CONTAINED, CONTAINED_MIN = 0.85, 6  # a page of 6+ content words, nearly all in another page, repeats it
WHOLLY_INSIDE_MIN = 4  # ... and one of 4+ that are all in another page
# Words that differ between a page and the same page told in another tense ("he has collected" / "he had
# collected"), left out when pages are compared whole (as content_words gives them: stems).
_TENSE_WORDS = "has had have been does did too then"


def similar_page(text: str, others: list[str] | tuple[str, ...], share: float = 0.7) -> str | None:
    """The page among `others` that `text` repeats, else None: the same words, mostly, or one page nearly whole
    inside the other (an abstract wallpaper's book: page 4 was page 3's two sentences and one more, which the
    shared-words measure put at 0.6)."""
    tense = content_words(_TENSE_WORDS)
    mine = content_words(text) - tense
    for other in others:
        theirs = content_words(other) - tense
        if clean(text).lower() == clean(other).lower():
            return other
        if mine and theirs and len(mine & theirs) / len(mine | theirs) >= share:
            return other
        smaller = min(len(mine), len(theirs))
        if smaller >= CONTAINED_MIN and len(mine & theirs) / smaller >= CONTAINED:
            return other
        if len(mine) >= WHOLLY_INSIDE_MIN and mine <= theirs:  # a short page that adds nothing: a paintbrush
            return other  # book's page 2 was "As soon as Tala appears, it begins to move.", page 1's first words
    return None


_CLAUSE_JOIN = re.compile(r",\s+(?:and|but|so|then)\s+", re.IGNORECASE)


def _source_sentences(sources: Sequence[str], min_words: int) -> list[set[str]]:
    """The content words of each sentence of `sources` with at least `min_words` of them (scenes and looks often
    end unpunctuated), and of each clause a sentence joins with ", and / but / so / then" (which _page prints as a
    sentence of its own: a sea wallpaper's page 3 ended "…, and Hana felt so happy that she couldn't stop smiling."
    and page 4 said that sentence again)."""
    pieces = [piece for src in sources for sent in _SENTENCE_END.split(clean(src))
              for piece in dict.fromkeys([sent, *_CLAUSE_JOIN.split(sent)])]
    return [w for piece in pieces if len(w := content_words(piece)) >= min_words]


def _copies(own: set[str], theirs: list[set[str]], share: float, min_words: int) -> bool:
    return len(own) >= min_words and any(len(own & w) / len(own | w) >= share for w in theirs)


LOOK_ASIDE_SHARE = 0.7  # of an aside's content words that a cast member's look must hold for it to be a recital


def without_look_asides(text: str, looks: Sequence[str]) -> str:
    """`text` without the asides between commas that recite a cast member's look from the cast sheet: the dragonfly
    photo's page 1 was one 57-word sentence, "…, Milo, a brown dog with white spots and a black collar, carrying a
    small basket full of pizza dough, was waiting for his friends while Nora, a girl with blonde hair and green eyes
    wearing a red dress, carried a cake and a vase." → "…, Milo was waiting for his friends while Nora carried a
    cake and a vase." An aside is a part with a comma on both sides inside one sentence (a sentence's last part
    holds its verb often: "Nora carried a cake and a vase" is her look's "carrying a cake and a vase" too), of 3
    content words or more, LOOK_ASIDE_SHARE of them in one look."""
    owned = [content_words(look) for look in looks if look]
    if not owned:
        return text

    def recital(part: str) -> bool:
        own = content_words(part)
        return len(own) >= 3 and any(len(own & look) >= LOOK_ASIDE_SHARE * len(own) for look in owned)

    def of_a_look(part: str) -> bool:  # a short part of a look: "the turtle", "green", "and a yellow sweater"
        own = content_words(part)
        return bool(own) and any(own <= look for look in owned)

    out = []
    for sentence in sentences(clean(text)) or [clean(text)]:
        parts = sentence.split(",")
        middle = range(1, len(parts) - 1)
        dropped = {i for i in middle if recital(parts[i])}
        while grown := {i for i in middle if i not in dropped and {i - 1, i + 1} & dropped and of_a_look(parts[i])}:
            dropped |= grown  # the recital's neighbours that are its list's other items
        said, joint = parts[0], ","
        for i, part in enumerate(parts[1:], 1):
            if i in dropped:
                joint = ""  # "Milo, <look>, was waiting" → "Milo was waiting"
                continue
            said, joint = said + joint + part, ","
        out.append(said)
    return clean(" ".join(out))


def only_copies(text: str, sources: Sequence[str], share: float = 0.6, min_words: int = 4) -> bool:
    """Whether every sentence of `text` copies a sentence of `sources` (as drop_copied_sentences judges): a
    rewrite of skimage's motorcycle book's page 1 came back as the hero's look, "Lila is a motorbike, brown and
    grey, with a penguin on the back and a toy car on top.", which tells nothing that happens."""
    theirs = _source_sentences(sources, min_words)
    mine = sentences(_semicolons(clean(text)))
    return bool(mine) and all(_copies(content_words(sent), theirs, share, min_words) for sent in mine)


def copies_a_sentence(text: str, sources: Sequence[str], share: float = 0.6, min_words: int = 4) -> bool:
    """Whether any sentence of `text` copies a sentence of `sources` (as drop_copied_sentences judges): told the
    plan's lines so far, Qwen wrote the dragonfly photo's last page as those lines again ("The hero and friend
    meet at the yellow and black place. Milo makes a pizza as a surprise for Nora. …")."""
    theirs = _source_sentences(sources, min_words)
    return any(_copies(content_words(sent), theirs, share, min_words) for sent in sentences(_semicolons(clean(text))))


RECAP_SHARE = 0.9  # of a sentence's content words that the story before must have said for it to be a recap


def without_recap(text: str, earlier: Sequence[str], min_words: int = 4) -> str:
    """`text` without its opening sentences that only tell again what `earlier` told (RECAP_SHARE of their content
    words, at least `min_words`, said there), when a sentence of `min_words` words or more is left: asked for the
    bird book's last page, Qwen began "Lila perches on a branch in the sunlight, and Priya finds Lila sad." (pages
    1 and 2 glued, so no one sentence of theirs was copied) before what happened next."""
    said = set().union(*(content_words(t) for t in earlier)) if earlier else set()
    mine = sentences(_semicolons(clean(text)))
    first = 0
    while first < len(mine) and len(own := content_words(mine[first])) >= min_words and \
            len(own & said) >= RECAP_SHARE * len(own):
        first += 1
    rest = " ".join(mine[first:])
    return rest if first and len(words(rest)) >= min_words else text


def drop_copied_sentences(text: str, sources: list[str], share: float = 0.6, min_words: int = 4) -> str:
    """`text` without the sentences that copy a sentence of `sources` or an earlier sentence of its own
    (mostly the same content words, at least `min_words` of them): a small model writes another page's
    picture description into a page's text ("Rosa watched Leo struggle on the wall." from the page before's
    scene), or tells an event twice ("Theo fetches the coffee from the fridge. Theo comes over and fetches the
    coffee from the fridge."). Left whole when every sentence would go: the page's other checks decide then."""
    theirs = _source_sentences(sources, min_words)

    def copied(own: set[str]) -> bool:
        return _copies(own, theirs, share, min_words)

    # a clause after a semicolon is judged as a sentence of its own: a rewrite of the apple book's page 1 glued
    # page 2's first sentence on ("The apple is soft and warm, with a golden color; Lila is a tiny, red ball…")
    mine = sentences(_semicolons(clean(text)))
    kept = []
    for sent in mine:
        own = content_words(sent)
        if not copied(own):
            kept.append(sent)
            if len(own) >= min_words:
                theirs.append(own)
    return " ".join(kept) if kept and len(kept) < len(mine) else text


def said_aloud(text: str, names: Sequence[str]) -> str:
    """A page written as a play's lines ("Priya: Hi, Lila! What's wrong? Lila: I feel sad.") told as a story's
    speech ('Priya says, "Hi, Lila! What's wrong?" Lila says, "I feel sad."'): the apple book's four pages were
    such lines, printed with their speakers' labels. Only a cast name opening the text or a sentence is a
    speaker."""
    if not names:
        return text
    who = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    label = re.compile(rf"(?:^|(?<=[.!?]\s)|(?<=[.!?][\"'’”]\s))({who}):\s+")
    found = list(label.finditer(text))
    if not found:
        return text
    out = [text[:found[0].start()].strip()]
    for i, m in enumerate(found):
        speech = text[m.end():found[i + 1].start() if i + 1 < len(found) else len(text)].strip().strip("\"“”")
        out.append(f'{m.group(1)} says, "{speech}"' if speech else "")
    return " ".join(x for x in out if x)


def cast_spelling(text: str, names: Sequence[str]) -> str:
    """Each cast name as the cast sheet spells it ('BEN runs to TOM' → 'Ben runs to Tom'): Qwen sometimes
    writes names in capitals, which a picture book's page should not shout. An article before a name is
    dropped ('The Theo sat on the armchair' → 'Theo sat on the armchair': a Qwen book's every page, which the
    French edition printed as 'Le Theo'), unless a capitalised word follows ('The Theo Room'); a name said three
    times in a row is said once."""
    text = roles_named(text, names)
    for name in names:
        text = _misspelt_name(name).sub(name, text)
        # an accent the cast sheet does not have: the baboon book's outline said "Théo" for Theo
        text = LATIN_WORD.sub(lambda m, name=name: name if m[0] != name and folded(m[0]) == name else m[0], text)
        # the name as written (the ivy on the wall stays), before its spelling is mended
        text = re.sub(rf"\b(?i:the|a|an)\s+({re.escape(name)})\b(?!\s+[A-Z])", r"\1", text)
        text = re.sub(rf"\b{re.escape(name)}\b", name, text, flags=re.IGNORECASE)
        # a name stuttered ("Theo, Theo, Theo, sleeping quietly beside Mina": the sample cat's book) is said once
        text = re.sub(rf"\b{re.escape(name)}(?:,?\s+{re.escape(name)}\b){{2,}}", name, text)
        text = re.sub(rf"\b{re.escape(name)}\s+{re.escape(name)}\b", name, text)  # "Milo Milo makes a pizza"
    return text


def _cut(text: str) -> bool:
    """Whether `text` stops on a word no sentence ends on ("…lots of cheese and"): a picture's description is
    often unpunctuated, so a missing full stop alone says nothing."""
    last = re.findall(r"[A-Za-z']+|\S$", text.strip())
    return bool(last) and last[-1].lower() in NEVER_LAST


def without_carried_start(text: str, before: Sequence[str]) -> str:
    """`text` without its first sentence when that opens in lower case and finishes a sentence cut off at the end
    of one of `before` (the page before's text and picture, as answered): Qwen cut the ladybird book's page 1
    picture at "…has just finished making a pizza with lots of cheese and" and opened page 2 with "sausage on
    it." Kept when nothing of four words would be left, or when nothing before was cut ("he saw a small bird"
    opens a page in lower case: _page gives it its capital; a picture is often described without a full stop).
    """
    t = text.lstrip()
    if not t[:1].islower() or not any(_cut(b) for b in before):
        return text
    rest = " ".join(sentences(t)[1:])
    return rest if len(words(rest)) >= 4 else text


def roles_named(text: str, names: Sequence[str]) -> str:
    """The plan's roles said by name (`names`: the hero's first, then the friend's): told that every outline line
    names the hero, Qwen wrote the dragonfly photo's book as "The hero and friend meet at the yellow and black
    place." Only as a sentence's subject or the pair: "Milo was the hero of the day" stays."""
    if not names:
        return text
    for name in names:  # a name in brackets after its role or itself: "The hero (Milo) makes a pizza for his friend
        # (Ava)." (the ladybird book's outline) → "Milo makes a pizza for his friend Ava."
        n = re.escape(name)
        text = re.sub(rf"\b(?:the (?:hero|friend)|{n})\s*\(\s*({n})\s*\)", r"\1", text, flags=re.IGNORECASE)
        text = re.sub(rf"\(\s*({n})\s*\)", r"\1", text)
    hero, friend = names[0], (names[1] if len(names) > 1 else None)
    if friend:
        text = re.sub(r"\bthe hero and (?:the |his |her |their )?friend\b", f"{hero} and {friend}", text, flags=re.IGNORECASE)
        text = re.sub(r"(^|[.!?]\s+)the (?:hero's )?friend\b", rf"\g<1>{friend}", text, flags=re.IGNORECASE)
    return re.sub(r"(^|[.!?]\s+)the hero\b", rf"\g<1>{hero}", text, flags=re.IGNORECASE)


LATIN_WORD = re.compile(r"(?<![A-Za-z\u00c0-\u024f])[A-Za-z\u00c0-\u024f]+(?![A-Za-z\u00c0-\u024f])")


def folded(word: str) -> str:
    """`word` without its accents: 'Minâ' → 'Mina'."""
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


@functools.lru_cache(maxsize=256)
def _misspelt_name(name: str) -> re.Pattern:
    """A capitalised word that is `name` with one letter doubled, a double letter single, or two neighbouring
    letters swapped: Qwen wrote the friend Priya as "Ppriya" on every page of skimage's motorcycle book, and the
    cast sheet then lost her (she was never named). Only these slips of a name of 3+ letters, never another
    letter ("Nina" may be someone else; "Then" is not "Theo")."""
    if len(name) < 3:
        return re.compile(r"$^")
    low, forms = name.lower(), set()
    for i in range(len(low)):
        forms.add(low[:i + 1] + low[i:])  # a letter doubled
        if i + 1 < len(low):
            if low[i] == low[i + 1]:
                forms.add(low[:i] + low[i + 1:])  # a double letter single
            forms.add(low[:i] + low[i + 1] + low[i] + low[i + 2:])  # neighbours swapped
    forms.discard(low)
    alternatives = "|".join(re.escape(f[:1].upper() + f[1:]) for f in sorted(forms))
    return re.compile(rf"\b(?:{alternatives})\b")


def mentions(text: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", text, re.IGNORECASE) is not None


def copied(answer: str, example_words: set[str], given: str) -> str | None:
    """An example's own word (a name, an animal) in the answer but not in what we gave the model."""
    have = {w.lower() for w in words(answer)}
    allowed = {w.lower() for w in words(given)}
    leaked = sorted(w for w in example_words if w.lower() in have and w.lower() not in allowed)
    return f"copied the example ({', '.join(leaked)})" if leaked else None


# Qwen, trained on much Chinese, lets a character slip into English now and then: "a flowing orange t恤" (a
# T-shirt) in a look, "Nora is not a人" in a scene (the orange photo's book).
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7a3\uff01-\uff5e]+")
# a last word with Korean, Chinese or Japanese glued on, where an outline line ran into its length and a page copied it:
# "…helping Priya by bringing them a끼" (the sample cat's book; it cost the whole answer, 464 tokens, for "not English")
# (a text that ends its sentence is whole: "Nora wears a t恤." is no cut, and asked again)
_CUT_GLITCH = re.compile(rf"\s*\S*{_CJK.pattern}[^\s.!?]*$")


def foreign_script(text: str) -> bool:
    """Whether English text holds Chinese, Japanese or Korean characters."""
    return _CJK.search(text) is not None


def without_foreign_script(text: str) -> str:
    """English text without such characters (for a picture's description, never printed)."""
    return clean(_CJK.sub(" ", text))


def glitch_words(text: str) -> list[str]:
    """Short words with a letter beyond Latin-1, which an English page has no use for: Qwen wrote a wallpaper's
    rabbit "sitting on her tı" (a Turkish dotless i). Names and loanwords keep their accents (Zoë, café: Latin-1)."""
    return [w for w in re.findall(r"[^\W\d_]+", text) if len(w) <= 4 and any(c.isalpha() and ord(c) > 0xFF for c in w)]


def in_english(text: str) -> bool:
    """Whether a page's text is English to print: mostly Latin letters, and no Chinese, Japanese or Korean."""
    return english_letters(text) and not foreign_script(text)


def english_letters(text: str, share: float = 0.9) -> bool:
    """Mostly Latin letters (the English text and scenes); catches answers in another script or garbage."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) / len(letters) >= share


STOPWORDS = frozenset("""a an the and or but of in on at to with for from by it its is are was were be this that
these those there here he she they his her their them him you your we our i my me one two some very little big
small shows photo about story who what where when while next""".split())


def content_words(text: str) -> set[str]:
    """Lower-case words that carry meaning, as stems ('cats' → 'cat', 'realized' → 'realiz'), for relevance and
    repeat checks."""
    return {stem(w) for w in words(text.lower()) if len(w) > 2 and w not in STOPWORDS}


# The past forms of the irregular verbs a picture book tells with, as their present: the duck book's page 4 was
# page 3 in the past tense ("Tom gives Pip a piece of bread. Pip eats it" → "Tom gave Pip a piece of bread. Pip
# ate it"), which the endings alone did not make the same words.
_IRREGULAR_PAST = dict(pair.split(":") for pair in """ate:eat became:become began:begin bit:bite blew:blow
    bought:buy brought:bring built:build caught:catch chose:choose came:come dug:dig did:do drew:draw drank:drink
    drove:drive fell:fall fed:feed felt:feel fought:fight found:find flew:fly forgot:forget froze:freeze got:get
    gave:give went:go gone:go grew:grow hung:hang heard:hear hid:hide held:hold kept:keep knew:know led:lead
    left:leave lent:lend lost:lose made:make meant:mean met:meet paid:pay ran:run rang:ring rode:ride said:say
    saw:see seen:see sent:send shook:shake shone:shine shot:shoot sang:sing sank:sink sat:sit slept:sleep
    slid:slide spoke:speak spent:spend spun:spin stood:stand stole:steal stuck:stick swam:swim swung:swing
    took:take taught:teach told:tell thought:think threw:throw understood:understand woke:wake wore:wear won:win
    wrote:write""".split())


def stem(word: str) -> str:
    """A light English stem, so that a page told again in another tense or number is the same words: the squirrel
    book's page 4 was page 3's "As Theo leaves, Milo realizes that he has collected too many nuts and needs help"
    in the past tense. Plurals, -ed, -ing and a final e go ('watches', 'watched', 'watching' → 'watch'; 'stopped'
    → 'stop'); an irregular past is its present first ('gave' → 'give' → 'giv', as 'gives')."""
    w = _IRREGULAR_PAST.get(word, word)
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if re.search(r"(?:ss|x|ch|sh|z)es$", w) and len(w) > 4:
        w = w[:-2]
    elif w.endswith("s") and not w.endswith("ss") and len(w) > 3:
        w = w[:-1]
    elif re.search(r"[^e]ed$|ing$", w) and len(w) > 5:
        w = w[:-2] if w.endswith("ed") else w[:-3]
        if re.search(r"([b-df-hj-km-np-rtv-y])\1$", w):  # stopp → stop, runn → run (not "fall", "pass")
            w = w[:-1]
    elif w.endswith("ed") and len(w) > 4:
        w = w[:-1]  # "realized" → "realize": the final e goes next
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    return w
