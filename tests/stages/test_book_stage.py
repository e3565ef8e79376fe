"""Stage: style presets, cast sheet in every prompt, per-page seeds, concept mapping for the embedded model."""

from __future__ import annotations

import pytest

from taleloom.book import Brief, Caption, CastMember, Page, Storybook
from taleloom.errors import BadInputError
from taleloom.stages.stage import STYLES, concept_mapper_for, get_style, page_seed, stage, stage_page


def make_book(style="storybook", seed=7) -> Storybook:
    return Storybook(
        brief=Brief(pages=3, style=style, seed=seed),
        caption=Caption(text="a cat", concepts=["cat face", "house"]),
        cast=[CastMember(name="Mina", look="a small tabby cat with a red scarf"),
              CastMember(name="Bo", look="a brown dog", role="friend")],
        pages=[Page(index=i, text=f"text {i}", scene=s) for i, s in
               enumerate(["Mina sits by the sea", "Mina climbs a tall tree", "Mina sleeps under the moon"], 1)])


VOCAB = ["cat face", "dog face", "water wave", "deciduous tree", "crescent moon", "house", "tabby cat"]


def mapper(text: str, k: int) -> list[str]:
    """Nearest concepts by shared words (a stand-in for MiniLM similarity)."""
    words = set(text.lower().replace(",", " ").split()) | ({"water", "wave"} if "sea" in text else set())
    return sorted(VOCAB, key=lambda c: (-len(words & set(c.split())), c))[:k]


def test_presets_have_prompt_suffix_negative_and_sampler_settings():
    assert {"storybook", "watercolor", "crayon", "pixel", "ink"} <= set(STYLES)
    for s in STYLES.values():
        assert s.suffix and s.negative and s.sampler in ("ddim", "dpmpp_2m", "ddpm") and s.steps > 0


def test_unknown_style_lists_the_known_ones():
    with pytest.raises(BadInputError) as e:
        get_style("cubist")
    assert "cubist" in e.value.message and all(name in e.value.hint for name in STYLES)


def test_page_seeds_are_stable_and_differ_per_page():
    assert page_seed(7, 1) == page_seed(7, 1)
    assert len({page_seed(7, i) for i in range(1, 25)}) == 24
    assert page_seed(7, 1) != page_seed(8, 1)


def test_full_prompts_for_big_backends_carry_cast_and_style():
    book = make_book(style="watercolor")
    requests = stage(book)
    assert len(requests) == 3
    for req, page in zip(requests, book.pages, strict=True):
        assert page.scene in req.prompt
        assert "Mina, a small tabby cat with a red scarf" in req.prompt and "Bo, a brown dog" in req.prompt
        assert STYLES["watercolor"].suffix in req.prompt and req.negative_prompt == STYLES["watercolor"].negative
        assert req.concepts == [] and req.seed == page_seed(7, page.index) and req.style == "watercolor"
        assert (req.steps, req.sampler) == (STYLES["watercolor"].steps, STYLES["watercolor"].sampler)


def test_embedded_requests_name_the_same_subject_and_each_setting():
    requests = stage(make_book(), mapper)
    subjects = {r.concepts[0] for r in requests}
    assert subjects == {"tabby cat"}  # the hero, the same on every page
    assert [r.concepts[1] for r in requests] == ["water wave", "deciduous tree", "crescent moon"]


def test_only_missing_pages_are_staged_and_overrides_apply():
    book = make_book()
    book.pages[0].request = stage_page(book, book.pages[0], seed=123, style="ink")
    assert [r.seed for r in stage(book)] == [page_seed(7, 2), page_seed(7, 3)]
    assert book.pages[0].request.seed == 123 and book.pages[0].request.style == "ink"


