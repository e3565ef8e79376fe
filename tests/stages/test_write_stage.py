"""The write stage: on the real SmolLM2-135M (small books), and on scripted models for the checks and retries."""

from __future__ import annotations

import json
import re

import pytest

from taleloom.backends import registry
from taleloom.backends.base import Sampling, TextModel
from taleloom.backends.llm.schema_check import check_schema
from taleloom.book import Brief, Caption, CastMember, Draft, Page, PageDraft, Storybook
from taleloom.errors import BackendError, BadInputError
from taleloom.stages import story_text as st
from taleloom.stages import write

# The README's API example: the sample cat photo, hero=Mina, seed 0 (it once failed: "copied the example")
CAT = Caption(text="a tabby cat sitting on a wooden floor", concepts=["cat", "tabby cat", "floor"])
BRIEF = Brief(pages=2, hero="Mina", seed=0)


# ------------------------------------------------------------------ the real embedded model (fast preset)

@pytest.fixture(scope="module")
def smol():
    return registry.create("llm", "embedded:smollm2")


@pytest.fixture(scope="module")
def draft(smol):
    return write.write_story(CAT, BRIEF, smol)


def test_real_model_writes_the_readme_example(draft):
    assert isinstance(Draft.model_validate(draft.model_dump()), Draft)
    assert len(draft.pages) == 2
    assert draft.title.strip() and not st.has_markup(draft.title)
    assert draft.cast[0].name == "Mina" and draft.cast[0].role == "hero" and draft.cast[0].look
    assert any(st.mentions(p.text, "Mina") for p in draft.pages)
    assert len({p.text for p in draft.pages}) == 2
    for page in draft.pages:
        assert page.text.strip() and page.scene.strip() and page.outline.strip()
        assert not st.has_markup(page.text) and not st.echoes_prompt(page.text)
        assert len(st.words(page.text)) <= st.words_per_page(BRIEF.age) * 1.5
        assert st.english_letters(page.scene)


def test_real_model_same_seed_same_draft(draft, smol):
    assert write.write_story(CAT, BRIEF, smol) == draft


@pytest.mark.slow
def test_default_model_writes_the_readme_example_as_planned():
    """Qwen2.5-Coder-1.5B (the default, ~1-3 min on a CPU): the cat is the hero, named on the pages, no markup."""
    d = write.write_story(CAT, Brief(pages=4, hero="Mina", seed=0), registry.create("llm", "embedded"))
    assert d.cast[0].name == "Mina" and "cat" in d.cast[0].look.lower() and not d.notes
    assert len(d.pages) == 4 and sum(st.mentions(p.text, "Mina") for p in d.pages) >= 3
    assert all(p.outline and not st.has_markup(p.text + p.scene) for p in d.pages)


# ------------------------------------------------------------------ scripted models

PLAN = {"title": "Nora and the Kite",
        "hero": {"name": "Nora", "kind": "a little girl with a kite", "look": "red hair and a yellow coat"},
        "friend": {"name": "Otto", "kind": "a small dog", "look": "brown fur and a blue collar"},
        "outline": ["Nora flies her kite in the park.", "The wind takes the kite into a tree.",
                    "Otto barks and a bird pulls the string.", "Nora and Otto fly the kite all day.",
                    "Nora finds a shell at the beach.", "Nora and Otto build a castle.",
                    "The sea washes the castle away.", "Nora laughs and builds another."]}
TEXTS = ["Nora had a yellow kite. She ran in the park and the kite flew up.",
         "The wind pulled hard. Nora's kite got stuck in a tall oak tree.",
         "Her dog Otto barked at the tree. A bird pulled the string and Nora caught it!",
         "Nora and Otto flew the kite all day. They laughed in the sunny park.",
         "The next day Nora went to the beach and found a pink shell in the sand.",
         "Nora and Otto built a big sand castle with four towers.",
         "A wave came and washed the castle away. Nora looked at the wet sand.",
         "Then Nora laughed and began to build a new castle with Otto."]


def scripted_pages(first: int, n: int, texts=TEXTS) -> dict:
    return {"pages": [{"text": texts[(first - 1 + i) % len(texts)],
                       "scene": f"Nora with red hair and a yellow coat in a park, picture {first + i}"}
                      for i in range(n)]}


class ScriptedLLM(TextModel):
    """Answers the book (plan + first pages), later pages, a rewrite and an extension with fixed, valid JSON;
    records every call."""

    name = "scripted"
    model_id = "scripted"
    supports_schema = True

    def __init__(self, plan: dict | None = None, texts=TEXTS):
        self.plan, self.texts = plan or PLAN, texts
        self.calls: list[tuple[list[dict[str, str]], Sampling, dict]] = []

    def chat(self, messages, sampling=None, schema=None):
        self.calls.append((list(messages), sampling, schema))
        props, user = schema["properties"], messages[-1]["content"]
        if "title" in props:  # the book: the plan, then its first pages
            n = props["outline"]["minItems"]
            return json.dumps(self.plan | {"outline": self.plan["outline"][:n]}
                              | scripted_pages(1, props["pages"]["minItems"], self.texts))
        if "outline" in props:  # extend
            n = props["outline"]["minItems"]
            return json.dumps({"outline": PLAN["outline"][4:4 + n]} | scripted_pages(5, n, self.texts))
        if "story" in props:  # the plain-story fallback: the pages' texts as one story
            return json.dumps({"story": " ".join(self.texts)})
        if "text" in props:  # rewrite
            return json.dumps({"text": "Nora laughed. The kite was a big red bird in the sky!",
                               "scene": "Nora with red hair laughing at a kite shaped like a red bird"})
        first = int(user.split("Now write pages ")[1].split()[0])
        return json.dumps(scripted_pages(first, props["pages"]["minItems"], self.texts))


class BrokenLLM(TextModel):
    """Always answers with something that is not JSON."""

    name = "broken"
    model_id = "broken-model"

    def __init__(self):
        self.seeds: list[int | None] = []

    def chat(self, messages, sampling=None, schema=None):
        self.seeds.append(sampling.seed if sampling else None)
        return "Sure! Here is your story: {title: oops"


def test_an_outline_line_its_page_does_not_follow_is_the_pages_first_sentence():
    """The footballer photo's pages played with a ball while the plan's lines rode a bicycle; told those lines as the
    story so far, the last page's rewrite ended the book "pedaling with his feet"."""
    lines = ["Nora tries to ride a bicycle for the first time.", "Nora flies her kite in the park."]
    pages = [PageDraft(text="Nora kicks a big red ball to Otto. He runs after it.", scene="s"),
             PageDraft(text="Nora's kite flies high over the park.", scene="s")]
    assert write._distinct_outline(lines, pages, ["Nora", "Otto"]) == ["Nora kicks a big red ball to Otto.", lines[1]]


def test_the_owners_description_names_the_hero_and_may_name_the_friend():
    """Told "our cat Pepper, who loves naps on the sofa", the sample cat's book made its hero "Nora", a cat, and
    Pepper someone else napping on the couch."""
    brief = Brief(pages=2, seed=1, description="our cat Pepper and our dog Rex, asleep on the sofa")
    assert write.hero_name(brief, 1) == "Pepper" and write.described_names("My Mom and our cat Pepper") == ["Pepper"]
    assert write.subjects_name("my daughter Mia with our cat Pepper", "cat") == "Pepper"  # the photo's cat
    assert write.hero_name(Brief(description="my daughter Mia with our cat Pepper"), 1) == "Mia"  # before the photo
    llm = ScriptedLLM()
    write.write_story(CAT, brief, llm)
    schema, asked = llm.calls[0][2], llm.calls[0][0][-1]["content"]
    assert schema["properties"]["hero"]["properties"]["name"]["enum"] == ["Pepper"] and "called Pepper" in asked
    assert schema["properties"]["friend"]["properties"]["name"]["enum"][0] == "Rex"


def test_plan_and_pages_in_one_answer():
    llm = ScriptedLLM()
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite in a park", seed=3), llm)
    assert d.title == "Nora and the Kite"
    assert [c.name for c in d.cast] == ["Nora", "Otto"]
    assert d.cast[0].look == "a little girl, red hair and a yellow coat"  # kind cut at "with", then the look
    assert [p.text for p in d.pages] == TEXTS[:4] and [p.outline for p in d.pages] == PLAN["outline"][:4]
    assert len({p.scene for p in d.pages}) == 4 and not d.notes
    assert len(llm.calls) == 1  # the plan and every page and scene: nothing asked or evaluated twice
    (messages, sampling, schema), = llm.calls
    assert sampling.seed == 3  # from the book's seed
    assert list(schema["properties"]) == ["title", "hero", "friend", "outline", "pages"]  # plan first, then pages
    drawn = write.hero_name(Brief(seed=3), 3)  # no hero in the brief: one of NAMES, drawn by the seed
    assert drawn in write.NAMES and f"The hero is called {drawn}" in messages[-1]["content"]
    prefix = write.book_prefix(Brief(pages=4, idea="a girl and her kite", seed=3))  # evaluated ahead, before the
    assert messages[0] == prefix[0] and messages[1]["content"].startswith(prefix[1]["content"])  # photo is seen
    assert "It is about: a girl and her kite" in messages[1]["content"][len(prefix[1]["content"]):]
    assert schema["properties"]["hero"]["properties"]["name"]["enum"] == [drawn]
    assert drawn not in schema["properties"]["friend"]["properties"]["name"]["enum"]
    assert schema["properties"]["outline"]["minItems"] == 4 and schema["properties"]["pages"]["minItems"] == 4


def test_a_look_with_photo_talk_loses_that_sentence_not_the_whole_book():
    """Qwen wrote the apple book's look as "golden, soft, and warm, with a golden color. The photo shows
    apple.": refusing the answer cost the whole book again (40 s), and the next answer made the hero an
    animal. The sentence of photo talk is cut; the book is the first answer."""
    plan = PLAN | {"hero": PLAN["hero"] | {"look": "red hair and a yellow coat. The photo shows a girl."}}
    llm = ScriptedLLM(plan)
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite in a park", seed=3), llm)
    assert d.cast[0].look == "a little girl, red hair and a yellow coat" and len(llm.calls) == 1
    assert st.without_leaked_sentences("The photo shows a girl.") == "The photo shows a girl."  # nothing else:
    # the field stays as it was, and its check refuses it


def test_a_clause_copied_after_a_semicolon_is_dropped():
    """A rewrite of the apple book's page 1 glued page 2's first sentence on after a semicolon."""
    page2 = "Lila is a tiny, red ball of fur, with her big eyes looking up at you. She has a round head."
    glued = "The apple is soft and warm, with a golden color; Lila is a tiny, red ball of fur, with her big eyes."
    assert st.drop_copied_sentences(glued, [page2]) == "The apple is soft and warm, with a golden color."
    assert st.drop_copied_sentences("It rained; Mina stayed in.", [page2]) == "It rained; Mina stayed in."


def test_a_scene_given_the_hero_names_its_kind_without_an_article():
    cast = [CastMember(name="Lila", look="a fruit, golden", role="hero")]
    assert write._scene("The sun rises over the park", cast) == "The sun rises over the park, with Lila the fruit"


def test_a_page_asked_for_alone_must_name_the_hero_in_its_first_sentence():
    """A rewrite that must name the hero gets a pattern: the answer cannot end its first sentence before the
    name (a JSON string of any characters but quotes, backslashes and control characters); the book's own
    pages stay plain strings (a model that meant "the owl" ran a sentence on for hundreds of tokens)."""
    llm = ScriptedLLM()
    pages = [Page(index=i + 1, text=t, scene=f"scene {i}") for i, t in enumerate(TEXTS[:3])]
    write.rewrite_page(pages, 2, "make it funnier", Brief(hero="Nora", seed=2), llm, must_name="Nora")
    text = llm.calls[0][2]["properties"]["text"]
    rx = re.compile(text["pattern"])
    assert rx.fullmatch("When the sun rose, Nora ran to the pond. She was happy!")
    assert rx.fullmatch("Ein Tag mit Nora am Meer.")
    assert not rx.fullmatch("The sun rose. She ran to the pond.")
    assert not rx.fullmatch("The sun rose. Nora ran to the pond.")  # in the first sentence: not on and on
    assert not rx.fullmatch('Nora said "hi".')  # no quotes: the pattern means the same on raw or decoded text
    check_schema(llm.calls[0][2])  # what llama.cpp and the server accept
    assert "pattern" not in write._page_schema(Brief(), 2)["items"]["properties"]["text"]
    for unspellable in ('Mi"na', "Ana (5)", "Zoë\\", "Max*", ""):  # no pattern: the plain bounded string
        assert "pattern" not in write._naming(unspellable, 10, 100)
    for spellable in ("Anne-Marie", "Zoë", "Mary Ann", "O'Brien", "R2-D2", "Dr. Lee", "J.J."):
        pattern = write._naming(spellable, 10, 100)["pattern"]
        assert re.fullmatch(pattern, f"Here is {spellable}, at home. Hi!") and check_schema(write._object(t={
            "type": "string", "pattern": pattern})) is None
    assert not re.fullmatch(write._naming("Dr. Lee", 10, 100)["pattern"], "Here is Drx Lee.")  # a dot, not any


