"""The shipped aligned encoder: names real training glyphs, scores text against pictures, maps scenes to concepts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import build_emoji_dataset as bed  # noqa: E402

from taleloom.errors import ModelNotFoundError  # noqa: E402

# Real training glyphs (view 0 of concepts in the training split) the encoder must name first.
KNOWN = ["red apple", "cat", "sun", "rocket", "pizza", "dog face", "deciduous tree", "banana"]


@pytest.fixture(scope="module")
def encoder():
    from taleloom.diffusion.aligned import load_aligned_encoder

    return load_aligned_encoder(None, "cpu")


@pytest.fixture(scope="module")
def glyphs():
    if not bed.FONT_PATH.exists():
        pytest.skip("fonts-noto-color-emoji is not installed")
    from PIL import ImageFont

    font = ImageFont.truetype(str(bed.FONT_PATH), size=bed.FONT_SIZE)
    by_name = {bed.cldr_name(e): e for e in bed.select_emoji()}
    return {n: bed.compose(bed.render_glyph(font, by_name[n]), 0, None) for n in KNOWN}


def test_ranks_the_right_concept_first(encoder, glyphs):
    for name, image in glyphs.items():
        top = encoder.top_concepts(image, 5)
        assert top[0][0] == name, (name, top)
        assert top[0][1] >= top[-1][1]


def test_score_prefers_the_right_caption(encoder, glyphs):
    image = glyphs["red apple"]
    assert encoder.score(image, "an emoji of a red apple") > encoder.score(image, "an emoji of a rocket")


def test_vocabulary_and_scene_mapping(encoder):
    vocab = encoder.concept_vocabulary()
    assert "red apple" in vocab and len(vocab) < len(encoder.concepts)
    assert "red apple" in encoder.nearest_concepts("a shiny red apple on the table", 3)
    assert set(encoder.nearest_concepts("a rocket flies to the moon", 5)) <= set(vocab)


def test_missing_folder_is_a_clear_error(tmp_path):
    from taleloom.diffusion.aligned import AlignedEncoder

    with pytest.raises(ModelNotFoundError, match="model.safetensors"):
        AlignedEncoder.load(tmp_path)
