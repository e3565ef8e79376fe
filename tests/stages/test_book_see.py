"""See: image facts (colours, light, faces) and the embedded captioner's wording, validation and fallback,
on real photos with the real ImageNet classifier (EfficientNet-Lite0, ~40 ms a photo)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from taleloom.backends.base import TextModel
from taleloom.backends.vision.embedded import EmbeddedCaptioner, template, validate
from taleloom.backends.vision.facts import colour_name, image_facts, light, working_copy
from taleloom.book import Brief
from taleloom.stages.see import see

FIXTURES = Path(__file__).parents[1] / "fixtures"
CAT = Path(__file__).parents[2] / "src/taleloom/assets/samples/cat.jpg"


class Encoder:
    concepts = ["cat face", "house", "tree"]

    def top_concepts(self, image, k):
        return [("cat face", 0.61), ("house", 0.32), ("tree", 0.2)][:k]

    def nearest_concepts(self, text, k):
        return ["cat face", "house", "tree"][:k]


class ScriptedLLM(TextModel):
    name = "scripted"
    model_id = "scripted-llm"

    def __init__(self, answers):
        self.answers, self.prompts = list(answers), []

    def chat(self, messages, sampling=None, schema=None):
        self.prompts.append(messages[-1]["content"])
        return self.answers.pop(0)


def captioner(answers, **options) -> tuple[EmbeddedCaptioner, ScriptedLLM]:
    llm = ScriptedLLM(answers)
    cap = EmbeddedCaptioner(encoder=Encoder(), **options)
    cap.use_llm(lambda: llm)
    return cap, llm


def test_colour_names():
    assert [colour_name(*c) for c in [(220, 20, 20), (30, 150, 40), (30, 60, 200), (120, 70, 20), (250, 250, 250),
                                      (10, 10, 10), (255, 192, 203), (240, 220, 180)]] == \
        ["red", "green", "blue", "brown", "white", "black", "pink", "beige"]


def test_facts_of_the_cat_photo():
    facts = image_facts(Image.open(CAT))
    assert facts["colours"][0]["name"] in ("brown", "beige", "orange")
    assert "warm" in facts["light"] and facts["orientation"] == "landscape"
    assert facts["faces"] == 0


def test_light_is_worded_as_a_phrase_without_neutral():
    """'soft, warm light' or 'soft light': never 'neutral' (a story copied it) and never a comma before 'light'."""
    grey = Image.new("RGB", (64, 64), (128, 128, 128))
    warm = Image.new("RGB", (64, 64), (170, 120, 80))
    assert light(grey)["light"] == "soft light"
    assert light(warm)["light"] == "soft, warm light"


def test_a_person_face_is_found():
    facts = image_facts(Image.open(FIXTURES / "astronaut.jpg"))
    assert facts["faces"] == 1 and len(facts["faces_boxes"]) == 1


def test_a_face_in_a_big_photo_is_found_and_no_face_where_there_is_none():
    # a face a tenth of the picture wide in a 1200 px photo (~20 px at the old 320 px detection size: missed)
    astronaut = Image.open(FIXTURES / "astronaut.jpg")
    canvas = Image.new("RGB", (1200, 800), (120, 130, 110))
    canvas.paste(astronaut.resize((640, 640)), (300, 80))
    assert image_facts(canvas)["faces"] == 1
    for photo in (CAT, FIXTURES / "dog.jpg", FIXTURES / "coffee.jpg"):
        assert image_facts(Image.open(photo))["faces"] == 0


def test_facts_come_from_a_small_copy_and_keep_the_photo_size():
    big = Image.open(CAT).resize((3000, 2000))
    small = working_copy(big)
    assert max(small.size) == 640 and big.size == (3000, 2000) and small.mode == "RGB"
    assert image_facts(big)["size"] == [3000, 2000]


def test_standing_people_are_found_by_their_bodies():
    assert image_facts(Image.open(FIXTURES / "people.jpg"))["bodies"] >= 1  # two players, faces turned away
    for photo in (CAT, FIXTURES / "dog.jpg", FIXTURES / "coffee.jpg"):
        assert image_facts(Image.open(photo))["bodies"] == 0


def test_dark_and_bright_pictures():
    assert image_facts(Image.new("RGB", (64, 64), (10, 10, 30)))["light"].startswith("low")  # no "dark light pizza"
    assert image_facts(Image.new("RGB", (64, 64), (250, 250, 240)))["light"].startswith("bright")


def test_llm_words_the_caption_from_the_named_subject_and_facts():
    cap, llm = captioner([json.dumps({"caption": "A brown cat looks up in warm light."})])
    out = see(Image.open(CAT), Brief(), cap)
    assert out.text == "A brown cat looks up in warm light."
    assert out.concepts[0] == "cat" and out.facts["subjects"][0]["phrase"] == "a cat"
    assert out.facts["drawable_concepts"] == ["cat face", "house", "tree"]  # for the embedded illustrator
    assert out.facts["worded_by"] == "scripted-llm"
    assert out.model_id == "embedded-captioner-efficientnet-lite0+scripted-llm"
    assert "Main subject of the photo: a cat." in llm.prompts[0] and "brown" in llm.prompts[0]


def test_a_caption_naming_another_animal_is_refused():
    wrong = json.dumps({"caption": "A brown dog and a little bear rest by the window."})
    cap, llm = captioner([wrong, wrong])
    out = cap.caption(Image.open(CAT))
    assert len(llm.prompts) == 2 and out.facts["worded_by"] == "template"
    assert out.text.startswith("A photo of a cat, in ") and "dog" not in out.text


def test_a_caption_that_places_the_subject_somewhere_unseen_is_refused():
    """The sample cat's caption read "The cat is sleeping on the couch": nothing here sees a couch, and the story
    then told of it. A place the owner names is theirs to give."""
    couch = json.dumps({"caption": "The cat is sleeping on the couch in soft light."})
    cap, llm = captioner([couch, couch])
    out = cap.caption(Image.open(CAT))
    assert len(llm.prompts) == 2 and out.facts["worded_by"] == "template" and "couch" not in out.text
    cap, llm = captioner([couch])
    assert "couch" in cap.caption(Image.open(CAT), hint="Mina on our couch").text


def test_a_caption_that_says_the_light_of_the_subject_is_refused():
    """From "soft, warm light" Qwen captioned OpenCV's apple "The apple is soft and warm, with a golden color.",
    and the book's first page began with it. The light may be soft; the subject's feel is nothing seen."""
    felt = json.dumps({"caption": "The cat is soft and warm, with brown fur."})
    cap, llm = captioner([felt, json.dumps({"caption": "A brown cat looks up. The light is soft and warm."})])
    out = cap.caption(Image.open(CAT))
    assert len(llm.prompts) == 2 and out.text == "A brown cat looks up. The light is soft and warm."


def test_a_caption_that_makes_a_colour_of_the_subject_is_refused():
    """OpenCV's orange was captioned "A warm, sunny day with an orange sun.": the subject's word was there, as a
    colour. The orange itself must be named."""
    from taleloom.backends.vision.embedded import validate

    facts = {"subjects": [{"phrase": "an orange", "noun": "orange"}], "colours": [{"name": "orange"}]}
    sun = json.dumps({"caption": "A warm, sunny day with an orange sun."})
    assert validate(sun, ["orange"], facts, None) is None
    fruit = json.dumps({"caption": "An orange sits in soft light. It is round and bright orange."})
    assert validate(fruit, ["orange"], facts, None) == "An orange sits in soft light. It is round and bright orange."


def test_a_caption_that_describes_what_someone_wears_is_refused():
    """skimage's astronaut: "A person in a warm, orange dress with soft brown hair and a face covered in black
    makeup." No fact gives a dress, hair or makeup; the cover printed the makeup. The owner may say it."""
    from taleloom.backends.vision.embedded import validate

    facts = {"subjects": [{"phrase": "a person", "noun": "person"}], "colours": [{"name": "orange"}]}
    dressed = json.dumps({"caption": "A person in a warm, orange dress with soft brown hair."})
    assert validate(dressed, ["person"], facts, None) is None
    assert validate(dressed, ["person"], facts, "Eileen in her orange dress and brown hair") is not None
    assert validate(json.dumps({"caption": "A person in orange, in soft, warm light."}), ["person"], facts, None)