def test_the_photo_subject_is_the_hero():
    llm = ScriptedLLM()
    write.write_story(CAT, Brief(pages=2, hero="Nora", seed=1), llm)
    prompt = llm.calls[0][0][-1]["content"]
    assert "The hero is called Nora." in prompt and "Nora is the cat from the photo." in prompt
    # a plan whose hero is not the photo's subject is asked again (the scripted girl with a kite is not a cat)
    assert len([c for c in llm.calls if "title" in c[2]["properties"]]) == write.PLAN_RELEVANCE_TRIES + 1


def test_brief_hero_name_is_imposed_by_the_schema():
    llm = ScriptedLLM()
    with pytest.raises(write.PagesFailedError, match="not called Mina"):  # the scripted answer names Nora
        write.plan_and_write("a girl with a kite", Brief(hero="Mina"), llm, write.DEFAULT_SAMPLING)
    assert llm.calls[0][2]["properties"]["hero"]["properties"]["name"] == {"type": "string", "enum": ["Mina"]}


def test_invalid_json_is_retried_with_new_seeds_then_a_clear_backend_error():
    llm = BrokenLLM()
    with pytest.raises(BackendError) as err:
        write.plan_and_write(write.subject(CAT, BRIEF), Brief(pages=2, seed=5), llm, write.story_sampling(BRIEF))
    message = str(err.value)
    assert "broken-model" in message and "plan and write the book" in message
    assert f"{write.BOOK_TRIES} answers failed validation" in message and "not a JSON object" in message
    assert len(llm.seeds) == write.BOOK_TRIES and len(set(llm.seeds)) == write.BOOK_TRIES
    with pytest.raises(BackendError, match="write a 2-page story"):  # the book: the plan falls back, pages cannot
        write.write_story(CAT, Brief(pages=2, seed=5), BrokenLLM())


def test_a_plan_that_fails_every_try_gives_a_plain_cast_and_a_note():
    basket = Caption(text="an orange basket in soft, warm light", concepts=["basket", "orange book"])
    junk = PLAN | {"title": "<h1>Title</h1> {{title}}"}
    draft = write.write_story(basket, Brief(pages=2, hero="Nora", seed=4), ScriptedLLM(junk))
    assert draft.title == "Nora the Basket"  # the photo's subject is the hero, a child the friend
    assert [c.name for c in draft.cast][0] == "Nora" and draft.cast[0].look == "a little basket"
    assert len(draft.pages) == 2 and draft.notes and "plain title and cast" in draft.notes[0]
    again = write.write_story(basket, Brief(pages=2, hero="Nora", seed=4), ScriptedLLM(junk))
    assert again == draft  # seeded like every other step


def test_the_photo_is_described_in_a_sentence_the_model_does_not_copy_as_a_label():
    """'It shows: cat, sofa.' came back as a page, 'Mina shows: cat.' (the cat book): the photo's concepts are a
    plain sentence now, and a page that still copies the label is prompt echo."""
    about = write.subject(Caption(text="A tabby cat on a sofa.", concepts=["tabby cat", "sofa", "house"]), Brief())
    assert about == "A tabby cat on a sofa. The photo shows tabby cat, sofa and house."
    assert write.subject(Caption(text="A cat.", concepts=["cat"]), Brief()).endswith("The photo shows cat.")
    assert st.echoes_prompt("Mina shows: cat.") and not st.echoes_prompt("Mina shows Theo her ball.")


def test_a_photo_with_nothing_named_makes_a_story_of_its_colours_not_of_a_photo():
    """Told "A photo in pink and red tones", Qwen wrote "Theo in the Pink and Red Photo": a dog who finds a photo."""
    facts = {"colours": [{"name": "pink"}, {"name": "red"}], "light": "dim, warm light", "subjects": []}
    unnamed = Caption(text="A photo in pink and red tones, in dim, warm light.", concepts=[], facts=facts)
    assert write.subject(unnamed, Brief()) == "A place all in pink and red, in dim, warm light."
    described = unnamed.model_copy(update={"text": "Our garden. A photo in pink tones.",
                                           "facts": {**facts, "owner_description": "Our garden"}})
    assert write.subject(described, Brief()).startswith("Our garden.")  # the owner's words are the subject
    # the line that tells a thing to come alive, copied back as a page's sentence, is dropped
    assert st.drop_labels("Lila is a tall tower. It can't move, talk or feel, not a person or an animal.") == \
        "Lila is a tall tower."


def test_a_look_that_lists_colours_keeps_three_and_a_part_cut_off_at_its_length_goes():
    """The footballer photo's hero: "a football, grey, green, black, white, red, yellow, blue, orange, pink, brown,
    purple, teal, lime, ind" (the look's 90 characters ran out in "ind"), printed on the cover."""
    listed = "grey, green, black, white, red, yellow, blue, orange, pink, brown, purple, teal, lime, ind"
    assert len(listed) >= write.LOOK_CHARS - 1
    assert write._look({"kind": "a football", "look": listed}, thing=True) == "a football, grey, green, black"
    assert write._look({"kind": "cat", "look": "black, white, ginger, a red collar"}) == \
        "cat, black, white, ginger, a red collar"  # three colours and what is not a colour stay
    assert write._look({"kind": "parrot", "look": "red, yellow, blue, green feathers, a tiny hat"}) == \
        "parrot, red, yellow, blue, green feathers, a tiny hat"
    # the request's "can move, talk and feel" said as parts of a look (a cups wallpaper's hero); a talking parrot stays
    assert write._look({"kind": "cup", "look": "pink, with moving legs, talking capabilities, and a soft feel of "
                                               "fabric"}, thing=True) == "cup, pink, with moving legs"
    assert write._look({"kind": "cat", "look": "soft fur, a talking parrot"}) == "cat, soft fur, a talking parrot"
    # the kind said again after colours or before "with" (a paintbrush wallpaper's cover copied its caption)
    assert write._look({"kind": "paintbrush", "look": "blue, red, and yellow paintbrush"}, thing=True) == \
        "paintbrush, blue, red, and yellow"
    assert write._look({"kind": "snail", "look": "snail with a sad face, a red hat"}) == "snail, with a sad face, a red hat"
    assert write._look({"kind": "car", "look": "a shiny red car"}, thing=True) == "car, a shiny red car"
    assert write._look({"kind": "cat", "look": "brown fur, a toy cat"}) == "cat, brown fur, a toy cat"
    # a person is not the photo's tones: matplotlib's Grace Hopper photo gave "child, black and blue, with person in
    # it" (in English, bruised)
    assert write._look({"kind": "child", "look": "black and blue, with person in it"}) == "child"
    assert write._look({"kind": "girl", "look": "black and blue, a red dress"}) == "girl, a red dress"
    assert write._look({"kind": "cat", "look": "black and white, a red collar"}) == "cat, black and white, a red collar"


def test_a_look_does_not_keep_the_captions_light(caplog):
    """The sample cat's cover read "Mina — cat, brown and beige tones, soft, warm light, wearing a blue sweater"."""
    member = {"kind": "cat", "look": "brown and beige tones, soft, warm light, wearing a blue sweater"}
    assert write._look(member) == "cat, brown and beige, wearing a blue sweater"
    assert write._look({"kind": "owl", "look": "light blue eyes, soft fur, dark wings"}) == \
        "owl, light blue eyes, soft fur, dark wings"
    # the person photo's book: "child, black and blue in dim light, ..."; the lemon's: "..., can move, talk and feel"
    assert write._look({"kind": "child", "look": "black and blue in dim light, a simple dress"}) == \
        "child, a simple dress"  # and no colours of the photo for a person (below)
    assert write._look({"kind": "lemon", "look": "yellow with green skin, can move, talk and feel"}) == \
        "lemon, yellow with green skin"
    assert write._look({"kind": "fox", "look": "red fur in soft, warm light"}) == "fox, red fur"
    # sklearn's china photo: the LLM caption's light went on ("soft light casting shadows on its facade")
    assert write._look({"kind": "building", "look": "brown and white, soft light casting shadows on its facade"}) == \
        "building, brown and white"
    assert write._look({"kind": "cat", "look": "grey, a light blue collar"}) == "cat, grey, a light blue collar"
    # OpenCV's chick drawing, captioned "A brown, blue and grey dog with dim light in the background."
    assert write._look({"kind": "dog", "look": "brown, blue and grey with dim light in the background"}) == \
        "dog, brown, blue and grey"
    assert write.without_photo_wording("The room glowed with warm light.") == "The room glowed with warm light."
    assert write.without_photo_wording("Omar is born in a cozy beige and brown room with soft warm light.") == \
        "Omar is born in a cozy beige and brown room."  # the caption's two light words (an autumn wallpaper)
    # OpenCV's fruits photo, captioned "A lemon … stands tall in the sunlight": the look said the come-alive words too
    assert write._look({"kind": "lemon", "look": "bright yellow, green skin, tall in sunlight with moving, talking "
                                                 "and feeling"}, thing=True) == "lemon, bright yellow, green skin, tall"
    assert write._look({"kind": "glass", "look": "golden liquid, moves, talks, feels"}, thing=True) == "glass, golden liquid"
    # a thing come to life has no animal's coat (the footballer's "football, coloured fur"); a creature keeps it
    assert write._look({"kind": "football", "look": "coloured fur, green and grey, red hat"}, thing=True) == \
        "football, green and grey, red hat"
    assert write._look({"kind": "rocket", "look": "white; red, yellow, blue feathers; red cap"}, thing=True) == \
        "rocket, white, red cap"
    assert write._look({"kind": "kite", "look": "red, a long tail"}, thing=True) == "kite, red, a long tail"
    assert write._look({"kind": "football", "look": "soft fur"}, thing=True) == "football, soft fur"  # nothing else
    # nor does a person (a wallpaper's book: "girl, pink fur, red hair")
    assert write._look({"kind": "girl", "look": "pink fur, red hair, pink shoes"}) == "girl, red hair, pink shoes"
    # nor skin in the photo's tones (a valley wallpaper in green and grey: "child, green hair, grey skin")
    assert write._look({"kind": "child", "look": "green hair, grey skin, red shoes"}) == "child, green hair, red shoes"
    assert write._look({"kind": "boy", "look": "brown skin, curly hair"}) == "boy, brown skin, curly hair"
    assert write._look({"kind": "frog", "look": "green skin, big eyes"}) == "frog, green skin, big eyes"
    assert write._look({"kind": "bear", "look": "brown fur, red hat"}) == "bear, brown fur, red hat"
    # the building book's hero: "building, building from photo"; the kind said again is no look
    assert write._look({"kind": "building", "look": "building from photo, red roof"}) == "building, red roof"
    assert write._look({"kind": "cup", "look": "purple and turquoise, a cup that can move, talk and feel"}) == \
        "cup, purple and turquoise"
    # skimage's cameraman book: a look that is a scene with another of the cast in it is no look; a capital that
    # only opened the field is said in lower case on the cover
    names = ["Lena", "Theo"]
    lena = [CastMember(name="Lena", look="child, a girl"), CastMember(name="Theo", look="person")]
    assert write.named_in_text("The person helps Lena find the lamb.", lena) == "Theo the person helps Lena find the lamb."
    cats = [CastMember(name="Mina", look="cat, grey"), CastMember(name="Theo", look="cat, brown")]
    assert write.named_in_text("Mina sees the cat.", cats) == "Mina sees the cat."  # two cats: either may be meant
    assert write._look({"name": "Theo", "kind": "Person", "look": "Theo is standing next to Lena, holding a tripod"},
                       names=names) == "person"
    assert write._look({"name": "Lena", "kind": "Child", "look": "A girl with brown hair"}, names=names) == \
        "child, a girl with brown hair"
    assert write._look({"name": "Lena", "kind": "Eiffel Tower", "look": "Lena has an iron top"}, names=names) == \
        "Eiffel Tower, Lena has an iron top"
    assert write._look({"kind": "building", "look": "building from photo"}) == "building"
    # OpenCV's dog photo ("… is standing in a dim light"): the caption's pose is no look; a pose in a part stays
    assert write._look({"kind": "dog", "look": "brown and grey, blue eyes, standing, wearing a red sweater"}) == \
        "dog, brown and grey, blue eyes, wearing a red sweater"
    assert write._look({"kind": "dog", "look": "brown, a standing collar"}) == "dog, brown, a standing collar"
    assert write._look({"kind": "child", "look": "black and blue, with person"}) == "child"
    # OpenCV's orange: the caption's tones said as colours, a light word left hanging, the come-alive words
    look = "orange with soft, warm light, in yellow and grey colours, come to life as an orange"
    assert write._look({"kind": "an orange", "look": look}, thing=True) == "an orange, orange, yellow and grey"
    assert write._look({"kind": "girl", "look": "red hair, colours of the rainbow scarf"}) == \
        "girl, red hair, colours of the rainbow scarf"
    # the orange book: "a flowing orange t恤" (Chinese for a T-shirt) in the look, "Nora is not a人" in a scene
    assert write._look({"kind": "orange", "look": "round face, red ears, a flowing orange t恤"}) == \
        "orange, round face, red ears"
    assert not st.foreign_script(write._scene("A sunny day. Nora is not a人", [CastMember(name="Nora", look="x")]))
    assert st.drop_labels("Nora smiles. She wears a t恤.") == "Nora smiles."
    assert st.drop_labels('Tom talks and feels. , "I feel good!"') == 'Tom talks and feels. "I feel good!"'
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=2),
                          ScriptedLLM(texts=[TEXTS[0], "Nora wears a t恤."]))
    assert "try 1: page 2: not English" in caplog.text and not any(st.foreign_script(p.text) for p in d.pages)


