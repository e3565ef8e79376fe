"""write: a plan, then pages that follow it — for a whole book of up to PAGES_PER_ANSWER pages, ONE
JSON-schema constrained answer, whose fields come in this order:

  title, hero, friend — the cast sheet: each with a name, a kind and a fixed look reused in every picture;
                        the hero is the photo's main subject (named by the brief, or drawn from a list of
                        names by the seed) unless the brief's idea says otherwise;
  outline             — one line per page: the story's beginning, small problem and happy ending;
  pages               — every page's text and key scene (English, for the illustrator), one per line.

The model writes its plan before the pages, so they follow it; and as one answer nothing is sent or
evaluated twice and no answer is thrown away (a second call for the pages made llama.cpp read the prompt
and the plan again). A longer book gets its further pages in later turns of the
same conversation; `extend_story` continues the outline and writes the new pages in one answer;
`rewrite_page` keeps the cast sheet. Every answer is cleaned (markup and labels stripped) and checked
(hero on the page, no markup or prompt echo left, no loops, no repeated page) and asked again on a new
seed when it fails. When every answer fails, the book is one plain story shared out over the pages, with
the plan of the last answer whose plan passed, else a plain title and cast from the photo (noted in the
manifest). A model too small to plan (TextModel.writes_plans is False: the 135M fast preset) goes
straight to the plain story.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

from taleloom.backends.base import Sampling, TextModel
from taleloom.backends.vision.facts import COLOUR_NAMES, LIGHT_WORDS
from taleloom.backends.vision.imagenet_nouns import is_creature
from taleloom.backends.vision.subjects import ends_noun_phrase, landscape_place, with_article
from taleloom.book import SEED_MAX, Brief, Caption, CastMember, Draft, Page, PageDraft, Storybook
from taleloom.errors import BackendError, BadInputError
from taleloom.stages import story_text as st
from taleloom.stages.concept_match import PHOTO_WORDS
from taleloom.stages.llm_json import TRIES, ask_json

log = logging.getLogger(__name__)

# The stage's default sampling (the brief's seed is used when `sampling.seed` is None). The plan runs at most
# at PLAN_TEMPERATURE: its fields must be right more than surprising.
DEFAULT_SAMPLING = Sampling(temperature=0.7, top_p=0.95, top_k=40, repeat_penalty=1.1)
PLAN_TEMPERATURE = 0.5
PLAN_RELEVANCE_TRIES = 2  # tries whose hero must come from the photo / idea; later ones only need to be sound
PAGES_PER_ANSWER = 6  # pages written in one answer (a longer book takes turns)
PAGES_TRIES = 2  # structured answers for later pages before the plain story fallback
BOOK_TRIES = 3  # answers for the plan and first pages (each a whole book) before the plain story fallback
LONG_SENTENCE = 30  # words: a page with a longer sentence is written again (distinct_pages) ...
SHORT_SENTENCE = 12  # ... asked for sentences of at most this many words
HERO_REWRITE_TRIES = 2  # a page without the hero stays as it is when these fail (4 tries cost a book 15 s)
NAMES = ("Mina", "Leo", "Luna", "Milo", "Noah", "Sora", "Hana", "Yuki", "Theo", "Ava", "Ezra", "Zara", "Kai",
         "Nia", "Omar", "Lila", "Finn", "Ruby", "Jun", "Iris", "Tom", "Rosa", "Ben", "Amara", "Otto", "Maya",
         "Rafi", "Ella", "Sami", "Nora", "Ivy", "Juno", "Remy", "Tala", "Arlo", "Ada", "Eli", "Kira", "Max",
         "Lena", "Oscar", "Priya", "Ravi", "Suki", "Tess", "Uma", "Vera", "Wren", "Yara", "Zeno", "Coco", "Momo")
# The small problem a book without an idea is told to be about, drawn by the seed with one of its things
# (plot_of). Why: told only "a beginning, a small problem and a happy ending", Qwen2.5-Coder-1.5B wrote pages where
# nothing happens (story_quality's cat: "Mina sits on the floor. Theo comes to the floor. Mina watches Theo. Theo
# stops near a tree."). The classic shapes of a picture book's problem, said so that any hero (a cat, a rocket, a
# child) can live them, each with a thing the embedded illustrator has learnt to draw (a test checks): told "a
# little lost animal", Qwen wrote "the animal" on every page, and a fox hero met "a little red fox".
PLOTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("{hero} loses a favourite {thing} and finds it again with a friend's help",
     ("teddy bear", "umbrella", "balloon", "soccer ball")),
    ("{hero} wants a {thing} that hangs out of reach and finds a clever way to get it", ("red apple", "pear", "balloon")),
    ("{hero} hears a strange noise at night and is scared, but it is a friendly {thing}", ("owl", "frog", "mouse")),
    ("{hero} gets lost on the way to the {thing} and finds the way home", ("castle", "beach", "mountain")),
    ("{hero} makes a {thing} as a surprise for a friend, and it goes wrong before it works out",
     ("birthday cake", "pizza", "cookie")),
    ("{hero} meets a {thing} who is sad and cheers it up", ("little bear", "snail", "penguin")),
    ("{hero} finds a little lost {thing} and helps it back to its family", ("chick", "bunny", "puppy", "kitten", "lamb")),
    # not "fails": the aero photo's girl "falls down and breaks her ankle" learning to skate
    ("{hero} tries to {thing} for the first time, finds it hard, practises, and gets it right",
     ("ride a bicycle", "ice skate", "climb a tree")))
# The hero a photo that names nothing gets (an abstract wallpaper, an autumn tree, a bird under lamps that ImageNet
# does not see), drawn by the seed: told only "A place all in beige and brown, in soft, warm light.", Qwen made an
# autumn wallpaper's hero "animal, brown fur, brown eyes, brown skin, brown hat" (printed on the cover; "Omar the
# animal" in a picture's description). Each is an animal the embedded illustrator draws (a test checks).
NAMELESS_HEROES = ("fox", "rabbit", "bear", "cat", "dog", "owl", "penguin", "mouse", "panda", "duck")
_KIND_END = re.compile(r"\s*(?:[,;.]|\b(?:with|who|that|which|and|in|on|at|by|near|next|under|from|to|is|was)\b).*$",
                       re.IGNORECASE)
SYSTEM = ("You write picture books for young children: simple words, short sentences, a clear beginning, "
          "a small problem and a happy ending. Answer with JSON only.")
PLAN_SYSTEM = SYSTEM  # kept for callers that tell the plan's answers apart


def _text(min_len: int, max_len: int) -> dict[str, Any]:
    return {"type": "string", "minLength": min_len, "maxLength": max_len}


def _object(**props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props)}


# A page text that names the hero in its first sentence: any JSON string characters but quotes, backslashes
# and control characters (so the pattern means the same raw or decoded: llama.cpp matches it on the raw text,
# OpenAI-style servers on the value), and no sentence end before the name (anywhere in the text, a model that
# did not mean to name the hero went on and on rather than close the text). Unbounded: llama.cpp turns {0,n}
# into n nested rules; max_tokens bounds it.
_PAGE_CHAR = r'[^"\\\x00-\x1f]'
_FIRST_SENTENCE_CHAR = r'[^"\\\x00-\x1f.!?]'
_SPELLABLE_NAME = re.compile(r"[^\W\d_](?:[^\W_]|[' .-](?=[^\W_])|\.(?= |$))*")  # a letter, then letters, digits
# and inner spaces, hyphens, apostrophes or dots (the brief's hero: "Dr. Lee", "Anne-Marie", "O'Brien", "J.J.")


def _naming(name: str | None, min_len: int, max_len: int) -> dict[str, Any]:
    """The schema of a page's text that must name `name` (the hero) in its first sentence, for a page asked
    for alone with that instruction: the model cannot end the sentence before the name is in it, so the
    answer is not thrown away for lacking the hero (Qwen2.5-Coder-1.5B left the hero off a page in 4 of 30
    books after two rewrite tries: story_quality; a run-on costs at most the rewrite's max_tokens). A name
    the pattern cannot spell plainly (quotes, digits, symbols), or none, gives the plain bounded string."""
    if not name or not _SPELLABLE_NAME.fullmatch(name):
        return _text(min_len, max_len)
    spelled = name.replace(".", "[.]")
    return {"type": "string", "pattern": f"^{_FIRST_SENTENCE_CHAR}*{spelled}{_PAGE_CHAR}*$"}


def _list(item: dict[str, Any], n: int) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": n, "maxItems": n}


def story_sampling(brief: Brief, sampling: Sampling | None = None) -> Sampling:
    """The caller's sampling (or the stage default), with the brief's temperature / top-p / top-k where it
    sets them, and the book's seed unless `sampling.seed` is set. Recorded in the manifest's write stage."""
    s = sampling or DEFAULT_SAMPLING
    update: dict[str, Any] = {k: getattr(brief, k) for k in ("temperature", "top_p", "top_k")
                              if getattr(brief, k) is not None}
    if s.seed is None:
        update["seed"] = brief.seed
    return s.model_copy(update=update)


def _sampling(base: Sampling, offset: int, cool: bool = False, **update: Any) -> Sampling:
    """One call's sampling: its own seed (base + offset), cooler for the plan."""
    update["seed"] = ((base.seed or 0) + offset) % (SEED_MAX + 1)
    if cool:
        update["temperature"] = min(base.temperature, PLAN_TEMPERATURE)
    return base.model_copy(update=update)


# ------------------------------------------------------------------ what the book is about

def _listed(things: Sequence[str]) -> str:
    """'a, b and c'."""
    return " and ".join(filter(None, [", ".join(things[:-1]), things[-1]])) if things else ""


def subject(caption: Caption | None, brief: Brief) -> str:
    """What the story is about: the idea, the photo's caption and its top concepts."""
    parts = [brief.idea or ""]
    if caption is not None:
        parts.append(_unnamed_mood(caption) or caption.text)
        if caption.concepts:
            # a sentence, not a "label: list" the model copies ("Mina shows: cat." as a page: Qwen, the cat book)
            parts.append(f"The photo shows {_listed(caption.concepts[:5])}.")
    about = " ".join(st.clean(p) for p in parts if p and p.strip())
    if not about:
        raise BadInputError("the story needs something to be about", "give a photo, an --idea, or both")
    return about


def _unnamed_mood(caption: Caption) -> str | None:
    """For a photo whose captioner named nothing (an abstract wallpaper, a flower ImageNet has no label for), what
    the story is about: a place in its colours and light. Told "A photo in pink and red tones, in dim, warm
    light.", Qwen wrote "Theo in the Pink and Red Photo", a dog who finds a photo in the park. None when the
    caption names something, or its owner described it."""
    facts = caption.facts or {}
    colours = [c["name"] for c in facts.get("colours", []) if isinstance(c, dict) and c.get("name")][:2]
    if caption.concepts or not colours or facts.get("owner_description"):
        return None
    light = f", in {facts['light']}" if facts.get("light") else ""
    return f"{MOOD_OPENING} {_listed(colours)}{light}."


MOOD_OPENING = "A place all in"  # how _unnamed_mood begins: the book is about a photo that names nothing


# Words for a person. A photo of people has the captioner's "person" or "people" as its subject; the book's
# hero is then "the child from the photo": told "Lila is the person from the photo", Qwen wrote "Lila the person
# in a grey and black outfit stands in a soft light" (the people photo's book), and its plans that made her a
# "woman" or a "girl" were refused as not from the photo, three times, down to a plain story ("Tom the Person").
PEOPLE_WORDS = frozenset("person people human child children kid girl boy woman women man men lady baby toddler "
                         "grandma grandpa mother father mum mom dad".split())
PHOTO_PERSON = "child"


def main_subject(caption: Caption | None) -> str | None:
    """The photo's main subject ('cat'), which becomes the hero: the top concept that is not a landscape, a person or
    an animal before a thing ('child' for a person or people: PEOPLE_WORDS), else None. OpenCV's footballer photo
    ("a football and a person") made the football the hero, "grey, green, black, … lime" its look, and the boy
    holding it no one."""
    subjects = [c for c in _concepts(caption) if landscape_place(c) is None]
    subject = next((c for c in subjects if c.lower() in PEOPLE_WORDS or is_creature(c)), subjects[0] if subjects else None)
    return PHOTO_PERSON if subject and subject.lower() in ("person", "people") else subject


def photo_setting(caption: Caption | None) -> str | None:
    """Where the story happens when the photo shows a landscape ("the water's edge"), else None."""
    return next((p for c in _concepts(caption) if (p := landscape_place(c))), None)


def _concepts(caption: Caption | None) -> list[str]:
    return [c for c in (st.strip_markup(c) for c in (caption.concepts if caption is not None else [])) if c]


# ------------------------------------------------------------------ the plan and the pages, in one answer

BOOK_SYSTEM = (SYSTEM + "\n"
               "To plan a book and write it, give a short \"title\"; the \"hero\" and one \"friend\", each with a "
               "\"name\", a \"kind\" (what animal, person or thing they are, in a few words) and a \"look\" (colours "
               "of fur, hair, skin or paint, and one thing they wear or carry, the same in every picture); an \"outline\" of "
               "one short line per page that tells the whole story with a beginning, a small problem and a happy "
               "ending, every line naming the hero; then the \"pages\" asked for, one per outline line, each with "
               "\"text\" (whole sentences for the reader's age, with the hero's name in it) and \"scene\" (what its "
               "picture shows, in English, 8 to 20 words: who is in it, with their look, and where). No page "
               "repeats another. Plain text only: no titles, page numbers, lists or markup.")


def hero_name(brief: Brief, seed: int) -> str:
    """The hero's name: the brief's, else the first name the owner's description gives (described_names), else one
    of NAMES drawn by the book's seed. Chosen before the model writes, so that the schema can make every page name
    the hero (_naming), and before the photo is seen, so that the request's instructions can be evaluated ahead
    (book_prefix). Told "our cat Pepper, who loves naps on the sofa", the sample cat's book had made its hero "Nora",
    a cat, and Pepper someone else napping on the couch."""
    return brief.hero or next(iter(described_names(brief.description)), None) or random.Random(seed).choice(NAMES)


def subjects_name(description: str | None, kind: str | None) -> str | None:
    """The name the owner's description gives the photo's subject (`kind`, main_subject), when it names more than
    one: "my daughter Mia with our cat Pepper" → Pepper for a cat photo ("cat Pepper", "Pepper the cat", "Pepper, our
    cat"); None when it gives none beside the kind (hero_name then takes its first name)."""
    names = described_names(description)
    if not kind or len(names) < 2:
        return None
    word = re.escape(kind.split()[-1])
    for name in names:
        if re.search(rf"\b{word}\s+{name}\b|\b{name},?\s+(?:is\s+)?(?:the|our|my|a|an)\s+(?:\w+\s+)?{word}\b",
                     description or "", re.IGNORECASE):
            return name
    return None


def described_names(description: str | None) -> list[str]:
    """The names the owner's description of the photo gives, in order: capitalised words that are not a common
    English word ("Our", "This", "Mom") and that a schema can spell ("our cat Pepper and our dog Rex" → Pepper, Rex)."""
    from taleloom.stages.translate import COMMON_WORD, word_counts

    english = word_counts("en") or {}
    out: list[str] = []
    for word in re.findall(r"\b[A-Z][a-z]+(?:-[A-Z][a-z]+)?\b", description or ""):
        if english.get(word.lower(), 0) < COMMON_WORD and word not in out and _SPELLABLE_NAME.fullmatch(word):
            out.append(word)
    return out


def nameless_kind(about: str, brief: Brief, hero: str, hero_kind: str | None) -> str | None:
    """The kind of hero (NAMELESS_HEROES) of a book about a photo that names nothing (subject: MOOD_OPENING) and
    no idea, drawn by its seed; never the plot's own thing ("meets a penguin who is sad" needs a hero who is
    not one). None for any other book."""
    if hero_kind or brief.idea or not about.startswith(MOOD_OPENING):
        return None
    plot = plot_of(brief, hero) or ""
    kinds = [k for k in NAMELESS_HEROES if not re.search(rf"\b{k}\b", plot)]
    return random.Random(f"kind:{brief.seed}:{hero}").choice(kinds)


def plot_of(brief: Brief, hero: str) -> str | None:
    """The book's small problem (PLOTS), drawn by its seed; None when the brief gives an idea (the idea is the
    story). Known before the photo is seen, like the hero's name, so that it is part of the evaluated prefix."""
    if brief.idea:
        return None
    shape, thing = _plot_pick(brief, hero)
    return shape.format(hero=hero, thing=thing)


def _plot_pick(brief: Brief, hero: str) -> tuple[str, str]:
    pick = random.Random(f"plot:{brief.seed}:{hero}")
    shape, things = pick.choice(PLOTS)
    return shape, pick.choice(things)


def told_kinds(cast: Sequence[CastMember], brief: Brief) -> list[str]:
    """What the translate stage tells in the reader's words wherever a text says it (glossary's `kinds`): the
    cast's kinds and the book's small problem's thing (PLOTS), which a story may say once: the Altai wallpaper's
    lost chick, said on one page, was German "Kuh" (a cow)."""
    kinds = [kind_noun(c) for c in cast]
    if cast and not brief.idea:
        kinds.append(_plot_pick(brief, cast[0].name)[1].split()[-1])
    return kinds


def _book_instructions(brief: Brief, hero: str, pages: int, written: int) -> str:
    """The book request's first lines: what the brief alone says (known before the photo is seen)."""
    per_page = st.words_per_page(brief.age)
    which = "every page" if written == pages else f"the first {written} pages"
    plot = plot_of(brief, hero)
    problem = f"the small problem: {plot}" if plot else "a small problem"
    return (f"A picture book for a {brief.age}-year-old reader, {pages} pages, {brief.tone}. The hero is called "
            f"{hero}.\nPlan it, then write it: an outline of exactly {pages} lines (a beginning, {problem}, "
            f"a happy ending), then the pages for {which}, each text {per_page // 2} to {per_page} words and naming "
            f"the hero.\n")


def _book_prompt(about: str, brief: Brief, hero: str, hero_kind: str | None, pages: int, written: int,
                 setting: str | None = None) -> str:
    """The one request for the plan and the first `written` pages (a book of more pages gets the rest in
    later turns): only what the pages and the pictures need, so that few tokens are generated. What
    differs between books; the instructions that do not are BOOK_SYSTEM, and what the photo adds comes last
    (book_prefix)."""
    whose = ""
    if hero_kind and not brief.idea:
        # A thing is told to come alive: told only "Lila is the building from the photo", Qwen gave the building
        # "soft fur, light brown hair" and sat it "on a chair by the window" (sklearn's temple photo), and made
        # "Lena" a girl walking to the motorbike that the cast sheet, and so every picture, made her.
        # Its own sentences, each dropped whole from a page that copies it (story_text._REQUEST_TALK): as one
        # line ending "..., not a person or an animal", Qwen copied it into the apple book's outline, split in two.
        alive = "" if is_creature(hero_kind) is not False else (
            f", come to life: {with_article(hero_kind)} that can move, talk and feel. {hero} is not a person or "
            "an animal")
        whose = f"{hero} is the {hero_kind} from the photo{alive}.\n"
    if setting and not brief.idea:  # a landscape is where the story happens; with nothing else, a child visits it
        whose += (f"The story happens at {setting} from the photo.\n" if hero_kind else
                  f"{hero} is a {PHOTO_PERSON} who visits {setting} from the photo.\n")
    elif kind := nameless_kind(about, brief, hero, hero_kind):
        whose += f"{hero} is a little {kind}.\n"
    return f"{_book_instructions(brief, hero, pages, written)}It is about: {about}\n{whose}"


def book_prefix(brief: Brief, sampling: Sampling | None = None) -> list[dict[str, str]]:
    """The start of the book's request that does not depend on the photo: the instructions (BOOK_SYSTEM, the
    same for every book) and the brief's own lines. The model process evaluates it while the photo is looked
    at (TextModel.preload), so the write call evaluates only what the photo adds (prompt_prefixes.py: Qwen
    evaluates ~75 prompt tokens a second on one thread, a second and a half of write's clock before)."""
    seed = story_sampling(brief, sampling).seed or 0
    return [{"role": "system", "content": BOOK_SYSTEM},
            {"role": "user", "content": _book_instructions(brief, hero_name(brief, seed), brief.pages,
                                                           min(brief.pages, PAGES_PER_ANSWER))}]


def _page_schema(brief: Brief, n: int) -> dict[str, Any]:
    """The pages of a book's answer: plain bounded strings. Not _naming: in a whole book, a model that meant a
    page's first sentence for "the owl" or "she" ran it on for hundreds of tokens rather than close it without
    the hero's name (Qwen: 3 of 3 answers of one book cut off at max_tokens, 30 s each); such a page is named
    afterwards (name_the_hero, name_by_pronoun) or asked again alone, where the schema does name the hero."""
    per_page = st.words_per_page(brief.age)
    return _list(_object(text=_text(per_page, min(1000, per_page * 9)), scene=_text(20, 160)), n)


def _pages_budget(brief: Brief, n: int) -> int:
    """max_tokens for `n` pages of text and scene (about 1.3 tokens a word, JSON included, with room: a cut-off
    answer is a whole book's answer lost)."""
    return n * (st.words_per_page(brief.age) * 2 + 70)


class PagesFailedError(BackendError):
    """Every answer for the book failed its checks; `plan` is the last (title, cast, outline) that passed
    its own (its pages did not), or None."""

    def __init__(self, error: BackendError, plan: tuple[str, list[CastMember], list[str]] | None):
        super().__init__(error.message, error.hint)
        self.plan = plan


def plan_and_write(about: str, brief: Brief, llm: TextModel, sampling: Sampling, hero_kind: str | None = None,
                   things: Sequence[str] = (), setting: str | None = None) -> tuple[str, list[CastMember], list[str], list[PageDraft],
                                                          list[dict[str, str]]]:
    """(title, cast sheet with the hero first, outline lines, the first pages, the conversation so far), in
    one schema-constrained answer: the plan is written first, so the pages follow it, and nothing is sent
    or evaluated twice. The hero's name (hero_name) is imposed by the schema. PagesFailedError when every
    answer fails its checks. `things`: the photo's top concepts but its landscape (the story should be about
    one of them); `setting`: the landscape it happens in (photo_setting), not a kind the hero must be."""
    pages = brief.pages
    n = min(pages, PAGES_PER_ANSWER)
    hero = brief.hero or subjects_name(brief.description, hero_kind) or hero_name(brief, sampling.seed or 0)
    # a name the owner's description gives is a friend's to take ("our cat Pepper and our dog Rex")
    friends = {"type": "string", "enum": list(dict.fromkeys(
        name for name in (*described_names(brief.description), *NAMES) if name != hero))}
    member = {"kind": _text(3, 40), "look": _text(8, LOOK_CHARS)}
    schema = _object(title=_text(5, 60), hero=_object(name={"type": "string", "enum": [hero]}, **member),
                     friend=_object(name=friends, **member), outline=_list(_text(10, OUTLINE_CHARS), pages),
                     pages=_page_schema(brief, n))
    user = _book_prompt(about, brief, hero, hero_kind, pages, n, setting)
    messages = [{"role": "system", "content": BOOK_SYSTEM}, {"role": "user", "content": user}]
    visitor = PHOTO_PERSON if setting and not hero_kind else ""  # _book_prompt's child at the landscape
    wanted = st.content_words(" ".join([hero_kind or visitor, brief.idea or "",
                                        about if not (hero_kind or setting) else "", *things[:3]]))
    # a photo that names nothing is about its colours and light ("A place all in beige and orange, in soft, warm
    # light."), which no hero can be: the rubber whale book lost two whole answers (90 s of 155) for an "animal"
    # and a "person" hero "not from the photo"
    wanted -= st.content_words(" ".join((*COLOUR_NAMES, *LIGHT_WORDS, "all light place tones photo")))
    people = {st.stem(w) for w in PEOPLE_WORDS}  # content words are stems ("people" → "peopl")
    if wanted & people:  # a girl, a boy or a woman is the person from the photo
        wanted |= people
    photo_thing = bool(hero_kind and not brief.idea and is_creature(hero_kind) is False)  # told to come alive
    # an idea's animal is its hero: "a shy hippo who wants to learn to swim" came back with a girl as the hero and the
    # hippo as her friend (the title's "Hippo" let it through)
    idea_kinds = set() if hero_kind else {st.stem(w.lower()) for w in st.words(brief.idea or "") if is_creature(w.lower())}
    planned: list[tuple[str, list[CastMember], list[str]]] = []  # the last plan that passed its checks
    written: list[PageDraft] = []

    def check(d: dict[str, Any], attempt: int) -> str | None:
        _clean_fields(d)
        if problem := _plan_problem(d, brief, wanted if attempt < PLAN_RELEVANCE_TRIES else set(), n):
            return problem
        if idea_kinds and attempt < PLAN_RELEVANCE_TRIES and not st.content_words(d["hero"]["kind"]) & idea_kinds:
            return f"the hero ({d['hero']['kind']}) is not the idea's {', '.join(sorted(idea_kinds))}"
        names = [d["hero"]["name"], d["friend"]["name"]]
        hero_look, friend_look = _look(d["hero"], thing=photo_thing, names=names), _look(d["friend"], names=names)
        cast = [CastMember(name=d["hero"]["name"], look=hero_look, role="hero"),
                CastMember(name=d["friend"]["name"], look=_own_look(friend_look, hero_look), role="friend")]
        # a line that only says who the hero is, is no event: the page's first sentence stands for it (_distinct_outline)
        planned[:] = [(book_title(d["title"]), cast, [
            "" if only_request_line(line, cast[0], hero_kind) else
            st.cast_spelling(whole_line(line, OUTLINE_CHARS), [m.name for m in cast]) for line in d["outline"]])]
        return _pages_problem(d["pages"], cast, 1, written,
                              int(st.words_per_page(brief.age) * 1.5), photo_kind=hero_kind,
                              told=told_the_model(about, brief, hero))

    try:
        d = ask_json(llm, messages, schema,
                     _sampling(sampling, 0, max_tokens=60 + 35 * pages + _pages_budget(brief, n)),
                     "plan and write the book", check, tries=BOOK_TRIES)
    except BackendError as e:
        raise PagesFailedError(e, planned[0] if planned else None) from e
    title, cast, outline = planned[0]
    messages.append({"role": "assistant", "content": json.dumps(d, ensure_ascii=False)})
    return title, cast, _distinct_outline(outline, written, [m.name for m in cast]), list(written), messages


LOOK_CHARS = 90  # a cast member's look's most characters in the book's answer
OUTLINE_CHARS = 90  # an outline line's most characters in the book's answer (each costs the answer's tokens)


def whole_line(line: str, limit: int) -> str:
    """An outline line that ran into its length `limit` back to its last whole sentence, else its last whole word:
    a turtle book's line 2 ended "He feels excited and imag", and its page copied it."""
    line = st.clean(line)
    if len(line) < limit - 1:
        return line
    end = max(line.rfind(c) for c in ".!?")
    return line[:end + 1] if end > 10 else line.rsplit(" ", 1)[0].rstrip(",;:")


def _distinct_outline(outline: list[str], pages: Sequence[PageDraft], names: Sequence[str] = ()) -> list[str]:
    """The outline with a line that repeats an earlier one, or that its written page does not follow (no word but
    the cast's `names` in common), replaced by the page's first sentence: a line is the page's summary, kept for
    extend and rewrite. The footballer photo's pages played with a ball while the plan's lines rode a bicycle; told
    those lines as the story so far, the last page's rewrite ended the book "pedaling with his feet"."""
    out = list(outline)
    cast = st.content_words(" ".join(names))
    for i, page in enumerate(pages):
        if (not out[i] or out[i].lower() in (line.lower() for line in out[:i])  # "": a line of request talk
                or not (st.content_words(out[i]) - cast) & st.content_words(page.text)):
            out[i] = (st.sentences(page.text) or [page.text])[0]
    return out


def _plan_problem(d: dict[str, Any], brief: Brief, wanted: set[str], written: int) -> str | None:
    """What keeps an answer's plan out of the book, else None; `wanted`: words the hero's kind should share
    (the photo's subject, the idea), empty once the try no longer insists. A backend without constrained
    decoding may name the hero itself: only the brief's own hero name is insisted on. Two outline lines alike
    refuse the plan only when the later one is for a page not `written` in this answer (a later turn would
    write that page again); among written pages the pages themselves are checked (distinct_pages), and asking
    the whole book again for a summary line cost the sample cat's book a second answer of 20 s."""
    hero, friend = d["hero"], d["friend"]
    if brief.hero and hero["name"] != brief.hero:
        return f"the hero is not called {brief.hero}"
    if hero["name"] == friend["name"]:
        return "the friend has the hero's name"
    # an outline line copied from the request ("Tom is the apple from the photo, come to life: ...", the apple
    # book) is no event: the page's own first sentence stands for it (the fallback's scenes are outline lines)
    d["outline"] = ["" if st.request_talk(line) else line for line in d["outline"]]
    for member in (hero, friend):  # a look's sentence of photo talk is cut, not the whole book asked again
        member["kind"], member["look"] = map(st.without_leaked_sentences, (member["kind"], member["look"]))
    printed = [d["title"], hero["kind"], hero["look"], friend["kind"], friend["look"], *filter(None, d["outline"])]
    if problem := next((p for p in map(_field_problem, printed) if p), None):
        return problem
    # the photo's subject is the hero, or (a cup of coffee, a bicycle: the model gives it an owner) the title's
    if wanted and not (st.content_words(hero["kind"]) | st.content_words(d["title"])) & wanted:
        return f"the hero ({hero['kind']}) is not from the photo or idea"
    lines = [line.lower() for line in d["outline"]]
    if any(line and line in lines[:i] for i, line in enumerate(lines) if i >= written):
        return "two outline lines are the same"
    return None


def _clean_fields(d: Any) -> Any:
    """Strip markup from every string of an answer, in place (a cast look once ended in '<img src=')."""
    if isinstance(d, dict):
        for k, v in d.items():
            d[k] = st.strip_markup(v) if isinstance(v, str) else _clean_fields(v)
    elif isinstance(d, list):
        for i, v in enumerate(d):
            d[i] = st.strip_markup(v) if isinstance(v, str) else _clean_fields(v)
    return d


def _field_problem(text: str) -> str | None:
    """What keeps a short printed field (title, look, outline line) out of the book, else None."""
    if not text or not st.words(text):
        return "an empty field"
    if st.has_markup(text) or st.echoes_prompt(text):
        return f"markup or prompt words in {text[:40]!r}"
    if not st.english_letters(text):
        return "not English"
    return None


def _look(member: dict[str, str], thing: bool = False, names: Sequence[str] = ()) -> str:
    """The cast sheet's look: the kind, then the look without the photo's light; for a `thing` (the photo's
    subject, which the classifier says is no creature, come to life) without an animal's coat too. A look that
    names another of the cast (`names`) is a scene, not a look, and only the kind is kept: the cameraman book's friend
    was "Person, Theo is standing next to Lena, holding a tripod and looking down at Lena's face", printed in the
    cast and drawn on every page. A kind or look written as a sentence's start ("Child, A girl with …") is said
    in lower case, as inside a sentence."""
    look = member["look"]
    if len(look) >= LOOK_CHARS - 1 and "," in look:  # cut off at its length: its last part is a word's start ("ind")
        look = look.rsplit(",", 1)[0]
    look = _without_photo_light(look)
    if thing or _is_person(member["kind"]):  # a girl with "pink fur" (a wallpaper's book): no coat for people
        look = _without_coat(look)
    if _is_person(member["kind"]):
        look = ", ".join(p.strip() for p in look.split(",") if p.strip() and not _ODD_SKIN.search(p)) or look
        look = ", ".join(p.strip() for p in look.split(",") if p.strip() and not _ONLY_COLOURS.match(p.strip()))
    if any(st.mentions(look, name) for name in names if name and name != member.get("name")):
        look = ""
    kind = _lower_start(short_kind(member["kind"]))
    look = _lower_start(_few_colours(look.strip()))
    # the request's "from the photo" and the kind said again are no look: "building, building from photo"
    parts = [p for p in st.strip_markup(look).split(",")  # nor "a cup" for a cup (a wallpaper of cups' book)
             if p.strip() and re.sub(r"^(?:a|an|the)\s+", "", p.strip().lower()) != kind.lower()]
    # nor the kind said again at a part's end or start: "paintbrush, blue, red, and yellow paintbrush" (the caption
    # copied: a paintbrush wallpaper's cover), "snail, snail with a sad face"
    parts = [p for p in (_without_kind_again(p, kind) for p in parts) if p.strip()]
    return f"{kind}, {short_look(','.join(parts), 90)}" if parts else kind


LOOK_COLOURS = 3  # a run of bare colour names in a look keeps this many
# the captioner's colour names and the other plain colour words a model lists
_BARE_COLOURS = frozenset((*COLOUR_NAMES, "gray", "teal", "lime", "gold", "silver", "tan", "cream", "navy", "violet"))


def _few_colours(look: str) -> str:
    """A look whose comma parts run through bare colour names keeps the first LOOK_COLOURS of each run: the footballer
    photo's hero was "a football, grey, green, black, white, red, yellow, blue, orange, pink, brown, purple, teal,
    lime" (the model listing colours until its length ran out), printed on the cover and drawn in every picture."""
    kept, run = [], 0
    for part in look.split(","):
        run = run + 1 if part.strip().lower() in _BARE_COLOURS else 0
        if run <= LOOK_COLOURS:
            kept.append(part)
    return ",".join(kept)


def _without_kind_again(part: str, kind: str) -> str:
    """A look's part without its kind said again: after colours only ("and yellow paintbrush" → "and yellow": a
    paintbrush wallpaper's cover, the caption copied), or before "with" ("snail with a sad face" → "with a sad
    face"); "a toy cat" and "a shiny red car" stay as they are."""
    if not kind:
        return part
    if part.rstrip().lower().endswith(f" {kind.lower()}"):
        rest = part.rstrip()[: -len(kind)].rstrip()
        if rest.strip() and all(w in _BARE_COLOURS or w == "and" for w in rest.lower().split()):
            return rest
    return re.sub(rf"^\s*(?:(?:a|an|the)\s+)?{re.escape(kind)}\s+(?=with\b)", "", part, flags=re.IGNORECASE)


def _lower_start(text: str) -> str:
    """'Child' → 'child', 'A girl with brown hair' → 'a girl with brown hair': a capital that only opened the field
    (an article, or a one-word kind); a name or an acronym ('Eiffel Tower', 'UFO') keeps its capitals."""
    first, _, rest = text.partition(" ")
    if first in ("A", "An", "The") or (not rest and first[1:].islower() and first.istitle()):
        return first.lower() + (f" {rest}" if rest else "")
    return text


def _own_look(look: str, hero_look: str, share: float = 0.7) -> str:
    """A friend's look, or only its kind when its details are the hero's (a beach book's friend Theo was
    "brown dog, brown and fluffy fur, long white hair, tan skin with brown spots, and a yellow sweater", the hero
    Otto's look word for word): two cast members drawn and described alike are one to a reader."""
    kind, _, details = look.partition(",")
    mine, theirs = st.content_words(details), st.content_words(hero_look.partition(",")[2])
    if mine and theirs and len(mine & theirs) / len(mine | theirs) >= share:
        return kind.strip()
    return look


# An animal's coat: a thing come to life has none. Qwen gave the footballer photo's football "coloured fur" (printed
# on the French cover as "peluche verte"), a rocket "white fur" and "red, yellow, blue feathers" (story_quality books)
_COAT = re.compile(r"\b(?:fur|furry|feathers?|feathered|whiskers|paws?|mane|fins|claws|hooves|beak|snout)\b",
                   re.IGNORECASE)
# a person's skin in the photo's colours: "child, green hair, grey skin" (a valley wallpaper in green and grey) and
# "girl, …, green skin" (a turquoise one): the caption's tones given to a child, printed on the cover
_ODD_SKIN = re.compile(r"\b(?:green|grey|gray|blue|purple|turquoise|orange|yellow|red)(?:ish)?[- ]skin(?:ned)?\b",
                       re.IGNORECASE)


# a part of a person's look that is only colours: the photo's tones given to a child ("child, black and blue": the
# Grace Hopper photo's cover, which in English says bruised)
_ONLY_COLOURS = re.compile(rf"^(?:(?:{'|'.join(_BARE_COLOURS)})(?:\s*,\s*|\s+and\s+|\s+|$))+$", re.IGNORECASE)


def _is_person(kind: str) -> bool:
    """Whether a cast sheet's kind is a person ("girl", "a little boy", "human"): its last word is one of PEOPLE_WORDS."""
    return _last_word(kind) in PEOPLE_WORDS


def _last_word(kind: str) -> str:
    return (kind.split() or [""])[-1].lower()


def _without_coat(look: str) -> str:
    """`look` without its comma parts that speak of an animal's coat ('coloured fur, red hat' → 'red hat'); as it
    is when nothing else would stay."""
    parts = look.split(";") if ";" in look else look.split(",")  # "white; red, yellow, blue feathers; red cap"
    kept = [p.strip() for p in parts if p.strip() and not _COAT.search(p)]
    return ", ".join(kept) if kept else look


# The caption's wording of the photo ("in brown and beige tones, in soft, warm light"), copied into a look: the
# sample cat's cover read "Mina — cat, brown and beige tones, soft, warm light, wearing a blue sweater".
# a part that is the photo's light: "soft, warm light", and one that goes on from it ("soft light casting shadows on
# its facade": the LLM caption of sklearn's china photo, copied into the hero's look)
_PHOTO_LIGHT_PART = re.compile(rf"^(?:in |lit by |with )?(?:a )?(?:(?:{'|'.join(LIGHT_WORDS)})(?: and | )?)*"
                               rf"(?:light(?:\s+(?:casting|making|falling|shining)\b.*)?)?$", re.IGNORECASE)


def _without_photo_light(look: str) -> str:
    """A look without the photo's light and 'tones' ('brown and beige tones, soft, warm light, a blue sweater' →
    'brown and beige, a blue sweater'; 'black and blue in dim light' → 'black and blue'), and without the
    request's come-alive words ('yellow with green skin, can move, talk and feel': the lemon book) and a part
    in another script ('a flowing orange t恤'); left as it is when nothing else would stay."""
    plain = _IN_LIGHT.sub("", _ALIVE_WORDS.sub("", look))
    parts = [_DANGLING_LIGHT.sub("", _TONES.sub("", p.strip())) for p in plain.split(",")]
    kept = [p for p in parts if p and not _PHOTO_LIGHT_PART.match(p) and not _NO_LOOK_PART.match(p)
            and not st.foreign_script(p) and not _COME_ALIVE.search(p) and not _ABILITY.search(p)]
    return ", ".join(kept) if kept else look


# The caption's pose, copied into a look as a part of its own: OpenCV's dog photo ("A brown and grey dog … is
# standing in a dim light") gave "dog, brown and grey, blue eyes, standing, wearing a red sweater", printed on the
# cover (German "stehen") and drawn on every page. A pose is the page's, not the cast sheet's.
_NO_LOOK_PART = re.compile(r"^(?:standing|sitting|lying(?: down)?|walking|running|sleeping|resting|smiling)(?: up| still)?$"
                        # and the photo's own subject said as a part: matplotlib's Grace Hopper photo ("A photo of
                        # a person …") gave "child, black and blue, with person"
                        # (and "with person in it": the same photo's cover, asked again)
                        r"|^(?:with |a |an |the )*(?:person|people|photo|picture|image)(?: in (?:it|the \w+))?$",
                        re.IGNORECASE)


# "in soft, warm light"; the LLM's caption of OpenCV's Suzanne also said ", lit by dim light" (after a comma only:
# "where Milo is lit by dim light is filled with footballs" would lose its verb), and of OpenCV's chick drawing "with
# dim light in the background" (the hero's look: "brown, blue and grey with dim light in the background")
_LIGHT_LEVELS = rf"(?:a )?(?:(?:{'|'.join(LIGHT_WORDS)}),? (?:and )?)*"  # "a soft, warm", "dim and cool"
_IN_LIGHT = re.compile(rf"(?:(?:\s+in|,\s*lit by) {_LIGHT_LEVELS}(?:sun)?light\b"
                       rf"|\s+with {_LIGHT_LEVELS}light in the background\b)", re.IGNORECASE)
# The orange book's look, "orange with soft, warm light, in yellow and grey colours, come to life as an orange":
# the caption's tones said as colours ("in yellow and grey colours" → "yellow and grey"), a light word left
# hanging once the light went ("orange with soft"), and the request's come-alive words as a part of their own.
_TONES = re.compile(r"^in (?=\w+(?: and \w+)? (?:tones?|colou?rs?)$)|\s+(?:tones?|colou?rs?)$", re.IGNORECASE)
_DANGLING_LIGHT = re.compile(rf"\s+(?:with|in) (?:{'|'.join(LIGHT_WORDS)})$", re.IGNORECASE)
_COME_ALIVE = re.compile(r"\bcomes? (?:to life|alive)\b", re.IGNORECASE)
# the request's "can move, talk and feel" said as a look's part: a cups wallpaper's hero was "cup, pink and turquoise,
# with moving legs, talking capabilities, and a soft feel of fabric" (a part with legs or a face is a look)
_ABILITY = re.compile(r"\b(?:capabilit(?:y|ies)|abilit(?:y|ies)|feelings?|alive)\b|\bfeel of\b|\b(?:talking|speaking)$",
                      re.IGNORECASE)
# The caption's wording of the photo in a page or a picture's description: the cat photo's Japanese book opened
# "there was Milo, the friendly cat in brown and beige tones, in soft, warm light" (and its scene "A photo of Milo
# the cat, in brown and beige tones, in soft, warm light"). A story has no tones; the light is the photo's.
_PHOTO_WORDING = re.compile(rf",?\s+in (?:\w+ and )?\w+ tones\b|,?{_IN_LIGHT.pattern}"
                            # the caption's "<level>, <tone> light" after a comma, its "in" dropped: "Once upon a time in
                            # a place all in pink and red, dim, warm light, there lived…" (a wallpaper's book)
                            rf"|,\s*(?:{'|'.join(LIGHT_WORDS)}),\s*(?:{'|'.join(LIGHT_WORDS)}) light\b"
                            # and after "with": "Omar is born in a cozy beige and brown room with soft warm light" (an
                            # autumn wallpaper's book, told "A place all in beige and brown, in soft, warm light")
                            # ("glowed with warm light" is a story's: two light words are the caption's)
                            rf"|\s+with (?:a )?(?:(?:{'|'.join(LIGHT_WORDS)}),? (?:and )?){{2,}}light\b", re.IGNORECASE)


def without_photo_wording(text: str) -> str:
    """`text` without the caption's "in brown and beige tones" and "in soft, warm light"."""
    return st.clean(_PHOTO_WORDING.sub("", text))


# and said as doings: "…, tall in sunlight with moving, talking and feeling" (OpenCV's fruits photo's lemon)
_ALIVE_WORDS = re.compile(r",?\s*(?:and |that |who |with )?(?:(?:can|could) move, talk,? (?:and|or) feel\b"
                          r"|moving, talking,? (?:and |or )?feeling\b|moves, talks,? (?:and |or )?feels\b)", re.IGNORECASE)


FALLBACK_NAMES = ("Mina", "Leo", "Ava", "Tom", "Lila", "Sam", "Nora", "Finn")


def fallback_plan(brief: Brief, things: Sequence[str]) -> tuple[str, list[CastMember]]:
    """A plain title and cast when the LLM does not plan (the fast preset) or its plans fail every check:
    the first thing seen in the photo (or named by the idea) is the hero, a child its friend. Seeded by
    the brief."""
    rnd = random.Random(brief.seed)
    hero = brief.hero or rnd.choice(FALLBACK_NAMES)
    friend = rnd.choice([n for n in FALLBACK_NAMES if n != hero])
    thing = next((short_kind(t) for t in things if st.clean(t)), "")
    title = f"{hero} the {thing.title()}" if thing else f"{hero}'s Big Day"
    child = "a curious child, bright eyes and a yellow coat"
    return short_look(title, 50), [CastMember(name=hero, look=f"a little {thing}" if thing else child, role="hero"),
                                   CastMember(name=friend, look=child if thing else "a little bird", role="friend")]


def book_title(title: str) -> str:
    """The title as a cover prints it: its first sentence when the model wrote several (the coffee book's cover
    read "Mina's coffee is hot and inviting. It is the coffee from Mina's photo."), without a subtitle that only
    says it is a story ("…: A Warm and Gentle Story"), cut back to a whole clause within 60 characters, without a
    closing full stop."""
    first = (st.sentences(title) or [title])[0]
    main, colon, subtitle = first.partition(":")
    if colon and len(main.split()) >= 2 and _TELLS_GENRE.search(subtitle):  # "The Brave Little Turtle: A Warm
        first = main  # and Gentle Story" (an idea's book: the brief's tone, told, came back as a subtitle)
    elif colon and subtitle.strip() and set(re.findall(r"[a-z]+", main.lower())) <= _PHOTO_TALK:
        first = subtitle.strip()  # "Gray and White: Coco Finds the Lost Kitten": the caption's tones, not a title
    return short_look(first, 60).rstrip(".")


_TELLS_GENRE = re.compile(r"\b(?:story|tale|book)\b", re.IGNORECASE)
# the words of a caption's "in grey and white tones, in soft light", which a title may open with
_PHOTO_TALK = PHOTO_WORDS | {"gray", "and", "in", "colours", "colors"}


def short_kind(kind: str) -> str:
    """'a little dragon' from 'a little dragon with a long tail, who...' (at most four words)."""
    words = _KIND_END.sub("", st.clean(kind)).split()[:4] or st.clean(kind).split()[:2]
    return " ".join(words)


def short_look(text: str, limit: int) -> str:
    """A field back to its last whole clause when it ran into its length `limit` (cut mid-thought)."""
    text = st.clean(text)
    if len(text) >= limit - 1:
        cut = max(text.rfind(sep) for sep in ".,;")
        text = text[:cut] if cut > 10 else text.rsplit(" ", 1)[0]
    return text.strip(" ,;.")


def kind_of(member: CastMember) -> str:
    """'a grey cat' from a cast sheet's look 'a grey cat, green eyes and a long tail'."""
    return member.look.split(",")[0].strip()


def cast_sheet(cast: Sequence[CastMember]) -> str:
    return "; ".join(f"{c.name}: {c.look}" for c in cast)


# ------------------------------------------------------------------ pages in later turns, plain stories

def _pages_prompt(brief: Brief, cast: Sequence[CastMember], first: int, lines: Sequence[str]) -> str:
    per_page = st.words_per_page(brief.age)
    numbered = "\n".join(f"{first + i}. {line}" for i, line in enumerate(lines))
    return (f"Now write pages {first} to {first + len(lines) - 1}, one per outline line:\n{numbered}\n"
            f"Each page has \"text\": {per_page // 2} to {per_page} words for a {brief.age}-year-old, in whole "
            f"sentences, naming {cast[0].name}; and \"scene\": what its picture shows, in English, 8 to 20 words, "
            f"naming who is in it with their look from the cast sheet ({cast_sheet(cast)}) and where they are. "
            "No page repeats another. Plain text only: no titles, page numbers, lists or markup.")


def write_pages(messages: list[dict[str, str]], brief: Brief, cast: Sequence[CastMember], lines: Sequence[str],
                first: int, llm: TextModel, sampling: Sampling,
                what: str = "") -> tuple[list[PageDraft], list[dict[str, str]]]:
    """Pages `first`.. for the outline `lines`, as the next turn of `messages` (the book's conversation:
    a book longer than PAGES_PER_ANSWER). Returns the pages and the conversation with this turn added (a
    page that repeats an earlier one is written again afterwards: distinct_pages)."""
    n = len(lines)
    asked = [*messages, {"role": "user", "content": _pages_prompt(brief, cast, first, lines)}]
    result: list[PageDraft] = []

    def check(d: dict[str, Any], attempt: int) -> str | None:
        return _pages_problem(_clean_fields(d)["pages"], cast, first, result,
                              int(st.words_per_page(brief.age) * 1.5))

    d = ask_json(llm, asked, _object(pages=_page_schema(brief, n)),
                 _sampling(sampling, first, max_tokens=_pages_budget(brief, n) + 40),
                 what or f"write pages {first} to {first + n - 1}", check, tries=PAGES_TRIES)
    asked.append({"role": "assistant", "content": json.dumps(d, ensure_ascii=False)})
    return result, asked


def _pages_problem(pages: list[dict[str, str]], cast: Sequence[CastMember], first: int, result: list[PageDraft],
                   limit: int, photo_kind: str | None = None, told: str = "") -> str | None:
    """What keeps answered pages out of the book, else None (and `result` holds them, cleaned, without
    sentences copied from another page's scene): prose, no markup or prompt echo, English, no loops, the hero
    on some page. A page without the hero, or one that tells what another page told, is kept: it is asked
    again alone afterwards (hero_on_every_page, distinct_pages), far cheaper than the whole answer again.
    A scene that repeats an earlier page's is replaced by the page's own text. Texts are cut to `limit`
    words. A sentence that copies what we `told` the model the photo shows (the caption) is dropped where the page
    has a story besides (caption_copy)."""
    scenes = [named_in_scene(st.scene_of(p["scene"]), cast) for p in pages]
    texts: list[str] = []
    for i, p in enumerate(pages):  # nor an earlier page's picture or sentence, or its own again; not a later
        copied_from = scenes[:i] + texts  # page's picture: that was written after, copying this text (cat book)
        carried = st.without_carried_start(p["text"], [pages[i - 1]["text"], pages[i - 1]["scene"]] if i else [])
        own = drop_request_line(st.drop_labels(st.with_full_stop(carried, limit)), cast[0], photo_kind)
        own = without_caption_copy(own, told)
        kept = st.trim_words(st.drop_copied_sentences(own, copied_from), limit)
        texts.append(named_in_text(kept, cast))  # cut first: the hero named only past the cut is missing
    hero = cast[0].name
    for i, (text, scene) in enumerate(zip(texts, scenes, strict=True)):
        page = first + i
        if problem := (st.not_prose(text) or _field_problem(scene)):
            return f"page {page}: {problem}"
        if st.echoes_prompt(text) and not st.request_talk(text):  # a page of photo talk alone ("The photo shows
            # motorbike.") is kept: distinct_pages writes it again alone
            return f"page {page}: the prompt leaked into the text"
        if not st.in_english(text):
            return f"page {page}: not English"
        if problem := st.repetition(text):
            return f"page {page}: {problem}"
        if not st.mentions(text, hero) and not any(st.mentions(t, hero) for t in texts):
            return f"the hero {hero} is not on page {page}"
    shown: set[str] = set()
    for i, scene in enumerate(scenes):  # two pages, one picture: the later one shows its own text instead
        if scene.lower() in shown:  # (asking the whole book again for it cost a second answer: book_latency)
            scenes[i] = texts[i]
        shown.add(scenes[i].lower())
    result[:] = [_page(t, s, cast) for t, s in zip(texts, scenes, strict=True)]
    return None


def told_the_model(about: str, brief: Brief, hero: str) -> str:
    """What the book's request told the model that a page must not copy as its own: what the photo shows (`about`)
    and the small problem (plot_of). The HappyFish photo's page 3 was the plot word for word, "Lila tries to ice
    skate for the first time, finds it hard, practises, and gets it right." """
    return " ".join(filter(None, (about, plot_of(brief, hero))))


CAPTION_COPY = 0.8  # share of content words a sentence has in common with the caption's to be a copy of it


def without_caption_copy(text: str, told: str) -> str:
    """`text` without its sentences that copy what we `told` the model the photo shows, where 4 words stay."""
    if told and len(st.words(story := st.drop_copied_sentences(text, [told], CAPTION_COPY))) >= 4:
        return story
    return text


def caption_copy(text: str, told: str) -> bool:
    """Whether a page says nothing but what we told the model the photo shows, nearly word for word, and perhaps
    a name: HappyFish's book (captioned a computer mouse) printed page 1 as "A bright, warm light illuminates a
    computer mouse on a white and beige background. Suki."."""
    said = st.sentences(text)
    left = [s for s in said if not (told and st.only_copies(s, [told], CAPTION_COPY))]
    return len(left) < len(said) and len(st.words(" ".join(left))) < 4


def drop_request_line(text: str, hero: CastMember, photo_kind: str | None = None) -> str:
    """`text` without the request's line "Lila is the person from the photo." copied as a sentence of its own
    ("Lila is the person.": the people photo's book, page 2, once the photo was cut from it; "Mina is the cup
    of coffee." where the plan made Mina an animal: the coffee book), unless it is all the page says
    (only_request_line: then the page is asked again). The kind is the cast sheet's or the photo's
    (`photo_kind`, what the request line said)."""
    said, line = st.sentences(text), _request_line(hero, photo_kind)
    kept = [s for s in said if not line.match(s)]
    return " ".join(kept) if kept and len(kept) < len(said) else text


def tells_a_look(text: str, cast: Sequence[CastMember]) -> bool:
    """Whether a page only recites cast members' looks from the cast sheet (st.only_copies): no event."""
    return st.only_copies(text, [m.look for m in cast])


def only_request_line(text: str, hero: CastMember, photo_kind: str | None = None) -> bool:
    """Whether a page says nothing but the request's line: the butterfly book's page 2, asked again for
    camera talk, came back "Theo is the butterfly."."""
    said, line = st.sentences(text), _request_line(hero, photo_kind)
    return bool(said) and all(line.match(s) for s in said)


def _request_line(hero: CastMember, photo_kind: str | None) -> re.Pattern:
    words = f"{kind_of(hero)} {photo_kind or ''}".lower().split()
    kinds = "|".join(re.escape(w) for w in dict.fromkeys(words)) or "$^"
    # and the kind alone as a sentence: the baboon book's outline line 2, "monkey. Theo is the monkey from the photo."
    # with the request's own ending too: "Finn is the building, come to life." (OpenCV's home photo's page 1)
    return re.compile(rf"^(?:{re.escape(hero.name)} is (?:the|a|an) )?(?:(?:{kinds})\s*)+(?:from the photo\s*)?"
                      rf"(?:,?\s*come to life\s*)?[.!]$", re.IGNORECASE)


def name_the_hero(text: str, hero: CastMember, named: Sequence[str] = ()) -> str:
    """`text` with the hero's name where a page speaks of the hero only by kind: 'In the sun, a grey tabby cat
    sits' → 'In the sun, Mina the grey tabby cat sits' (the first such mention; a page that names the hero, or
    never mentions its kind, is left as it is). Asking the whole book again for one missing name cost a
    second answer as long as the first."""
    if st.mentions(text, hero.name):
        return text
    noun = kind_noun(hero)
    if len(noun) < 3:
        return text
    # "the grey cat", or the bare kind opening the text ("duck sits quietly on the reed": Qwen's scenes)
    # The words between article and kind are its adjectives, never "of the" ("the backseat of the bike" is no
    # bike: "Lena the backseat of the bike", the motorbike book).
    adjective = r"(?!(?:a|an|the|of|and|or|in|on|at|to|with|for|from|by|his|her|its|their)\b)[a-z-]+\s+"
    kind = rf"(?:\b(?:a|an|the)\s+((?:{adjective}){{0,3}}?{re.escape(noun)})|^({re.escape(noun)}))\b"
    for found in re.finditer(kind, text, re.IGNORECASE):
        before = text[:found.start()].rstrip().rsplit(" ", 1)[-1]
        if before in named:  # "Mina the cat" is Mina's: not "Mina Luna the cat" for a friend who is a cat too
            continue
        if re.match(r"\s+(?:named|called)\s+[A-Z]", text[found.end():]):  # "the brown dog named Otto" is Otto,
            continue  # not the friend who is a brown dog too ("Theo the brown dog named Otto": a beach book's scene)
        if ends_noun_phrase(text[found.end():]):
            said = found.group(1) or found.group(2).lower()
            return f"{text[:found.start()]}{hero.name} the {said}{text[found.end():]}"
    return text


def named_in_scene(scene: str, cast: Sequence[CastMember]) -> str:
    """A picture's description with each cast member's name where it speaks of them only by kind ('The cat
    looks at the dog' → 'Mina the cat looks at Theo the dog'): the stage finds a friend by name, and a big
    illustrator's prompt says who is who. Qwen's scenes named no one in 16 of 30 books (story_quality)."""
    for member in cast:
        scene = name_the_hero(scene, member, [m.name for m in cast])
    return scene


def named_in_text(text: str, cast: Sequence[CastMember]) -> str:
    """A page's text with the hero's name where it speaks of the hero only by kind (name_the_hero), and the
    friend's where it speaks of the friend only by kind, when the two are of different kinds: skimage's cameraman
    book said "The person helps Lena find the lamb's family", and a reader never learnt that the person was Theo.
    Two of one kind (two cats) leave 'the cat' to the story."""
    text = name_the_hero(text, cast[0])
    if len(cast) > 1 and kind_noun(cast[1]) != kind_noun(cast[0]):
        text = name_the_hero(text, cast[1], [m.name for m in cast])
    return text


def kind_noun(member: CastMember) -> str:
    """The last word of a cast member's kind, lower-cased: 'cat' for 'a grey tabby cat'."""
    return _last_word(kind_of(member))


_PRONOUNS = {"he": r"\b(?:he|him|his|himself)\b", "she": r"\b(?:she|her|hers|herself)\b"}


def hero_pronoun(texts: Sequence[str], hero: str) -> str | None:
    """'he' or 'she' when the pages that name the hero speak of someone that way (nearly) only, else None
    ('they', 'it', or both in use: too unsure to stand for the hero)."""
    naming = " ".join(t for t in texts if st.mentions(t, hero))
    count = {p: len(re.findall(rx, naming, re.IGNORECASE)) for p, rx in _PRONOUNS.items()}
    first, second = sorted(count, key=count.get, reverse=True)
    return first if count[first] >= max(1, 4 * count[second]) else None


def name_by_pronoun(text: str, hero: str, pronoun: str | None, others: Sequence[str], before: str = "") -> str:
    """`text` with the hero's name for the first sentence that opens with the hero's pronoun: 'The wind
    blew. She held on tight.' → 'The wind blew. Mina held on tight.'. Left as it is when the page names
    another cast member (the pronoun may be theirs) or has no such sentence. Why: a page that speaks of the
    hero only as 'she' cost a rewrite call of its own (Qwen: 1 or 2 calls in most French books), a third
    of the write stage's time. A page that names another cast member later is named too when it opens with the
    pronoun and the page `before` ends on the hero alone ("He saw a small bird on a branch. It was a bluebird
    named Theo.", after "… Otto was flying his kite.": a kite book's page 2)."""
    if pronoun is None or st.mentions(text, hero):
        return text
    if any(st.mentions(text, o) for o in others) and not _continues_hero(text, hero, pronoun, others, before):
        return text
    found = re.search(rf"(?:^|(?<=[.!?]\s)|(?<=[.!?][\"'’”]\s))({pronoun.capitalize()})\b", text)
    return text if found is None else f"{text[:found.start(1)]}{hero}{text[found.end(1):]}"


def _continues_hero(text: str, hero: str, pronoun: str, others: Sequence[str], before: str) -> bool:
    """Whether `text` opens with the hero's pronoun in a sentence that names no one, right after a page whose
    last sentence names the hero and no one else: the pronoun can only be the hero's."""
    first, last = (st.sentences(text) or [text])[0], (st.sentences(before) or [before])[-1]
    return (re.match(rf"{pronoun}\b", first, re.IGNORECASE) is not None
            and not any(st.mentions(first, o) for o in others)
            and st.mentions(last, hero) and not any(st.mentions(last, o) for o in others))


def name_by_they(text: str, hero: str, friend: str | None, before: str = "") -> str:
    """`text` with "{hero} and {friend}" for the first sentence that opens with "They", when the two are who
    "they" can be: the page names the friend, or the page before names both, and no one else is named on this
    page. 'They play in the pond together.' → 'Otto and Theo play in the pond together.' (the turtle book's
    last page, which two hero rewrites did not mend: story_quality, 4 of 30 Qwen books lacked the hero on a
    page, two of them on a "They" page)."""
    if friend is None or st.mentions(text, hero):
        return text
    if not (st.mentions(text, friend) or (st.mentions(before, hero) and st.mentions(before, friend))):
        return text
    found = re.search(r"(?:^|(?<=[.!?]\s)|(?<=[.!?][\"'’”]\s))(They)\b(?!['’])", text)
    return text if found is None else f"{text[:found.start(1)]}{hero} and {friend}{text[found.end(1):]}"


def _page(text: str, scene: str, cast: Sequence[CastMember], outline: str = "") -> PageDraft:
    """A page as the book keeps it: the cast's names spelt as on the cast sheet, without asides that recite a look
    (st.without_look_asides), two sentences joined by a comma and a conjunction told as two (st.short_sentences),
    the scene with their looks."""
    names = [m.name for m in cast]
    text = st.without_look_asides(without_photo_wording(text), [m.look for m in cast])
    text = st.short_sentences(st.said_aloud(st.cast_spelling(text, names), names), names)
    text = text[:1].upper() + text[1:]  # "he saw a small bird…" (a kite book's page 2): a page opens a sentence, and
    # the hero's pronoun there can then be named (name_by_pronoun)
    return PageDraft(text=text, scene=_scene(scene, cast), outline=outline)


def _scene(scene: str, cast: Sequence[CastMember]) -> str:
    """The picture's description as the book keeps it: names spelt as on the cast sheet (small models lower-case
    them, "lena, a big cat", or shout them, "LENA"), and the hero in it when it names no one of the cast ("A
    sunny sand beach with rocks and waves": 8 of 30 Qwen books had such a scene, story_quality's cast check;
    an illustrator that draws what the scene says would leave the hero out of that page)."""
    scene = st.trim_words(st.without_foreign_script(without_photo_wording(scene)), 24).rstrip(".…")
    scene = st.cast_spelling(scene, [m.name for m in cast])
    if cast and not any(st.mentions(scene, m.name) for m in cast):
        kind = re.sub(r"^(?:a|an|the)\s+(?=\S)", "", short_kind(kind_of(cast[0])), flags=re.IGNORECASE)
        scene = f"{scene}, with {cast[0].name} the {kind}"  # not "Lila the a fruit" (the apple book)
    return scene


def _all_pages(messages: list[dict[str, str]], brief: Brief, cast: Sequence[CastMember], outline: Sequence[str],
               first: int, llm: TextModel, sampling: Sampling, avoid: Sequence[str] = (),
               about: str = "") -> list[PageDraft]:
    """Every page of `outline`, PAGES_PER_ANSWER at a time, each turn continuing the conversation; a turn
    that fails every try is written as one plain story instead."""
    out: list[PageDraft] = []
    for start in range(0, len(outline), PAGES_PER_ANSWER):
        lines = outline[start:start + PAGES_PER_ANSWER]
        what = f"write pages {first + start} to {first + start + len(lines) - 1} about {cast[0].name}"
        try:
            pages, messages = write_pages(messages, brief, cast, lines, first + start, llm, sampling, what=what)
        except BackendError as e:
            log.info("%s; writing these pages as one plain story instead", e.message)
            try:
                pages = story_fallback(brief, cast, lines, first + start, llm, sampling,
                                       so_far=[*avoid, *(p.text for p in out)], about=about)
            except BackendError as plain:
                raise BackendError(f"{plain.message}; before that, {e.message}", plain.hint) from e
        out += pages
    return out


def plain_pages(brief: Brief, cast: Sequence[CastMember], outline: Sequence[str], llm: TextModel,
                sampling: Sampling, about: str = "") -> list[PageDraft]:
    """Every page as plain stories of up to PAGES_PER_ANSWER pages, each continuing the last. Without an
    `outline` line (""), a page's first sentence is its outline line and its text makes its scene."""
    out: list[PageDraft] = []
    for start in range(0, len(outline), PAGES_PER_ANSWER):
        out += story_fallback(brief, cast, outline[start:start + PAGES_PER_ANSWER], start + 1, llm, sampling,
                              so_far=[p.text for p in out], about=about)
    return [p.model_copy(update={"outline": line if st.words(line) and not about else (st.sentences(p.text) or [p.text])[0]})
            for p, line in zip(out, outline, strict=True)]


def story_fallback(brief: Brief, cast: Sequence[CastMember], lines: Sequence[str], first: int, llm: TextModel,
                   sampling: Sampling, so_far: Sequence[str] = (), about: str = "") -> list[PageDraft]:
    """The pages as one plain story shared out by sentences, for models too small for the structured answer
    (SmolLM2-135M); each page's scene is the hero's look and its outline line (no more calls). A story asked
    `about` the photo was not told the outline, and its scenes are its own text: the coins book's story of hungry
    birds fed by Sami had been drawn as the failed plan's lost chick on every page."""
    hero, n = cast[0], len(lines)
    per_page = st.words_per_page(brief.age)
    start = (f"The story so far: {' '.join(so_far[-2:])}\nContinue it" if so_far
             else f"Write a story for a {brief.age}-year-old")
    user = (f"{start} about {hero.name}, {kind_of(hero)}. It is about: {about or '; '.join(lines)} Use {n * 2 + 1} "
            f"short sentences. Make it {brief.tone}. Begin with: "
            + (f"{hero.name}" if so_far else f"Once upon a time, there was {kind_of(hero)} named {hero.name}."))
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
    max_chars = min(1000, int(n * per_page * 5.5) + 80)
    result: list[str] = []

    def check(d: dict[str, Any], attempt: int) -> str | None:
        story = st.strip_markup(d["story"])
        if problem := (st.not_prose(story) or st.repetition(story)):
            return problem
        if st.echoes_prompt(story) or not st.english_letters(story):
            return "not a story in English"
        if not st.mentions(story, hero.name):
            return f"the hero {hero.name} is not in the story"
        split = st.split_pages(st.drop_asides(story), n)
        if split is None:
            return f"fewer than {n} sentences for {n} pages"
        if len({p.lower() for p in split}) < n or any(st.similar_page(p, list(so_far)) for p in split):
            return "two pages are the same"
        result[:] = [st.trim_words(p, int(per_page * 1.5)) for p in split]
        return None

    ask_json(llm, messages, _object(story=_text(n * per_page * 3, max_chars)),
             _sampling(sampling, 300 + first, max_tokens=max_chars // 3 + 24),
             f"write a {n}-page story about {hero.name}", check)
    look = f"{hero.name}, {hero.look}"
    return [_page(t, f"{look}: {line if st.words(line) and not about else t}", cast)
            for t, line in zip(result, lines, strict=True)]


# ------------------------------------------------------------------ the stage's entry points

def write_story(caption: Caption | None, brief: Brief, llm: TextModel, sampling: Sampling | None = None) -> Draft:
    """Title, cast sheet, outline and `brief.pages` pages (text + key scene), in English. Seeded by
    `brief.seed` unless `sampling.seed` is set; BackendError when the pages fail their checks on every try.

    A model that writes plans (TextModel.writes_plans) plans and writes the book in one answer; a model too
    small for that (the fast preset) goes straight to one plain story with a title and cast from the photo,
    as does a book whose plans failed every check (noted in the manifest)."""
    sampling = story_sampling(brief, sampling)
    about = subject(caption, brief)
    notes: list[str] = []
    idea_words = [w for w in re.findall(r"[a-z]+", (brief.idea or "").lower()) if len(w) > 2 and w not in st.STOPWORDS]
    # for a plain cast: the photo's things, not its landscape (the story's setting)
    things = [c for c in _concepts(caption) if landscape_place(c) is None] + idea_words[:1]
    plan: tuple[str, list[CastMember], list[str]] | None = None
    pages: list[PageDraft] = []
    failed = ""  # why the planned book was not used
    if llm.writes_plans:
        try:
            title, cast, outline, pages, messages = plan_and_write(about, brief, llm, sampling, main_subject(caption),
                                                                   things, photo_setting(caption))
            plan = title, cast, outline
            pages += _all_pages(messages, brief, cast, outline[len(pages):], len(pages) + 1, llm, sampling,
                                avoid=[p.text for p in pages], about=about)
        except PagesFailedError as e:
            log.warning("%s; writing the book as one plain story instead", e.message)
            plan, pages, failed = e.plan, [], e.message
            if plan is None:
                notes.append("the LLM's plans failed their checks on every try, so a plain title and cast were made "
                             "from the photo's concepts (a larger LLM plans better)")
    else:
        notes.append(f"{getattr(llm, 'model_id', 'the LLM')} writes one plain story; its title and cast come from "
                     "the photo (the default LLM plans the book)")
    if plan is None:
        title, cast = fallback_plan(brief, things)
        plan = title, cast, [""] * brief.pages
    title, cast, outline = plan
    if not pages:
        try:
            pages = plain_pages(brief, cast, outline, llm, sampling, about)
        except BackendError as plain:
            before = f"; before that, {failed}" if failed else ""
            raise BackendError(f"{plain.message}{before}", plain.hint) from plain
    else:
        pages = [p.model_copy(update={"outline": line}) for p, line in zip(pages, outline, strict=True)]
        pages = hero_on_every_page(distinct_pages(pages, cast, brief, llm, sampling,
                                                  about=told_the_model(about, brief, cast[0].name)),
                                   cast, brief, llm, sampling)
        pages = happy_ending(pages, cast, brief, llm, sampling)
    if len(cast) > 1 and not any(st.mentions(p.text, cast[1].name) for p in pages):
        cast = cast[:1]  # the companion never turned up: keep the cast sheet to who is in the book
    return Draft(title=title, cast=cast, pages=pages, notes=notes)


def distinct_pages(pages: list[PageDraft], cast: Sequence[CastMember], brief: Brief, llm: TextModel,
                   sampling: Sampling, about: str = "") -> list[PageDraft]:
    """The planned pages, each that tells what an earlier page told (st.similar_page), nothing but the
    request's line (only_request_line), or a sentence too long for a young reader (LONG_SENTENCE: "Suddenly,
    there was a loud noise nearby. It sounded like a small bird was calling for help from the distance as it
    landed on the ground with its wings flapping in distress and its eyes wide open in panic and pain, causing
    Otto, the owl, to quickly look up at the scene."), written again alone with its own outline line and the hero: a short
    answer, where rejecting the book for it cost a second answer of the whole book (Qwen2.5-Coder-1.5B once
    the schema made every page name the hero: 31 s of write instead of 18, book_latency). The page keeps its
    outline line; where the rewrite fails, a repeated page is told by that line (if it names the hero and repeats
    no page), else left as it was. `about`: what the model was told the photo shows (a page of its caption alone
    is written again: caption_copy)."""
    out = list(pages)
    for i, page in enumerate(pages):
        earlier = [p.text for p in out[:i]]
        pictured = [p.scene for p in out[:i]]  # a page that tells an earlier picture's description tells that page
        told = f" ({page.outline.rstrip('.')})" if page.outline else ""
        no_story = False
        if only_request_line(page.text, cast[0]):  # "Nora is the girl.": a page that tells nothing
            instead, which = "", 0
        elif no_story := (st.request_talk(page.text) or tells_a_look(page.text, cast) or caption_copy(page.text, about)):
            # "A picture of Lila with Priya after the hug." (the motorcycle book), or the hero's look recited
            instead, which = "; what happens, not a picture or a photo", 0
        elif other := st.similar_page(page.text, earlier + pictured):  # (the temple book's page 4: page 2's scene)
            which = (earlier.index(other) if other in earlier else pictured.index(other)) + 1
            instead = f"; not what page {which} told"
        elif st.longest_sentence(page.text) > LONG_SENTENCE:
            instead, which = f"; in short sentences of at most {SHORT_SENTENCE} words", 0
        elif st.glitch_words(page.text):  # "She's sitting on her tı": the page again, in plain words
            instead, which = "; in plain English words", 0
        else:
            continue
        try:
            new = rewrite_page(out, i + 1, f"tell this page's own event{told} in new sentences, with "
                                           f"{cast[0].name} named in the first one{instead}",
                               brief, llm, sampling, cast=list(cast), tries=HERO_REWRITE_TRIES,
                               must_name=cast[0].name, fresh=True, max_sentence=LONG_SENTENCE,
                               so_far=plan_so_far(out) if i == len(out) - 1 else "", told=about)
        except BackendError as e:
            line = st.clean(page.outline)
            others = [p.text for j, p in enumerate(out) if j != i]
            if ((which or no_story) and line and st.mentions(line, cast[0].name) and not st.leaks_request(line)
                    and not st.similar_page(line, others)):
                # the duck book's page 4 was page 1 word for word, and both rewrites failed (a copied prompt, then
                # page 3 in the past tense): the plan's own line for the page is a page a young reader can read
                log.info("page %d (%s) could not be rewritten: its outline line stands for it (%s)", i + 1,
                         f"repeats page {which}" if which else "photo talk", e.message)
                out[i] = page.model_copy(update={"text": _page(line, page.scene, cast).text})
            else:
                log.info("page %d kept as written (its rewrite%s failed): %s", i + 1,
                         instead or " for the request line alone", e.message)
            continue
        out[i] = page.model_copy(update={"text": new.text, "scene": new.scene})
    return out


def happy_ending(pages: list[PageDraft], cast: Sequence[CastMember], brief: Brief, llm: TextModel,
                 sampling: Sampling) -> list[PageDraft]:
    """The pages, the last written again alone when it leaves the hero in trouble (st.unhappy_ending: a rocket
    photo's book ended "The waves become stronger, making it harder for Ivy to swim back home.") or stops without
    an end (st.open_ending: the smarties book's "…he can see Oscar the owl sitting on top of the door."); kept as it
    was when the rewrite fails or ends no better. A book of fewer than 3 pages has no room for a problem and its end
    apart: its last page may be the problem."""
    if len(pages) < 3 or _no_ending(pages[-1].text) is None:
        return pages
    hero, n = cast[0].name, len(pages)
    so_far = plan_so_far(pages)
    try:
        # told "end the story happily: the problem is solved and {hero} is glad", Qwen told the story so far again
        # (6 of 6 answers on three books' last pages: a robot idea, the dragonfly and baboon photos); told what
        # happens next, 4 of 6 answers were endings (a throwaway script over those books)
        new = rewrite_page(pages, n, f"what happens next, after the story so far, until the story ends happily for "
                                     f"{hero}; in new sentences (not the story so far again), with {hero} named in "
                                     "the first one", brief, llm, sampling,
                           cast=list(cast), tries=HERO_REWRITE_TRIES, must_name=hero, fresh=True,
                           max_sentence=LONG_SENTENCE, problem_of=_no_ending, so_far=so_far)
    except BackendError as e:
        log.info("the last page still does not end the story: %s", e.message)
        return pages
    return [*pages[:-1], pages[-1].model_copy(update={"text": new.text, "scene": new.scene})]


def plan_so_far(pages: Sequence[PageDraft]) -> str:
    """The plan's lines before the last page, told to a rewrite of the last page instead of the page before: told
    the page before, Qwen wrote it again as the last page (a wallpaper of cups' book and 2 of story_quality's 10
    books lost both ending tries so; the dragonfly photo's book both tries of its hero rewrite). "" without a plan."""
    return " ".join(st.clean(p.outline).rstrip(".") + "." for p in pages[:-1] if getattr(p, "outline", ""))


def _no_ending(text: str) -> str | None:
    if st.unhappy_ending(text):
        return "the story ends in trouble"
    return "the story does not end" if st.open_ending(text) else None


def hero_on_every_page(pages: list[PageDraft], cast: Sequence[CastMember], brief: Brief, llm: TextModel,
                       sampling: Sampling) -> list[PageDraft]:
    """The planned pages, each that does not name the hero given the name for the hero's pronoun where that is
    safe (name_by_pronoun, name_by_they), else written again with that one instruction (a short answer; asking for the whole
    book again cost as much as the book, and Qwen2.5-Coder-1.5B left the hero off a page in 6 of 18 books:
    story_quality). The page keeps its scene; a rewrite that still lacks the hero, or fails, leaves the page
    as it was."""
    hero, out = cast[0].name, list(pages)
    pronoun = hero_pronoun([p.text for p in pages], hero)
    for i, page in enumerate(pages):
        if st.mentions(page.text, hero):
            continue
        named = name_by_pronoun(page.text, hero, pronoun, [m.name for m in cast[1:]], out[i - 1].text if i else "")
        if named == page.text:
            named = name_by_they(page.text, hero, cast[1].name if len(cast) > 1 else None,
                                 out[i - 1].text if i else "")
        if named != page.text:
            out[i] = page.model_copy(update={"text": named})
            continue
        try:
            new = rewrite_page(out, i + 1, f"tell the same events in new sentences, with {hero} named in the "
                                           "first one; do not repeat a sentence of another page", brief, llm,
                               sampling, cast=list(cast), tries=HERO_REWRITE_TRIES, must_name=hero, keep_scene=True,
                               so_far=plan_so_far(out) if i == len(out) - 1 else "")
        except BackendError as e:
            log.info("page %d still does not name %s: %s", i + 1, hero, e.message)
            continue
        if st.mentions(new.text, hero):
            out[i] = page.model_copy(update={"text": new.text})
    return out


def _pages_of(source: Draft | Storybook | Sequence[Page | PageDraft]) -> list[Page | PageDraft]:
    return list(source.pages) if isinstance(source, Draft | Storybook) else list(source)


def rewrite_page(draft_or_book_pages: Draft | Storybook | Sequence[Page | PageDraft], n: int, instruction: str,
                 brief: Brief, llm: TextModel, sampling: Sampling | None = None,
                 cast: list[CastMember] | None = None, tries: int = TRIES, must_name: str | None = None,
                 fresh: bool = False, keep_scene: bool = False, max_sentence: int | None = None,
                 problem_of: Callable[[str], str | None] | None = None, so_far: str = "",
                 told: str = "") -> PageDraft:
    """Page `n` (1-based) written again following `instruction`, with a new scene, keeping the cast sheet
    (from a Draft or Storybook, else `cast`, else the brief's hero); at most `tries` answers. Sentences copied
    from other pages are dropped from an answer, and one that then lacks `must_name` is asked again (Qwen
    "named" the hero by copying the page before's sentence that did). `fresh`: the page is written anew from
    the instruction, without being shown its old text, and its picture shows the new text (Qwen copied a
    repeated page's old text back, and wrote prompt fragments into a scene asked for with it). `keep_scene`:
    only the text is asked for; the page keeps its picture (the same events told again). `max_sentence`: an
    answer with a longer sentence is asked again (asked for sentences of at most 12 words, Qwen wrote the rubber
    whale book's page 1 again as one sentence of 35). `problem_of`: the caller's own check of the new text (what is
    wrong with it, else None), asked again like the others. `so_far`: the story before the page, told instead of
    the page before (which Qwen copied back as the new last page, and both ending rewrites failed). `told`: what the
    model was told the photo shows; a sentence copying it is dropped where the page says 4 words besides."""
    pages = _pages_of(draft_or_book_pages)
    if not 1 <= n <= len(pages):
        raise BadInputError(f"there is no page {n}", f"choose a page from 1 to {len(pages)}")
    if not instruction.strip():
        raise BadInputError("a rewrite needs an instruction", 'e.g. "make it funnier"')
    if cast is None:
        cast = list(getattr(draft_or_book_pages, "cast", None) or [])
    if not cast:
        cast = [CastMember(name=brief.hero or "the hero", look="the hero")]
    old = pages[n - 1].text
    before = (f"The story so far: {so_far}\n" if so_far else f"The page before: {pages[n - 2].text}\n" if n > 1
              else "")
    after = f"The page after: {pages[n].text}\n" if n < len(pages) else ""
    keep = cast[0].name if st.mentions(old, cast[0].name) else None
    shown, verb = ("", "Write page {n} again") if fresh else (f"Page {n}: {old}\n", "Rewrite page {n}")
    per_page = st.words_per_page(brief.age)
    # the reader told, as the book's request tells it: not told, the sample cat's ending came back as 54 words for a
    # 6-year-old ("Mina feels grateful for the opportunity to help Priya and feel a sense of joy in her own life.")
    reader = f" For a {brief.age}-year-old reader: at most {per_page} words, in short sentences."
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"The cast sheet: {cast_sheet(cast)}.\n{before}{shown}{after}"
                                            f"{verb.format(n=n)}: {instruction.strip()}. Keep the characters as the "
                                            "cast sheet describes them" + (f" and keep {keep} in it." if keep else
                                                                            ".") + reader}]
    sampling = story_sampling(brief, sampling)
    others = [p.text for i, p in enumerate(pages) if i != n - 1]
    before_n = [p.text for p in pages[:n - 1]]
    result: list[PageDraft] = []
    limit = int(per_page * 1.5)  # words a page may have

    def check(d: dict[str, Any], attempt: int) -> str | None:
        _clean_fields(d)
        # cut to the page's length before the checks: the hero named only in a sentence cut off is missing
        text = st.without_recap(st.drop_labels(st.with_full_stop(d["text"], limit)), [so_far, *before_n])
        text = without_caption_copy(text, told)  # again: the dragonfly photo's page 1, asked again for being it
        text = st.trim_words(st.drop_copied_sentences(text, others), limit)
        scene = text if fresh else pages[n - 1].scene if keep_scene else st.scene_of(d["scene"])
        if st.clean(text).lower() == st.clean(old).lower():
            return "the page did not change"
        if so_far and st.copies_a_sentence(text, [so_far]):
            return "it tells the story so far again"
        if problem := (st.not_prose(text) or _field_problem(scene)):
            return problem
        if (st.leaks_request(text) or only_request_line(text, cast[0]) or tells_a_look(text, cast)
                or not st.in_english(text)):
            return "not a page of the story"
        for name in dict.fromkeys(x for x in (keep, must_name) if x):
            if not st.mentions(text, name):
                return f"the hero {name} is missing"
        if other := st.similar_page(text, others):
            return f"same text as another page ({other[:40]!r})"
        if problem := st.repetition(text):
            return problem
        page = _page(text, scene, cast)  # as printed: two sentences joined by ", and" are two
        if max_sentence and (longest := st.longest_sentence(page.text)) > max_sentence:
            return f"a sentence of {longest} words"
        if problem_of and (problem := problem_of(page.text)):
            return problem
        result[:] = [page]
        return None

    fields = {"text": _naming(must_name or keep, 20, min(1000, per_page * 9))}
    if not (fresh or keep_scene):
        fields["scene"] = _text(20, 160)
    ask_json(llm, messages, _object(**fields), _sampling(sampling, 500 + n, max_tokens=per_page * 2 + 90),
             f"rewrite page {n}", check, tries=tries)
    return result[0]