def test_concept_mapper_comes_from_the_illustrator():
    class Big:
        draws_concepts = False

    from taleloom.backends.base import Illustrator
    from taleloom.backends.pool import PooledIllustrator

    class Small(Illustrator):
        name = "small"
        draws_concepts = True

        def nearest_concepts(self, text, k):
            return ["cat face"][:k]

        def concept_vocabulary(self):
            return ["cat face", "rocket"]

        def generate(self, requests):
            raise AssertionError("not drawn here")

    assert concept_mapper_for(Big()) is None
    assert concept_mapper_for(Small())("x", 1) == ["cat face"]
    # books reach the illustrator through its pool: the vocabulary must come through too (it did not, so the
    # stage's word-for-word matching never ran in a real book)
    pooled = concept_mapper_for(PooledIllustrator("illustrator", Small))
    assert pooled.vocabulary == ("cat face", "rocket") and pooled("x", 1) == ["cat face"]


def test_whole_scenes_put_the_hero_in_the_same_box_with_one_hero_seed_and_a_seed_per_page():
    from taleloom.stages.stage import HERO_LEFT, HERO_RIGHT, hero_seed, scene_layout

    book = make_book()
    book.pages[1].scene = "Mina climbs a tall tree on the right"
    requests = stage(book, mapper)
    assert all(len(r.concepts) == 2 for r in requests)
    assert {r.hero_seed for r in requests} == {hero_seed(7)}  # the same hero noise on every page
    assert len({r.seed for r in requests}) == len(requests)  # but each page its own seed: no two pages alike
    assert hero_seed(7) not in {r.seed for r in requests}
    assert [r.hero_box for r in requests] == [HERO_LEFT, HERO_RIGHT, HERO_LEFT]
    assert scene_layout("left and right") == HERO_LEFT == scene_layout("Mina waves", 3)
    assert scene_layout("Mina waves", 2) == HERO_RIGHT == scene_layout("Mina on the right", 3)  # sides take turns
    assert scene_layout("Mina on the left", 2) == HERO_LEFT
    redrawn = stage_page(book, book.pages[0], mapper, seed=99)
    assert redrawn.seed == 99 and redrawn.hero_box == HERO_LEFT  # redraw keeps its own seed
    assert redrawn.hero_seed == hero_seed(7)  # and the book's hero
    assert all(r.hero_box is None for r in stage(make_book()))  # big backends read the full prompt


def test_the_setting_is_found_from_the_scene_without_the_cast_names():
    """'Luna follows Mina into the forest' was staged with the setting 'new moon': MiniLM reads the name."""
    from taleloom.stages.stage import without_names

    book = make_book()
    asked = []

    def recording(text, k):
        asked.append(text)
        return mapper(text, k)

    book.pages[0].scene = "Mina's shadow follows MINA into the forest"
    stage_page(book, book.pages[0], recording)
    assert asked[-1] == "shadow follows into the forest", asked  # the scene, as the setting is looked up
    assert without_names("Luna follows Mina into the forest", [CastMember(name="Luna", look="x"),
                                                              CastMember(name="Mina", look="y")]) == \
        "follows into the forest"


def test_a_friend_the_scene_names_is_drawn_beside_the_hero_with_the_same_noise_on_every_page():
    """'Bo brings Mina a ball' showed the concept nearest to the sentence; now it shows Bo (his look's kind),
    drawn from Bo's own seed on every page he is in, so he looks the same; a page without him keeps its seed."""
    from taleloom.stages.stage import cast_seed

    book = make_book()
    book.pages[0].scene = "Bo brings Mina a ball by the sea"
    book.pages[1].scene = "Mina and Bo climb a tall tree"
    requests = stage(book, mapper)
    assert [r.concepts for r in requests[:2]] == [["tabby cat", "dog face"]] * 2
    assert requests[0].seed == requests[1].seed == cast_seed(7, 1) != requests[2].seed == page_seed(7, 3)
    assert stage_page(book, book.pages[0], mapper, seed=5).seed == 5  # a redraw's own seed still wins