def test_a_title_of_several_sentences_keeps_its_first():
    assert write.book_title("Mina's coffee is hot and inviting. It is the coffee from Mina's photo.") == \
        "Mina's coffee is hot and inviting"
    assert write.book_title("Nora and the Kite") == "Nora and the Kite"
    assert write.book_title("Where is Leo? A Day at the Sea!") == "Where is Leo?"
    # the caption's tones opening a title are no part of it (a wallpaper of a bird under lamps)
    assert write.book_title("Gray and White: Coco Finds the Lost Kitten") == "Coco Finds the Lost Kitten"
    assert write.book_title("Otto: A Tale of Two Friends") == "Otto: A Tale of Two Friends"


def test_markup_from_the_model_never_reaches_the_book():
    """The cover once read 'Ben — a bear, <img src=': such tails are stripped; markup inside is asked again."""
    leaky = PLAN | {"hero": {"name": "Nora", "kind": "a little girl", "look": "red hair, <img src="},
                    "title": "**Nora and the Kite**"}
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=2), ScriptedLLM(leaky))
    assert d.title == "Nora and the Kite" and d.cast[0].look == "a little girl, red hair"
    tagged = ["<p>Page 1: Nora had a <b>yellow</b> kite.</p> She ran in the park.", TEXTS[1]]
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=2), ScriptedLLM(texts=tagged))
    assert d.pages[0].text == "Nora had a yellow kite. She ran in the park."
    # the Leuven street book's page 3 had the answer's next field glued on: cut where it starts
    glued = ['Nora had a yellow kite. She ran in the park. . scene":"Nora is standing in the park, with the wind', TEXTS[1]]
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=2), ScriptedLLM(texts=glued))
    assert d.pages[0].text == "Nora had a yellow kite. She ran in the park."
    assert st.strip_markup('Nora said "scene" is a word.') == 'Nora said "scene" is a word.'  # a word, not a field
    for bad in ("Nora {ran} to the park with her kite.", "Nora, a 4-year-old reader, flew the kite in JSON."):
        with pytest.raises(BackendError, match="page 1"):
            write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=2),
                              ScriptedLLM(texts=[bad, TEXTS[1]]))


def test_a_page_that_is_only_the_come_alive_line_or_camera_or_photo_talk_is_asked_again(caplog):
    """The lemon book's page 2 was the request's come-alive line, word for word; the butterfly book's "The camera
    zooms in to show Theo's wings and body."; OpenCV's dog photo's "Lila looked at the photo and thought about her
    day." Dropped beside a story sentence; a page of nothing else is asked again."""
    alive = "Nora is the kite, come to life: a kite that can move, talk and feel, not a person or an animal."
    assert st.drop_labels("Nora flies high. " + alive) == "Nora flies high."
    assert st.request_talk("Nora comes to life: a building that can move, talk and feel.")  # sklearn's china book
    # the story may say it ("there was an apple that could move, talk and feel"), not the request's other words
    assert st.drop_labels("There was an apple that could move, talk and feel. Nora is not a person or an animal.") \
        == "There was an apple that could move, talk and feel."
    llm = ScriptedLLM()
    write.write_story(Caption(text="a photo", concepts=["apple"]), Brief(pages=2, hero="Nora", seed=1), llm)
    assert "come to life: an apple that" in llm.calls[0][0][-1]["content"]
    assert st.drop_labels("The camera zooms in on Nora. Nora smiles.") == "Nora smiles."
    for page in (alive, "The camera zooms in to show Nora's kite.", "Nora looked at the photo and thought about her day."):
        caplog.clear()
        llm = ScriptedLLM(texts=[TEXTS[0], page])
        d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=2), llm)
        # the page alone is written again (a short answer), not the whole book's answer refused for it
        assert "the prompt leaked" not in caplog.text and len(llm.calls) == 2 and "text" in llm.calls[1][2]["properties"]
        assert d.pages[1].text == "Nora laughed. The kite was a big red bird in the sky!"
        assert not any(st.request_talk(p.text) for p in d.pages)
    # skimage's motorcycle book: pages 1 and 4 were captions ("A picture of Lila with Priya after the hug.")
    assert st.request_talk("A picture of Nora with Priya after the hug.")
    assert st.drop_labels("Nora runs home. A picture of a kite in soft light.") == "Nora runs home."
    assert not st.request_talk("Nora drew a picture of her kite.")
    # its page 1, written again, recited the hero's look: no page of the story either
    bike = [CastMember(name="Lila", look="motorbike, brown and grey, with a penguin on the back and a toy car on top")]
    assert write.tells_a_look("Lila is a motorbike, brown and grey, with a penguin on the back and a toy car on top.", bike)
    assert not write.tells_a_look("Lila is a brown and grey motorbike. She rides to the park with a penguin.", bike)
    assert not st.request_talk("Nora took a close look at the camera her dad gave her.")
    # OpenCV's aero photo: page 1 began "The scene shows Lila standing in the middle of the open grassland"; a
    # picture's description says what it shows all the same
    assert st.drop_labels("The scene shows Nora in the park. Nora smiles.") == "Nora smiles."
    assert st.scene_of("The scene shows Nora in the park. The sky is blue.") == "Nora in the park. The sky is blue."
    assert st.scene_of("The picture shows: Nora in a park") == "Nora in a park"
    # "A picture shows …" as a scene had a whole book's answer refused for prompt words (an autumn wallpaper's)
    assert st.scene_of("A picture shows Omar playing in the park") == "Omar playing in the park"
    # the cat photo's Japanese book: the caption's wording in its first page and its picture's description
    page = write._page("There was Milo, the friendly cat in brown and beige tones, in soft, warm light. He ran.",
                       st.scene_of("A photo of Milo the cat, in brown and beige tones, in soft, warm light"),
                       [CastMember(name="Milo", look="cat", role="hero")])
    assert page.text == "There was Milo, the friendly cat. He ran." and page.scene == "Milo the cat"
    assert write.without_photo_wording("In a place all in pink and red, dim, warm light, there lived Hana.") == \
        "In a place all in pink and red, there lived Hana."  # a wallpaper's book, page 1
    assert write.without_photo_wording("Mina slept in the soft light of the moon.") == \
        "Mina slept in the soft light of the moon."
    # a bicycle book's last pages spoke of the book itself
    assert st.drop_labels("Nora and Otto go home in the kite picture. Nora smiles.") == "Nora smiles."
    assert st.request_talk("The end of the story, with Nora's kite picture again and the reader leaving the book.")
    assert not st.request_talk("Nora reads a story to Otto. Then she draws a picture of him.")


def test_an_outline_line_copied_from_the_request_becomes_its_pages_first_sentence():
    """The apple book's outline held "Tom is the apple from the photo, come to life: a apple that can move, talk
    and feel, not a" and then "person or an animal."; its fallback pictures were drawn from those lines."""
    copied = "Nora is the kite from the photo, come to life: a kite that can move."
    plan = dict(PLAN, outline=["Nora flies her kite in the park.", copied] + PLAN["outline"][2:])
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=2), ScriptedLLM(plan=plan))
    assert [p.outline for p in d.pages] == ["Nora flies her kite in the park.", st.sentences(TEXTS[1])[0]]


def test_the_requests_photo_lines_copied_into_a_page_are_dropped_not_printed():
    """The request says "Nora is the girl from the photo." and "The photo shows ...": a reader has no photo.
    Qwen's coffee book printed "The photo shows cup of coffee with a brown and yellow color" on page 1."""
    echo = ["Nora flies her yellow kite. The photo shows kite, park and tree.", "Nora is the girl from the photo."]
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=2), ScriptedLLM(texts=echo))
    assert d.pages[0].text == "Nora flies her yellow kite."
    # "Nora is the girl." was all page 2 said: it is written again alone, not printed
    assert d.pages[1].text == "Nora laughed. The kite was a big red bird in the sky!"
    hero = CastMember(name="Lila", look="person, grey coat")
    assert write.drop_request_line("Lila is the person. Theo sees Lila.", hero) == "Theo sees Lila."
    assert write.drop_request_line("Lila is the kindest person. Theo came.", hero) == \
        "Lila is the kindest person. Theo came."
    mina = CastMember(name="Mina", look="animal, dark fur, carries a cup of coffee")
    assert write.drop_request_line("Mina is the cup of coffee. Mina smiles.", mina, "cup of coffee") == "Mina smiles."
    assert st.drop_labels("Nora took a photo of the sea.") == "Nora took a photo of the sea."  # a photo in a story
    # nothing else on the page: the page alone is asked again
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=2),
                          ScriptedLLM(texts=["The photo shows Nora, a kite and a tree.", TEXTS[1]]))
    assert d.pages[0].text == "Nora laughed. The kite was a big red bird in the sky!"
    with pytest.raises(BackendError, match="page 1: the prompt leaked"):  # our prompt's words: the book again
        write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=2),
                          ScriptedLLM(texts=["The cast sheet: Nora, a girl, and her kite.", TEXTS[1]]))


def test_pages_without_the_hero_or_repeating_are_asked_again():
    no_hero = ["The kite flew up in the park. It was a windy day.", "A bird sat in the tall oak tree."]
    with pytest.raises(BackendError, match="hero Nora is not on page 1"):
        write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=1), ScriptedLLM(texts=no_hero))
    loop = ["Nora ran to the park. Nora ran to the park. Nora ran to the park.", TEXTS[1]]
    with pytest.raises(BackendError, match="repeated"):
        write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=1), ScriptedLLM(texts=loop))


def test_a_page_that_repeats_another_is_written_again_alone_not_the_whole_book():
    same = [TEXTS[0], TEXTS[0].replace("yellow", "red")]
    llm = ScriptedLLM(texts=same)
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=1), llm)
    assert len([c for c in llm.calls if "title" in c[2]["properties"]]) == 1  # the book was asked once
    rewrite, schema = llm.calls[1][0][-1]["content"], llm.calls[1][2]
    assert "Write page 2 again: tell this page's own event" in rewrite and "not what page 1 told" in rewrite
    assert PLAN["outline"][1].rstrip(".") in rewrite and same[1] not in rewrite  # not shown the copy
    assert list(schema["properties"]) == ["text"] and "Nora" in schema["properties"]["text"]["pattern"]
    assert d.pages[0].text == TEXTS[0] and "big red bird" in d.pages[1].text  # the scripted rewrite
    assert d.pages[1].outline == PLAN["outline"][1] and d.pages[1].scene.startswith("Nora laughed")
    same_again = ScriptedLLM(texts=same)
    same_again.chat = lambda m, s=None, schema=None, inner=same_again.chat: (  # the rewrite repeats too
        inner(m, s, schema) if "title" in schema["properties"] else json.dumps(
            {"text": same[1], "scene": "Nora with red hair and a kite in the park"}))
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=1), same_again)
    assert [p.text for p in d.pages] == same  # kept as it was: a failed rewrite loses nothing
    # the duck book: page 4 was page 1 word for word and both rewrites failed; an outline line that names the hero
    # and repeats no page tells the page instead (this plan's line 2, "The wind takes the kite…", names no one)
    named = PLAN | {"outline": [PLAN["outline"][0], "Nora's kite gets stuck in a tall oak tree.", *PLAN["outline"][2:]]}
    same_again.plan = named
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=1), same_again)
    assert [p.text for p in d.pages] == [same[0], "Nora's kite gets stuck in a tall oak tree."]


