"""`taleloom engine`: train, sample and edit with our own diffusion models."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from taleloom.cli.options import SEED, STEPS
from taleloom.errors import TaleloomError

SAMPLER_NAMES = ("ddpm", "ddim", "dpmpp_2m", "dpmpp_3m")  # taleloom.diffusion.samplers.SAMPLERS (not imported: --help stays fast)
SPACING_NAMES = ("trailing", "logsnr", "karras")  # taleloom.diffusion.samplers.SPACINGS


def user_errors(fn):
    """Turn errors a person can act on into one clear message (exit code 1, no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TaleloomError as e:
            raise click.ClickException(str(e)) from e
        except ValueError as e:
            raise click.ClickException(str(e)) from e

    return wrapper


def _open_image(path: Path, what: str):
    from PIL import Image, UnidentifiedImageError

    from taleloom.errors import BadInputError

    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError) as e:
        raise BadInputError(f"{what} {path} is not a readable image ({e})", "pass a PNG or JPEG file") from e


def _pipeline(checkpoint: Path, device: str):
    from taleloom.diffusion.pipeline import TextToImage

    return TextToImage(checkpoint, device=device)


def _save(image, out: Path) -> None:
    from taleloom.files import atomic_save_image

    atomic_save_image(out, image)


@click.group()
def engine() -> None:
    """Train, sample and edit Taleloom's own text-to-image diffusion models."""


@engine.command()
@click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--resume", is_flag=True, help="continue the run saved in the config's out_dir exactly where it stopped"
)
@click.option("--overwrite", is_flag=True, help="start afresh even if out_dir already holds a run")
@click.option("--max-steps", type=int, help="override [train] max_steps")
@click.option("--out-dir", type=click.Path(path_type=Path, file_okay=False), help="override [train] out_dir")
@click.option("--device", help="override [train] device (auto, cpu, cuda)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option(
    "--json", "as_json", is_flag=True, help="print the result (steps, last losses, checkpoint) as JSON"
)
@user_errors
def train(config, resume, overwrite, max_steps, out_dir, device, quiet, as_json):
    """Train a model from CONFIG (.toml or .json with [data], [unet], [train] sections).

    Checkpoints (model.safetensors + config.json) land in [train] out_dir every checkpoint_every steps.
    A NaN loss stops training and keeps the last good checkpoint; --resume continues it exactly.
    """
    from taleloom.diffusion.recipe import load_recipe, train_recipe

    recipe = load_recipe(config)
    if max_steps is not None:
        recipe.train.max_steps = max_steps
    if out_dir is not None:
        recipe.train.out_dir = str(out_dir)
    if device:
        recipe.train.device = device
    result = train_recipe(recipe, resume=resume, overwrite=overwrite, progress=not quiet)
    tail = result.losses[-20:]
    summary = {
        "checkpoint": str(result.out_dir), "start_step": result.start_step, "step": result.step,
        "mean_loss_last_steps": sum(tail) / len(tail) if tail else None,
    }  # fmt: skip
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"trained to step {result.step}; checkpoint in {result.out_dir}")


@engine.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option(
    "--prompt", "-p", "prompts", multiple=True, required=True, help="what to draw (repeat for several)"
)
@click.option("--negative", default="", help="negative prompt: what to steer away from")
@click.option("--sampler", default="dpmpp_2m", show_default=True, help=f"one of: {', '.join(SAMPLER_NAMES)}")
@click.option("--steps", default=20, show_default=True, type=int, help="model evaluations per picture")
@click.option("--spacing", default="trailing", show_default=True,
              help=f"where the steps fall: {', '.join(SPACING_NAMES)} (logsnr/karras: more steps at low noise, "
                   "more accurate at 20 steps; see benchmarks/sampler_accuracy.py)")  # fmt: skip
