"""Region prompts (MultiDiffusion): the background prompt denoises the whole picture, a region's prompt
its own window; predictions are blended by feathered weights. Works on pixel and latent models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_helpers import tiny_checkpoint

from taleloom.diffusion.guidance import RegionDenoiser
from taleloom.diffusion.pipeline import TextToImage
from taleloom.diffusion.schedule import make_schedule
from taleloom.errors import BadInputError


class PromptEcho:
    """A stand-in network whose prediction is its prompt's first token value everywhere; records input sizes."""

    def __init__(self):
        self.sizes = []

    def __call__(self, x, t, ctx, mask, cond_image):
        self.sizes.append(tuple(x.shape[-2:]))
        return ctx[:, 0, 0][:, None, None, None].expand(x.shape).clone()


def cond(value: float, b: int = 1):
    return torch.full((b, 2, 4), value), torch.ones(b, 2, dtype=torch.bool)


def test_regions_are_denoised_in_their_own_window_and_blended_by_weight():
    net = PromptEcho()
    den = RegionDenoiser(net, make_schedule("cosine", 1000), "eps", cond=cond(1.0), regions=[(cond(5.0), (4, 12, 0, 8))],
                         guidance=1.0, region_weight=3.0, feather=2)
    out = den(torch.zeros(1, 3, 16, 16), 500)
    assert net.sizes == [(16, 16), (8, 8)]  # the whole picture, then the hero's window as a picture of its own
    assert torch.equal(out[..., :4, :], torch.ones_like(out[..., :4, :]))  # outside the box: background only
    assert torch.equal(out[..., :, 8:], torch.ones_like(out[..., :, 8:]))
    inner = out[0, 0, 8, 4].item()  # deep inside the window: (1·1 + 3·5) / (1 + 3)
    assert inner == pytest.approx(4.0)
    edge = out[0, 0, 4, 4].item()  # the window's edge pixel is feathered towards the background
    assert 1.0 < edge < inner


def test_guidance_applies_inside_each_region():
    net = PromptEcho()
    den = RegionDenoiser(net, make_schedule("cosine", 1000), "eps", cond=cond(1.0), uncond=cond(0.0),
                         regions=[(cond(2.0), (0, 8, 0, 8))], guidance=3.0, region_weight=1.0, feather=1)
    out = den(torch.zeros(1, 3, 8, 8), 10)
    assert torch.allclose(out, torch.full_like(out, (3.0 + 6.0) / 2))  # mean of guided bg (3·1) and region (3·2)


def test_scene_pictures_are_reproducible_and_differ_from_the_plain_prompt():
    pipe = TextToImage(tiny_checkpoint())
    kw = dict(steps=3, seeds=[4, 5])
    a = pipe.generate_scene(["a house", "a tree"], [("a cat", (0.5, 0.5, 1.0, 1.0))], **kw)
    b = pipe.generate_scene(["a house", "a tree"], [("a cat", (0.5, 0.5, 1.0, 1.0))], **kw)
    plain = pipe.generate(["a house", "a tree"], **kw)
    assert [np.asarray(i).tobytes() for i in a] == [np.asarray(i).tobytes() for i in b]
    assert a[0].size == plain[0].size == (16, 16)
    assert not np.array_equal(np.asarray(a[0]), np.asarray(plain[0]))
    tl, br = np.asarray(a[0])[:6, :6].astype(int), np.asarray(plain[0])[:6, :6].astype(int)
    assert np.abs(tl - br).mean() < np.abs(np.asarray(a[0])[10:, 10:].astype(int) - np.asarray(plain[0])[10:, 10:]).mean()


def test_boxes_snap_to_the_unets_grid_and_bad_ones_are_named():
    pipe = TextToImage(tiny_checkpoint())  # 16 px, one downsampling: multiples of 2
    assert pipe.region_box((0.0, 0.375, 0.625, 1.0)) == (6, 16, 0, 10)
    assert pipe.region_box((0.5, 0.5, 0.52, 0.52)) == (8, 10, 8, 10)  # at least one grid cell
    for bad in ((0.5, 0.5, 0.2, 1.0), (0, 0, 1.5, 1), (0, 0, 1)):
        with pytest.raises(BadInputError, match="region box"):
            pipe.region_box(bad)
    with pytest.raises(BadInputError, match="3 prompts for 2 pictures"):
        pipe.generate_scene(["a", "b"], [(["x", "y", "z"], (0, 0, 0.5, 0.5))], steps=2)


def test_a_region_seed_keeps_the_heros_noise_while_the_page_seed_varies_the_rest():
    pipe = TextToImage(tiny_checkpoint())
    box = (0.5, 0.5, 1.0, 1.0)
    y0, y1, x0, x1 = pipe.region_box(box)
    seen = []
    real_run = pipe._run

    def spy(den, smp, x_T, *a, **k):
        seen.append(x_T.clone())
        return real_run(den, smp, x_T, *a, **k)

    pipe._run = spy
    pages = pipe.generate_scene(["a house"] * 2, [("a cat", box)], steps=2, seeds=[4, 5], region_seeds=[9, 9])
    x_T = seen[0]
    assert torch.equal(x_T[0, :, y0:y1, x0:x1], x_T[1, :, y0:y1, x0:x1])  # the same hero noise on both pages
    assert torch.equal(x_T[0, :, y0:y1, x0:x1], pipe.noise([9])[0, :, y0:y1, x0:x1])
    assert not torch.equal(x_T[0, :, :y0], x_T[1, :, :y0])  # the rest of each page has its own noise
    assert np.asarray(pages[0]).tobytes() != np.asarray(pages[1]).tobytes()
    without = pipe.generate_scene(["a house"], [("a cat", box)], steps=2, seeds=[4], region_seeds=[None])
    assert np.asarray(without[0]).tobytes() == np.asarray(
        pipe.generate_scene(["a house"], [("a cat", box)], steps=2, seeds=[4])[0]).tobytes()
    with pytest.raises(BadInputError, match="1 region seeds for 2 pictures"):
        pipe.generate_scene(["a", "b"], [("x", box)], steps=2, region_seeds=[1])
