"""write: the story in steps, as the talk's product does it, each step JSON-schema constrained and checked.

1. plan  — title and cast sheet (hero: name from the brief or chosen, kind, look; one companion)
2. story — the story in one answer (small models keep a thread far better in one go than page by page),
           opening on the hero, then shared out over the pages by sentences; a book longer than one
           answer can hold (1,000 characters) is written in turns, each continuing the last pages
3. scenes — one key scene per page, in English, naming who is in the picture and where

Tuned for SmolLM2-135M: short fields, one few-shot example where it helps, examples' own words
rejected when they leak into an answer, structured steps sampled cooler than the story, and every
answer checked (page count, hero present, no loops, no duplicate pages) and retried on a new seed.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Sequence
from typing import Any

from taleloom.backends.base import Sampling, TextModel
from taleloom.book import SEED_MAX, Brief, Caption, CastMember, Draft, Page, PageDraft, Storybook
from taleloom.errors import BackendError, BadInputError
from taleloom.stages import story_text as st
from taleloom.stages.llm_json import ask_json

log = logging.getLogger(__name__)

# The stage's default sampling (the brief's seed is used when `sampling.seed` is None). Structured steps
# (plan, scenes) run at most at PLAN_TEMPERATURE: their fields must be right more than surprising.
DEFAULT_SAMPLING = Sampling(temperature=0.6, top_p=0.95, top_k=40, repeat_penalty=1.15)
PLAN_TEMPERATURE = 0.4
# Tries whose answer must stay close to the photo / idea; later tries only need to be sound. The story is
# the costly answer (a few seconds of CPU), so it gets one such try, the short plan two.
PLAN_RELEVANCE_TRIES, STORY_RELEVANCE_TRIES = 2, 1
# Names the LLM picks from when the brief gives none. A free pattern let the small model "name" its hero
# Awesome, Golden or Llama; a list of short storybook names from many languages keeps names names.
NAMES = ("Mina", "Leo", "Luna", "Milo", "Noah", "Sora", "Hana", "Yuki", "Theo", "Ava", "Ezra", "Zara", "Kai",
         "Nia", "Omar", "Lila", "Finn", "Ruby", "Jun", "Iris", "Tom", "Rosa", "Ben", "Amara", "Otto", "Maya",
         "Rafi", "Ella", "Sami", "Nora", "Ivy", "Juno", "Remy", "Tala", "Arlo", "Ada", "Eli", "Kira", "Max",
         "Lena", "Oscar", "Priya", "Ravi", "Suki", "Tess", "Uma", "Vera", "Wren", "Yara", "Zeno", "Coco", "Momo")
NAME = {"type": "string", "enum": list(NAMES)}
_KIND_END = re.compile(r"\s*(?:[,;.]|\b(?:with|who|that|which|and|in|on|at|by|near|next|under|from|to|is|was)\b).*$",
                       re.IGNORECASE)
_PROMPT_WORDS = ("Tone:", "year-old", "Begin with", "Reader:", "About:", "JSON", "Make it", "short sentences")


def _text(min_len: int, max_len: int) -> dict[str, Any]:
    return {"type": "string", "minLength": min_len, "maxLength": max_len}


def _object(**props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props)}


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
    """One call's sampling: its own seed (base + offset), cooler for structured answers."""
    update["seed"] = ((base.seed or 0) + offset) % (SEED_MAX + 1)
    if cool:
        update["temperature"] = min(base.temperature, PLAN_TEMPERATURE)
    return base.model_copy(update=update)


# ------------------------------------------------------------------ step 1: title + cast sheet

PLAN_SYSTEM = "You plan picture books for young children: a title and the characters. Answer with JSON only."
PLAN_EXAMPLE = ("About: a small brown dog on a beach at sunset.\nReader: 5 years old. Tone: warm.",
                {"title": "Biscuit and the Big Wave",
                 "hero": {"name": "Biscuit", "kind": "a small brown dog", "look": "floppy ears and a red collar"},
                 "friend": {"name": "Pip", "kind": "a little crab"}})
PLAN_EXAMPLE_WORDS = {"Biscuit", "Pip", "crab", "collar", "floppy"}  # the example's own words, not common ones


