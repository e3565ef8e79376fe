"""`taleloom engine` through click's CliRunner: train a tiny recipe, sample a grid, edit; bad input → one clear message."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from engine_helpers import tiny_checkpoint
from PIL import Image

from taleloom.cli import cli

RECIPE = """
[data]
path = "{data}"
[unet]
image_size = 8
base_channels = 16
channel_mults = [1, 2]
num_res_blocks = 1
attention_resolutions = [4]
num_heads = 2
[train]
out_dir = "{out}"
batch_size = 4
max_steps = 3
checkpoint_every = 2
warmup_steps = 1
"""


def engine(*args):
    result = CliRunner().invoke(cli, ["engine", *[str(a) for a in args]])
    return result


def fails_clearly(result, *phrases):
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for p in phrases:
        assert p in result.output, result.output


@pytest.fixture()
def dataset(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    lines = []
    for i, (name, colour) in enumerate(
        [("red", (255, 0, 0, 255)), ("blue", (0, 0, 255, 255)), ("clear", (0, 0, 0, 0))]
    ):
        Image.new("RGBA", (12, 12), colour).save(folder / f"{i}.png")
        lines.append(json.dumps({"file": f"{i}.png", "caption": f"a {name} square"}))
    (folder / "captions.jsonl").write_text("\n".join(lines))
    return folder


def test_train_then_resume_then_sample_a_grid(tmp_path, dataset):
    out = tmp_path / "run"
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(RECIPE.format(data=dataset, out=out))
    result = engine("train", recipe, "--json", "--quiet")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["step"] == 3 and (out / "model.safetensors").exists() and (out / "config.json").exists()

    fails_clearly(engine("train", recipe, "--quiet"), "already holds a training run", "--resume")
    result = engine("train", recipe, "--resume", "--max-steps", 5, "--json", "--quiet")
    assert result.exit_code == 0 and json.loads(result.output)["start_step"] == 3, result.output

    grid = tmp_path / "grid.png"
    result = engine("sample", out, "--prompt", "a red square", "-p", "a blue square", "--n", 3, "--steps", 3,
                    "--sampler", "ddim", "--seed", 7, "--scale", 2, "--out", grid, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["seeds"] == [7, 8, 9, 10, 11, 12]
    with Image.open(grid) as im:
        assert im.size == (3 * 16 + 4 * 2, 2 * 16 + 3 * 2)  # 3 columns × 2 rows of 16px tiles, 2px gaps

    result = engine("info", out, "--json")
    assert result.exit_code == 0 and json.loads(result.output)["step"] == 5


def test_sample_rejects_bad_options(tmp_path):
    ckpt = tiny_checkpoint()
    out = tmp_path / "g.png"
    fails_clearly(
        engine("sample", ckpt, "-p", "x", "--sampler", "euler", "--out", out),
        "unknown sampler 'euler'",
        "dpmpp_2m",
    )
    fails_clearly(
        engine("sample", ckpt, "-p", "x", "--steps", 0, "--out", out), "steps must be a positive integer"
    )
    fails_clearly(engine("sample", ckpt, "-p", "x", "--guidance", -1, "--out", out), "guidance must be >= 0")
    fails_clearly(engine("sample", ckpt, "-p", "x", "--n", 0, "--out", out), "--n")
    fails_clearly(engine("sample", ckpt, "-p", "x", "--spacing", "even", "--out", out),
                  "unknown timestep spacing 'even'", "karras")  # fmt: skip
    assert not out.exists()


def test_every_sampler_and_spacing_the_help_lists_draws(tmp_path):
    from taleloom.cli.engine import SAMPLER_NAMES, SPACING_NAMES
    from taleloom.diffusion.samplers import SAMPLERS, SPACINGS

    assert SAMPLER_NAMES == tuple(SAMPLERS) and SPACING_NAMES == tuple(SPACINGS)
    ckpt = tiny_checkpoint()
    for sampler, spacing in [("dpmpp_3m", "logsnr"), ("dpmpp_2m", "karras")]:
        out = tmp_path / f"{sampler}-{spacing}.png"
        result = engine("sample", ckpt, "-p", "x", "--n", 1, "--steps", 4, "--sampler", sampler,
                        "--spacing", spacing, "--out", out, "--json")  # fmt: skip
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["spacing"] == spacing and out.exists()


def test_missing_and_corrupted_checkpoints(tmp_path):
    fails_clearly(
        engine("sample", tmp_path / "nope", "-p", "x"), "no diffusion checkpoint at", "taleloom engine train"
    )
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint(), broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 100)
    fails_clearly(engine("sample", broken, "-p", "x"), "corrupted", str(broken))
    fails_clearly(engine("info", broken), "corrupted")


def test_bad_training_configs(tmp_path, dataset):
    fails_clearly(engine("train", tmp_path / "none.toml"), "no training config at")
    bad = tmp_path / "bad.toml"
    bad.write_text(RECIPE.format(data=dataset, out=tmp_path / "o") + "\nlearning_rate = 3\n")
    fails_clearly(engine("train", bad), "unknown TrainConfig field", "learning_rate")
    bad.write_text("[unet\n")
    fails_clearly(engine("train", bad), "cannot parse")
    bad.write_text(RECIPE.format(data=dataset, out=tmp_path / "o") + "\nschedule = 'sigmoid'\n")
    fails_clearly(engine("train", bad, "--quiet"), "sigmoid", "cosine")
    bad.write_text(RECIPE.format(data=tmp_path / "no-data", out=tmp_path / "o"))
    fails_clearly(engine("train", bad), "no caption manifest")


def test_edit_rejects_wrong_images_and_masks(tmp_path):
    ckpt = tiny_checkpoint()
    img, mask, odd, wide = (tmp_path / n for n in ("img.png", "mask.png", "odd.tif", "wide.png"))
    Image.new("RGB", (32, 32), (255, 0, 0)).save(img)
    Image.new("L", (16, 16), 255).save(mask)
    Image.new("I;16", (32, 32)).save(odd)
    Image.new("RGB", (40, 20)).save(wide)
    fails_clearly(
        engine("edit", ckpt, "inpaint", "--image", img, "--mask", mask, "-p", "x"), "mask is 16×16", "32×32"
    )
    fails_clearly(engine("edit", ckpt, "img2img", "--image", odd, "-p", "x"), "mode 'I;16'")
    fails_clearly(engine("edit", ckpt, "img2img", "--image", wide, "-p", "x"), "40×20", "square")
    fails_clearly(engine("edit", ckpt, "img2img", "--image", img, "-p", "x", "--strength", 2), "strength")
    fails_clearly(engine("edit", ckpt, "img2img", "--image", img, "-p", "x", "--steps", -3), "steps")
    (tmp_path / "text.png").write_text("not an image")
    fails_clearly(
        engine("edit", ckpt, "img2img", "--image", tmp_path / "text.png", "-p", "x"), "not a readable image"
    )


def test_edit_commands_write_pictures(tmp_path):
    pytest.importorskip("taleloom.diffusion.edit")
    ckpt = tiny_checkpoint()
    img, mask = tmp_path / "img.png", tmp_path / "mask.png"
    Image.new("RGBA", (32, 32), (255, 0, 0, 255)).save(img)
    m = Image.new("L", (32, 32), 0)
    m.paste(255, (0, 0, 16, 32))
    m.save(mask)
    for args in (
        ("img2img", "--image", img, "-p", "a blue square", "--strength", 0.5, "--steps", 4),
        ("inpaint", "--image", img, "--mask", mask, "-p", "a blue square", "--steps", 4),
        (
            "interpolate",
            "-p",
            "a red square",
            "--to-prompt",
            "a blue square",
            "--to-seed",
            3,
            "--frames",
            3,
            "--steps",
            3,
        ),
    ):
        out = tmp_path / f"{args[0]}.png"
        result = engine("edit", ckpt, *args, "--out", out)
        assert result.exit_code == 0, result.output
        with Image.open(out) as im:
            assert im.size == ((3 * 16 + 4 * 2, 16 + 2 * 2) if args[0] == "interpolate" else (16, 16))


def test_help_texts_come_from_docstrings():
    result = engine("--help")
    assert result.exit_code == 0 and "Train, sample and edit" in result.output
    for cmd in ("train", "sample", "edit", "info"):
        assert cmd in result.output
