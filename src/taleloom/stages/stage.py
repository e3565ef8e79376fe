"""Stage: turn each page's scene into an ImageRequest — style preset, cast sheet, per-page seed.

Big backends read the full prompt (scene + cast sheet + style suffix). The embedded illustrator
only knows the concepts it was trained on (emoji names); for it, `concepts` holds the main
subject and its setting, picked by MiniLM similarity from its vocabulary (`ConceptMapper`). A page
with both is a whole scene: `hero_box` (scene_layout) says where the hero stands, the setting goes
around it (the embedded v2 lays the two out as a collage; region prompts draw them in one picture).
Every such page of a book shares one `hero_seed` (the hero's noise), so the hero looks the same from
page to page, while each page keeps its own `seed` for the rest of the picture, so two pages with the
same hero and setting still differ.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from taleloom.book import CastMember, ImageRequest, Page, Storybook
from taleloom.errors import choice_error
from taleloom.stages.concept_match import (
    EVERYDAY_NAMES,
    creature,
    doing,
    head,
    named_concepts,
    not_a_thing,
    said_words,
    strength,
    without_photo_words,
)
from taleloom.stages.story_text import mentions
from taleloom.stages.write import hero_pronoun, kind_noun, kind_of

# text, k → the k nearest concept names, best first (e.g. the aligned encoder's nearest_concepts)
ConceptMapper = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class VocabularyMapper:
    """A ConceptMapper that also lists its vocabulary, so that the stage can see which concepts a scene
    names word for word (concept_match.py) before it asks for the nearest ones."""

    nearest: ConceptMapper
    vocabulary: tuple[str, ...]

    def __call__(self, text: str, k: int) -> list[str]:
        return self.nearest(text, k)


@dataclass(frozen=True)
class Style:
    name: str
    suffix: str  # appended to every prompt
    negative: str  # negative prompt
    sampler: str = ImageRequest.model_fields["sampler"].default
    steps: int = ImageRequest.model_fields["steps"].default
    guidance: float = ImageRequest.model_fields["guidance"].default
    description: str = ""


_NEG = "photo, photorealistic, text, letters, watermark, signature, blurry, deformed, extra limbs, scary"
STYLES: dict[str, Style] = {s.name: s for s in [
    Style("storybook", "children's storybook illustration, soft shapes, warm colours, friendly",
          _NEG, "dpmpp_2m", 20, 3.0, "classic picture-book look (default)"),
    Style("watercolor", "watercolor painting, soft washes, paper texture, pastel colours",
          _NEG + ", hard edges, neon", "dpmpp_2m", 24, 3.5, "soft washes on paper"),
    Style("crayon", "crayon drawing by a child, wax texture, bold simple lines, bright colours",
          _NEG + ", smooth gradients", "ddim", 20, 4.0, "a child's crayon drawing"),
    Style("pixel", "pixel art, 16-bit video game sprite, limited palette, crisp pixels",
          _NEG + ", smooth, painterly, antialiased", "ddim", 16, 4.5, "retro pixel art"),
    Style("ink", "ink and pen line drawing, cross-hatching, black ink on cream paper, gentle",
          _NEG + ", colourful, saturated", "dpmpp_2m", 20, 3.0, "pen-and-ink line drawing"),
    Style("emoji", "flat emoji icon, bold outline, simple shapes, plain background",
          _NEG + ", realistic, detailed background", "dpmpp_2m", 20, 3.0, "flat emoji icons"),
]}
DEFAULT_STYLE = "storybook"


def concept_mapper_for(illustrator) -> ConceptMapper | None:
    """The illustrator's own concept matcher when it only knows a fixed vocabulary (the embedded model);
    None for backends that read full prompts."""
    if not illustrator.draws_concepts:
        return None
    return VocabularyMapper(illustrator.nearest_concepts, tuple(illustrator.concept_vocabulary()))


def get_style(name: str) -> Style:
    """The preset called `name`; an unknown name lists the known ones."""
    try:
        return STYLES[name]
    except KeyError:
        raise choice_error("style", name, list(STYLES)) from None


def _derived_seed(key: str) -> int:
    """A seed from a key of the book seed: stable across runs, different per key."""
    return int.from_bytes(hashlib.sha256(f"taleloom:{key}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def page_seed(book_seed: int, index: int) -> int:
    """Per-page seed derived from the book seed: stable across runs, different per page."""
    return _derived_seed(f"{book_seed}:{index}")


def cast_sheet(cast: Sequence[CastMember]) -> str:
    """'Mina, a girl with a red scarf; Biscuit, a small brown dog' — reused in every prompt."""
    return "; ".join(f"{c.name}, {c.look}" if c.look else c.name for c in cast)


def stage(book: Storybook, concept_mapper: ConceptMapper | None = None, *, only_missing: bool = True,
          pages: Sequence[int] | None = None) -> list[ImageRequest]:
    """One ImageRequest per page (pages that already have a request keep it when `only_missing`)."""
    chosen = [p for p in book.pages if (pages is None or p.index in pages)
              and not (only_missing and p.request is not None)]
    subject = main_subject(book, concept_mapper) if concept_mapper else None
    return [stage_page(book, p, concept_mapper, subject=subject) for p in chosen]


def stage_page(book: Storybook, page: Page, concept_mapper: ConceptMapper | None = None, *,
               seed: int | None = None, style: str | None = None, subject: str | None = None) -> ImageRequest:
    """The request for one page; `seed`/`style` override the book's (used by redraw)."""
    st = get_style(style or book.brief.style)
    prompt = ", ".join(x for x in (page.scene.strip().rstrip("."), cast_sheet(book.cast), st.suffix) if x)
    concepts: list[str] = []
    hero_box, hero = None, None
    if concept_mapper is not None:
        subject = subject or main_subject(book, concept_mapper)
        concepts = [subject] if subject else []
        hero_said, told = hero_kind_concepts(book, concept_mapper), book_words(book)
        friend, setting = beside_hero(book, page, concept_mapper, exclude=set(concepts) | hero_said, book_text=told)
        unnamed = without_names(page.scene, book.cast)
        if setting:
            concepts.append(setting)
        if len(concepts) == 2 and (thing := (named_setting if friend else named_creature)(
                unnamed, concept_mapper, set(concepts) | hero_said, told)):
            concepts.append(thing)  # what the page names beside the two ("Theo brings the coffee"): a third
            # sticker, so pages of the same two friends are not one picture (the cat sample book's pages 2-4);
            # with no friend on the page, an animal it names beside the setting (the lost chick of a book told
            # that small problem: "She finds a little lost chick in the sand" drew the girl and the beach)
        if len(concepts) >= 2:  # a whole scene: the hero in its box with the book's hero noise
            hero_box = scene_layout(page.scene, page.index)
            hero = hero_seed(book.brief.seed)
        if friend and seed is None:  # a companion looks the same on every page: their own noise
            seed = cast_seed(book.brief.seed, friend[0])
    return ImageRequest(prompt=prompt, negative_prompt=st.negative, concepts=concepts,
                        seed=page_seed(book.brief.seed, page.index) if seed is None else seed,
                        steps=st.steps, guidance=st.guidance, sampler=st.sampler, style=st.name, hero_box=hero_box,
                        hero_seed=hero)