def test_a_page_that_tells_an_earlier_pictures_description_is_written_again():
    """The temple book's page 4 was page 2's scene word for word: a page that copies only other pages' sentences
    is kept whole by drop_copied_sentences, and its texts differed, so nothing caught it."""
    cast = [CastMember(name="Nora", look="a little girl, red hair", role="hero")]
    scene = "Nora walks into the cozy house with Ava, whose wand glows brightly"
    pages = [PageDraft(text=TEXTS[0], scene=scene, outline="Nora finds a house."),
             PageDraft(text=scene + ".", scene="Nora and Ava in the house", outline="Nora plays.")]
    llm = ScriptedLLM()
    out = write.distinct_pages(pages, cast, Brief(pages=2, hero="Nora", seed=1), llm, write.DEFAULT_SAMPLING)
    assert "not what page 1 told" in llm.calls[0][0][-1]["content"] and "big red bird" in out[1].text


def test_a_page_that_is_the_requests_small_problem_word_for_word_is_written_again():
    """The HappyFish photo's page 3 was the plot it was told, "Lila tries to ice skate for the first time, finds it
    hard, practises, and gets it right." A page that follows the plot in its own words is kept."""
    brief = Brief(pages=2, hero="Nora", seed=4)
    plot = write.plot_of(brief, "Nora")
    assert "for the first time" in plot  # climb a tree
    cast = [CastMember(name="Nora", look="a little girl, red hair", role="hero")]
    pages = [PageDraft(text=TEXTS[0], scene="Nora in the park", outline="Nora finds a pond."),
             PageDraft(text=plot + ".", scene="Nora at a tree", outline="Nora learns to climb.")]
    llm = ScriptedLLM()
    told = write.told_the_model("A photo of a pond.", brief, "Nora")
    out = write.distinct_pages(pages, cast, brief, llm, write.DEFAULT_SAMPLING, about=told)
    assert len(llm.calls) == 1 and "what happens, not a picture" in llm.calls[0][0][-1]["content"]
    # a rewrite is told the reader, as the book's request is (the sample cat's ending came back in 54 words for a 6-year-old)
    assert f"For a {brief.age}-year-old reader: at most {st.words_per_page(brief.age)} words" in llm.calls[0][0][-1]["content"]
    assert out[1].text != pages[1].text
    own = [pages[0], PageDraft(text="Nora tries to climb the old tree. She slips down twice.", scene="s", outline="o")]
    assert write.distinct_pages(own, cast, brief, llm, write.DEFAULT_SAMPLING, about=told) == own


def test_two_outline_lines_alike_cost_no_new_answer_when_their_pages_are_written():
    """The sample cat's book: Qwen's first answer repeated an outline line and the whole book was asked again
    (20 s). Its pages are checked themselves; the line becomes its page's first sentence."""
    same = PLAN | {"outline": [PLAN["outline"][0], PLAN["outline"][0], *PLAN["outline"][2:]]}
    llm = ScriptedLLM(same)
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=1), llm)
    assert len([c for c in llm.calls if "title" in c[2]["properties"]]) == 1
    assert d.pages[1].outline == st.sentences(TEXTS[1])[0]
    # a line alike for a page a later turn writes would write that page again: the plan is asked again
    late = PLAN | {"outline": [*PLAN["outline"][:6], PLAN["outline"][0], PLAN["outline"][7]]}
    llm = ScriptedLLM(late)
    with pytest.raises(BackendError, match="two outline lines are the same"):  # the script never mends it
        write.write_story(None, Brief(pages=8, idea="a girl and her kite", seed=1), llm)
    assert len([c for c in llm.calls if "title" in c[2]["properties"]]) == write.BOOK_TRIES


def test_a_long_book_is_written_in_turns_that_continue_the_conversation():
    llm = ScriptedLLM()
    d = write.write_story(None, Brief(pages=8, age=6, idea="a girl and her kite", seed=1), llm)
    assert len(llm.calls) == 2 and len(d.pages) == 8
    assert llm.calls[0][2]["properties"]["outline"]["minItems"] == 8  # the whole outline, the first 6 pages
    assert llm.calls[0][2]["properties"]["pages"]["minItems"] == write.PAGES_PER_ANSWER
    second = llm.calls[1][0]
    assert second[:2] == llm.calls[0][0] and second[2]["role"] == "assistant"
    assert "Now write pages 7 to 8" in second[-1]["content"]
    assert [p.text for p in d.pages] == TEXTS


def test_nothing_to_write_about_is_bad_input():
    with pytest.raises(BadInputError, match="something to be about"):
        write.write_story(None, Brief(), ScriptedLLM())


def test_rewrite_page_follows_the_instruction_and_keeps_the_cast():
    llm = ScriptedLLM()
    pages = [Page(index=i + 1, text=t, scene=f"scene {i}") for i, t in enumerate(TEXTS[:3])]
    cast = [CastMember(name="Nora", look="a little girl, red hair and a yellow coat")]
    new = write.rewrite_page(pages, 2, "make it funnier", Brief(hero="Nora", seed=2), llm, cast=cast)
    assert isinstance(new, PageDraft) and "big red bird" in new.text and "red hair" in new.scene
    prompt = llm.calls[0][0][-1]["content"]
    assert "make it funnier" in prompt and "Nora: a little girl, red hair and a yellow coat" in prompt
    # the butterfly book's page 2 came back "Theo is the butterfly.": the request's line is no page
    butterfly = [CastMember(name="Theo", look="butterfly, green wings")]
    assert write.only_request_line("Theo is the butterfly.", butterfly[0])
    assert not write.only_request_line("Theo is the butterfly. He flies home.", butterfly[0])
    assert write.only_request_line("Butterfly. Theo is the butterfly.", butterfly[0])  # an outline line so

    class RequestLineFirst(ScriptedLLM):
        def chat(self, messages, sampling=None, schema=None):
            if len(self.calls) == 0 and "text" in schema["properties"]:
                self.calls.append((list(messages), sampling, schema))
                return json.dumps({"text": "Theo is the butterfly.", "scene": "Theo on a leaf"})
            return super().chat(messages, sampling, schema)

    again = RequestLineFirst()
    new = write.rewrite_page(pages, 2, "make it funnier", Brief(hero="Theo", seed=2), again, cast=butterfly)
    assert len(again.calls) == 2 and "big red bird" in new.text
    with pytest.raises(BadInputError, match="no page 9"):
        write.rewrite_page(pages, 9, "x", Brief(), llm)
    with pytest.raises(BadInputError, match="instruction"):
        write.rewrite_page(pages, 1, "  ", Brief(), llm)


def test_extend_continues_the_outline_without_repeating():
    llm = ScriptedLLM()
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=4), llm)
    book = Storybook(brief=Brief(pages=4, seed=4), title=d.title, cast=d.cast,
                     pages=[Page(index=i + 1, text=p.text, scene=p.scene, outline=p.outline)
                            for i, p in enumerate(d.pages)])
    more = write.extend_story(book, 2, llm)
    assert [p.text for p in more] == TEXTS[4:6] and [p.outline for p in more] == PLAN["outline"][4:6]
    prompt = llm.calls[-1][0][-1]["content"]
    assert "4. Nora and Otto fly the kite all day." in prompt and "nothing that already happened" in prompt
    with pytest.raises(BadInputError, match="cannot add 30 pages"):
        write.extend_story(book, 30, llm)
    repeating = ScriptedLLM(texts=TEXTS[:4])  # the extension answers with the first pages again
    with pytest.raises(BackendError, match="repeats"):
        write.extend_story(book, 2, repeating)


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


def test_labels_and_quoted_bad_outputs_are_cleaned_or_caught():
    assert st.strip_markup("Ben — a bear, <img src=") == "Ben — a bear"
    assert st.strip_markup("<p>Hi <b>there</b></p>") == "Hi there"
    assert st.strip_markup("The cat sleeps on the couch.}") == "The cat sleeps on the couch."
    assert st.strip_markup("Mina waves. ]} ") == "Mina waves."
    assert st.drop_labels("Page 2: Nora ran.") == "Nora ran." and st.drop_labels("3. Nora ran.") == "Nora ran."
    assert st.echoes_prompt("Tone: warm. Reader: 6") and not st.echoes_prompt("Nora ran home.")
    assert st.similar_page("Nora ran home to her mum.", ["nora ran home to her mum."])
    assert st.similar_page("Nora ran home.", ["Otto dug a hole in the sand."]) is None


class NoStructureLLM(ScriptedLLM):
    """Plans well but cannot give the structured pages: answers them with an echo of the outline."""

    def chat(self, messages, sampling=None, schema=None):
        if "pages" in schema["properties"]:
            self.calls.append((list(messages), sampling, schema))
            n = schema["properties"]["pages"]["minItems"]
            junk = {"pages": [{"text": "1. Nora and Otto - the story", "scene": "Nora: a girl"}] * n}
            return json.dumps((PLAN | {"outline": PLAN["outline"][:n]} | junk) if "title" in schema["properties"]
                              else junk)
        return super().chat(messages, sampling, schema)


def test_a_page_that_only_copies_the_caption_is_written_again_and_a_copied_caption_sentence_dropped():
    """HappyFish's book (captioned a computer mouse) printed page 1 as "A bright, warm light illuminates a computer
    mouse on a white and beige background. Suki."; a sentence of the caption beside a story is dropped."""
    texts = ["A tabby cat sitting on a wooden floor. Nora.", "Nora sat on the wooden floor and looked at the door.",
             "The wind pulled hard. Nora ran after a leaf.", TEXTS[3]]
    llm = ScriptedLLM(texts=texts)
    d = write.write_story(CAT, Brief(pages=4, hero="Nora", seed=3), llm)
    assert d.pages[0].text == "Nora laughed. The kite was a big red bird in the sky!"  # the scripted rewrite
    assert "what happens, not a picture" in llm.calls[-1][0][-1]["content"]
    assert d.pages[1].text == "Nora sat on the wooden floor and looked at the door."  # a story's own opening stays
    texts[0] = "A tabby cat sitting on a wooden floor. Nora jumped up and ran to the garden to play."
    d = write.write_story(CAT, Brief(pages=4, hero="Nora", seed=3), ScriptedLLM(texts=texts))
    assert d.pages[0].text == "Nora jumped up and ran to the garden to play."
    assert st.strip_markup("A computer mouse on a white and beige background.") == "A computer mouse."
    assert st.strip_markup("Mina sat against a dark background of trees.") == "Mina sat against a dark background of trees."


def test_a_rewrite_of_a_caption_page_that_copies_the_caption_again_loses_that_sentence():
    """The dragonfly photo's page 1 was the caption; asked again, it began with the caption again ("Lila glides
    through the dim light, its yellow wings…") and then told a story."""
    class CopyingRewrite(ScriptedLLM):
        def chat(self, messages, sampling=None, schema=None):
            if "text" in schema["properties"] and "pages" not in schema["properties"]:
                self.calls.append((list(messages), sampling, schema))
                return json.dumps({"text": "A tabby cat sitting on a wooden floor. Nora laughed and ran after the "
                                           "red kite in the sky.", "scene": "Nora running after a red kite"})
            return super().chat(messages, sampling, schema)

    texts = ["A tabby cat sitting on a wooden floor. Nora.", *TEXTS[1:4]]
    d = write.write_story(CAT, Brief(pages=4, hero="Nora", seed=3), CopyingRewrite(texts=texts))
    assert d.pages[0].text == "Nora laughed and ran after the red kite in the sky."