def test_a_friend_of_the_heros_kind_is_drawn_as_that_kind_with_their_own_seed():
    """The sample cat's friend Luna, a "lunatic cat", was drawn as a scorpion: the cat was the hero's, so the
    nearest other concept to her words was taken."""
    from taleloom.stages.stage import VocabularyMapper, cast_seed

    book = make_book()
    book.cast[1] = CastMember(name="Bo", look="tabby cat, purple fur", role="friend")
    book.pages[0].scene = "Bo sits beside Mina"
    request = stage(book, VocabularyMapper(mapper, tuple(VOCAB)))[0]
    assert request.concepts == ["tabby cat", "tabby cat"] and request.seed == cast_seed(7, 1)


def test_a_thing_the_page_names_beside_the_hero_and_a_friend_is_a_third_concept():
    """Three pages of the same two friends were three copies of one collage (the cat sample book): a page that
    names a thing of the vocabulary beside the friend gets it too; one that names nothing more stays two."""
    from taleloom.stages.stage import VocabularyMapper

    book = make_book()
    book.pages[0].scene = "Bo brings Mina a cup by the house"
    book.pages[1].scene = "Mina and Bo laugh together"
    named = VocabularyMapper(mapper, tuple(VOCAB))
    requests = stage(book, named)
    assert requests[0].concepts == ["tabby cat", "dog face", "house"] and requests[0].hero_box is not None
    assert requests[1].concepts == ["tabby cat", "dog face"]  # nothing named but the two: no nearest guess


def test_an_animal_the_page_names_beside_the_setting_is_a_third_concept_without_a_friend():
    """A book told the small problem "finds a little lost chick": "She finds a little lost chick in the sand" drew
    the girl and the beach, never the chick. Without a friend on the page, an animal the scene names beside the
    setting is drawn too; a thing that is no animal (a cup) is not, nor the hero's own kind."""
    from taleloom.stages.concept_match import creature
    from taleloom.stages.stage import VocabularyMapper

    vocab = (*VOCAB, "baby chick", "hot beverage")
    book = make_book()
    book.pages[0].scene = "Mina finds a little lost chick by the house"
    book.pages[1].scene = "Mina drinks from a cup by the house"
    book.pages[2].scene = "Mina sees another tabby cat by the house"
    requests = stage(book, VocabularyMapper(mapper, vocab))
    assert requests[0].concepts == ["tabby cat", "house", "baby chick"]
    assert requests[1].concepts == ["tabby cat", "house"] and requests[2].concepts == ["tabby cat", "house"]
    assert creature("baby chick") and creature("hedgehog") and not creature("evergreen tree")
    assert not creature("paw prints") and not creature("house")


