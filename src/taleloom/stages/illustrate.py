"""Illustrate and upscale: draw every request through the Illustrator in batches, then upscale."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PIL import Image

from taleloom.backends.base import Illustrator, Upscaler
from taleloom.book import ImageRequest
from taleloom.errors import BackendError

UPSCALE_BELOW = 512  # pictures smaller than this on their long side are upscaled
Progress = Callable[[int, int], None]  # (done, total)


def illustrate(requests: Sequence[ImageRequest], illustrator: Illustrator, batch_size: int | None = None,
               on_batch: Callable[[list[int], list[Image.Image]], None] | None = None,
               on_progress: Progress | None = None) -> list[Image.Image]:
    """One picture per request, `illustrator.max_batch` at a time.

    `on_batch(indices, images)` sees each finished batch (the orchestrator saves it at once, so an
    interrupted run keeps what was drawn).
    """
    size = max(1, batch_size or illustrator.max_batch)
    out: list[Image.Image] = []
    for start in range(0, len(requests), size):
        batch = list(requests[start:start + size])
        images = illustrator.generate(batch)
        if len(images) != len(batch):
            raise BackendError(f"illustrator {illustrator.name!r} returned {len(images)} pictures for "
                               f"{len(batch)} requests", "this is a bug in the backend; report it")
        out.extend(images)
        if on_batch:
            on_batch(list(range(start, start + len(batch))), images)
        if on_progress:
            on_progress(len(out), len(requests))
    return out


def upscale_factor(image: Image.Image, target: int = UPSCALE_BELOW) -> int:
    """4 (the x4 super-resolution models) for pictures below print size, 1 (keep as is) for big ones."""
    return 1 if max(image.size) >= target else 4


def upscale(images: Sequence[Image.Image], requests: Sequence[ImageRequest], upscaler: Upscaler,
            on_progress: Progress | None = None) -> list[Image.Image]:
    """Enlarge each picture that is below print size; the same seed as its request keeps it reproducible."""
    out = []
    for i, (img, req) in enumerate(zip(images, requests, strict=True)):
        factor = upscale_factor(img)
        out.append(img if factor == 1 else upscaler.upscale(img, factor=factor, prompt=req.prompt, seed=req.seed))
        if on_progress:
            on_progress(i + 1, len(images))
    return out
