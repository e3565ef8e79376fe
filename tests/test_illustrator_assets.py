"""Shipped illustrator, upscaler and aligned encoder: present, hash-verified, small, and they draw on the CPU."""

from __future__ import annotations

import shutil

import pytest

from taleloom.assets import MODEL_FOLDERS, assets_root, read_manifest, sha256_file, verified_dir
from taleloom.book import ImageRequest
from taleloom.errors import ModelNotFoundError


def test_manifest_matches_every_shipped_file():
    m = read_manifest()
    root = assets_root()
    for folder in MODEL_FOLDERS:
        assert verified_dir(folder) == root / folder
        assert any(rel.startswith(f"{folder}/") for rel in m["files"])
    for rel, sha in m["files"].items():
        assert sha256_file(root / rel) == sha
    assert m["bytes"] <= 60_000_000


def test_tampered_file_is_refused_by_name(tmp_path):
    root = tmp_path / "assets"
    shutil.copytree(assets_root(), root, ignore=shutil.ignore_patterns("samples", "__pycache__"))
    weights = root / "upscaler" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelNotFoundError, match="upscaler/model.safetensors"):
        verified_dir("upscaler", root)
    (root / "illustrator" / "config.json").unlink()
    with pytest.raises(ModelNotFoundError, match="illustrator/config.json is missing"):
        verified_dir("illustrator", root)


def test_base_and_upscaler_draw_on_cpu():
    from taleloom.backends.registry import create

    ill = create("illustrator", "embedded#v1")
    up = create("upscaler", "embedded", steps=2)
    reqs = [ImageRequest(prompt="x", concepts=["red apple"], steps=3, seed=1),
            ImageRequest(prompt="red apple", steps=3, seed=2, sampler="ddim")]
    images = ill.generate(reqs)
    assert [im.size for im in images] == [(32, 32), (32, 32)]
    again = ill.generate(reqs[:1])[0]
    assert again.tobytes() == images[0].tobytes()  # same seed, same picture
    big = up.upscale(images[0], 4, seed=1)
    assert big.size == (128, 128) and big.mode == "RGB"
    assert ill.model_id.startswith("taleloom-emoji-base@") and "red apple" in ill.nearest_concepts("an apple", 5)