HERO_LEFT = (0.0, 0.375, 0.625, 1.0)  # the hero's box: lower left, 5/8 of the picture; the setting shows around it
HERO_RIGHT = (0.375, 0.375, 1.0, 1.0)


def scene_layout(scene: str, page: int = 1) -> tuple[float, float, float, float]:
    """Where the hero stands in a whole-scene picture: where the scene says ("on the right"), else lower
    left on odd pages and lower right on even ones. The hero's noise (hero_seed) fills this box on every
    page, so the hero looks the same; the sides take turns because a friend is drawn the same on every
    page too, and three pages of the hero with the same friend were three identical pictures."""
    words = set(scene.lower().replace(",", " ").replace(".", " ").split())
    if ("right" in words) != ("left" in words):
        return HERO_RIGHT if "right" in words else HERO_LEFT
    return HERO_LEFT if page % 2 else HERO_RIGHT


def hero_seed(book_seed: int) -> int:
    """The seed of the hero's noise on all whole-scene pages of a book (page 0's seed, which no page uses)."""
    return page_seed(book_seed, 0)


def cast_seed(book_seed: int, member: int) -> int:
    """The seed of cast member `member`'s picture (1 = the hero's friend) on every page they are drawn on."""
    return _derived_seed(f"{book_seed}:cast:{member}")


