"""The write stage: on the real SmolLM2-135M (small books), and on scripted models for the checks and retries."""

from __future__ import annotations

import json

import pytest

from taleloom.backends import registry
from taleloom.backends.base import Sampling, TextModel
from taleloom.book import Brief, Caption, Draft, Page, PageDraft, Storybook
from taleloom.errors import BackendError, BadInputError
from taleloom.stages import story_text as st
from taleloom.stages import write
from taleloom.stages.llm_json import TRIES

GARDEN = Caption(text="a grey cat next to a red ball in a green garden", concepts=["cat", "ball", "garden"])
BRIEF = Brief(pages=2, hero="Mina", age=4, seed=7)


# ------------------------------------------------------------------ the real embedded model

@pytest.fixture(scope="module")
def smol():
    return registry.create("llm", "smollm2")


@pytest.fixture(scope="module")
def draft(smol):
    return write.write_story(GARDEN, BRIEF, smol)


def test_real_model_writes_a_valid_draft(draft):
    assert isinstance(Draft.model_validate(draft.model_dump()), Draft)
    assert len(draft.pages) == 2
    assert draft.title.strip()
    assert draft.cast[0].name == "Mina" and draft.cast[0].role == "hero" and draft.cast[0].look
    assert any(st.mentions(p.text, "Mina") for p in draft.pages)
    assert len({p.text for p in draft.pages}) == 2
    for page in draft.pages:
        assert page.text.strip() and page.scene.strip()
        assert len(st.words(page.text)) <= st.words_per_page(BRIEF.age) * 1.5
        assert st.english_letters(page.scene)


def test_real_model_same_seed_same_draft(draft, smol):
    assert write.write_story(GARDEN, BRIEF, smol) == draft


# ------------------------------------------------------------------ scripted models

STORY = ("Once upon a time, there was a little girl named Nora. Nora had a yellow kite. The wind took the kite "
         "up into a tall tree. Nora was sad. Her dog Otto barked at the tree. A bird pulled the string down. "
         "Nora and Otto flew the kite all day. They laughed in the sunny park.")


class ScriptedLLM(TextModel):
    """Answers each step of the stage with fixed, valid JSON; records every call."""

    name = "scripted"
    model_id = "scripted"
    supports_schema = True

    def __init__(self, story: str = STORY):
        self.story = story
        self.calls: list[tuple[list[dict[str, str]], Sampling, dict]] = []

    def chat(self, messages, sampling=None, schema=None):
        self.calls.append((messages, sampling, schema))
        system, user = messages[0]["content"], messages[-1]["content"]
        if system == write.PLAN_SYSTEM:
            return json.dumps({"title": "Nora and the Kite",
                               "hero": {"name": "Nora", "kind": "a little girl with a kite", "look": "a yellow coat"},
                               "friend": {"name": "Otto", "kind": "a small dog"}})
        if system == write.SCENE_SYSTEM:
            return json.dumps({"scene": f"a little girl in a sunny park, picture {len(self.calls)}"})
        if "Rewrite this page" in user:
            return json.dumps({"text": "Nora laughed. The kite was a big red bird in the sky!"})
        if user.startswith("Here is the end of a story"):
            return json.dumps({"story": "The next day, Nora went to the beach. She found a shell. Otto dug a hole. "
                                        "They built a castle. Nora smiled at the sea."})
        return json.dumps({"story": self.story})


class BrokenLLM(TextModel):
    """Always answers with something that is not JSON."""

    name = "broken"
    model_id = "broken-model"

    def __init__(self):
        self.seeds: list[int | None] = []

    def chat(self, messages, sampling=None, schema=None):
        self.seeds.append(sampling.seed if sampling else None)
        return "Sure! Here is your story: {title: oops"


def test_scripted_story_is_shared_out_over_the_pages():
    llm = ScriptedLLM()
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite in a park", seed=3), llm)
    assert d.title == "Nora and the Kite"
    assert [c.name for c in d.cast] == ["Nora", "Otto"]
    assert d.cast[0].look.startswith("a little girl, ")  # kind cut at "with", then the look
    assert len(d.pages) == 4 and " ".join(p.text for p in d.pages) == STORY
    assert len({p.scene for p in d.pages}) == 4
    seeds = [s.seed for _, s, _ in llm.calls]
    assert len(set(seeds)) == len(seeds) and seeds[0] == 3  # every call its own seed, from the book's seed
    plan_schema = llm.calls[0][2]
    assert plan_schema["properties"]["hero"]["properties"]["name"]["enum"] == list(write.NAMES)