def test_the_setting_is_what_the_scene_names_not_what_the_sentence_is_nearest_to():
    """A scene that names a thing of the vocabulary gets that thing (of several, the nearest to the
    sentence); a body part ('eyes') or the picture itself never counts; a hero whose look says 'child, blue
    eyes' is no `eyes`."""
    from taleloom.stages.concept_match import head, named_concepts, singular
    from taleloom.stages.stage import VocabularyMapper, look_concept, scene_setting

    assert [singular(w) for w in ("stars", "berries", "leaves", "grass", "bus", "fish")] == [
        "star", "berry", "leaf", "grass", "bus", "fish"]
    assert [head(c) for c in ("deciduous tree", "beach with umbrella", "person in bed", "index pointing up",
                              "leaf fluttering in wind", "full moon face")] == [
        "tree", "beach", "person", "index", "leaf", "face"]
    vocab = ["rocket", "star", "glowing star", "eyes", "cat face", "framed picture", "deciduous tree", "boy",
             "person walking"]
    assert named_concepts("The rocket flies past the stars, its eyes shining", vocab) == ["rocket", "star"]
    assert named_concepts("The rocket flies past the glowing stars", vocab) == ["glowing star", "rocket", "star"]
    # a head that is a concept of its own names that concept, not the compounds ending in it; "ice" is said as
    # frozen water ("on the ice"), not as the dessert (the friends photo's book: `hot dog` and `shaved ice`)
    food = ["dog", "hot dog", "shaved ice", "ice cream", "ice skate"]
    assert named_concepts("Theo the dog is standing outside on the ice", food) == ["dog"]
    assert named_concepts("Lila skates on the ice with a hot dog", food) == ["hot dog", "ice skate", "dog"]
    assert named_concepts("a bowl of ice cream", food) == ["ice cream"]
    # "orange" said as a colour is no fruit ("his orange feathers" drew a `tangerine` beside an owl)
    fruit = ["tangerine", "house"]
    assert named_concepts("Oscar looks at the house with his orange feathers", fruit) == ["house"]
    assert named_concepts("Mina eats an orange", fruit) == named_concepts("a glass of orange juice", fruit) == [
        "tangerine"]
    # nor said among other colours (a kite wallpaper's sunset, "warm colors of orange and pink", drew a `tangerine`)
    sky = ["tangerine", "sun"]
    assert named_concepts("The sun sets. The sky is painted with warm colors of orange and pink", sky) == ["sun"]
    assert named_concepts("red, orange and yellow leaves", fruit) == named_concepts("a pink or orange sky", fruit) == []
    assert named_concepts("Mina eats an orange and a pear", fruit) == ["tangerine"]
    assert named_concepts("A warm picture shows a cat walking", vocab) == []
    # a head a story says in another sense names its concept only in full (the baboon book's dark forest)
    ways = ["milky way", "evergreen tree", "bus stop"]
    assert named_concepts("Theo is in the dark forest, searching for his way home", ways) == ["evergreen tree"]
    assert named_concepts("Theo waits at the bus stop, then looks at the milky way", ways) == ["milky way", "bus stop"]

    def nearest(text, k):  # MiniLM stand-in: "glowing" scenes are nearest to the glowing star, else list order
        return sorted(vocab, key=lambda c: ("glow" not in text) or "glow" not in c)[:k]

    m = VocabularyMapper(nearest, tuple(vocab))
    assert scene_setting("Oscar looks up at the glowing stars", m, exclude={"cat face"}) == "glowing star"
    assert scene_setting("Oscar looks up at the stars", m, exclude={"cat face"}) == "star"
    assert scene_setting("Oscar walks home", m, exclude={"rocket"}) == "star"  # names nothing: the nearest
    drinks = VocabularyMapper(lambda t, k: ["beer mug", "hot beverage"][:k], ("beer mug", "hot beverage"))
    assert look_concept("a mug of coffee, golden", drinks) == "hot beverage"  # says mug and coffee of it
    animals = VocabularyMapper(lambda t, k: ["rabbit", "chipmunk", "goat", "ewe"][:k],
                               ("rabbit", "chipmunk", "goat", "ewe"))
    assert look_concept("squirrel, brown fur, a bushy tail", animals) == "chipmunk"  # MiniLM's nearest: rabbit
    assert look_concept("lamb, white wool", animals) == "ewe"
    assert look_concept("bunny, grey fur", animals) == "rabbit"
    people_of_stories = VocabularyMapper(lambda t, k: ["penguin", "man", "old woman"][:k], ("penguin", "man", "old woman"))
    assert look_concept("pirate, red hat", people_of_stories) == "man"  # MiniLM's nearest: penguin
    assert look_concept("witch, black hat", people_of_stories) == "old woman"
    people = VocabularyMapper(lambda t, k: ["person pouting", "woman"][:k], ("person pouting", "woman"))
    assert look_concept("person, short brown hair", people) == "woman"  # a cast member is not an activity
    assert scene_setting("Sami stands by the person pouting", people, exclude=set()) == "person pouting"
    # an animal the vocabulary lacks is drawn as an animal of its group (MiniLM's nearest to "stork" is a potato)
    zoo = ("potato", "chipmunk", "bird", "duck", "honeybee", "bug", "tulip", "crocodile")

    def near(text, k):  # MiniLM stand-in: words near their own kind, rare animal names near anything
        return {"bird": ["bird", "duck", "potato"], "bug": ["bug", "honeybee"]}.get(text, list(zoo))[:k]

    zoo_mapper = VocabularyMapper(near, zoo)
    assert look_concept("stork, white feathers", zoo_mapper) == "bird"
    assert look_concept("cockroach, brown", zoo_mapper) == "bug"
    assert look_concept("bee, fuzzy", zoo_mapper) == "honeybee"  # a concept that holds the kind's word
    assert look_concept("hippo, grey", zoo_mapper) == "chipmunk"  # no group word: the nearest animal, not a potato
    assert look_concept("dragon, green", zoo_mapper) == "potato"  # not an animal of the label table: as before
    assert look_concept("child, brown hair, blue eyes", VocabularyMapper(
        lambda t, k: (["eyes", "boy"] if "eyes" in t else ["eyes", "boy"])[:k], ("eyes", "boy"))) == "boy"