def _unlike(name: str, exclude: set[str]) -> bool:
    """Neither one of `exclude` nor a variant of one ("polar bear" is no setting for "bear"; `american football`
    none for a `soccer ball` hero, whose everyday name "football" is its head noun)."""
    taken = {w for other in exclude for w in other.lower().split()}
    return (name not in exclude and not taken & set(name.lower().split())
            and EVERYDAY_NAMES.get(head(name)) not in exclude)


def page_companion(scene: str, cast: Sequence[CastMember], concept_mapper: ConceptMapper,
                   exclude: set[str], book: Storybook | None = None) -> tuple[int, str] | None:
    """(cast index, concept) of the first cast member other than the hero whom the scene names, drawn as their
    look's concept: a page where Theo the dog brings the toy shows a dog beside the hero, not the nearest
    concept to the sentence (which named things the page never mentions: benchmarks/scene_concepts.py). A
    "human" friend is a boy or a girl as the `book`'s pages call them (_boy_or_girl; v2's nearest to "human" is
    `woman`, and a fox book's Tess, "a human girl named Tess", was drawn as one)."""
    hero = _hero(cast)
    for i, member in enumerate(cast):
        if member is not hero and mentions(scene, member.name):
            if found := look_concept(member.look or member.name, concept_mapper, exclude):
                return i, (_boy_or_girl(found, member, book, concept_mapper) if book is not None else found)
    return None


def _first(named: list[str], text: str, concept_mapper: ConceptMapper, n: int, book_text: str = "") -> str:
    """Of named concepts (those `text` says most words of first, concept_match.named_concepts), the first;
    among as many words, the one whose words the whole book says most (`book_text`: the rubber whale book's
    "finish the cake" drew a fish cake on the last page of a birthday cake's story), then the nearest to `text`."""
    said = said_words(text)
    top = [c for c in named if strength(c, said) == strength(named[0], said)]
    if len(top) == 1:  # no need to rank the whole vocabulary
        return top[0]
    rank = {c: i for i, c in enumerate(concept_mapper(text, n))}
    nearest = min(top, key=lambda c: rank.get(c, len(rank)))
    if not book_text:
        return nearest
    told = said_words(book_text)  # a kind of the same thing ("cake"): the one the book says most of
    kinds = [c for c in top if head(c) == head(nearest)]
    return max(kinds, key=lambda c: (strength(c, told), -rank.get(c, len(rank))))


def look_concept(look: str, concept_mapper: ConceptMapper, exclude: set[str] = frozenset()) -> str | None:
    """The concept that draws a cast member of this look ("kind, details"): the kind named word for word
    ("tabby cat" → cat; of several, the nearest to the whole look: a tree with green leaves is no
    Christmas tree), else the nearest concept to the kind, else to the whole look; never a body part
    (a child's look "child, brown hair, blue eyes" was drawn as `eyes` on every page) nor an activity (a
    "person, short brown hair" was `person pouting`)."""
    kind = look.split(",")[0].strip()
    vocabulary = getattr(concept_mapper, "vocabulary", ())

    def drawable(name: str) -> bool:  # a character, not a body part nor what a person is doing
        return _unlike(name, exclude) and not not_a_thing(name) and not doing(name)

    # the kind said word for word is drawn even when it is the hero's: a friend who is a cat too ("lunatic cat")
    # was drawn as the concept nearest to its words, a scorpion (the sample cat's book); its own seed draws it
    named = [c for c in named_concepts(kind, vocabulary) if not not_a_thing(c) and not doing(c)]
    usable = [c for c in named if drawable(c)] or named
    if usable:
        return _first(usable, look, concept_mapper, len(vocabulary))  # the details choose among equals
    if (animal := nearest_animal(kind, concept_mapper, drawable)) is not None:
        return animal
    for text in dict.fromkeys((kind, look)):
        for name in concept_mapper(text, 5) if text else []:
            if drawable(name):
                return name
    return None


ANIMAL_POOL = 60  # nearest concepts looked through for an animal the vocabulary lacks
# groups of the label table whose word draws none of its animals well: "sea animal" is a whale, which no lobster,
# jellyfish or starfish is (MiniLM's nearest animal to each: crab, shrimp, octopus)
MIXED_GROUPS = frozenset({"animal", "sea animal"})