def test_brief_hero_name_is_imposed_by_the_schema():
    llm = ScriptedLLM()
    with pytest.raises(BackendError, match="not called Mina"):  # the scripted answer names Nora
        write.plan("a girl with a kite", Brief(hero="Mina"), llm, write.DEFAULT_SAMPLING)
    assert llm.calls[0][2]["properties"]["hero"]["properties"]["name"] == {"type": "string", "enum": ["Mina"]}


def test_invalid_json_is_retried_with_new_seeds_then_a_clear_backend_error():
    llm = BrokenLLM()
    with pytest.raises(BackendError) as err:
        write.plan(write.subject(GARDEN, BRIEF), Brief(pages=2, seed=5), llm, write.story_sampling(BRIEF))
    message = str(err.value)
    assert "broken-model" in message and "plan the title and characters" in message
    assert f"{TRIES} answers failed validation" in message and "not a JSON object" in message
    assert len(llm.seeds) == TRIES and len(set(llm.seeds)) == TRIES
    with pytest.raises(BackendError, match="write a 2-page story"):  # the book: the plan falls back, the story cannot
        write.write_story(GARDEN, Brief(pages=2, seed=5), BrokenLLM())


class ExampleCopyingLLM(ScriptedLLM):
    """Plans by copying the prompt's example every time (what SmolLM2 did for a flat orange photo)."""

    def chat(self, messages, sampling=None, schema=None):
        if messages[0]["content"] == write.PLAN_SYSTEM:
            self.calls.append((messages, sampling, schema))
            return json.dumps(write.PLAN_EXAMPLE[1] | {"hero": {**write.PLAN_EXAMPLE[1]["hero"], "name": "Nora"}})
        return super().chat(messages, sampling, schema)


def test_a_plan_that_fails_every_try_gives_a_plain_cast_and_a_note():
    basket = Caption(text="an orange basket in soft, warm light", concepts=["basket", "orange book"])
    draft = write.write_story(basket, Brief(pages=2, hero="Nora", seed=4), ExampleCopyingLLM())
    assert draft.title == "Nora and the Basket"
    assert [c.name for c in draft.cast][0] == "Nora" and "child" in draft.cast[0].look
    assert len(draft.pages) == 2 and draft.notes and "plain title and cast" in draft.notes[0]
    again = write.write_story(basket, Brief(pages=2, hero="Nora", seed=4), ExampleCopyingLLM())
    assert again == draft  # seeded like every other step


def test_story_without_its_hero_or_looping_is_rejected():
    no_hero = "Once upon a time there was a cat. It sat in the sun. It ate a fish. It went to sleep."
    with pytest.raises(BackendError, match="hero Nora is not in the story"):
        write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=1), ScriptedLLM(no_hero))
    loop = "Nora ran to the park. Nora ran to the park. Nora ran to the park. Nora flew the kite."
    with pytest.raises(BackendError, match="repeated"):
        write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=1), ScriptedLLM(loop))


def test_too_few_sentences_for_the_pages_is_rejected():
    with pytest.raises(BackendError, match="fewer than 4 sentences"):
        write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=1),
                          ScriptedLLM("Nora flew her kite in the park. Then Nora went home."))


def test_a_long_book_is_written_in_turns_that_continue_the_story():
    llm = ScriptedLLM()
    d = write.write_story(None, Brief(pages=6, age=6, idea="a girl and her kite", seed=1), llm)
    prompts = [m[-1]["content"] for m, _, _ in llm.calls if m[0]["content"] == write.STORY_SYSTEM]
    assert write.pages_per_answer(6) == 4 and len(prompts) == 2
    assert "start of a longer story" in prompts[0] and "happy ending" not in prompts[0]
    assert prompts[1].startswith("Here is the end of a story") and "end happily" in prompts[1]
    assert len(d.pages) == 6 and d.pages[4].text.startswith("The next day, Nora went to the beach")


def test_nothing_to_write_about_is_bad_input():
    with pytest.raises(BadInputError, match="something to be about"):
        write.write_story(None, Brief(), ScriptedLLM())