def test_a_page_with_a_glitch_word_is_written_again():
    """Qwen wrote a wallpaper's rabbit "sitting on her tı" (a Turkish dotless i; the French made it a braid)."""
    texts = [TEXTS[0], "Nora sat on her tı and looked at the rain outside.", *TEXTS[2:4]]
    llm = ScriptedLLM(texts=texts)
    d = write.write_story(CAT, Brief(pages=4, hero="Nora", seed=3), llm)
    assert d.pages[1].text == "Nora laughed. The kite was a big red bird in the sky!"  # the scripted rewrite
    assert "in plain English words" in llm.calls[-1][0][-1]["content"]
    assert st.glitch_words("Zoë ate a crêpe at the café with Łukasz.") == []  # names and loanwords keep accents


def test_a_page_written_as_an_outline_line_without_its_full_stop_is_a_sentence():
    """The coins book lost all three whole answers for pages like "Sami follows Theo to find the chick's family,
    who are waiting for her return" (no full stop): they end on a word, and get one."""
    texts = ["Nora had a yellow kite and she ran with it in the park", *TEXTS[1:4]]
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=5), ScriptedLLM(texts=texts))
    assert d.pages[0].text == "Nora had a yellow kite and she ran with it in the park."
    assert st.with_full_stop("1. Nora and Otto - the story", 60) == "1. Nora and Otto - the story"  # a label
    assert st.with_full_stop("Nora ran to the park and the", 6) == "Nora ran to the park and the"  # cut at the limit
    assert st.with_full_stop("Otto was flying his kite. He found a little lost chick and", 60).endswith("chick and")
    # cut mid-word (a turtle book's page copied its outline line, cut at the line's length): no sentence
    assert st.with_full_stop("One day, Ezra sees a choir. He feels excited and imag", 60).endswith("imag")
    assert st.with_full_stop("Theo helps Finn find the pear by playing hide-and-seek", 60).endswith("hide-and-seek.")
    # a Korean syllable glued on where the line was cut (the sample cat's book lost a whole answer for "not English")
    assert st.with_full_stop("Mina finds joy in helping Priya by bringing them a끼", 60) == \
        "Mina finds joy in helping Priya by bringing them."
    # and the outline line itself, cut at its length, goes back to its last whole sentence or word
    cut = "One day, Ezra sees a beautiful choir with lots of pretty voices. He feels excited and imag"
    assert write.whole_line(cut, len(cut)) == "One day, Ezra sees a beautiful choir with lots of pretty voices."
    assert write.whole_line("Sami follows Theo to find the chick's fam", 41) == "Sami follows Theo to find the chick's"
    assert write.whole_line("Nora flies her kite", 90) == "Nora flies her kite"


def test_pages_that_fail_every_try_are_one_plain_story_that_keeps_the_plan():
    llm = NoStructureLLM(texts=TEXTS[:4])
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=5), llm)
    assert " ".join(p.text for p in d.pages) == " ".join(TEXTS[:4])
    assert d.title == PLAN["title"] and d.cast[0].look == "a little girl, red hair and a yellow coat"
    # the story was asked about the idea, not told the plan's outline: its pages, not the outline, make the
    # pictures (the coins book's story of hungry birds had been drawn as the outline's lost chick)
    assert [p.outline for p in d.pages] == [st.sentences(t)[0] for t in TEXTS[:4]]
    assert d.pages[1].scene.startswith("Nora, a little girl, red hair and a yellow coat: The wind pulled hard")
    kinds = [tuple(c[2]["properties"]) for c in llm.calls]
    assert len(kinds) == write.BOOK_TRIES + 1 and kinds[-1] == ("story",)


class PlainLLM(ScriptedLLM):
    """A model that says it cannot follow plans (the 135M fast preset)."""

    writes_plans = False


def test_a_model_that_does_not_plan_is_asked_for_one_plain_story_only():
    llm = PlainLLM(texts=TEXTS[:4])
    d = write.write_story(CAT, Brief(pages=4, hero="Nora", seed=5), llm)
    assert [tuple(c[2]["properties"]) for c in llm.calls] == [("story",)]  # no plan asked for and thrown away
    assert d.cast[0].name == "Nora" and d.cast[0].look == "a little cat"  # the photo's subject
    assert "Nora, a little cat" in llm.calls[0][0][-1]["content"]
    assert " ".join(p.text for p in d.pages) == " ".join(TEXTS[:4])
    assert [p.outline for p in d.pages] == [st.sentences(t)[0] for t in TEXTS[:4]]
    assert d.notes and "plain story" in d.notes[0]


def test_a_page_that_speaks_of_the_hero_only_by_kind_gets_the_name_instead_of_a_new_answer():
    by_kind = ["In the park, a little girl with red hair flies her yellow kite.", TEXTS[1]]
    llm = ScriptedLLM(texts=by_kind)
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=1), llm)
    assert d.pages[0].text == "In the park, Nora the little girl with red hair flies her yellow kite."
    assert len(llm.calls) == 1
    hero = CastMember(name="Mina", look="tabby cat, grey fur")
    assert write.name_the_hero("The cat sat down.", hero) == "Mina the cat sat down."
    assert write.name_the_hero("She looked at the sky.", hero) == "She looked at the sky."  # asked again
    assert write.name_the_hero("A cathedral stood there.", hero) == "A cathedral stood there."
    # the kind's word as the first half of another noun is not the hero (the coffee book: "Otto the cup holder")
    cup = CastMember(name="Otto", look="cup, brown and yellow")
    assert write.name_the_hero("He took it out of the cup holder.", cup) == "He took it out of the cup holder."
    assert write.name_the_hero("The cup holder fell and the cup rolled.", cup) == \
        "The cup holder fell and Otto the cup rolled."
    assert write.name_the_hero("Milo saw the cup's red handle.", cup) == "Milo saw Otto the cup's red handle."
    # "of the" is no adjective: "the backseat of the bike" is no bike (the motorbike book: "on Lena the backseat")
    bike = CastMember(name="Lena", look="bike, red and shiny")
    assert write.name_the_hero("She puts them on the backseat of the bike.", bike) == \
        "She puts them on the backseat of Lena the bike."
    assert write.name_the_hero("The little red bike rolls.", bike) == "Lena the little red bike rolls."
    cast = [hero, CastMember(name="Theo", look="dog, black coat", role="friend")]
    assert write.named_in_scene("The cat looks at the dog in the garden", cast) == \
        "Mina the cat looks at Theo the dog in the garden"
    assert write.named_in_scene("Theo runs after a cat", cast) == "Theo runs after Mina the cat"
    # a friend of the hero's kind is not named over the hero's own name ("A photo of Mina Luna the cat")
    cats = [hero, CastMember(name="Luna", look="lunatic cat, purple fur", role="friend")]
    assert write.named_in_scene("A photo of Mina the cat in the sun", cats) == "A photo of Mina the cat in the sun"
    assert write.named_in_scene("cat sits quietly on the mat", cast) == "Mina the cat sits quietly on the mat"
    # a picture that names no one of the cast gets the hero: an illustrator drawing the scene would leave her out
    assert write._scene("A sunny beach with rocks and waves", cast) == "A sunny beach with rocks and waves, with Mina " \
        "the tabby cat"
    assert write._scene("Theo digs on the beach", cast) == "Theo digs on the beach"
    # a long page that names the hero only in a sentence past the page's length: cut first, then named by kind
    rambling = ("In the park, a little girl with red hair flies her yellow kite. The wind blew hard and the clouds "
                "raced over the hills. Ducks swam in circles on the pond while an old man fed them bread crumbs. "
                "A bus stopped at the gate and many children ran out laughing, shouting and waving their hats. "
                "Far away, the church bell rang twelve times for lunch. Nora smiled.")
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=1),
                          ScriptedLLM(texts=[rambling, TEXTS[1]]))
    assert d.pages[0].text.startswith("In the park, Nora the little girl") and "Nora smiled" not in d.pages[0].text


def test_an_object_in_the_photo_may_be_the_title_and_not_the_hero():
    """Asked to make a cup of coffee the hero, the model gave it an owner (a dog) three times: such a plan
    is about the photo when its title says so, and is not asked again."""
    coffee = Caption(text="a cup of coffee on a table", concepts=["espresso", "cup", "croissant"])
    plan = PLAN | {"title": "Nora's Cup of Coffee"}
    llm = ScriptedLLM(plan)
    d = write.write_story(coffee, Brief(pages=2, hero="Nora", seed=1), llm)
    assert d.title == "Nora's Cup of Coffee" and len(llm.calls) == 1 and not d.notes


def test_a_page_does_not_tell_another_pages_picture_description():
    """Qwen2.5-Coder-1.5B wrote page 3's scene into page 4's text (story_quality, brief 6, seed 0): those
    sentences go, the page's own sentences and a sentence like its own scene stay."""
    from taleloom.stages import story_text as st

    scenes = ["Rosa approaches Leo and says, 'Leo, let's go for a bike ride!'",
              "Rosa watches Leo struggle on the wall. She tries to help him by pushing him down with her hands",
              "Rosa and Leo ride towards the blue wall. They laugh and have a great time on the bike"]
    page4 = ("Leo jumped down at last. Rosa watched Leo struggle on the wall. She tries to help him by pushing "
             "him down with her hands. They both laughed and rode towards the blue wall together.")
    assert st.drop_copied_sentences(page4, scenes[:2]) == (
        "Leo jumped down at last. They both laughed and rode towards the blue wall together.")
    own = "Rosa and Leo ride towards the blue wall, laughing all the way."
    assert st.drop_copied_sentences(own, scenes[:2]) == own  # like its own scene (not a source): kept
    only_copy = "Rosa watched Leo struggle on the wall."
    assert st.drop_copied_sentences(only_copy, scenes) == only_copy  # nothing would be left: the checks decide


def test_a_planned_page_without_the_hero_is_written_again_with_the_hero():
    """Qwen left the hero off one page in 6 of 18 books (story_quality): that page alone is asked again, keeps
    its scene and outline, and every other page is as planned; the fast preset (no plans) is not asked."""
    texts = list(TEXTS)
    texts[2] = "Her dog Otto barked at the tree. A bird pulled the string down!"  # no Nora on page 3
    llm = ScriptedLLM(texts=texts)
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=4), llm)
    assert all("Nora" in p.text for p in d.pages)
    assert d.pages[2].text.startswith("Nora laughed") and d.pages[2].scene.endswith("picture 3")
    assert [p.text for i, p in enumerate(d.pages) if i != 2] == [texts[i] for i in (0, 1, 3)]
    asked = [c for c in llm.calls if "text" in c[2]["properties"] and "pages" not in c[2]["properties"]]
    assert len(asked) == 1 and "Nora named in the first one" in asked[0][0][-1]["content"]
    assert "Nora" in asked[0][2]["properties"]["text"]["pattern"]  # the answer must name her
    assert list(asked[0][2]["properties"]) == ["text"]  # and the page keeps its picture: no scene asked for
    assert "The page before:" in asked[0][0][-1]["content"]
    # the last page is told the plan's lines so far instead (Qwen copied the page before, both tries: the
    # dragonfly photo's book)
    texts = [*TEXTS[:3], "Otto and the bird flew the kite all day in the sunny park."]
    llm = ScriptedLLM(texts=texts)
    write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=4), llm)
    ask = next(c for c in llm.calls if list(c[2]["properties"]) == ["text"])[0][-1]["content"]
    assert f"The story so far: {PLAN['outline'][0]}" in ask and "The page before" not in ask
    plain = PlainLLM(texts=texts[:4])
    write.write_story(CAT, Brief(pages=4, hero="Nora", seed=5), plain)
    assert [tuple(c[2]["properties"]) for c in plain.calls] == [("story",)]  # the fast preset is not asked again


def test_a_page_that_speaks_of_the_hero_as_she_gets_the_name_without_a_new_answer():
    """Pages naming Nora call her 'she': a page with only 'She …' gets her name in place of the first such
    sentence's pronoun, and no rewrite is asked; a page that names another cast member is asked again (the
    pronoun may be theirs), as is one when the book's pronoun for the hero is unclear."""
    texts = list(TEXTS)
    texts[2] = "The wind grew strong. She held the string with both hands. A bird flew by."
    llm = ScriptedLLM(texts=texts)
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=4), llm)
    assert d.pages[2].text == "The wind grew strong. Nora held the string with both hands. A bird flew by."
    assert not [c for c in llm.calls if "text" in c[2]["properties"] and "pages" not in c[2]["properties"]]
    pages = ["Mina ran home. She was happy and her tail wagged.", "She sat down. He waved.", "Mina slept."]
    assert write.hero_pronoun(pages, "Mina") == "she"
    assert write.hero_pronoun(["Mina ran. He and she laughed."], "Mina") is None  # both in use: unsure
    assert write.name_by_pronoun('"Wow!" She jumped.', "Mina", "she", []) == '"Wow!" Mina jumped.'
    assert write.name_by_pronoun("Otto barked. She jumped.", "Mina", "she", ["Otto"]) == "Otto barked. She jumped."
    assert write.name_by_pronoun("He jumped.", "Mina", "she", []) == "He jumped."
    assert write.name_by_pronoun("The shell was hers.", "Mina", "she", []) == "The shell was hers."
    # a page the model began in lower case ("he saw a small bird…", a kite book's page 2) opens a sentence too
    texts[2] = "she held the string with both hands. A bird flew by."
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=4), ScriptedLLM(texts=texts))
    assert d.pages[2].text == "Nora held the string with both hands. A bird flew by."


