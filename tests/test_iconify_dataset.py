"""The multi-style data set builder: finds a concept's icon in each set, rasterises SVG, derives styles."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
import build_iconify_dataset as bid  # noqa: E402

from taleloom.backends.image.styles import (  # noqa: E402
    PRESET_STYLE,
    STYLES,
    caption,
    drawn_style,
    finish,
    ink,
    pixelate,
    style_for_preset,
)
from taleloom.stages.stage import STYLES as BOOK_STYLES  # noqa: E402

ICONS = {"width": 16, "height": 16,
         "icons": {"red-apple": {"body": '<circle cx="8" cy="8" r="6" fill="#d00"/>'},
                   "dog": {"body": '<rect x="2" y="2" width="12" height="12" fill="#864"/>', "width": 20}},
         "aliases": {"apple-red": {"parent": "red-apple"}}}


def test_icons_are_found_by_code_points_then_by_name():
    assert bid.find_icon(ICONS, {"1f34e": "apple-red"}, "\U0001f34e", "nothing alike") == "red-apple"
    assert bid.find_icon(ICONS, {}, "\U0001f415", "dog") == "dog"
    assert bid.find_icon(ICONS, {}, "\U0001f436", "dog face") == "dog"  # "-face" dropped, as some sets name it
    assert bid.find_icon(ICONS, {}, "\U0001f40d", "snake") is None


def test_rasterised_svg_is_a_centred_glyph_on_white():
    pytest.importorskip("resvg_py")
    img = bid.rasterise(bid.svg_of(ICONS, "red-apple"))
    assert img.size == (bid.IMAGE_SIZE, bid.IMAGE_SIZE) and img.mode == "RGB"
    assert img.getpixel((2, 2)) == (255, 255, 255)
    r, g, b = img.getpixel((64, 64))
    assert r > 180 and g < 40 and b < 40


def test_derived_styles_look_like_their_names():
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (128, 128), "white")
    d = ImageDraw.Draw(img)
    d.ellipse((20, 20, 108, 108), fill=(240, 180, 30), outline=(0, 0, 0), width=5)
    px = pixelate(img)
    assert len(px.getcolors(4096)) <= 16
    block = px.crop((40, 40, 44, 44))
    assert len(block.getcolors()) == 1  # 4-pixel squares (a 32×32 grid)
    inked = ink(img)
    assert {c for _, c in inked.getcolors()} == {(246, 238, 220), (20, 20, 25)}  # paper and ink only
    # the illustrator finishes its pictures in a derived style with the same transform; others stay as drawn
    assert finish(img, "pixel").tobytes() == px.tobytes() and finish(img, "ink").tobytes() == inked.tobytes()
    assert finish(img, "noto") is img and finish(img, "fluent") is img
    # a flat style's soft shading is made flat: a gradient of 128 greys becomes 12 flat fills
    shaded = Image.linear_gradient("L").convert("RGB").resize((128, 128))
    for style in ("twemoji", "fluent-flat", "emojione"):
        assert len(finish(shaded, style).getcolors(4096)) <= 12 < len(shaded.getcolors(4096))
    # and draws them in the set they are made from, as the data script made them
    assert (drawn_style("pixel"), drawn_style("ink"), drawn_style("noto")) == ("twemoji", "openmoji", "noto")


def test_every_book_style_draws_in_a_trained_style():
    assert set(PRESET_STYLE) == set(BOOK_STYLES)
    assert len({style_for_preset(p) for p in BOOK_STYLES}) == len(BOOK_STYLES)  # each preset looks different
    assert all(s in STYLES for s in PRESET_STYLE.values())
    assert caption("red apple", "ink") == "red apple, " + STYLES["ink"].words
    assert style_for_preset("no such preset") == PRESET_STYLE["storybook"]


def test_the_v2_recipes_fit_together():
    from taleloom.diffusion.recipe import load_recipe
    from taleloom.diffusion.vae_train import VAETrainConfig

    recipes = SCRIPTS / "recipes"
    vae = load_recipe(recipes / "illustrator_v2_vae.toml").train
    assert isinstance(vae, VAETrainConfig) and vae.vae.factor == 8 and vae.vae.image_size == 128
    for name in ("illustrator_v2_unet.toml", "illustrator_v2_unet_gpu.toml"):
        unet = load_recipe(recipes / name).train
        assert unet.vae == vae.out_dir  # trains on the recipe's autoencoder
        assert unet.unet.in_channels == unet.unet.out_channels == vae.vae.latent_channels
        assert unet.unet.image_size == vae.vae.latent_size


def test_a_phase_that_continued_the_shipped_model_exports_over_it(tmp_path):
    """Phase 2 of v2 started from the shipped folder (`init_from`) and is exported into that same folder: the
    step count of the whole model (shipped + this phase) is read before the folder is replaced."""
    import json

    import export_assets
    import torch
    from safetensors.torch import save_file

    def checkpoint(folder: Path, meta: dict) -> None:
        folder.mkdir(parents=True)
        save_file({"w": torch.ones(2)}, str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps(meta))

    shipped, run = tmp_path / "assets" / "illustrator-v2", tmp_path / "runs" / "phase2"
    checkpoint(shipped, {"step": 2300, "train": {}})
    checkpoint(run, {"step": 6000, "train": {"init_from": str(shipped), "out_dir": "runs/phase2"}})
    checkpoint(run / "vae", {"step": 600, "train": {}})
    data = tmp_path / "iconify"
    data.mkdir()
    (data / "manifest.json").write_text(json.dumps({"styles": {"ink": {}}, "images": [
        {"concept": "cat", "style": "ink", "split": "train"}, {"concept": "dog", "style": "ink", "split": "heldout"}]}))
    export_assets.export_v2(run, shipped, data)
    meta = json.loads((shipped / "config.json").read_text())
    assert meta["step"] == 8300 and meta["train"]["started_from_step"] == 2300
    assert meta["prompts"] == "concept, style words" and "init_from" not in meta["train"]
    assert json.loads((shipped / "concepts.json").read_text()) == ["cat"] and (shipped / "vae" / "config.json").is_file()