def test_a_scene_that_names_no_place_takes_the_friend_or_place_its_text_names_then_where_the_story_last_was():
    """The baboon book (stop 27): the scenes described the hero's look ("in grey and green tones, soft, warm
    light") and named no place, and the nearest concept to them drew a sun, eyes and an apple beside the monkey
    in a story set in a forest. Now page 1 draws the friend its text names, the pages after it the forest page
    1's text named; the nearest concept to a scene ignores the photo's colour and light words and is never a
    body part."""
    from taleloom.stages.concept_match import without_photo_words
    from taleloom.stages.stage import VocabularyMapper, nearest_setting

    vocab = ("monkey", "cat", "evergreen tree", "sun with face", "eyes", "green apple", "poultry leg", "kite")

    def nearest(text, k):  # MiniLM stand-in: what the colour and light words and the eyes pull towards first
        words = set(text.lower().replace(",", " ").split())
        pulled = [c for c, w in (("sun with face", "warm"), ("green apple", "green"), ("eyes", "eyes"),
                                 ("poultry leg", "legs")) if w in words]
        rest = ["monkey", "cat", "kite", "evergreen tree"] if "cat" in words else ["monkey", "kite", "cat",
                                                                                   "evergreen tree"]
        return (pulled + rest)[:k]

    m = VocabularyMapper(nearest, vocab)
    look = "in grey and green tones, soft, warm light, wearing a green hat"
    cast = [CastMember(name="Lila", look="monkey, grey fur", role="hero"), CastMember(name="Luna", look="cat, yellow fur")]
    book = Storybook(id="b", brief=Brief(pages=3, seed=1), cast=cast, pages=[
        Page(index=1, text="In the green forest, Lila was playing with her friend Luna.", scene=f"Lila the monkey {look}"),
        Page(index=2, text="Lila saw a bird. She was surprised.", scene="Lila looking up with her eyes wide"),
        Page(index=3, text="Lila laughed.", scene=f"Lila the monkey {look}")])
    assert [r.concepts for r in stage(book, m)] == [["monkey", "cat"], ["monkey", "evergreen tree"],
                                                    ["monkey", "evergreen tree"]]
    assert stage(book, m)[0].seed != stage(book, m)[1].seed  # the friend keeps their own noise, as when the scene names them
    assert without_photo_words("Lila in grey and green tones, soft, warm light.") == "Lila in and"
    assert nearest_setting("Lila moving her arms and legs, eyes wide", m, exclude={"monkey"}) == "kite"  # no leg, no eyes


def test_a_football_is_a_soccer_ball_and_an_american_football_is_no_setting_beside_it():
    """The captioner says "football" for ImageNet's soccer ball (OpenCV's footballer, stop 27): by its head noun the
    hero was drawn as `american football`, an egg-shaped ball, with the soccer ball beside it."""
    from taleloom.stages.stage import VocabularyMapper, look_concept, scene_setting

    vocab = ("american football", "soccer ball", "woman")
    m = VocabularyMapper(lambda t, k: list(vocab)[:k], vocab)  # MiniLM stand-in: the egg-shaped ball is nearest
    assert look_concept("football, white and black", m) == "soccer ball"
    assert scene_setting("Milo the football rolls past the woman", m, exclude={"soccer ball"}) == "woman"
    # a bare "tree" is the plain one (a turtle book's "pond near a tree" was drawn as `tanabata tree`)
    trees = ("tanabata tree", "palm tree", "deciduous tree")
    m = VocabularyMapper(lambda t, k: list(trees)[:k], trees)  # MiniLM stand-in: the tanabata tree is nearest
    assert scene_setting("A pond near a tree", m, exclude=set()) == "deciduous tree"
    assert scene_setting("Ezra under a palm tree", m, exclude=set()) == "palm tree"