def test_a_rewritten_page_does_not_copy_another_pages_sentence():
    """A hero rewrite told page 3's sentence again on page 4 (the demo book): the copy is dropped."""
    pages = [PageDraft(text=t, scene=f"picture {i}") for i, t in enumerate(TEXTS[:3], 1)]
    copied = "Nora's kite got stuck in a tall oak tree."  # page 2's own sentence

    class CopyingLLM(ScriptedLLM):
        def chat(self, messages, sampling=None, schema=None):
            self.calls.append((list(messages), sampling, schema))
            return json.dumps({"text": f"Nora smiled at the sky. {copied}", "scene": "Nora smiling at a kite"})

    llm = CopyingLLM()
    new = write.rewrite_page(pages, 3, "name Nora", Brief(pages=3, seed=1), llm,
                             cast=[CastMember(name="Nora", look="a girl")])
    assert new.text == "Nora smiled at the sky."

    class NamingByCopyLLM(ScriptedLLM):  # names the hero only in the sentence it copied, then properly
        def chat(self, messages, sampling=None, schema=None):
            self.calls.append((list(messages), sampling, schema))
            text = f"{copied} The sky was blue." if len(self.calls) == 1 else "Nora smiled at the blue sky."
            return json.dumps({"text": text, "scene": "a girl under a blue sky"})

    llm = NamingByCopyLLM()
    new = write.rewrite_page(pages, 3, "name Nora", Brief(pages=3, seed=1), llm,
                             cast=[CastMember(name="Nora", look="a girl")], must_name="Nora")
    assert new.text == "Nora smiled at the blue sky." and len(llm.calls) == 2


def test_a_cast_name_in_capitals_is_printed_as_the_cast_sheet_spells_it():
    """Qwen wrote "BEN runs down the beach" / "TOM says" (story_quality, brief 1 seed 2): the book prints the
    cast's spelling, in the text and the scene; other capitals stay."""
    texts = list(TEXTS)
    texts[1] = "NORA ran after the kite. The wind said WHOOSH and OTTO barked."
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=4), ScriptedLLM(texts=texts))
    assert d.pages[1].text == "Nora ran after the kite. The wind said WHOOSH and Otto barked."
    assert st.cast_spelling("nora and NORA's dog", ["Nora"]) == "Nora and Nora's dog"
    assert st.cast_spelling("Noraline came", ["Nora"]) == "Noraline came"  # whole names only
    # no article before a name ("The Theo sat on the armchair" on every page of a Qwen book; French "Le Theo")
    assert st.cast_spelling("The Theo sat down. She saw the Theo's bed.", ["Theo"]) == "Theo sat down. She saw Theo's bed."
    assert st.cast_spelling("The Theo Room", ["Theo"]) == "The Theo Room"
    assert st.cast_spelling("Theo, Theo, Theo, sleeping beside Mina.", ["Theo"]) == "Theo, sleeping beside Mina."
    assert st.cast_spelling("the ivy grew", ["Ivy"]) == "the Ivy grew"  # a name written as a word is not the hero's
    # a slip of the pen: skimage's motorcycle book wrote its friend Priya as "Ppriya" on every page, and the cast
    # sheet lost her; another name one letter away, or a word, is not a slip
    assert st.cast_spelling("Ppriya hugs Lila. Thoe ran. Mian sat.", ["Lila", "Priya", "Theo", "Mina"]) == \
        "Priya hugs Lila. Theo ran. Mina sat."
    assert st.cast_spelling("Then Nina came. Otto and Oto.", ["Theo", "Mina", "Otto"]) == "Then Nina came. Otto and Otto."
    assert st.cast_spelling("Théo is safe. Zoë waves.", ["Theo", "Zoe", "Léa"]) == "Theo is safe. Zoe waves."


def test_the_models_notes_about_its_own_writing_never_reach_the_page():
    """A Qwen book's last page read "The end. (Note: This story has been modified slightly from the original
    request to ensure it is appropriate for 9-year-olds.) If y..." (story_quality, brief 7 seed 1)."""
    note = ("Nora waved goodbye to Otto and took her yellow kite home. The end. (Note: This story has been modified slightly from the original request "
            "to ensure it is appropriate for 9-year-olds.) If you would like any changes, let me know!")
    texts = list(TEXTS)
    texts[3] = note
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=4), ScriptedLLM(texts=texts))
    assert d.pages[3].text == "Nora waved goodbye to Otto and took her yellow kite home."
    assert st.drop_asides('Nora said: "Let me know when you are home!" Then she left.') == \
        'Nora said: "Let me know when you are home!" Then she left.'  # a character's words stay
    assert st.drop_asides("I hope you enjoyed it. The endless sea was blue.") == "The endless sea was blue."
    assert st.drop_asides("The end of the day came. Nora slept.") == "The end of the day came. Nora slept."
    # the plan's parts named as labels (a wallpaper's book: "There's a small problem: Theo wants to play outside")
    assert st.drop_asides("Theo yawns. There's a small problem: Theo wants to play.") == "Theo yawns. Theo wants to play."
    assert st.drop_asides("Nora had a small problem: her kite was stuck.") == "Nora had a small problem: her kite was stuck."
    assert st.drop_asides("The happy ending is that Lena is happy and Theo is happy too.") == \
        "Lena is happy and Theo is happy too."  # the cameraman book's last page
    assert st.drop_asides("Nora wanted a happy ending for the lamb.") == "Nora wanted a happy ending for the lamb."
    # a picture's description as a stage direction (a cat book told its small problem, story_quality, stop 28)
    assert st.drop_asides("The cat Mina sits on a wooden floor. (Mina) sitting in the corner, looking around.") == \
        "The cat Mina sits on a wooden floor."
    assert st.drop_asides("They play. (Mina and Sora) playing in the park, laughing.") == "They play."
    assert st.drop_asides("Mina (the cat) ran home.") == "Mina (the cat) ran home."


def test_two_pages_with_one_scene_are_kept_and_the_later_shows_its_own_text():
    """Qwen gave two pages the same scene in the README's own book (seed 0): the whole book was asked again, a
    second answer as long as the first (book_latency: 2 calls, 692 tokens). Now the later page's picture is
    drawn from its text, and the book costs one answer."""
    class SameScenes(ScriptedLLM):
        def chat(self, messages, sampling=None, schema=None):
            answer = json.loads(super().chat(messages, sampling, schema))
            if "title" in schema["properties"]:
                answer["pages"][2]["scene"] = answer["pages"][1]["scene"]
            return json.dumps(answer)

    llm = SameScenes()
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=4), llm)
    assert len([c for c in llm.calls if "title" in c[2]["properties"]]) == 1
    assert d.pages[2].scene != d.pages[1].scene and "bird pulled the string" in d.pages[2].scene


def test_a_sentence_told_twice_is_printed_once():
    """The demo book (cat photo, Mina, 13:05): page 4 read "Theo fetches the coffee from the fridge. Theo comes
    over and fetches the coffee from the fridge.", the second sentence page 2's own."""
    texts = list(TEXTS)
    texts[1] = "Nora skips to the pond with her kite. Otto comes over and fetches the ball from the pond."
    texts[3] = ("Nora fetches the ball from the pond. Otto comes over and fetches the ball from the pond. "
                "Nora laughs and flies her kite.")
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=4), ScriptedLLM(texts=texts))
    assert d.pages[3].text == "Nora fetches the ball from the pond. Nora laughs and flies her kite."
    assert d.pages[1].text == texts[1]


def test_a_thing_from_the_photo_is_told_to_come_alive_and_an_animal_is_not():
    """Told only "Lila is the building from the photo", Qwen gave the building "soft fur, light brown hair" and sat
    it on a chair; the motorbike book made its hero a girl walking to a motorbike while every picture drew a bike."""
    for concepts, alive in ((["bicycle", "wall"], True), (["cup of coffee"], True), (["cat"], False),
                            (["dragon"], False)):  # a word the label table does not hold: told nothing more
        llm = ScriptedLLM()
        write.write_story(Caption(text="a photo", concepts=concepts), Brief(pages=2, hero="Nora", seed=1), llm)
        prompt = llm.calls[0][0][-1]["content"]
        line = f"Nora is the {concepts[0]} from the photo"
        assert (line + f", come to life: a {concepts[0]} that can move, talk and feel. Nora is not a person or an "
                "animal." in prompt) is alive, prompt
        assert line in prompt


def test_a_page_nearly_whole_inside_another_repeats_it():
    """An abstract wallpaper's book: page 4 was page 3's two sentences and one more."""
    p3 = "Suddenly, the lights turned off. Theo curled up on the bed, feeling content."
    assert st.similar_page(p3 + " The room glowed pink and red.", [p3]) == p3
    assert st.similar_page("Theo ran to the park to play.", ["Theo ran home to sleep in his bed."]) is None


def test_a_page_told_again_in_another_tense_repeats_it():
    """The squirrel book: page 4 was page 3 in the past tense, and one more sentence."""
    p3 = "As Theo leaves, Milo realizes that he has collected too many nuts and needs help."
    p4 = ("As Theo left, Milo realized that he had collected too many nuts and needed help. Theo dug for a hole "
          "in the ground and finally found a spot to bury his nuts.")
    assert st.similar_page(p4, [p3]) == p3
    assert [st.stem(w) for w in ("watches", "watched", "watching", "stopped", "babies", "hoped", "hoping")] == \
        ["watch", "watch", "watch", "stop", "baby", "hop", "hop"]
    assert st.similar_page("Milo collected nuts all morning.", [p3]) is None  # one shared event, not the page
    # the duck book: irregular verbs in the past tense are the same words as in the present
    duck = "Tom gives Pip a piece of bread. Pip eats it with his mouth full."
    assert st.similar_page("Tom gave Pip a piece of bread. Pip ate it with his mouth full.", [duck]) == duck
    assert st.similar_page("Pip swam home and slept under the moon.", [duck]) is None


def test_a_photo_of_a_person_makes_the_hero_a_child_and_a_girl_or_boy_is_from_the_photo():
    """Told "Lila is the person from the photo", Qwen wrote "Lila the person in a grey and black outfit", and its
    plans that made her a woman or a girl were refused as not from the photo, down to a plain story."""
    person = Caption(text="A person in a grey coat stands in a soft light.", concepts=["person"])
    assert write.main_subject(person) == "child"
    assert write.main_subject(Caption(text="two people", concepts=["people"])) == "child"
    assert write.main_subject(CAT) == "cat"
    # a person or an animal before a thing: OpenCV's footballer photo made the football the hero and its boy no one
    assert write.main_subject(Caption(text="x", concepts=["football", "person"])) == "child"
    assert write.main_subject(Caption(text="x", concepts=["tripod", "dog"])) == "dog"
    assert write.main_subject(Caption(text="x", concepts=["cup of coffee", "croissant"])) == "cup of coffee"
    llm = ScriptedLLM(PLAN)  # its hero is "a little girl with a kite"
    d = write.write_story(person, Brief(pages=2, hero="Nora", seed=1), llm)
    assert "Nora is the child from the photo." in llm.calls[0][0][-1]["content"]
    assert len(llm.calls) == 1 and not d.notes and d.cast[0].look.startswith("a little girl")


