"""The emoji data set builder: renders real glyphs, captions them from CLDR, splits and hashes reproducibly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
import build_emoji_dataset as bed  # noqa: E402

pytestmark = pytest.mark.skipif(not bed.FONT_PATH.exists(), reason="fonts-noto-color-emoji is not installed")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("emoji")
    return out, bed.build(out, views=2, limit=8, keywords=False, progress=False)


def test_renders_and_hashes_every_image(small):
    from PIL import Image

    out, m = small
    assert len(m["concepts"]) == 8 and len(m["images"]) == 16
    for r in m["images"]:
        im = Image.open(out / r["file"])
        assert im.size == (bed.IMAGE_SIZE, bed.IMAGE_SIZE) and im.mode == "RGB"
        assert im.convert("L").getextrema()[0] < 200  # a glyph was drawn, not a blank square
    assert bed.verify(out) == []
    (out / m["images"][0]["file"]).write_bytes(b"not a png")
    assert bed.verify(out) == [m["images"][0]["file"]]


def test_captions_are_the_cldr_names(small):
    import emoji

    _, m = small
    for c in m["concepts"]:
        cldr = emoji.EMOJI_DATA[c["emoji"]]["en"].strip(":").replace("_", " ")
        assert c["name"] == cldr and c["captions"][0] == cldr
        assert all(cldr in cap for cap in c["captions"][1:len(bed.TEMPLATES)])
        assert not bed._is_skin_tone(c["emoji"]) and not bed._is_flag(c["emoji"])


def test_build_is_reproducible(small, tmp_path):
    _, m = small
    again = bed.build(tmp_path, views=2, limit=8, keywords=False, progress=False)
    assert [r["sha256"] for r in again["images"]] == [r["sha256"] for r in m["images"]]
    assert json.loads((tmp_path / "manifest.json").read_text())["params"]["seed"] == 0


def test_splits_hold_out_concepts_and_images():
    splits = bed.assign_splits(200, 4, seed=0)
    unseen = [c for c in splits if c == ["unseen"] * 4]
    assert len(unseen) == 20  # 10% of concepts, every view
    heldout = sum(s == "heldout" for c in splits for s in c)
    assert heldout == round(0.05 * 180 * 4)
    assert all(set(c) <= {"train", "heldout"} for c in splits if c not in unseen)