def test_draw_cli_works_offline(tmp_path):
    import json

    from click.testing import CliRunner
    from PIL import Image

    from taleloom.cli.draw import draw

    out = tmp_path / "apple.png"
    res = CliRunner().invoke(draw, ["a red apple", "--n", "2", "--steps", "3", "--no-upscale", "--out", str(out),
                                    "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output.strip().splitlines()[-1])
    assert info["concepts"] == ["red apple"] and info["size"] == [128, 128]  # v2, the default
    assert Image.open(out).size == (256, 128)


def test_a_whole_scene_draws_the_hero_in_its_box_on_v1():
    from taleloom.backends.registry import create

    ill = create("illustrator", "embedded#v1")
    assert ill.version == "v1" and ill.scene_for(ImageRequest(prompt="x", concepts=["bear"])) is None
    scene = ImageRequest(prompt="x", concepts=["bear", "desert"], steps=3, seed=1, hero_box=(0.0, 0.375, 0.625, 1.0))
    assert ill.scene_for(scene) == ("desert", "bear", (0.0, 0.375, 0.625, 1.0))
    plain = ImageRequest(prompt="x", concepts=["bear", "desert"], steps=3, seed=1)
    a, b = ill.generate([scene, plain])
    assert a.size == b.size == (32, 32) and a.tobytes() != b.tobytes()
    assert ill.generate([scene])[0].tobytes() == a.tobytes()


def test_big_pictures_are_enlarged_twice_without_the_x4_model():
    from PIL import Image

    from taleloom.backends.registry import create
    from taleloom.stages.illustrate import upscale_factor

    up = create("upscaler", "embedded")
    pic = Image.new("RGB", (128, 128), (30, 120, 200))
    assert upscale_factor(pic) == 2 and upscale_factor(Image.new("RGB", (32, 32))) == 4
    big = up.upscale_batch([pic], 2)[0]
    assert big.size == (256, 256) and big.getpixel((100, 100)) == (30, 120, 200)
    assert up._pipe is None  # the ×4 model was not even loaded


def test_v2_draws_128_px_and_a_book_style_changes_the_look():
    import numpy as np

    from taleloom.backends.registry import create

    ill = create("illustrator", "embedded#v2")
    assert ill.version == "v2" and ill.styled and ill.model_id.startswith("taleloom-emoji-v2@")
    own = set(ill.concept_vocabulary())
    assert 400 < len(own) < 720 and set(ill.nearest_concepts("a little dog", 5)) <= own
    reqs = [ImageRequest(prompt="x", concepts=["dog face"], steps=3, seed=1, style=s) for s in ("ink", "pixel")]
    assert ill.prompt_for(reqs[0])[0] == "dog face, openmoji style, thick black outlines"  # then inked
    ink, pixel = ill.generate(reqs)
    assert ink.size == pixel.size == (128, 128)
    diff = np.abs(np.asarray(ink, dtype=int) - np.asarray(pixel, dtype=int)).mean()
    assert diff > 10, diff  # v1's styles differed by 2.5/255 on average
    assert len(pixel.getcolors(4096)) <= 16 and len(pixel.crop((60, 60, 64, 64)).getcolors()) == 1  # a 32×32 grid
    assert {c for _, c in ink.getcolors(4096)} <= {(246, 238, 220), (20, 20, 25)}  # black lines on cream


def test_v2_starts_from_v1s_drawing_of_the_concept_and_redraws_it_in_the_style():
    """v2's layout option: v1 draws the shape, v2 redraws it (strength = how much); '' = v2 from noise alone."""
    import numpy as np
    from PIL import Image

    from taleloom.backends.image.embedded import EmbeddedIllustrator

    req = ImageRequest(prompt="x", concepts=["red apple"], steps=4, seed=3, style="ink")
    base = EmbeddedIllustrator(model="v1").generate([req])[0].resize((128, 128), Image.Resampling.LANCZOS)

    def dist(im):
        return np.abs(np.asarray(im, dtype=int) - np.asarray(base, dtype=int)).mean()

    light = EmbeddedIllustrator(model="v2", layout="v1", layout_strength=0.25).generate([req])[0]
    alone = EmbeddedIllustrator(model="v2", layout="").generate([req])[0]
    assert light.size == alone.size == (128, 128)
    assert dist(light) < dist(alone), (dist(light), dist(alone))  # v1's picture shows through
    scene = ImageRequest(prompt="x", concepts=["bear", "desert"], steps=4, seed=1, hero_seed=5,
                         hero_box=(0.0, 0.375, 0.625, 1.0))
    ill = EmbeddedIllustrator(model="v2", layout="v1")
    a, b = ill.generate([scene, scene.model_copy(update={"seed": 2})])
    assert a.size == (128, 128) and a.tobytes() != b.tobytes()  # each page its own seed
    alone_a = np.asarray(ill.generate([scene])[0], dtype=int)  # the same picture drawn in a batch of one:
    assert np.abs(alone_a - np.asarray(a, dtype=int)).max() <= 2  # equal up to float rounding of the batch size


def test_a_collage_puts_the_hero_in_its_box_and_the_setting_in_the_far_upper_corner():
    import numpy as np
    from PIL import Image, ImageDraw

    from taleloom.backends.image.collage import collage, setting_box

    hero, setting = Image.new("RGB", (128, 128), "white"), Image.new("RGB", (128, 128), "white")
    ImageDraw.Draw(hero).rectangle((24, 24, 104, 104), fill=(220, 20, 20))
    ImageDraw.Draw(setting).ellipse((24, 24, 104, 104), fill=(20, 20, 220))
    page = np.asarray(collage(hero, setting, (0.0, 0.375, 0.625, 1.0)), dtype=int)
    assert page.shape == (128, 128, 3)
    red = (page[..., 0] > 150) & (page[..., 2] < 80)
    blue = (page[..., 2] > 150) & (page[..., 0] < 80)
    ys, xs = np.nonzero(red)
    assert xs.max() < 0.625 * 128 and ys.min() >= 0.375 * 128  # the hero inside its box, lower left
    ys, xs = np.nonzero(blue)
    assert xs.min() >= 0.45 * 128 and ys.max() < 0.55 * 128  # the setting upper right, away from the hero
    assert tuple(page[2, 2]) == (255, 255, 255)  # the pictures' own background between the stickers
    assert setting_box((0.375, 0.375, 1.0, 1.0))[0] < 0.1  # a hero on the right: the setting goes left
    thing = Image.new("RGB", (128, 128), "white")
    ImageDraw.Draw(thing).ellipse((24, 24, 104, 104), fill=(20, 200, 20))
    page = np.asarray(collage(hero, setting, (0.0, 0.375, 0.625, 1.0), thing), dtype=int)
    ys, xs = np.nonzero((page[..., 1] > 150) & (page[..., 0] < 80))
    assert xs.min() >= 0.6 * 128 and ys.min() >= 0.55 * 128  # a third thing in the far lower corner
    assert np.array_equal(np.nonzero((page[..., 0] > 150) & (page[..., 2] < 80)), np.nonzero(red))  # hero on top


def test_v2_scenes_are_collages_with_the_same_hero_on_every_page():
    import numpy as np

    from taleloom.backends.image.embedded import EmbeddedIllustrator

    scene = ImageRequest(prompt="x", concepts=["cat", "house"], steps=4, seed=1, hero_seed=5,
                         hero_box=(0.0, 0.375, 0.625, 1.0))
    ill = EmbeddedIllustrator(model="v2", layout="")
    assert ill.collages and not EmbeddedIllustrator(model="v2", layout="", scene="regions").collages
    a, b = (np.asarray(im, dtype=int) for im in ill.generate([scene, scene.model_copy(update={"seed": 2})]))
    hero = (slice(int(0.55 * 128), 128), slice(0, int(0.6 * 128)))  # below the setting's sticker
    assert np.abs(a[hero] - b[hero]).max() <= 2  # the hero's picture comes from the book's hero seed
    assert np.abs(a - b).mean() > 1  # the setting comes from each page's seed
    three = scene.model_copy(update={"concepts": ["cat", "dog", "red apple"]})
    c = np.asarray(ill.generate([three])[0], dtype=int)
    corner = (slice(int(0.62 * 128), 128), slice(int(0.65 * 128), 128))  # the far lower corner: the apple
    assert np.abs(c[corner] - a[corner]).mean() > 5 and np.abs(c[hero] - a[hero]).max() <= 2


def test_every_small_problems_thing_is_one_the_embedded_illustrator_draws():
    """write.PLOTS names a thing per problem so that the page can show it: a kite (not among v2's trained
    concepts) was never drawn in a kite book; each thing must name a trained concept word for word."""
    from taleloom.backends.registry import create
    from taleloom.stages.concept_match import named_concepts
    from taleloom.stages.write import NAMELESS_HEROES, PLOTS

    own = create("illustrator", "embedded#v2").concept_vocabulary()
    for _, things in PLOTS:
        for thing in things:
            assert named_concepts(thing, own), thing
    for kind in NAMELESS_HEROES:  # and the hero told to a book whose photo names nothing
        assert named_concepts(kind, own), kind
