"""The denoising loop, written out: noise → (denoiser, sampler.step) × steps → x₀.

Editing reuses it: img2img starts at `start_index` from a re-noised image, inpainting passes a hook
that pastes the re-noised known region back after every step (see edit.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from taleloom import deadline
from taleloom.diffusion.samplers import Sampler

# inpaint(x, t) -> x: called with the sample at noise level t (before the first step and after each;
# t = −1 after the last step, i.e. clean data)
InpaintHook = Callable[[torch.Tensor, int], torch.Tensor]
# callback(i, n, x): after step i of n (for progress events in the server)
StepCallback = Callable[[int, int, torch.Tensor], None]


def initial_noise(
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """x_T ~ N(0, I), drawn on the generator's device so a seed gives the same noise everywhere."""
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device or gen_device)


@torch.no_grad()
def sample_loop(
    denoiser: Callable[[torch.Tensor, int], torch.Tensor],
    sampler: Sampler,
    shape: tuple[int, ...],
    steps: int,
    generator: torch.Generator | None,
    x_T: torch.Tensor | None = None,
    start_index: int = 0,
    inpaint: InpaintHook | None = None,
    progress: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Run `sampler` for `steps` evaluations of `denoiser` from x_T (drawn from `generator` if None).

    `start_index` skips the first grid points: x_T must then already be at level
    `sampler.timesteps[start_index]` (img2img). Same seed → identical output on the same device.
    """
    sampler.set_timesteps(steps)
    timesteps = sampler.timesteps[start_index:]
    if len(timesteps) == 0:
        raise ValueError(f"start_index {start_index} leaves no steps out of {steps}")
    if x_T is None:
        x = initial_noise(tuple(shape), generator, device, dtype) * sampler.init_noise_sigma
    else:
        if tuple(x_T.shape) != tuple(shape):
            raise ValueError(f"x_T has shape {tuple(x_T.shape)} but shape {tuple(shape)} was asked for")
        x = x_T
    if inpaint is not None:
        x = inpaint(x, int(timesteps[0]))
    n = len(timesteps)
    for i, t in enumerate(tqdm(timesteps.tolist(), desc=f"sampling ({sampler.name})", disable=not progress)):
        deadline.check()  # an abandoned single-step request stops here (a no-op for books and training)
        eps = denoiser(x, t)
        x = sampler.step(eps, t, x, generator=generator)
        if inpaint is not None:
            x = inpaint(x, sampler.prev_timestep(t))
        if callback is not None:
            callback(i, n, x)
    return x