def subject(caption: Caption | None, brief: Brief) -> str:
    """What the story is about: the idea, the photo's caption and its top concepts."""
    parts = [brief.idea or ""]
    if caption is not None:
        parts.append(caption.text)
        if caption.concepts:
            parts.append("It shows: " + ", ".join(caption.concepts[:5]) + ".")
    about = " ".join(st.clean(p) for p in parts if p and p.strip())
    if not about:
        raise BadInputError("the story needs something to be about", "give a photo, an --idea, or both")
    return about


def plan(about: str, brief: Brief, llm: TextModel, sampling: Sampling,
         notes: list[str] | None = None, things: Sequence[str] = ()) -> tuple[str, list[CastMember]]:
    """Title and cast sheet (hero first). The brief's hero name is imposed by the schema. When every
    answer fails its checks, `fallback_plan` builds a plain cast from `things` and says so in `notes`."""
    hero_name = {"type": "string", "enum": [brief.hero]} if brief.hero else NAME
    schema = _object(title=_text(5, 50),
                     hero=_object(name=hero_name, kind=_text(3, 30), look=_text(8, 80)),
                     friend=_object(name=NAME, kind=_text(3, 30)))
    user = f"About: {about}\nReader: {brief.age} years old. Tone: {brief.tone}."
    if brief.hero:
        user += f"\nThe hero is called {brief.hero}."
    messages = [{"role": "system", "content": PLAN_SYSTEM},
                {"role": "user", "content": PLAN_EXAMPLE[0]},
                {"role": "assistant", "content": json.dumps(PLAN_EXAMPLE[1])},
                {"role": "user", "content": user}]

    def check(d: dict[str, Any], attempt: int) -> str | None:
        hero, friend = d["hero"], d["friend"]
        if brief.hero and hero["name"] != brief.hero:  # backends without constrained decoding
            return f"the hero is not called {brief.hero}"
        if hero["name"] == friend["name"]:
            return "the friend has the hero's name"
        if not st.english_letters(d["title"] + hero["kind"] + hero["look"]):
            return "not English"
        if attempt < PLAN_RELEVANCE_TRIES and not st.content_words(hero["kind"]) & st.content_words(about):
            return f"the hero ({hero['kind']}) is not from the photo or idea"
        return st.copied(json.dumps(d), PLAN_EXAMPLE_WORDS, user)

    try:
        d = ask_json(llm, messages, schema, _sampling(sampling, 0, cool=True, max_tokens=160),
                     "plan the title and characters", check)
    except BackendError as e:
        if notes is None:
            raise
        log.warning("%s; using a plain cast instead", e.message)
        notes.append("the LLM's title and characters failed their checks on every try, so a plain title and "
                     "cast were made from the photo's concepts (a larger LLM plans better)")
        return fallback_plan(brief, things)
    hero, friend = d["hero"], d["friend"]
    cast = [CastMember(name=hero["name"], look=f"{short_kind(hero['kind'])}, {short_look(hero['look'], 80)}", role="hero"),
            CastMember(name=friend["name"], look=short_kind(friend["kind"]), role="friend")]
    return short_look(d["title"], 50), cast


FALLBACK_NAMES = ("Mina", "Leo", "Ava", "Tom", "Lila", "Sam", "Nora", "Finn")


def fallback_plan(brief: Brief, things: Sequence[str]) -> tuple[str, list[CastMember]]:
    """A plain title and cast when the LLM cannot plan one (the 135M model sometimes only copies the
    example): a child hero and, as the friend, the first thing seen in the photo. Seeded by the brief."""
    rnd = random.Random(brief.seed)
    hero = brief.hero or rnd.choice(FALLBACK_NAMES)
    friend = rnd.choice([n for n in FALLBACK_NAMES if n != hero])
    thing = next((st.clean(t) for t in things if st.clean(t)), "")
    kind = f"a little {thing}" if thing else "a little bird"
    title = f"{hero} and the {thing.title()}" if thing else f"{hero}'s Big Day"
    return short_look(title, 50), [CastMember(name=hero, look="a curious child, bright eyes and a yellow coat",
                                              role="hero"),
                                   CastMember(name=friend, look=short_kind(kind), role="friend")]


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


# ------------------------------------------------------------------ step 2: the story, shared out over pages