def test_the_owners_description_is_merged():
    cap, llm = captioner([json.dumps({"caption": "Mina the cat rests in warm light."})])
    out = see(Image.open(CAT), Brief(description="This is Mina, our cat"), cap)
    assert out.text.startswith("This is Mina, our cat.") and "rests in warm light" in out.text
    assert "This is Mina, our cat" in llm.prompts[0] and out.facts["owner_description"] == "This is Mina, our cat"


def test_template_only_after_answers_fail_validation():
    cap, llm = captioner(["not json", json.dumps({"caption": "cat cat cat cat cat cat cat cat cat"})])
    out = cap.caption(Image.open(CAT))
    assert len(llm.prompts) == 2 and out.facts["worded_by"] == "template"
    assert out.text.startswith("A photo of a cat, in ")
    assert out.model_id == "embedded-captioner-efficientnet-lite0+template"


def test_real_photos_are_captioned_with_their_subject():
    cap = EmbeddedCaptioner(encoder=Encoder(), llm="none")
    for photo, noun in (("coffee.jpg", "cup of coffee"), ("dog.jpg", "dog"), ("astronaut.jpg", "person"),
                        ("people.jpg", "person")):
        out = cap.caption(Image.open(FIXTURES / photo))
        assert out.concepts[0] == noun, (photo, out.concepts, out.facts["labels"])
        assert noun in out.text and out.facts["worded_by"] == "template"