def nearest_animal(kind: str, concept_mapper: ConceptMapper, drawable: Callable[[str], bool]) -> str | None:
    """For a kind the captioner's label table knows as an animal that the vocabulary lacks, an animal concept:
    one whose name holds the kind's ("honeybee" for a bee), else the concept nearest to its group's word where
    it has a group below "animal" ("bird" for a stork, "bug" for a cockroach), else the nearest animal. MiniLM's
    nearest concepts to a rare animal's name are often no animal, or another kind: a stork was drawn as a
    potato, a toucan as oden, a flamingo as fire, a cockroach as a rooster, a hippo as a tulip (`look_concept`'s
    last resort before)."""
    from taleloom.backends.vision.imagenet_nouns import animal_group

    group = animal_group(kind)
    if group is None:
        return None
    pool = [c for c in concept_mapper(kind, ANIMAL_POOL) if creature(c) and drawable(c)]
    word = kind.strip().lower()
    holding = [c for c in pool if len(word) >= 3 and word in c.lower().replace(" ", "")]
    if holding:
        return holding[0]
    if group not in MIXED_GROUPS:
        pool = [c for c in concept_mapper(group, 5) if creature(c) and drawable(c)] or pool
    return pool[0] if pool else None


def _hero(cast: Sequence[CastMember]) -> CastMember | None:
    """The cast member the book is about: the first whose role is hero, else the first."""
    return next((c for c in cast if c.role == "hero"), cast[0] if cast else None)


def main_subject(book: Storybook, concept_mapper: ConceptMapper) -> str | None:
    """The hero's concept, the same on every page: from the cast sheet, else the photo's top concept."""
    hero = _hero(book.cast)
    if hero is not None and hero.look and _kind_of_photo_subject(hero, book):
        hero = None  # "a fruit" for the apple from the photo: the photo's apple, not the nearest fruit (a kiwi)
    if hero is not None and hero.look and (found := _creature_the_pages_tell(hero, book, concept_mapper)):
        return found
    if hero is not None and hero.look and (found := look_concept(hero.look, concept_mapper)):
        return _boy_or_girl(found, hero, book, concept_mapper)
    if book.caption and book.caption.concepts:  # the photo's subject in plain words ("cup of coffee"): map it too
        found = concept_mapper(book.caption.concepts[0], 1)
        return found[0] if found else book.caption.concepts[0]
    if book.pages:
        found = concept_mapper(book.pages[0].scene, 1)
        return found[0] if found else None
    return None


GENERIC_KINDS = frozenset({"thing", "object"})
# kinds that say only that the hero is some animal (the captioner's "an animal" when unsure what animal it is)
ANY_ANIMAL = frozenset({"animal", "creature", "critter", "pet", "beast"})


def _creature_the_pages_tell(hero: CastMember, book: Storybook, concept_mapper: ConceptMapper) -> str | None:
    """For a hero whose kind is only "animal", the animal the pages say the hero is ("Nia is an orange kitten",
    "Nia the kitten", "a kitten named Nia"), the one said most: a bird photo the captioner called "an animal" had
    its hero written as a kitten and drawn as the nearest concept to "animal", a dog, on every page. None when
    the kind is a real one or the pages tell no animal."""
    if kind_noun(hero) not in ANY_ANIMAL:
        return None
    name = re.escape(hero.name)
    said = []
    for page in book.pages:
        for rx in (rf"\b{name},? (?:is|was) (?:an?|the) ((?:[a-z-]+ ){{0,3}}[a-z-]+)",
                   rf"\b{name},? the ((?:[a-z-]+ ){{0,2}}[a-z-]+)", rf"\b(?:an?|the) ((?:[a-z-]+ ){{0,3}}[a-z-]+) (?:named|called) {name}\b"):
            said += re.findall(rx, page.text)
    vocabulary = getattr(concept_mapper, "vocabulary", ())
    counts = Counter(c for phrase in said for c in named_concepts(phrase, vocabulary)[:1] if creature(c))
    return counts.most_common(1)[0][0] if counts else None


