"""The upscale step: small pictures go to the upscaler in batches of its max_batch, big ones stay as they are."""

from __future__ import annotations

from PIL import Image

from taleloom.backends.base import Upscaler
from taleloom.book import ImageRequest
from taleloom.stages.illustrate import upscale


class FakeUpscaler(Upscaler):
    name = "fake"

    def upscale(self, image, factor=4, prompt="", seed=0):
        return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


class BatchCountingUpscaler(FakeUpscaler):
    max_batch = 2

    def __init__(self):
        self.calls: list[list[int]] = []

    def upscale_batch(self, images, factor=4, prompts=None, seeds=None):
        self.calls.append(list(seeds))
        return super().upscale_batch(images, factor, prompts, seeds)


def test_small_pictures_are_upscaled_in_batches_and_keep_their_order():
    small = [Image.new("RGB", (32, 32), (i * 40, 0, 0)) for i in range(5)]
    big = Image.new("RGB", (1024, 1024), "white")
    images = small[:2] + [big] + small[2:]
    reqs = [ImageRequest(prompt=f"p{i}", seed=i) for i in range(len(images))]
    up = BatchCountingUpscaler()
    seen: list[tuple[int, int]] = []
    out = upscale(images, reqs, up, on_progress=lambda d, t: seen.append((d, t)))
    assert up.calls == [[0, 1], [3, 4], [5]]  # batches of max_batch, the big picture left out
    assert out[2] is big
    assert [im.size for i, im in enumerate(out) if i != 2] == [(128, 128)] * 5
    assert [out[i].getpixel((0, 0)) for i in (0, 1, 3, 4, 5)] == [im.getpixel((0, 0)) for im in small]
    assert seen[-1] == (6, 6)


def test_an_upscaler_without_its_own_batching_is_called_per_picture():
    up = FakeUpscaler()
    out = up.upscale_batch([Image.new("RGB", (8, 8))] * 3, 4, ["a", "b", "c"], [1, 2, 3])
    assert [im.size for im in out] == [(32, 32)] * 3