def test_a_photo_that_names_nothing_takes_any_hero():
    """OpenCV's rubber whale photo named nothing: its book was about "A place all in beige and orange, in soft,
    warm light.", and two whole answers (90 s of 155) were refused for an "animal" and a "person" hero "not from
    the photo". Colours and light are no hero's kind."""
    toys = Caption(text="A photo in beige and orange tones, in soft, warm light.", concepts=[],
                   facts={"colours": [{"name": "beige"}, {"name": "orange"}], "light": "soft, warm light"})
    llm = ScriptedLLM(PLAN)  # its hero is "a little girl with a kite"
    d = write.write_story(toys, Brief(pages=2, hero="Nora", seed=1), llm)
    assert "A place all in beige and orange" in llm.calls[0][0][-1]["content"]
    assert len(llm.calls) == 1 and not d.notes and d.cast[0].look.startswith("a little girl")
    # told a kind of hero drawn by the seed (an autumn wallpaper's hero was "animal, brown fur, brown hat"), not
    # held to it: a plan refused costs a whole answer
    kind = write.nameless_kind("A place all in beige and orange.", Brief(pages=2, hero="Nora", seed=1), "Nora", None)
    assert kind in write.NAMELESS_HEROES and f"Nora is a little {kind}." in llm.calls[0][0][-1]["content"]
    assert {write.nameless_kind("A place all in red.", Brief(seed=s), "Nora", None) for s in range(80)} == set(
        write.NAMELESS_HEROES)  # each is drawn
    assert write.nameless_kind("A cat on a sofa.", Brief(seed=1), "Nora", None) is None  # the photo names one
    assert write.nameless_kind("A place all in red.", Brief(seed=1, idea="a kite"), "Nora", None) is None
    for s in range(40):  # never the plot's own animal ("meets a penguin who is sad")
        b = Brief(seed=s)
        assert write.nameless_kind("A place all in red.", b, "Nora", None) not in write.plot_of(b, "Nora").split()


def test_a_landscape_is_where_the_story_happens_never_its_hero():
    """The lake-at-dusk photo ("the water's edge"): told "Theo is the shore from the photo, come to life", Qwen's
    three plans were refused and the plain story made Theo a "shore animal" that swam to save a fish."""
    lake = Caption(text="The water's edge at dusk.", concepts=["shore"])
    assert write.main_subject(lake) is None and write.photo_setting(lake) == "the water's edge"
    llm = ScriptedLLM(PLAN)  # its hero is "a little girl with a kite": a child visiting, as asked
    d = write.write_story(lake, Brief(pages=2, hero="Nora", seed=1), llm)
    prompt = llm.calls[0][0][-1]["content"]
    assert "Nora is a child who visits the water's edge from the photo." in prompt and "come to life" not in prompt
    assert len(llm.calls) == 1 and not d.notes and d.cast[0].look.startswith("a little girl")
    boats = Caption(text="Boats by a mountain lake.", concepts=["mountain", "boat"])
    assert write.main_subject(boats) == "boat" and write.photo_setting(boats) == "a mountain"
    llm = ScriptedLLM()
    write.write_story(boats, Brief(pages=2, hero="Nora", seed=1), llm)
    prompt = llm.calls[0][0][-1]["content"]
    assert "Nora is the boat from the photo, come to life" in prompt
    assert "The story happens at a mountain from the photo." in prompt


def test_a_page_that_opens_with_they_for_the_hero_and_friend_names_them():
    """The turtle book's last page, "They play in the pond together", lacked Otto after two hero rewrites."""
    before = "Theo watches as Otto jumps into the pond."
    assert write.name_by_they("They play in the pond together.", "Otto", "Theo", before) == \
        "Otto and Theo play in the pond together."
    assert write.name_by_they("The sun set. They went home, Theo first.", "Otto", "Theo") == \
        "The sun set. Otto and Theo went home, Theo first."
    # who "they" are is unknown: the page before does not name both, or they're is no sentence's subject
    assert write.name_by_they("They play.", "Otto", "Theo", "Otto swims.") == "They play."
    assert write.name_by_they("They're happy, Theo says.", "Otto", "Theo") == "They're happy, Theo says."
    assert write.name_by_they("They play.", "Otto", None, before) == "They play."
    texts = list(TEXTS)
    texts[3] = "They flew the kite all day. Everyone laughed in the sunny park."  # page 3 names Nora and Otto
    llm = ScriptedLLM(texts=texts)
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=4), llm)
    assert d.pages[3].text == "Nora and Otto flew the kite all day. Everyone laughed in the sunny park."
    assert not [c for c in llm.calls if "text" in c[2]["properties"] and "pages" not in c[2]["properties"]]


def test_a_page_opening_with_the_heros_pronoun_after_a_page_that_ends_on_the_hero_names_the_hero():
    """A kite book's page 2, "He saw a small bird perched on a tree branch. It was a bluebird named Theo.", after
    "… Otto was flying his kite.", lacked Otto: the page names Theo, so "he" was left for a rewrite that failed."""
    kite = "Once upon a time, in the park, Otto was flying his kite."
    page = "He saw a small bird perched on a tree branch. It was a bluebird named Theo."
    assert write.name_by_pronoun(page, "Otto", "he", ["Theo"], kite) == \
        "Otto saw a small bird perched on a tree branch. It was a bluebird named Theo."
    # "he" may be Theo: the page before names Theo too, or the first sentence does, or he opens no sentence first
    assert write.name_by_pronoun(page, "Otto", "he", ["Theo"], "Otto met Theo.") == page
    assert write.name_by_pronoun("He saw Theo.", "Otto", "he", ["Theo"], kite) == "He saw Theo."
    assert write.name_by_pronoun("Theo came. He saw a bird.", "Otto", "he", ["Theo"], kite) == \
        "Theo came. He saw a bird."


def test_a_friend_described_as_the_hero_is_only_its_kind_and_a_named_kind_is_no_other_cast_member():
    """A beach book's friend Theo had the hero Otto's look word for word ("brown dog, brown and fluffy fur, long
    white hair, tan skin with brown spots, and a yellow sweater"), and its scene became "Theo the brown dog named
    Otto running along a sandy beach"."""
    hero = "dog, brown and fluffy fur, long white hair, tan skin with brown spots, and a yellow sweater"
    assert write._own_look("brown " + hero, hero) == "brown dog"
    assert write._own_look("penguin, blue feathers, pink beak", hero) == "penguin, blue feathers, pink beak"
    cast = [CastMember(name="Otto", look=hero, role="hero"), CastMember(name="Theo", look="brown dog", role="friend")]
    assert write.named_in_scene("The brown dog named Otto runs along the beach", cast) == \
        "The brown dog named Otto runs along the beach"


def test_a_page_written_as_a_plays_lines_is_told_as_speech():
    """The apple book's four pages were a play's lines ("Priya: Hi, Lila! I'm here to help you. What's wrong?"),
    printed with the speakers' labels."""
    names = ["Lila", "Priya"]
    assert st.said_aloud("Priya: Hi, Lila! I'm here to help you. What's wrong?", names) == \
        'Priya says, "Hi, Lila! I\'m here to help you. What\'s wrong?"'
    assert st.said_aloud("Lila: We found them! Priya: Yes!", names) == 'Lila says, "We found them!" Priya says, "Yes!"'
    assert st.said_aloud("Lila smiled. Priya: Let us go.", names) == 'Lila smiled. Priya says, "Let us go."'
    for kept in ("The sign said: Lila: keep out", "Lila smiled at Priya: she was home."):
        assert st.said_aloud(kept, names) == kept
    texts = [TEXTS[0], "Otto: Woof! Nora, the kite is up there!"]
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=1), ScriptedLLM(texts=texts))
    assert d.pages[1].text.startswith('Otto says, "Woof!')


def test_a_last_page_that_leaves_the_hero_in_trouble_is_written_again_happily():
    """A rocket photo's book ended "The waves become stronger, making it harder for Ivy to swim back home."; on the
    stored story_quality books the check flags 26 of 422 last pages, nearly all such endings."""
    assert st.unhappy_ending("The waves become stronger, making it harder for Ivy to swim back home.")
    assert st.unhappy_ending("She felt scared and alone. Ella the owl was missing.")
    assert not st.unhappy_ending("Ivy was scared, but Milo pulled her out and they laughed on the sand.")
    assert not st.unhappy_ending(TEXTS[3])
    assert not st.unhappy_ending("Otto took the lost chick home.")  # home reached
    # the rocket book's happy page came back ending with our prompt's words: that sentence goes, not the page
    echo = "Nora and Otto find the kite and laugh all the way home. The cast sheet: Nora: a little girl, red hair."
    assert st.drop_labels(echo) == "Nora and Otto find the kite and laugh all the way home."
    texts = [*TEXTS[:3], "The wind grew stronger and Nora could not find her kite. She felt sad and alone."]
    llm = ScriptedLLM(texts=texts)
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=4), llm)
    ask = llm.calls[-1][0][-1]["content"]
    assert "until the story ends happily for Nora" in ask and d.pages[3].text == "Nora laughed. The kite was a big red bird in the sky!"
    # told the plan's lines so far, not the page before (which Qwen wrote again as the last page: both tries lost)
    assert f"The story so far: {PLAN['outline'][0]}" in ask and "The page before" not in ask

    class RetellsFirst(ScriptedLLM):  # the dragonfly book: the plan's lines again, then our request's words
        def chat(self, messages, sampling=None, schema=None):
            if "text" in schema["properties"] and not any("Nora flies" in c[0][-1]["content"] for c in self.calls[1:]):
                self.calls.append((list(messages), sampling, schema))
                return json.dumps({"text": "Nora flies her kite in the park. The wind takes the kite into a tree. "
                                           "The problem is solved. Nora is glad."})
            return super().chat(messages, sampling, schema)

    llm = RetellsFirst(texts=texts)
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=4), llm)
    assert len(llm.calls) == 3 and d.pages[3].text == "Nora laughed. The kite was a big red bird in the sky!"
    assert st.drop_labels("They meet at the park. The problem is solved. Nora laughs.") == "They meet at the park. Nora laughs."
    # the request's line as a page (OpenCV's home photo's page 1), and a story told about ("The story ends with…")
    home = CastMember(name="Finn", look="building, grey", role="hero")
    assert write.only_request_line("Finn is the building, come to life.", home, "building")
    assert not write.only_request_line("Finn is the building and he is happy.", home, "building")
    assert st.drop_labels("Finn gets the pear. The story ends with Finn eating the pear.") == "Finn gets the pear."
    assert st.drop_labels("The old house came to life one night. Finn smiled.") == \
        "The old house came to life one night. Finn smiled."
    # a picture's mood told as the photo's description: the clause goes, or the sentence that is only that
    assert st.drop_labels("The sun was shining outside the window, creating a warm and inviting atmosphere. Otto "
                          "smiled.") == "The sun was shining outside the window. Otto smiled."
    assert st.drop_labels("Tala begins to move. It is a bright colour combination that creates a vibrant "
                          "atmosphere.") == "Tala begins to move."
    assert st.drop_labels("The rocket flew up through the atmosphere.") == "The rocket flew up through the atmosphere."
    # the come-alive request's words as a sentence of a page (the footballer photo's book)
    assert st.drop_labels("Sami's football can move, talk and feel. Sami put the chick in its pocket.") == \
        "Sami put the chick in its pocket."
    # the plan's label for the problem, said as a page's sentence (a robot idea's last page)
    assert st.drop_labels("Milo can sleep. The small problem is that he is scared of the dark.") == \
        "Milo can sleep. He is scared of the dark."
    # the plan's roles by name (told that every outline line names the hero, Qwen wrote "The hero and friend meet…")
    assert st.cast_spelling("The hero and his friend meet. The friend laughs. Nora was the hero of the day.",
                            ["Nora", "Otto"]) == "Nora and Otto meet. Otto laughs. Nora was the hero of the day."
    llm = ScriptedLLM()  # a happy last page: no call more
    write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=4), llm)
    assert len(llm.calls) == 1
    # a last page that stops without an end (OpenCV's smarties book) is written again too; one that closes is not
    assert st.open_ending("But when Tom looks closely into the room, he can see Oscar the owl sitting on the door.")
    assert not st.open_ending("From that day on, Tom visited Oscar every morning.")
    assert not st.open_ending("Tom and Oscar waved goodbye.") and not st.open_ending(TEXTS[3])
    # a last sentence that leaves the question open, whatever happy words it has (an idea's turtle book)
    assert st.open_ending("But he was still unsure of what lay ahead. He felt a mix of excitement and fear, as he "
                          "looked at the vast distance ahead.")
    assert not st.open_ending("Suki wondered what the top was like. Then he climbed it and laughed with joy.")
    llm = ScriptedLLM(texts=[*TEXTS[:3], "Nora saw a bird on the oak tree next to her kite."])
    d = write.write_story(None, Brief(pages=4, idea="a girl and her kite", seed=4), llm)
    assert "ends happily for Nora" in llm.calls[-1][0][-1]["content"] and "laughed" in d.pages[3].text