def test_rewrite_page_follows_the_instruction_and_keeps_the_hero():
    llm = ScriptedLLM()
    pages = [Page(index=i + 1, text=t, scene=f"scene {i}") for i, t in
             enumerate(["Nora has a kite.", "The kite is stuck in a tree.", "Nora gets it back."])]
    new = write.rewrite_page(pages, 2, "make it funnier", Brief(hero="Nora", seed=2), llm)
    assert isinstance(new, PageDraft) and "big red bird" in new.text and new.scene
    assert "make it funnier" in llm.calls[0][0][-1]["content"]
    with pytest.raises(BadInputError, match="no page 9"):
        write.rewrite_page(pages, 9, "x", Brief(), llm)
    with pytest.raises(BadInputError, match="instruction"):
        write.rewrite_page(pages, 1, "  ", Brief(), llm)


def test_extend_story_adds_new_pages_after_the_last():
    llm = ScriptedLLM()
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=4), llm)
    book = Storybook(brief=Brief(pages=2, seed=4), title=d.title, cast=d.cast,
                     pages=[Page(index=i + 1, text=p.text, scene=p.scene) for i, p in enumerate(d.pages)])
    more = write.extend_story(book, 2, llm)
    assert len(more) == 2 and all(p.text and p.scene for p in more)
    assert more[0].text.startswith("The next day, Nora")
    assert not {p.text for p in more} & {p.text for p in book.pages}
    with pytest.raises(BadInputError, match="cannot add 30 pages"):
        write.extend_story(book, 30, llm)


# ------------------------------------------------------------------ text helpers

def test_split_pages_balances_words_and_keeps_every_sentence():
    text = "One two three. Four five. Six seven eight nine. Ten. Eleven twelve."
    pages = st.split_pages(text, 3)
    assert pages is not None and len(pages) == 3 and " ".join(pages) == text
    assert st.split_pages("Only one sentence here.", 2) is None


def test_cut_off_fragment_is_dropped_and_long_pages_trimmed():
    assert st.sentences("The cat sat. The dog ran. And then the") == ["The cat sat.", "The dog ran."]
    assert st.trim_words("One two three. Four five six. Seven eight nine.", 6) == "One two three. Four five six."


def test_repetition_and_copied_examples_are_caught():
    assert st.repetition("The cat ran home. The cat ran home. Then it slept.")
    assert st.repetition("a big red ball a big red ball a big red ball")
    assert st.repetition("The cat ran home. Then it slept.") is None
    assert st.copied("Biscuit the dog", {"Biscuit", "crab"}, "a cat in a garden") == "copied the example (Biscuit)"
    assert st.copied("Biscuit the dog", {"Biscuit"}, "my dog Biscuit") is None


def test_markup_and_stray_words_are_not_a_page():
    assert "markup" in st.not_prose("{ { 'n_2' }}")
    assert "markup" in st.not_prose("Nora ran [page 2] home to her mother.")
    assert st.not_prose("Nora ran.") == "fewer than 4 words"
    assert st.not_prose("Nora ran home and then the") == "no finished sentence"
    assert st.not_prose("Nora ran home to her mother. She smiled!") is None


class JunkFirstLLM(ScriptedLLM):
    """Answers the first rewrite with a JSON echo (what SmolLM2 sometimes does), then a real page."""

    def __init__(self):
        super().__init__()
        self.rewrites = 0

    def chat(self, messages, sampling=None, schema=None):
        if "Rewrite this page" in messages[-1]["content"]:
            self.rewrites += 1
            if self.rewrites == 1:
                self.calls.append((messages, sampling, schema))
                return json.dumps({"text": "Nora { { 'n_2' }} Nora"})
        return super().chat(messages, sampling, schema)


def test_rewrite_that_answers_junk_is_asked_again():
    llm = JunkFirstLLM()
    pages = [Page(index=i + 1, text=t, scene=f"scene {i}") for i, t in
             enumerate(["Nora has a kite.", "The kite is stuck in a tree.", "Nora gets it back."])]
    new = write.rewrite_page(pages, 2, "make it funnier", Brief(hero="Nora", seed=2), llm)
    assert llm.rewrites == 2 and "{" not in new.text and "big red bird" in new.text
