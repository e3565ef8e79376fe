"""`taleloom draw PROMPT`: one or more pictures from a prompt, with the configured illustrator and upscaler
(by default our own emoji-trained models, offline on the CPU)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from taleloom.book import ImageRequest
from taleloom.cli.options import SEED, STEPS
from taleloom.config import get_settings


def grid(images, columns: int | None = None):
    """Paste same-sized pictures into one image, `columns` wide (default: all in one row up to 4)."""
    from PIL import Image

    columns = columns or min(4, len(images))
    w, h = images[0].size
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w, rows * h), "white")
    for i, im in enumerate(images):
        sheet.paste(im, ((i % columns) * w, (i // columns) * h))
    return sheet


_REQUEST = ImageRequest.model_fields  # the defaults of one picture live there, and only there


@click.command()
@click.argument("prompt")
@click.option("--n", "count", type=click.IntRange(1, 16), default=1, show_default=True, help="pictures to draw")
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed of the first picture (then +1 each)")
@click.option("--steps", type=STEPS, default=_REQUEST["steps"].default, show_default=True,
              help="denoising steps")
@click.option("--sampler", default=_REQUEST["sampler"].default, show_default=True,
              help="dpmpp_2m, dpmpp_3m, ddim or ddpm")
@click.option("--guidance", type=click.FloatRange(0, 30), default=_REQUEST["guidance"].default, show_default=True,
              help="classifier-free guidance scale (1 = none)")
@click.option("--negative", default="", help="negative prompt")
@click.option("--exact", is_flag=True,
              help="give the prompt to the model as it is (the embedded model otherwise draws its nearest concept)")
@click.option("--no-upscale", is_flag=True,
              help="keep the base model's resolution (embedded: 32 px for v1, 128 px for v2)")
@click.option("--style", default="storybook", show_default=True,
              help="book style preset (storybook, watercolor, crayon, pixel, ink, emoji): the embedded v2 model "
                   "draws in the trained style it maps to")
@click.option("--illustrator", help="illustrator backend spec (default from settings: embedded; embedded#v1 or "
                                    "embedded#v2 pick a version)")
@click.option("--upscaler", help="upscaler backend spec (default from settings: embedded)")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("draw.png"), show_default=True,
              help="PNG to write (several pictures are laid out as a grid)")
@click.option("--json", "as_json", is_flag=True, help="print what was drawn as JSON")
def draw(prompt, count, seed, steps, sampler, guidance, negative, exact, no_upscale, style, illustrator, upscaler,
         out, as_json):
    """Draw pictures of PROMPT with the illustrator, then upscale them (×4 below 128 px, ×2 from 128 px).

    Example: taleloom draw "a red apple" --n 4 --out apples.png
    """
    from taleloom.files import atomic_save_image
    from taleloom.orchestrator import Backends
    from taleloom.stages.illustrate import upscale
    from taleloom.stages.stage import concept_mapper_for, get_style

    style = get_style(style).name  # an unknown preset: a clear error listing the known ones
    backends = Backends.from_settings(get_settings(illustrator=illustrator, upscaler=upscaler))
    ill = backends.illustrator
    mapper = concept_mapper_for(ill)
    concepts = mapper(prompt, 1) if mapper is not None and not exact else []
    requests = [ImageRequest(prompt=prompt, negative_prompt=negative, concepts=concepts, seed=seed + i, steps=steps,
                             guidance=guidance, sampler=sampler, style=style) for i in range(count)]
    t0 = time.perf_counter()
    images = ill.generate(requests)  # the pool's batcher splits them into model calls
    t_draw = time.perf_counter() - t0
    up_id = None
    if not no_upscale:
        up = backends.upscaler
        images = upscale(images, requests, up)
        up_id = up.model_id
    seconds = time.perf_counter() - t0
    atomic_save_image(out, images[0] if count == 1 else grid(images))
    info = {"file": str(out), "prompt": prompt, "concepts": concepts, "seeds": [r.seed for r in requests],
            "size": list(images[0].size), "steps": steps, "sampler": sampler, "guidance": guidance,
            "illustrator": ill.model_id, "upscaler": up_id, "seconds": round(seconds, 2),
            "seconds_base": round(t_draw, 2)}
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False))
        return
    what = f"concept '{concepts[0]}'" if concepts else f"'{prompt}'"
    click.echo(f"{out}: {count} × {images[0].size[0]} px of {what} in {seconds:.1f} s")
