"""Editing on the same samplers: img2img (strength), inpainting (mask), interpolation (slerp / lerp).

Images are model-space tensors (B, C, H, W) in [−1, 1]. Masks are (B|1, 1, H, W): 1 = regenerate,
0 = keep. Inpainting pastes the known region, re-noised to the current level with fresh noise
(q_sample), back after every step, and the exact known pixels after the last one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from taleloom.diffusion.guidance import Condition
from taleloom.diffusion.sample import initial_noise, sample_loop
from taleloom.diffusion.samplers import CLEAN, Sampler
from taleloom.errors import BadInputError

Denoise = Callable[[torch.Tensor, int], torch.Tensor]


def img2img_start_index(steps: int, strength: float) -> int:
    """Index into the `steps`-point grid where img2img starts: strength 1 = all steps, 0.5 = the last half.

    At least one step always runs; strength·steps is rounded to the nearest integer.
    """
    if not 0.0 < strength <= 1.0:
        raise BadInputError(
            f"strength must be in (0, 1], got {strength}", "0.3 keeps the picture, 0.8 repaints most of it"
        )
    if steps <= 0:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    run = min(steps, max(1, round(strength * steps)))
    return steps - run


def img2img(
    denoiser: Denoise,
    sampler: Sampler,
    image_x0: torch.Tensor,
    strength: float,
    steps: int,
    generator: torch.Generator | None,
    progress: bool = False,
) -> torch.Tensor:
    """Noise `image_x0` to the level of the start step for `strength`, then denoise the rest of the grid."""
    start = img2img_start_index(steps, strength)
    sampler.set_timesteps(steps)
    t_start = int(sampler.timesteps[start])
    noise = initial_noise(tuple(image_x0.shape), generator, image_x0.device, image_x0.dtype)
    x = sampler.add_noise(image_x0, noise, t_start)
    return sample_loop(
        denoiser,
        sampler,
        tuple(image_x0.shape),
        steps,
        generator,
        x_T=x,
        start_index=start,
        progress=progress,
    )


def check_mask(image_x0: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Validate a (B|1, 1, H, W) mask against a (B, C, H, W) image; returns it in the image's dtype/device."""
    if image_x0.ndim != 4:
        raise BadInputError(f"image must be a (B, C, H, W) tensor, got shape {tuple(image_x0.shape)}")
    if mask.ndim == 2:
        mask = mask[None, None]
    elif mask.ndim == 3:
        mask = mask[:, None]
    img_hw, mask_hw = tuple(image_x0.shape[-2:]), tuple(mask.shape[-2:])
    if mask.ndim != 4 or mask_hw != img_hw:
        raise BadInputError(
            f"mask is {mask_hw[1]}x{mask_hw[0]} but the image is {img_hw[1]}x{img_hw[0]} (width x height)",
            "draw the mask on the same picture, or resize it to the image's size",
        )
    if mask.shape[1] != 1 or mask.shape[0] not in (1, image_x0.shape[0]):
        raise BadInputError(f"mask must have shape (B or 1, 1, H, W), got {tuple(mask.shape)}")
    mask = mask.to(device=image_x0.device, dtype=image_x0.dtype)
    if bool(((mask < 0) | (mask > 1)).any()):
        raise BadInputError("mask values must lie in [0, 1] (1 = regenerate, 0 = keep)")
    return mask


def inpaint(
    denoiser: Denoise,
    sampler: Sampler,
    image_x0: torch.Tensor,
    mask: torch.Tensor,
    steps: int,
    generator: torch.Generator | None,
    progress: bool = False,
) -> torch.Tensor:
    """Regenerate where mask = 1; keep where mask = 0 (exactly, in the returned image)."""
    mask = check_mask(image_x0, mask)

    def paste_known(x: torch.Tensor, t: int) -> torch.Tensor:
        if t == CLEAN:
            known = image_x0
        else:
            noise = initial_noise(tuple(x.shape), generator, x.device, x.dtype)
            known = sampler.add_noise(image_x0, noise, t)
        return mask * x + (1 - mask) * known

    shape = tuple(image_x0.shape)
    x_T = initial_noise(shape, generator, image_x0.device, image_x0.dtype) * sampler.init_noise_sigma
    return sample_loop(
        denoiser, sampler, shape, steps, generator, x_T=x_T, inpaint=paste_known, progress=progress
    )


def slerp(a: torch.Tensor, b: torch.Tensor, w: float) -> torch.Tensor:
    """Spherical interpolation per batch row (keeps Gaussian noise at its typical norm); lerp if parallel."""
    fa, fb = a.flatten(1).double(), b.flatten(1).double()
    cos = ((fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1))).clamp(-1, 1)
    theta = torch.acos(cos)[:, None]
    sin = torch.sin(theta)
    near = sin.abs() < 1e-6
    safe = torch.where(near, torch.ones_like(sin), sin)
    ca = torch.where(near, 1 - w, torch.sin((1 - w) * theta) / safe)
    cb = torch.where(near, torch.full_like(sin, w), torch.sin(w * theta) / safe)
    return (ca * fa + cb * fb).reshape(a.shape).to(a.dtype)


def lerp_condition(a: Condition, b: Condition, w: float) -> Condition:
    """Linear interpolation of two text conditions (tokens (B,L,D), mask (B,L)); the union of real tokens."""
    (ca, ma), (cb, mb) = a, b
    L = max(ca.shape[1], cb.shape[1])

    def pad(c: torch.Tensor, m: torch.Tensor) -> Condition:
        extra = L - c.shape[1]
        if extra:
            c = torch.cat([c, c.new_zeros(c.shape[0], extra, c.shape[2])], 1)
            m = torch.cat([m, m.new_zeros(m.shape[0], extra)], 1)
        return c, m

    (ca, ma), (cb, mb) = pad(ca, ma), pad(cb, mb)
    return torch.lerp(ca, cb, w), ma | mb


def interpolate(
    denoiser_for: Callable[[Condition], Denoise],
    sampler: Sampler,
    noise_a: torch.Tensor,
    noise_b: torch.Tensor,
    cond_a: Condition,
    cond_b: Condition,
    weights: Sequence[float],
    steps: int,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> list[torch.Tensor]:
    """One image batch per weight w: x_T = slerp(noise_a, noise_b, w), text = lerp(cond_a, cond_b, w).

    `denoiser_for(cond)` builds the guided denoiser for a condition. Stochastic samplers replay the
    same generator state for every frame so only the interpolated inputs change between frames.
    """
    state = generator.get_state() if generator is not None else None
    frames = []
    for w in weights:
        if generator is not None:
            generator.set_state(state)
        x_T = slerp(noise_a, noise_b, float(w))
        den = denoiser_for(lerp_condition(cond_a, cond_b, float(w)))
        frames.append(
            sample_loop(den, sampler, tuple(x_T.shape), steps, generator, x_T=x_T, progress=progress)
        )
    return frames