@click.option(
    "--guidance", default=3.0, show_default=True, type=float, help="classifier-free guidance scale (1 = none)"
)
@click.option(
    "--eta", default=0.0, show_default=True, type=click.FloatRange(0, 1), help="DDIM stochasticity (0 = deterministic)"
)
@click.option(
    "--seed", default=0, show_default=True, type=SEED, help="seed of the first picture (the rest count up)"
)
@click.option("--n", "n", default=4, show_default=True, type=click.IntRange(1, 64), help="pictures per prompt")
@click.option("--cond-image", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="low-resolution picture to upscale (super-resolution checkpoints)")  # fmt: skip
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("grid.png"), show_default=True
)
@click.option(
    "--scale", default=1, show_default=True, type=int, help="enlarge each tile (nearest) in the grid"
)
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print prompts, seeds and the output path as JSON")
@user_errors
def sample(
    checkpoint,
    prompts,
    negative,
    sampler,
    steps,
    spacing,
    guidance,
    eta,
    seed,
    n,
    cond_image,
    out,
    scale,
    device,
    as_json,
):
    """Draw --n pictures for each --prompt from CHECKPOINT and save them as one grid image."""
    from taleloom.diffusion.data import image_grid
    from taleloom.errors import BadInputError

    if n <= 0 or scale <= 0:
        raise BadInputError(f"--n and --scale must be positive (got {n}, {scale})")
    pipe = _pipeline(checkpoint, device)
    cond = _open_image(cond_image, "--cond-image") if cond_image else None
    all_prompts = [p for p in prompts for _ in range(n)]
    seeds = [seed + i for i in range(len(all_prompts))]
    images = pipe.generate(all_prompts, negative_prompt=negative, sampler=sampler, steps=steps, guidance=guidance,
                           seeds=seeds, cond_image=cond, eta=eta, spacing=spacing, progress=not as_json)  # fmt: skip
    _save(image_grid(images, cols=n, scale=scale), out)
    if as_json:
        click.echo(
            json.dumps(
                {"out": str(out), "prompts": all_prompts, "seeds": seeds, "sampler": sampler, "steps": steps,
                 "spacing": spacing}
            )
        )
    else:
        click.echo(f"wrote {out} ({len(images)} pictures)")


@engine.group()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--device", default="cpu", show_default=True)
@click.pass_context
def edit(ctx, checkpoint, device):
    """Edit pictures with CHECKPOINT: img2img, inpaint or interpolate."""
    ctx.obj = {"checkpoint": checkpoint, "device": device}


def _edit_options(fn):
    for opt in reversed([
        click.option("--negative", default="", help="negative prompt"),
        click.option("--sampler", default="ddim", show_default=True, help=f"one of: {', '.join(SAMPLER_NAMES)}"),
        click.option("--steps", default=20, show_default=True, type=STEPS),
        click.option("--guidance", default=3.0, show_default=True, type=float),
        click.option("--seed", default=0, show_default=True, type=SEED),
        click.option("--scale", default=1, show_default=True, type=click.IntRange(1, 16),
                     help="enlarge the output (nearest)"),
    ]):  # fmt: skip
        fn = opt(fn)
    return fn


def _enlarge(image, scale: int):
    from PIL import Image

    return (
        image
        if scale == 1
        else image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    )


@edit.command()
@click.option(
    "--image", "image_path", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True
)
@click.option("--prompt", "-p", required=True, help="what the picture should become")
@click.option(
    "--strength", default=0.6, show_default=True, type=float, help="in (0, 1]: 0.3 keeps most of the image, 1 ignores it"
)
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("img2img.png"), show_default=True
)
@_edit_options
@click.pass_obj
@user_errors
def img2img(obj, image_path, prompt, strength, out, negative, sampler, steps, guidance, seed, scale):
    """Redraw --image following --prompt."""
    pipe = _pipeline(obj["checkpoint"], obj["device"])
    image = _open_image(image_path, "--image")
    result = pipe.img2img(prompt, image, strength=strength, negative_prompt=negative, sampler=sampler,
                          steps=steps, guidance=guidance, seed=seed)  # fmt: skip
    _save(_enlarge(result, scale), out)
    click.echo(f"wrote {out}")