def _kind_of_photo_subject(hero: CastMember, book: Storybook) -> bool:
    """Whether the hero's kind only says what sort of thing the photo's subject is ("a fruit" for the apple the
    write stage told the model the hero is, "an animal" for the cat): then the photo's subject is drawn. Mapped
    alone, "a fruit" drew a kiwi on every page of the apple book."""
    if not (book.caption and book.caption.concepts):
        return False
    from taleloom.backends.vision.imagenet_nouns import ancestry
    from taleloom.backends.vision.subjects import noun_group

    last = kind_noun(hero)
    photo = book.caption.concepts[0].lower()
    return last in GENERIC_KINDS or (last != photo and last in ancestry(noun_group(photo)))


def hero_kind_concepts(book: Storybook, concept_mapper: ConceptMapper) -> set[str]:
    """Concepts that the hero's kind names when that kind is only the sort of thing the photo's subject is
    (_kind_of_photo_subject): a page's "Lila, a golden fruit" is the hero, not a kiwi beside her (the apple
    book's page 4)."""
    hero = _hero(book.cast)
    if hero is None or not hero.look or not _kind_of_photo_subject(hero, book):
        return set()
    return set(named_concepts(kind_of(hero), getattr(concept_mapper, "vocabulary", ())))


CHILD_WORDS = frozenset({"child", "kid", "toddler", "little one"})  # a hero's kind that is neither a boy nor a girl
# nor is a "human" or a "person" (a picture book's hero of that kind is a child): the flower photo's Ezra, "human,
# brown hair" riding "his new bicycle", was drawn as `woman`
PERSON_KINDS = CHILD_WORDS | {"human", "person", "a human", "a person"}


def _boy_or_girl(found: str, member: CastMember, book: Storybook, concept_mapper: ConceptMapper) -> str:
    """A child hero (or a "human" friend) drawn as a boy or a girl, as the pages speak of them ("his kite": a boy),
    where the illustrator knows no child: v2's nearest concept to "child" is `baby`, so every photo of a person
    (whose hero is "the child from the photo") drew a baby flying a kite. `found` otherwise, and when the pages
    do not tell."""
    kind = kind_of(member).lower()
    vocabulary = getattr(concept_mapper, "vocabulary", ())
    if kind not in PERSON_KINDS or (kind in CHILD_WORDS and "child" in vocabulary):
        return found
    # the scenes too: the rubber whale book's pages named Omar only where no pronoun was; its scene said "He's"
    told = [p.text for p in book.pages] + [p.scene for p in book.pages]
    if member is not _hero(book.cast):  # a friend: only what the pages call them ("a girl named Tess", "Theo the
        # boy"); a pronoun beside their name is often the hero's ("Tess had seen his lost scarf": the fox's)
        drawn = _called(" ".join(told), member.name)
    else:
        drawn = {"he": "boy", "she": "girl"}.get(hero_pronoun(told, member.name) or "")
    return drawn if drawn in vocabulary else found


def _called(text: str, name: str) -> str:
    """"girl" or "boy" when `text` calls `name` one ("a human girl named Tess", "Tess the girl", "Tess, a little
    boy"), else ""."""
    n = re.escape(name)
    found = re.findall(rf"\b(girl|boy)\s+(?:called|named)\s+{n}\b|\b{n},?\s+(?:the|a|an)\s+(?:little\s+|young\s+)?"
                       rf"(girl|boy)\b", text, re.IGNORECASE)
    said = {w.lower() for pair in found for w in pair if w}
    return said.pop() if len(said) == 1 else ""


def without_names(scene: str, cast: Sequence[CastMember]) -> str:
    """The scene without the cast's names: a name says nothing about the place, and MiniLM reads some as
    things ("Luna follows Mina into the forest" became the setting "new moon")."""
    for member in cast:
        scene = re.sub(rf"\b{re.escape(member.name)}(?:'s)?\b", " ", scene, flags=re.IGNORECASE)
    return " ".join(scene.split())


def named_setting(scene: str, concept_mapper: ConceptMapper, exclude: set[str], book_text: str = "") -> str | None:
    """Of the concepts the scene names word for word (concept_match.py; the mapper must list its vocabulary)
    and that are not in `exclude` nor variants of them, the one nearest to the scene (among equals, the one the
    book says most of: _first); None when it names none."""
    vocabulary = getattr(concept_mapper, "vocabulary", ())
    named = [c for c in named_concepts(scene, vocabulary) if _unlike(c, exclude)]
    return _first(named, scene, concept_mapper, len(vocabulary), book_text) if named else None