def test_a_hero_who_is_only_an_animal_is_drawn_as_the_animal_the_pages_tell():
    """A bird photo the captioner called "an animal": the hero (kind "animal") was written as "an orange kitten"
    and drawn as the nearest concept to "animal", a dog, on every page."""
    from taleloom.stages.stage import VocabularyMapper, main_subject

    vocab = ("dog", "cat", "bird", "park")
    m = VocabularyMapper(lambda t, k: list(vocab)[:k], vocab)  # MiniLM stand-in: "animal" is nearest to dog
    book = make_book()
    book.caption = Caption(text="A photo of an animal.", concepts=["animal"])
    book.cast = [CastMember(name="Nia", look="animal, grey and white fur", role="hero")]
    book.pages[0].text = "Nia is an orange kitten who loves to play in the park."
    book.pages[1].text = "Nia climbs a tall tree. A bird flies by."
    assert main_subject(book, m) == "cat"
    book.pages[0].text = "Nia loves to play in the park."  # the pages tell no animal: as before
    assert main_subject(book, m) == "dog"
    book.cast = [CastMember(name="Nia", look="dog, grey", role="hero")]  # a real kind: the cast sheet's
    book.pages[0].text = "Nia is an orange kitten."
    assert main_subject(book, m) == "dog"


def test_a_child_hero_is_drawn_as_the_boy_or_girl_the_pages_speak_of_not_a_baby():
    """A photo of a person makes the hero "the child from the photo"; v2 knows no child and its nearest concept
    is `baby`: the basketball photo's book drew a baby flying a kite. The pages' pronoun decides."""
    from taleloom.stages.stage import VocabularyMapper, main_subject

    vocab = ("baby", "boy", "girl", "house")
    m = VocabularyMapper(lambda t, k: list(vocab)[:k], vocab)  # MiniLM stand-in: "child" is nearest to baby
    book = make_book()
    book.cast = [CastMember(name="Ezra", look="child, grey coat", role="hero")]
    for p in book.pages:
        p.text = "Ezra flies his kite. He laughs."
    assert main_subject(book, m) == "boy"
    for p in book.pages:
        p.text = "Ezra flies her kite. She laughs."
    assert main_subject(book, m) == "girl"
    for p in book.pages:
        p.text = "Ezra flies a kite."
    book.pages[0].scene = "Ezra runs in the park. He's wearing a red cap"  # a scene that tells (the whale book)
    assert main_subject(book, m) == "boy"
    for p in book.pages:
        p.scene = "a park"
    assert main_subject(book, m) == "baby"  # the pages do not say: as before
    book.cast = [CastMember(name="Ezra", look="baby, grey coat", role="hero")]
    assert main_subject(book, m) == "baby"
    # a "human" hero of a picture book is a child too: the flower photo's Ezra rode "his new bicycle" as `woman`
    vocab = ("woman", "man", "boy", "girl")
    m = VocabularyMapper(lambda t, k: list(vocab)[:k], vocab)
    book.cast = [CastMember(name="Ezra", look="human, brown hair", role="hero")]
    for p in book.pages:
        p.text = "Ezra rides his new bicycle."
    assert main_subject(book, m) == "boy"
    # a "human" friend too, as the pages call them (OpenCV's home photo's Theo was drawn as `woman`)
    from taleloom.stages.stage import page_companion

    book.cast = [CastMember(name="Omar", look="fox, red fur", role="hero"),
                 CastMember(name="Tess", look="human, black hair", role="friend")]
    for p in book.pages:
        p.text = "Omar saw a human girl named Tess. Tess had seen his lost scarf."
    assert page_companion("Tess helps Omar", book.cast, m, set(), book) == (1, "girl")  # "his" is the fox's
    assert page_companion("Tess helps Omar", book.cast, m, set()) == (1, "woman")  # no book: the look's concept
    for p in book.pages:
        p.text = "Omar and Tess play. Tess had seen his lost scarf."  # the pages do not call her anything
    assert page_companion("Tess helps Omar", book.cast, m, set(), book) == (1, "woman")


