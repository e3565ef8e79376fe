"""Illustrate and upscale: draw every request through the Illustrator in batches, then upscale."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PIL import Image

from taleloom.backends.base import Illustrator, Upscaler
from taleloom.backends.batching import batches
from taleloom.book import ImageRequest
from taleloom.errors import BackendError

UPSCALE_BELOW = 512  # pictures smaller than this on their long side are upscaled
Progress = Callable[[int, int], None]  # (done, total)
OnBatch = Callable[[list[int], list[Image.Image]], None]  # (indices into the inputs, their finished pictures)


def illustrate(requests: Sequence[ImageRequest], illustrator: Illustrator, batch_size: int | None = None,
               on_batch: OnBatch | None = None, on_progress: Progress | None = None) -> list[Image.Image]:
    """One picture per request, in the model calls `batches` groups them into (`illustrator.max_batch`
    matching requests at most).

    `on_batch(indices, images)` sees each finished batch (the orchestrator saves it at once, so an
    interrupted run keeps what was drawn).
    """
    out: list[Image.Image | None] = [None] * len(requests)
    done = 0
    for indices in batches(requests, batch_size or illustrator.max_batch):
        images = illustrator.generate([requests[i] for i in indices])
        if len(images) != len(indices):
            raise BackendError(f"illustrator {illustrator.name!r} returned {len(images)} pictures for "
                               f"{len(indices)} requests", "this is a bug in the backend; report it")
        for i, img in zip(indices, images, strict=True):
            out[i] = img
        done += len(indices)
        if on_batch:
            on_batch(indices, images)
        if on_progress:
            on_progress(done, len(requests))
    return out  # type: ignore[return-value]  # every slot is filled


def upscale_factor(image: Image.Image, target: int = UPSCALE_BELOW) -> int:
    """1 (keep as is) for pictures at print size; 2 for 128 px and larger ones (the v2 illustrator's: ×2 to
    256 px, where ×4 would cost 16× the time for a 512 px picture); 4 (the x4 models) for small ones."""
    side = max(image.size)
    return 1 if side >= target else 2 if side >= 128 else 4


def upscale(images: Sequence[Image.Image], requests: Sequence[ImageRequest], upscaler: Upscaler,
            on_batch: OnBatch | None = None, on_progress: Progress | None = None) -> list[Image.Image]:
    """Enlarge each picture that is below print size, up to the upscaler's `max_batch` same-sized pictures
    per call; the same seed as its request keeps each one reproducible. `on_batch` sees each finished call
    (the orchestrator saves it at once); pictures already at print size are not passed to it."""
    out = list(images)
    todo = [i for i, img in enumerate(images) if upscale_factor(img) != 1]
    if not todo:  # nothing to enlarge: the upscaler is not even asked its batch size (a lazy one stays unloaded)
        return out
    batch = max(1, upscaler.max_batch)
    done = len(images) - len(todo)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i in todo:
        by_size.setdefault(images[i].size, []).append(i)
    for same in by_size.values():
        for start in range(0, len(same), batch):
            part = same[start:start + batch]
            big = upscaler.upscale_batch([images[i] for i in part], upscale_factor(images[part[0]]),
                                         [requests[i].prompt for i in part], [requests[i].seed for i in part])
            for i, img in zip(part, big, strict=True):
                out[i] = img
            if on_batch:
                on_batch(part, big)
            done += len(part)
            if on_progress:
                on_progress(done, len(images))
    return out