def book_words(book: Storybook) -> str:
    """Every scene and text of the book without the cast's names: what a page's "the cake" is in this book."""
    return without_names(" ".join(f"{p.scene} {p.text}" for p in book.pages), book.cast)


def named_creature(scene: str, concept_mapper: ConceptMapper, exclude: set[str], book_text: str = "") -> str | None:
    """Of the animals the scene names word for word (concept_match.creature), not in `exclude` nor variants of
    them, the one nearest to the scene (among equals, the one the book says most of); else None."""
    vocabulary = getattr(concept_mapper, "vocabulary", ())
    named = [c for c in named_concepts(scene, vocabulary) if _unlike(c, exclude) and creature(c)]
    return _first(named, scene, concept_mapper, len(vocabulary), book_text) if named else None


def scene_setting(scene: str, concept_mapper: ConceptMapper, exclude: set[str], k: int = 5) -> str | None:
    """Where the scene happens or what is beside the hero: the concept the scene names (named_setting); when
    it names none, the nearest concept (nearest_setting). Never the subject nor a variant of it ("polar bear"
    is no setting for "bear")."""
    return named_setting(scene, concept_mapper, exclude) or nearest_setting(scene, concept_mapper, exclude, k)


def nearest_setting(scene: str, concept_mapper: ConceptMapper, exclude: set[str], k: int = 5) -> str | None:
    """The concept nearest to the scene said without the photo's colours and light (concept_match.
    without_photo_words), never a body part nor someone doing something: to "Lila the monkey in grey and green
    tones, soft, warm light" the nearest was `sun with face`, to "looking at the monkey with her eyes wide-eyed"
    `eyes`, to "computer screen with white background" `white flower` (stop 27's baboon and fish books). Someone
    doing something may stand beside the hero ("Leo leaning against the wall with his bicycle": `person
    biking`)."""
    for name in concept_mapper(without_photo_words(scene), k):
        if _unlike(name, exclude) and not not_a_thing(name):
            return name
    return None


def beside_hero(book: Storybook, page: Page, concept_mapper: ConceptMapper, exclude: set[str],
                book_text: str | None = None) -> tuple[tuple[int, str] | None, str | None]:
    """(the friend drawn as (cast index, concept), or None; the concept drawn beside the hero) for one page, in
    this order: a friend the scene names; what the scene names word for word; a friend the page's text names;
    what the text names; where the story last was (story_place); the nearest concept to the scene.
    Why the text and the pages before: a scene often describes the hero's look and no place ("A picture of
    Lila the monkey in grey and green tones, wearing a grey jacket") while the text says "In the green forest,
    Lila was playing with her friend Luna"; the nearest concept to such a scene drew a sun, eyes and an apple
    beside the monkey on a book that happens in a forest (stop 27's baboon book). `book_text`: book_words(book),
    when the caller has it."""
    cast = book.cast
    unnamed = without_names(page.scene, cast)
    if friend := page_companion(page.scene, cast, concept_mapper, exclude, book):
        return friend, friend[1]
    told = book_words(book) if book_text is None else book_text
    if named := named_setting(unnamed, concept_mapper, exclude, told):
        return None, named
    if page.text and (friend := page_companion(page.text, cast, concept_mapper, exclude, book)):
        return friend, friend[1]
    if page.text and (named := named_setting(without_names(page.text, cast), concept_mapper, exclude, told)):
        return None, named
    place = story_place(book, page, concept_mapper, exclude)
    return None, place or nearest_setting(unnamed, concept_mapper, exclude)


def story_place(book: Storybook, page: Page, concept_mapper: ConceptMapper, exclude: set[str]) -> str | None:
    """What the latest page before this one names word for word in its scene or text (not the cast: a friend
    stays on the pages that name them): a book that begins in the forest stays there until a page says
    otherwise."""
    before_pages = sorted((p for p in book.pages if p.index < page.index), key=lambda p: -p.index)
    if not before_pages:  # the first page: no place yet, and no cast kinds to look up
        return None
    cast_kinds = {found for member in book.cast
                  if (found := look_concept(member.look or member.name, concept_mapper, exclude))}
    for before in before_pages:
        for text in (before.scene, before.text):
            if text and (named := named_setting(without_names(text, book.cast), concept_mapper,
                                                exclude | cast_kinds)):
                return named
    return None