STORY_SYSTEM = "You write short stories for young children, with simple words and short sentences."
MAX_STORY_CHARS = 1000  # one answer: llama.cpp's grammar limit, and about what a small model keeps together


def pages_per_answer(age: int) -> int:
    """How many pages one story answer can hold at this age's words per page (longer books take turns)."""
    return max(1, (MAX_STORY_CHARS - 80) * 2 // (st.words_per_page(age) * 11))


def _story(user: str, pages: int, age: int, hero: str, llm: TextModel, sampling: Sampling,
           seed: int, what: str, avoid: Sequence[str] = (), about: str = "") -> list[str]:
    """One answer: a piece of story for `pages` pages, checked and shared out over them."""
    per_page = st.words_per_page(age)
    max_chars = min(MAX_STORY_CHARS, int(pages * per_page * 5.5) + 80)  # ~5.5 characters a word
    schema = _object(story=_text(pages * per_page * 3, max_chars))
    messages = [{"role": "system", "content": STORY_SYSTEM}, {"role": "user", "content": user}]
    old = {st.clean(a).lower() for a in avoid}
    wanted = st.content_words(about) - st.content_words(hero) - {"once", "upon", "time"}
    result: list[str] = []

    def check(d: dict[str, Any], attempt: int) -> str | None:
        story = st.clean(d["story"])
        if not st.english_letters(story):
            return "not English"
        if problem := st.not_prose(story):
            return problem
        if any(w in story for w in _PROMPT_WORDS):
            return "the prompt leaked into the story"
        if not st.mentions(story, hero):
            return f"the hero {hero} is not in the story"
        if attempt < STORY_RELEVANCE_TRIES and wanted and len(wanted & st.content_words(story)) < min(2, len(wanted)):
            return "the story strays from the photo or idea"
        if problem := st.repetition(story):
            return problem
        split = st.split_pages(story, pages)
        if split is None:
            return f"fewer than {pages} sentences for {pages} pages"
        if len({p.lower() for p in split}) < pages or old & {p.lower() for p in split}:
            return "two pages are the same"
        result[:] = [st.trim_words(p, int(per_page * 1.5)) for p in split]
        return None

    ask_json(llm, messages, schema, _sampling(sampling, seed, max_tokens=max_chars // 3 + 24), what, check)
    return result


def _story_pages(first_prompt: str | None, pages: int, brief: Brief, hero: CastMember, llm: TextModel,
                 sampling: Sampling, seed: int, what: str, about: str = "", so_far: Sequence[str] = (),
                 new_adventure: bool = False) -> list[str]:
    """`pages` pages of story, in as many answers as the length limit needs; the first answer uses
    `first_prompt` (None: continue `so_far`), later ones continue what came before."""
    texts: list[str] = []
    step = pages_per_answer(brief.age)
    while len(texts) < pages:
        n = min(step, pages - len(texts))
        last = len(texts) + n == pages
        if first_prompt is not None and not texts:
            ending = "The story has a problem and a happy ending." if last else "This is the start of a longer story."
            user = first_prompt.replace("{sentences}", str(n * 2 + 2)).replace("{ending}", ending)
        else:
            user = _continue_prompt(brief, hero, [*so_far, *texts][-3:], n, last, new_adventure and not texts)
        texts += _story(user, n, brief.age, hero.name, llm, sampling, seed + len(texts), what,
                        avoid=[*so_far, *texts], about=about if not texts else "")
    return texts


def _story_prompt(about: str, brief: Brief, title: str, cast: list[CastMember]) -> str:
    """The first answer's prompt, with {sentences} and {ending} left to fill."""
    hero, friend = cast[0], (cast[1] if len(cast) > 1 else None)
    with_friend = f" with {friend.name}, {kind_of(friend)}" if friend else ""
    text = (f"Write a story for a {brief.age}-year-old called \"{title}\" about {hero.name}, {kind_of(hero)}"
            f"{with_friend}. It is about: {about} Make it {brief.tone}. Use {{sentences}} short sentences. "
            f"{{ending}} Begin with: Once upon a time, there was {kind_of(hero)} named {hero.name}.")
    return text


def _continue_prompt(brief: Brief, hero: CastMember, so_far: Sequence[str], pages: int, last: bool,
                     new_adventure: bool) -> str:
    adventure = f" {hero.name} has a new adventure." if new_adventure else ""
    ending = " and end happily" if last else ""
    opening = f"The next day, {hero.name}" if new_adventure else hero.name
    return (f"Here is the end of a story for a {brief.age}-year-old about {hero.name}, {kind_of(hero)}: "
            f"{' '.join(so_far)}\nContinue the story.{adventure} Use {pages * 2 + 1} short sentences{ending}. "
            f"Make it {brief.tone}. Do not repeat what already happened. Begin with: {opening}")


# ------------------------------------------------------------------ step 3: one key scene per page

SCENE_SYSTEM = ("You describe the picture for a page of a children's book: who is in it, what they do, "
                "and where. Answer with JSON only.")
SCENE_EXAMPLE = ("Page: Bo woke up late. He ran to the river to catch a fish for breakfast.\nHero: Bo, a brown bear.",
                 {"scene": "a brown bear running to a river in a sunny forest"})
SCENE_EXAMPLE_WORDS = {"Bo", "bear", "breakfast", "river", "fish", "forest"}  # unless the page has them


def scene_for(text: str, cast: list[CastMember], llm: TextModel, sampling: Sampling, page: int,
              avoid: Sequence[str] = ()) -> str:
    """The key scene of one page: concrete, visual, English, naming the main subject and the setting."""
    hero = cast[0] if cast else None
    user = f"Page: {text}" + (f"\nHero: {hero.name}, {kind_of(hero)}." if hero else "")
    messages = [{"role": "system", "content": SCENE_SYSTEM},
                {"role": "user", "content": SCENE_EXAMPLE[0]},
                {"role": "assistant", "content": json.dumps(SCENE_EXAMPLE[1])},
                {"role": "user", "content": user}]
    taken = {a.lower() for a in avoid}

    def check(d: dict[str, Any], attempt: int) -> str | None:
        scene = st.clean(d["scene"])
        if len(st.words(scene)) < 3 or not st.english_letters(scene):
            return "the scene is not a short English description"
        if scene.lower() in taken:
            return "same scene as another page"
        return st.copied(scene, SCENE_EXAMPLE_WORDS, user)

    d = ask_json(llm, messages, _object(scene=_text(12, 110)),
                 _sampling(sampling, 100 + page, cool=True, max_tokens=60), f"describe the scene of page {page}", check)
    scene = st.trim_words(d["scene"], 20).rstrip(".…")
    for member in cast:  # small models lower-case names: "lena, a big cat"
        scene = re.sub(rf"\b{re.escape(member.name)}\b", member.name, scene, flags=re.IGNORECASE)
    return scene


def _scenes(texts: list[str], cast: list[CastMember], llm: TextModel, sampling: Sampling,
            first_page: int, avoid: Sequence[str] = ()) -> list[str]:
    scenes: list[str] = list(avoid)
    for i, text in enumerate(texts):
        scenes.append(scene_for(text, cast, llm, sampling, first_page + i, avoid=scenes))
    return scenes[len(avoid):]


# ------------------------------------------------------------------ the stage's entry points

def write_story(caption: Caption | None, brief: Brief, llm: TextModel, sampling: Sampling | None = None) -> Draft:
    """Title, cast sheet and `brief.pages` pages (text + key scene), in English. Seeded by `brief.seed`
    unless `sampling.seed` is set; BackendError when a step fails its checks on every try."""
    sampling = story_sampling(brief, sampling)
    about = subject(caption, brief)
    notes: list[str] = []
    idea_words = [w for w in re.findall(r"[a-z]+", (brief.idea or "").lower()) if len(w) > 2 and w not in st.STOPWORDS]
    things = (list(caption.concepts) if caption is not None else []) + idea_words[:1]  # for a fallback cast
    title, cast = plan(about, brief, llm, sampling, notes, things)
    texts = _story_pages(_story_prompt(about, brief, title, cast), brief.pages, brief, cast[0], llm, sampling, 1,
                         f"write a {brief.pages}-page story about {cast[0].name}", about=about)
    if not any(st.mentions(t, cast[1].name) for t in texts):
        cast = cast[:1]  # the companion never turned up: keep the cast sheet to who is in the book
    scenes = _scenes(texts, cast, llm, sampling, 1)
    return Draft(title=title, cast=cast, pages=[PageDraft(text=t, scene=s) for t, s in zip(texts, scenes, strict=True)],
                 notes=notes)


def _pages_of(source: Draft | Storybook | Sequence[Page | PageDraft]) -> list[Page | PageDraft]:
    return list(source.pages) if isinstance(source, Draft | Storybook) else list(source)


def rewrite_page(draft_or_book_pages: Draft | Storybook | Sequence[Page | PageDraft], n: int, instruction: str,
                 brief: Brief, llm: TextModel, sampling: Sampling | None = None,
                 cast: list[CastMember] | None = None) -> PageDraft:
    """Page `n` (1-based) written again following `instruction`, with a new scene. The cast comes from a
    Draft or Storybook, else `cast`, else the brief's hero."""
    pages = _pages_of(draft_or_book_pages)
    if not 1 <= n <= len(pages):
        raise BadInputError(f"there is no page {n}", f"choose a page from 1 to {len(pages)}")
    if not instruction.strip():
        raise BadInputError("a rewrite needs an instruction", 'e.g. "make it funnier"')
    if cast is None:
        cast = list(getattr(draft_or_book_pages, "cast", None) or [])
    if not cast and brief.hero:
        cast = [CastMember(name=brief.hero, look="the hero")]
    old = pages[n - 1].text
    limit = st.words_per_page(brief.age)
    hero = cast[0].name if cast and st.mentions(old, cast[0].name) else None
    before = f"The page before: {pages[n - 2].text}\n" if n > 1 else ""
    user = (f"{before}This page of a children's story: {old}\nRewrite this page: {instruction.strip()}. "
            f"Use at most {limit} words for a {brief.age}-year-old. Make it {brief.tone}."
            + (f" Keep {hero} in it." if hero else ""))
    others = {st.clean(p.text).lower() for i, p in enumerate(pages) if i != n - 1}

    def check(d: dict[str, Any], attempt: int) -> str | None:
        text = st.clean(d["text"])
        if text.lower() == st.clean(old).lower():
            return "the page did not change"
        if text.lower() in others:
            return "same text as another page"
        if hero and not st.mentions(text, hero):
            return f"the hero {hero} is missing"
        if not st.english_letters(text):
            return "not English"
        return st.not_prose(text) or st.repetition(text)

    messages = [{"role": "system", "content": STORY_SYSTEM + " Answer with JSON only."},
                {"role": "user", "content": user}]
    sampling = story_sampling(brief, sampling)
    d = ask_json(llm, messages, _object(text=_text(20, limit * 7)),
                 _sampling(sampling, 500 + n, max_tokens=limit * 2 + 24), f"rewrite page {n}", check)
    text = st.trim_words(d["text"], limit)
    scene = scene_for(text, cast, llm, sampling, n, avoid=[p.scene for i, p in enumerate(pages) if i != n - 1])
    return PageDraft(text=text, scene=scene)


def extend_story(book: Storybook | Draft, n_more: int, llm: TextModel, sampling: Sampling | None = None,
                 brief: Brief | None = None) -> list[PageDraft]:
    """`n_more` new pages that continue the story (the talk's "enlargement by pages")."""
    brief = brief or getattr(book, "brief", None) or Brief()
    if not book.pages:
        raise BadInputError("the book has no pages to continue", "write the story first")
    if not 1 <= n_more <= 24 - len(book.pages):
        raise BadInputError(f"cannot add {n_more} pages to a {len(book.pages)}-page book",
                            f"add from 1 to {24 - len(book.pages)} pages")
    cast = list(book.cast) or [CastMember(name=brief.hero or "the hero", look="the hero")]
    sampling = story_sampling(brief, sampling)
    texts = _story_pages(None, n_more, brief, cast[0], llm, sampling, 700 + len(book.pages),
                         f"continue the story by {n_more} pages", so_far=[p.text for p in book.pages],
                         new_adventure=True)
    scenes = _scenes(texts, cast, llm, sampling, len(book.pages) + 1, avoid=[p.scene for p in book.pages])
    return [PageDraft(text=t, scene=s) for t, s in zip(texts, scenes, strict=True)]