@edit.command()
@click.option(
    "--image", "image_path", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True
)
@click.option("--mask", "mask_path", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True,
              help="same size as --image; white = regenerate, black = keep")  # fmt: skip
@click.option("--prompt", "-p", required=True, help="what to draw in the masked part")
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("inpaint.png"), show_default=True
)
@_edit_options
@click.pass_obj
@user_errors
def inpaint(obj, image_path, mask_path, prompt, out, negative, sampler, steps, guidance, seed, scale):
    """Regenerate the white part of --mask in --image, keeping the rest."""
    pipe = _pipeline(obj["checkpoint"], obj["device"])
    image, mask = _open_image(image_path, "--image"), _open_image(mask_path, "--mask")
    result = pipe.inpaint(prompt, image, mask, negative_prompt=negative, sampler=sampler, steps=steps,
                          guidance=guidance, seed=seed)  # fmt: skip
    _save(_enlarge(result, scale), out)
    click.echo(f"wrote {out}")


@edit.command()
@click.option("--prompt", "-p", required=True, help="prompt of the first frame")
@click.option("--to-prompt", help="prompt of the last frame (default: the same)")
@click.option("--to-seed", type=SEED, help="seed of the last frame (default: --seed)")
@click.option("--frames", default=5, show_default=True, type=click.IntRange(2, 64), help="pictures in the strip")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("interpolate.png"),
    show_default=True,
)
@_edit_options
@click.pass_obj
@user_errors
def interpolate(
    obj, prompt, to_prompt, to_seed, frames, out, negative, sampler, steps, guidance, seed, scale
):
    """Morph from (--prompt, --seed) to (--to-prompt, --to-seed); frames are saved as one strip."""
    from taleloom.diffusion.data import image_grid

    pipe = _pipeline(obj["checkpoint"], obj["device"])
    images = pipe.interpolate(prompt, to_prompt, seed, to_seed, frames=frames, negative_prompt=negative,
                              sampler=sampler, steps=steps, guidance=guidance)  # fmt: skip
    _save(image_grid(images, cols=len(images), scale=scale), out)
    click.echo(f"wrote {out} ({len(images)} frames)")


def _kind(config_json: Path) -> str | None:
    """config.json's "kind" ("vae" for an autoencoder; diffusion checkpoints have none), None if unreadable."""
    try:
        meta = json.loads(config_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta.get("kind") if isinstance(meta, dict) else None


@engine.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the whole config.json")
@user_errors
def info(checkpoint, as_json):
    """Show what CHECKPOINT is: size, schedule, prediction type, training step (or an autoencoder's shape)."""
    from taleloom.diffusion.checkpoint import checkpoint_dir, load_checkpoint
    from taleloom.diffusion.unet import count_parameters

    if _kind(checkpoint_dir(checkpoint) / "config.json") == "vae":
        from taleloom.diffusion.vae import load_vae

        vae, meta = load_vae(checkpoint)
        meta = {**meta, "parameters": count_parameters(vae)}
        v = meta["vae"]
        click.echo(json.dumps(meta, indent=2) if as_json else
                   f"{checkpoint}: autoencoder, {meta['parameters']:,} parameters, {v['image_size']}px ↔ "
                   f"{v['latent_channels']}×{vae.config.latent_size}×{vae.config.latent_size} latents "
                   f"(f = {vae.config.factor}), trained {meta['step']} steps")
        return
    model, meta = load_checkpoint(checkpoint)
    meta = {**meta, "parameters": count_parameters(model)}
    if as_json:
        click.echo(json.dumps(meta, indent=2))
        return
    u = meta["unet"]
    click.echo(f"{checkpoint}: {meta['parameters']:,} parameters, {u['image_size']}px, "
               f"{meta['schedule']} schedule ({meta['timesteps']} steps), {meta['prediction_type']}-prediction, "
               f"trained {meta['step']} steps{' (EMA weights)' if meta.get('ema') else ''}")  # fmt: skip