def extend_story(book: Storybook | Draft, n_more: int, llm: TextModel, sampling: Sampling | None = None,
                 brief: Brief | None = None) -> list[PageDraft]:
    """`n_more` new pages that go on from the end: the outline continued (new events, not the old ones
    again), then the pages, in one answer."""
    brief = brief or getattr(book, "brief", None) or Brief()
    if not book.pages:
        raise BadInputError("the book has no pages to continue", "write the story first")
    if not 1 <= n_more <= 24 - len(book.pages):
        raise BadInputError(f"cannot add {n_more} pages to a {len(book.pages)}-page book",
                            f"add from 1 to {24 - len(book.pages)} pages")
    cast = list(book.cast) or [CastMember(name=brief.hero or "the hero", look="the hero")]
    sampling = story_sampling(brief, sampling)
    so_far = [p.text for p in book.pages]
    told = "\n".join(f"{i + 1}. {p.outline or p.text}" for i, p in enumerate(book.pages))
    first = len(book.pages) + 1
    per_page = st.words_per_page(brief.age)
    user = (f"The cast sheet: {cast_sheet(cast)}.\nThe story so far, page by page:\n{told}\n"
            f"The last page: {so_far[-1]}\n"
            f"Continue the book with {n_more} new pages: a new small adventure for {cast[0].name} that follows "
            "from the last page and ends happily; nothing that already happened again. Give the outline of the "
            f"new pages, one line each, then each page's \"text\" ({per_page // 2} to {per_page} words, naming "
            f"{cast[0].name}) and \"scene\" (what its picture shows, in English, 8 to 20 words, with the cast's "
            "looks). Plain text only.")
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
    hero = cast[0].name
    item = _object(text=_text(per_page, min(1000, per_page * 9)), scene=_text(20, 160))
    schema = _object(outline=_list(_text(10, 110), n_more), pages=_list(item, n_more))
    result: list[PageDraft] = []

    def check(d: dict[str, Any], attempt: int) -> str | None:
        _clean_fields(d)
        if problem := next((p for p in map(_field_problem, d["outline"]) if p), None):
            return problem
        seen = list(so_far)
        drafts = []
        for i, page in enumerate(d["pages"]):
            text, scene = st.drop_labels(page["text"]), st.scene_of(page["scene"])
            if problem := (st.not_prose(text) or _field_problem(scene) or st.repetition(text)):
                return f"page {first + i}: {problem}"
            if st.leaks_request(text) or not st.in_english(text):
                return f"page {first + i}: not a page of the story"
            if not st.mentions(text, hero) and attempt < TRIES - 1:
                return f"the hero {hero} is not on page {first + i}"
            if other := st.similar_page(text, seen):
                return f"page {first + i} repeats {other[:50]!r}"
            seen.append(text)
            drafts.append(_page(st.trim_words(text, int(per_page * 1.5)), scene, cast, outline=d["outline"][i]))
        result[:] = drafts
        return None

    ask_json(llm, messages, schema, _sampling(sampling, 700 + len(book.pages),
                                              max_tokens=n_more * (per_page * 2 + 75) + 40),
             f"continue the story by {n_more} pages", check)
    return result