def test_an_unsure_classifier_says_less():
    class Flat:  # no label stands out: nothing may be named
        def probs(self, image, middle=1.0):
            return np.full(1000, 1 / 1000, dtype=np.float32)

    out = EmbeddedCaptioner(encoder=Encoder(), imagenet=Flat(), llm="none").caption(Image.open(CAT))
    assert out.concepts == [] and out.facts["subjects"] == []
    assert out.text.startswith("A photo in ") and "cat" not in out.text


class Closer:
    """Unsure of the whole photo; of its middle, `p` sure of a dragonfly (ImageNet 319)."""

    def __init__(self, p: float):
        self.p, self.asked = p, []

    def probs(self, image, middle=1.0):
        self.asked.append(middle)
        out = np.full(1000, 1 / 1000, dtype=np.float32)
        if middle < 1.0:
            out[:] = (1 - self.p) / 999
            out[319] = self.p
        return out


def test_a_small_subject_in_the_middle_is_named_when_the_closer_look_is_sure():
    sure = Closer(0.98)
    out = EmbeddedCaptioner(encoder=Encoder(), imagenet=sure, llm="none", objects=False).caption(Image.open(CAT))
    assert sure.asked == [1.0, 0.5] and out.concepts == ["dragonfly"] and "a dragonfly" in out.text
    assert out.facts["looked_closer"] == 0.5 and out.facts["labels"]["dragonfly"] == 0.98
    unsure = Closer(0.7)  # named at the whole photo's bars, but a closer look's guess must be surer
    out = EmbeddedCaptioner(encoder=Encoder(), imagenet=unsure, llm="none", objects=False).caption(Image.open(CAT))
    assert out.concepts == [] and "dragonfly" not in out.text and "looked_closer" not in out.facts


def test_a_photo_with_nothing_named_is_not_worded_by_the_llm():
    """Told to describe only colours and light, the LLM set a scene: "a dark, dimly lit room with black walls"
    for a dahlia. With nothing named the caption is the template's colours and light, and the LLM is not asked."""
    class Flat:
        def probs(self, image, middle=1.0):
            return np.full(1000, 1 / 1000, dtype=np.float32)

    llm = ScriptedLLM([json.dumps({"caption": "The scene is a dark, dimly lit room with black walls."})])
    cap = EmbeddedCaptioner(encoder=Encoder(), imagenet=Flat(), objects=False)
    cap.use_llm(lambda: llm)
    out = cap.caption(Image.open(CAT))
    assert llm.prompts == [] and out.facts["worded_by"] == "template"
    assert out.text.startswith("A photo in ") and "room" not in out.text
    described = cap.caption(Image.open(CAT), hint="Our garden in June")  # the owner's words are worth wording
    assert described.text.startswith("Our garden in June.") and llm.prompts


def test_the_emoji_only_captioner_is_kept_to_compare():
    cap, llm = captioner([json.dumps({"caption": "A brown cat face looks out near a little house."})],
                         classifier="none")
    out = cap.caption(Image.open(CAT))
    assert out.concepts == ["cat face", "house", "tree"] and out.model_id == "embedded-captioner+scripted-llm"
    assert "cat face" in llm.prompts[0]


def test_validation_rules():
    facts = {"colours": [{"name": "brown"}]}
    ok = validate(json.dumps({"caption": "A cat face sits in brown light"}), ["cat face"], facts, None)
    assert ok == "A cat face sits in brown light."
    assert validate(json.dumps({"caption": "Spaceships zoom over a city skyline"}), ["cat face"], facts, None) is None
    assert validate(json.dumps({"caption": "short"}), ["cat face"], facts, None) is None
    listing = "The bear, otter, squid, lab coat, a beautiful, warm, soft light."
    assert validate(json.dumps({"caption": listing}), ["bear"], facts, None) is None
    assert validate(json.dumps({"caption": "A cat {json} face http://x.y"}), ["cat face"], facts, None) is None
    echo = ("... (Slightly modified version of the original sentence, with a slight modification to include "
            "the image facts and no names unless the owner gives them.).")  # a real SmolLM2 answer
    assert validate(json.dumps({"caption": echo}), ["basket", "notebook with decorative cover"],
                    {"colours": [{"name": "orange"}]}, None) is None
    assert validate(json.dumps({"caption": "A woman smiles with a notebook"}), ["notebook with decorative cover"],
                    facts, None) == "A woman smiles with a notebook."


def test_template_mentions_faces():
    facts = {"colours": [{"name": "red"}], "light": "bright, warm light", "faces": 2, "cat_faces": 1}
    assert template(["a kite"], facts) == ("A photo of a kite, in red tones, in bright, warm light. "
                                           "It shows 2 faces and 1 cat face.")


def test_no_photo_means_no_caption():
    assert see(None, Brief(idea="a flying cat"), EmbeddedCaptioner(encoder=Encoder())) is None