def test_a_hero_whose_kind_is_the_sort_of_thing_the_photo_shows_is_drawn_as_the_photo_subject():
    """The apple book: told "Lila is the apple from the photo", Qwen's cast sheet said "a fruit", which mapped
    alone to `kiwi fruit` on every page, and page 4's "Lila, a golden fruit" drew a second kiwi beside her."""
    from taleloom.stages.stage import VocabularyMapper, main_subject

    vocab = ("kiwi fruit", "red apple", "penguin", "house")
    nearest = {"apple": ["red apple"], "fruit": ["kiwi fruit"]}
    m = VocabularyMapper(lambda t, k: (nearest.get(t.split()[-1], list(vocab)))[:k], vocab)
    book = make_book()
    book.caption = Caption(text="A photo of an apple.", concepts=["apple"])
    book.cast = [CastMember(name="Lila", look="a fruit, golden", role="hero"),
                 CastMember(name="Priya", look="a penguin, white", role="friend")]
    book.pages[0].scene = "Lila, a golden fruit, sits in the sun"
    book.pages[0].text = "Lila, a golden fruit, sat in the sun."
    assert main_subject(book, m) == "red apple"
    assert "kiwi fruit" not in stage_page(book, book.pages[0], m).concepts
    book.cast[0] = CastMember(name="Lila", look="a penguin, golden", role="hero")  # another kind: as the sheet says
    assert main_subject(book, m) == "penguin"
    book.caption = Caption(text="A photo of a fruit.", concepts=["fruit"])  # no ImageNet subject: the sheet's
    book.cast[0] = CastMember(name="Lila", look="a fruit, golden", role="hero")
    assert main_subject(book, m) == "kiwi fruit"


def test_a_thing_a_page_names_is_the_kind_the_book_speaks_of():
    """The rubber whale book's last page, "Theo is standing in front of the cake", drew a fish cake in a story of
    a birthday cake: among kinds of the same thing, the one the book says most of. Another thing the page names
    as strongly stays the nearest (a knife beside the cake is no cake)."""
    from taleloom.stages.stage import VocabularyMapper, beside_hero

    vocab = ("fish cake with swirl", "birthday cake", "kitchen knife", "boy")
    m = VocabularyMapper(lambda t, k: list(vocab)[:k], vocab)  # MiniLM stand-in: the fish cake is nearest
    book = make_book()
    book.cast = [CastMember(name="Omar", look="boy, brown hair", role="hero")]
    book.pages[0].scene = "Omar bakes a birthday cake for the party"
    book.pages[1].scene = "Omar stands in front of the cake"
    assert beside_hero(book, book.pages[1], m, {"boy"}) == (None, "birthday cake")
    book.pages[0].scene = "Omar plays in the park"
    assert beside_hero(book, book.pages[1], m, {"boy"}) == (None, "fish cake with swirl")  # the book does not say
    book.pages[1].scene = "Omar cuts the cake with a knife"
    m = VocabularyMapper(lambda t, k: ["kitchen knife", "fish cake with swirl", "birthday cake", "boy"][:k], vocab)
    assert beside_hero(book, book.pages[1], m, {"boy"}) == (None, "kitchen knife")


def test_a_hand_sign_is_no_sign_a_page_speaks_of():
    """An apple book's "looking for signs of other animals" drew `sign of the horns` (a hand gesture) beside the
    apple and the penguin."""
    from taleloom.stages.concept_match import named_concepts

    vocab = ("sign of the horns", "vulcan salute", "stop sign", "evergreen tree")
    assert "sign of the horns" not in named_concepts("looking for signs of other animals in the forest", vocab)
    assert named_concepts("a red stop sign by the road", vocab) == ["stop sign"]