def test_asides_that_recite_a_look_from_the_cast_sheet_leave_the_page():
    """The dragonfly photo's page 1 was one sentence of 57 words, two looks recited in it; a short aside that tells
    no look, and a sentence's last part (where its verb is), stay."""
    looks = ["dog, brown with white spots and a black collar, carrying a small basket full of pizza dough",
             "girl, blonde hair with green eyes, wearing a red dress, carrying a cake and a vase"]
    page = ("It was dark outside, but inside the cozy place, Milo, a brown dog with white spots and a black collar, "
            "carrying a small basket full of pizza dough, was waiting for his friends while Nora, a girl with blonde "
            "hair and green eyes wearing a red dress, carried a cake and a vase.")
    assert st.without_look_asides(page, looks) == ("It was dark outside, but inside the cozy place, Milo was waiting "
                                                   "for his friends while Nora carried a cake and a vase.")
    # the list's short items beside a recital go with it (stop 26's turtle book)
    turtle = ["turtle, green, shell with a yellow head and brown feet, carrying a shell on its back"]
    assert st.without_look_asides("As Otto, the turtle, green, shell with a yellow head and brown feet, carrying a "
                                  "shell on its back, cautiously walked home.", turtle) == "As Otto cautiously walked home."
    kept = "Mina, the brown cat, ran home. Then, with a smile, she slept, happy and warm."
    assert st.without_look_asides(kept, ["cat, brown and beige"]) == kept
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=1), ScriptedLLM(
        texts=["Nora, a little girl with red hair and a yellow coat, had a kite. She ran in the park.", TEXTS[1]]))
    assert d.pages[0].text == "Nora had a kite. She ran in the park."


def test_two_sentences_joined_by_a_comma_and_a_conjunction_are_told_as_two():
    """Qwen's long sentences (story_quality: Flesch-Kincaid grade 5 for 4–6-year-olds) split where the second
    half has its own subject; a list of names or a clause too short to stand alone stays as written."""
    names = ["Mina", "Theo", "Otto"]
    assert st.short_sentences("Mina looks confused, but Theo continues to look at her.", names) == \
        "Mina looks confused. But Theo continues to look at her."
    assert st.short_sentences("He had a big kite in his hands, and he was ready to fly it.", names) == \
        "He had a big kite in his hands. He was ready to fly it."
    assert st.short_sentences("It was big, and it was red, and it's fun.", names) == "It was big. It was red. It's fun."
    assert st.short_sentences("Ben smiles at Mina, then they play.", names) == "Ben smiles at Mina. Then they play."
    assert st.short_sentences("Theo looked around his house, but there was no one, and suddenly he ran.", names) == \
        "Theo looked around his house. But there was no one. Suddenly he ran."
    # what someone says stays whole (a later check that drops a copied sentence left half a quote behind)
    assert st.short_sentences("Otto says, 'I'm a coffee machine, and I can make coffee.' Mina ran to the door, and "
                              "she waved.", names) == \
        "Otto says, 'I'm a coffee machine, and I can make coffee.' Mina ran to the door. She waved."
    # the espresso book's page 2: four clauses joined by semicolons, 44 words
    assert st.short_sentences("Theo began drinking his coffee; suddenly, a small chick jumps out; Theo is surprised "
                              "by it.", names) == "Theo began drinking his coffee. Suddenly, a small chick jumps out. " \
                                                  "Theo is surprised by it."
    for kept in ("Mina, Theo, and Otto went home.", "Mina saw Theo, Luna, and Otto by the pond.",
                 "Yes, and she ran.", "Mina ate apples, and pears from the tree.", "She packed apples; pears; plums.",
                 "'I like it; you like it too,' said Mina."):
        assert st.short_sentences(kept, names) == kept
    joined = [*TEXTS[:2], "Her dog Otto barked at the tree, and Nora climbed up to the kite at last!", *TEXTS[3:]]
    draft = write.write_story(CAT, Brief(pages=3, hero="Nora", seed=1), ScriptedLLM(PLAN, texts=joined))
    assert draft.pages[2].text == "Her dog Otto barked at the tree. Nora climbed up to the kite at last!"


def test_a_book_without_an_idea_is_told_its_small_problem_drawn_by_the_seed():
    """Told only "a beginning, a small problem and a happy ending", Qwen wrote pages where nothing happens
    ("Mina sits on the floor. Theo comes to the floor. Mina watches Theo."): the plan is told one of the
    classic problems (write.PLOTS), the same for the same seed; a brief's idea is the story instead."""
    llm = ScriptedLLM()
    write.write_story(CAT, Brief(pages=2, hero="Nora", seed=1), llm)
    plot = write.plot_of(Brief(pages=2, hero="Nora", seed=1), "Nora")
    assert plot and plot in [shape.format(hero="Nora", thing=t) for shape, things in write.PLOTS for t in things]
    assert f"(a beginning, the small problem: {plot}, a happy ending)" in llm.calls[0][0][-1]["content"]
    assert plot == write.plot_of(Brief(pages=2, hero="Nora", seed=1), "Nora")
    shapes = {write.plot_of(Brief(pages=2, seed=s), "Nora").split(" ")[1] for s in range(60)}
    assert len(shapes) == len({shape.split(" ")[1] for shape, _ in write.PLOTS})  # every shape is drawn
    # the plot's thing is told to the translator like the cast's kinds (a lost chick said once was German "Kuh")
    cast = [CastMember(name="Nora", look="a little fox, red fur", role="hero")]
    kinds = write.told_kinds(cast, Brief(pages=2, hero="Nora", seed=1))
    assert kinds[0] == "fox" and len(kinds) == 2 and kinds[1] in plot.split()
    assert write.told_kinds(cast, Brief(pages=2, idea="a girl and her kite", seed=1)) == ["fox"]
    idea = ScriptedLLM()
    write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=1), idea)
    assert write.plot_of(Brief(pages=2, idea="a girl and her kite", seed=1), "Nora") is None
    assert "(a beginning, a small problem, a happy ending)" in idea.calls[0][0][-1]["content"]


def test_a_page_with_a_sentence_too_long_for_a_young_reader_is_written_again_in_short_sentences():
    """The owl book's page 2 had a 45-word sentence ("It sounded like a small bird was calling for help from the
    distance as it landed on the ground with its wings flapping in distress …"): written again alone."""
    long = ("Nora heard a small bird calling for help from far away as it landed on the ground with its wings "
            "flapping in distress and its eyes wide open in panic and pain, so she looked up at the tall oak tree.")
    assert len(st.words(long)) > write.LONG_SENTENCE
    llm = ScriptedLLM(texts=[TEXTS[0], long])
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=1), llm)
    rewrite = llm.calls[1][0][-1]["content"]
    assert f"in short sentences of at most {write.SHORT_SENTENCE} words" in rewrite
    assert "big red bird" in d.pages[1].text  # the scripted rewrite
    llm = ScriptedLLM()  # sentences of ordinary length: one answer, no rewrite
    write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=1), llm)
    assert len(llm.calls) == 1


def test_a_rewrite_asked_for_short_sentences_that_is_long_again_is_asked_again():
    """Asked for sentences of at most 12 words, Qwen wrote the rubber whale book's page 1 again as one sentence
    of 35 ("The whole room is bathed in a warm and inviting beige and orange light, creating an atmosphere…")."""
    long = ("Nora heard a small bird calling for help from far away as it landed on the ground with its wings "
            "flapping in distress and its eyes wide open in panic and pain, so she looked up at the tall oak tree.")

    class LongAgain(ScriptedLLM):
        def chat(self, messages, sampling=None, schema=None):
            if "title" not in schema["properties"] and "text" in schema["properties"] and len(self.calls) == 1:
                self.calls.append((list(messages), sampling, schema))
                return json.dumps({"text": long.replace("Nora heard", "Nora then heard")})
            return super().chat(messages, sampling, schema)

    llm = LongAgain(texts=[TEXTS[0], long])
    d = write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=1), llm)
    assert len(llm.calls) == 3 and "big red bird" in d.pages[1].text  # the long rewrite refused, then the short


def test_a_rewrites_opening_sentences_that_only_retell_the_story_so_far_are_dropped():
    """The bird book's last page began with pages 1 and 2 glued into one sentence, then what happened next."""
    from taleloom.stages.story_text import without_recap

    earlier = ["In the warm sunlight, Lila perched on a branch, her grey feathers shimmering.",
               "Priya finds Lila sad and cheers her up with an ice cream cone."]
    recap = ("Lila perches on a branch in the sunlight, and Priya finds Lila sad. Priya takes Lila to the zoo, "
             "where Lila meets a new bird named Max.")
    assert without_recap(recap, earlier) == "Priya takes Lila to the zoo, where Lila meets a new bird named Max."
    new = "Lila and Priya share the ice cream together on the branch. They laugh all afternoon."
    assert without_recap(new, earlier) == new  # names and a thing said before, and new doings: a page
    assert without_recap("Lila perches on a branch in the sunlight.", earlier) == \
        "Lila perches on a branch in the sunlight."  # nothing would be left: the page's other checks decide


def test_names_in_brackets_or_said_twice_are_said_once_and_a_page_finishing_a_cut_picture_loses_that_fragment():
    """The ladybird book's answer: "The hero (Milo) … his friend (Ava)", then page 2 opening with the end of page
    1's picture, cut at "lots of cheese and"."""
    from taleloom.stages.story_text import cast_spelling, without_carried_start

    assert cast_spelling("The hero (Milo) makes a pizza for his friend (Ava). Milo (Milo) waits. Milo Milo runs.",
                         ["Milo", "Ava"]) == "Milo makes a pizza for his friend Ava. Milo waits. Milo runs."
    cut = ["Milo makes a pizza for Ava.", "Milo has just made a pizza with lots of cheese and"]
    assert without_carried_start("sausage on it. He looks very happy as he takes a bite.", cut) == \
        "He looks very happy as he takes a bite."
    whole = ["Milo makes a pizza for Ava.", "Milo at the table with a pizza."]
    assert without_carried_start("he takes a bite and smiles at Ava.", whole) == "he takes a bite and smiles at Ava."


def test_an_ideas_animal_is_the_hero_not_the_friend():
    """"A shy hippo who wants to learn to swim" came back with a girl as the hero and the hippo as her friend,
    which the title ("The Hippo and the Swimsuit") let through: that plan is asked again."""
    girl_and_hippo = PLAN | {"title": "The Hippo and the Kite",
                             "friend": {"name": "Otto", "kind": "a hippo", "look": "grey skin and a blue hat"}}
    llm = ScriptedLLM(girl_and_hippo)
    write.write_story(None, Brief(pages=2, idea="a shy hippo who wants to learn to swim", seed=1), llm)
    books = [c for c in llm.calls if "title" in c[2]["properties"]]
    assert len(books) == write.PLAN_RELEVANCE_TRIES + 1  # refused while the tries insist, then taken
    llm = ScriptedLLM(girl_and_hippo)
    write.write_story(None, Brief(pages=2, idea="a girl and her kite", seed=1), llm)  # no animal in the idea
    assert len([c for c in llm.calls if "title" in c[2]["properties"]]) == 1


def test_a_sentence_that_copies_a_clause_of_an_earlier_page_is_dropped():
    """A sea wallpaper's page 3 ended "…, and Hana felt so happy that she couldn't stop smiling." (printed as a
    sentence of its own) and page 4 said that sentence again."""
    page3 = ("Tom picked up the ball for Hana, and they went outside to play. They played catch, and Hana felt so "
             "happy that she couldn't stop smiling.")
    page4 = "Tom brought Hana home for dinner. Hana felt so happy that she couldn't stop smiling."
    assert st.drop_copied_sentences(page4, [page3]) == "Tom brought Hana home for dinner."


def test_a_short_page_whose_words_all_lie_in_another_page_repeats_it():
    page1 = ("As soon as Tala appears, the blue, red, and yellow paintbrush begins to move. It is a bright and "
             "lively colour combination.")
    assert st.similar_page("As soon as Tala appears, it begins to move.", [page1]) == page1
    assert st.similar_page("Tala paints a yellow sun for Theo.", [page1]) is None  # new words: a page


def test_a_titles_subtitle_that_only_says_it_is_a_story_is_dropped():
    """An idea's book came back "The Brave Little Turtle: A Warm and Gentle Story" (the brief's tone as a subtitle)."""
    assert write.book_title("The Brave Little Turtle: A Warm and Gentle Story") == "The Brave Little Turtle"
    assert write.book_title("Milo: The Pizza Surprise") == "Milo: The Pizza Surprise"
    assert write.book_title("Otto: A Tale of Two Friends") == "Otto: A Tale of Two Friends"  # "Otto" alone: kept
