"""The graded timestep spacings ("logsnr", "karras") and DPM-Solver++ on them, checked exactly.

For a single Gaussian x₀ ~ N(μ, Σ) the optimal denoiser is affine in x_t, so every deterministic
sampler step is affine and the whole sampler is x_T ↦ M x_T + c. Running it on x_T = 0, e₁, e₂ gives
c and M; with x_T ~ N(0, I) the output has mean c and covariance M Mᵀ *exactly* — no sampling noise,
so the tolerances below can be tight and a sampler that is 20 % off fails by a wide margin.
"""

from __future__ import annotations

import pytest
import torch

from taleloom.diffusion.analytic import GaussianMixture, default_mixture, moment_errors
from taleloom.diffusion.guidance import Denoiser
from taleloom.diffusion.sample import sample_loop
from taleloom.diffusion.samplers import (
    CLEAN,
    SIGMA_HI,
    SPACINGS,
    karras_timesteps,
    logsnr_timesteps,
    make_sampler,
)
from taleloom.diffusion.schedule import make_schedule

COND = (torch.zeros(1, 1, 4), torch.ones(1, 1, dtype=torch.bool))
GRIDS = {"logsnr": logsnr_timesteps, "karras": karras_timesteps}
# the tightest component of the benchmark mixture (std 0.09 along y): the hardest case for the last steps
MU = torch.tensor([0.05, 0.6], dtype=torch.float64)
SIGMA = torch.tensor([[0.04, 0.0], [0.0, 0.008]], dtype=torch.float64)


def _sigma(ac: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return ((1 - ac[t]) / ac[t]).sqrt()


@pytest.mark.parametrize("spacing", sorted(GRIDS))
@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
def test_graded_grid_is_monotone_from_the_top_to_zero_noise(spacing, schedule_name):
    sched = make_schedule(schedule_name, 1000)
    ac = sched.alphas_cumprod
    s = make_sampler("dpmpp_2m", sched, spacing=spacing)
    for n in (1, 2, 3, 7, 20, 50, 1000):
        s.set_timesteps(n)
        ts = s.timesteps
        assert torch.equal(ts, GRIDS[spacing](ac, n))
        assert ts.dtype == torch.long and len(ts) == n
        assert ts[0] == 999  # starts at pure noise, where x_T ~ N(0, I) lives
        assert torch.all(ts[1:] < ts[:-1])  # strictly descending in t …
        assert torch.all(_sigma(ac, ts[1:]) < _sigma(ac, ts[:-1]))  # … and in noise level
        if n >= 2:
            assert ts[-1] == 0  # the smallest noise level the schedule has
            assert n == 1000 or _sigma(ac, ts[1]) <= SIGMA_HI * 1.05  # graded part starts at σ/α ≈ 10
        # and the step after the last one lands on clean data: ᾱ = 1, zero noise
        assert s.prev_timestep(ts[-1]) == CLEAN and s.alpha_bar(CLEAN) == 1.0
    if spacing == "karras":  # eq. 5 of Karras et al.: σ^(1/ρ) evenly spaced (up to rounding to integer t)
        s.set_timesteps(50)
        root = _sigma(ac, s.timesteps[1:]) ** (1 / 7)
        gaps = root[:-1] - root[1:]
        assert float(gaps[:-8].std() / gaps[:-8].mean()) < 0.1  # rounding only bites in the last few


def test_unknown_spacing_is_a_clear_value_error():
    sched = make_schedule("linear", 1000)
    with pytest.raises(ValueError) as info:
        make_sampler("dpmpp_2m", sched, spacing="uniform-ish")
    assert all(name in str(info.value) for name in SPACINGS)


def _exact_moments(name: str, schedule_name: str, steps: int, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the sampler's output for x_T ~ N(0, I) on N(MU, SIGMA), exactly."""
    sched = make_schedule(schedule_name, 1000)
    gauss = GaussianMixture([1.0], [MU.tolist()], [SIGMA.tolist()])
    den = Denoiser(gauss.model_fn(sched), sched, cond=COND)
    x_T = torch.cat([torch.zeros(1, 2), torch.eye(2)]).to(torch.float64)
    y = sample_loop(den, make_sampler(name, sched, **kw), (3, 2), steps, None, x_T=x_T)
    c, M = y[0], (y[1:] - y[0]).T
    return c, M @ M.T


@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
@pytest.mark.parametrize(
    "name,spacing,cov_tol",
    [("dpmpp_2m", "logsnr", 0.03), ("dpmpp_2m", "karras", 0.08), ("dpmpp_3m", "logsnr", 0.015),
     ("dpmpp_3m", "karras", 0.015)],
)  # fmt: skip
def test_dpmpp_at_20_steps_matches_the_true_gaussian(schedule_name, name, spacing, cov_tol):
    """Measured: 2M ≈ 1.2–1.8 % (logsnr) / 4–5 % (karras) relative covariance error, 3M < 1 %."""
    mean, cov = _exact_moments(name, schedule_name, 20, spacing=spacing)
    assert float((mean - MU).norm()) < 2e-3
    assert float((cov - SIGMA).norm() / SIGMA.norm()) < cov_tol


@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
def test_the_gaussian_check_catches_the_trailing_grid(schedule_name):
    """Power: the trailing grid stops at t = 49 and jumps to x̂₀, shrinking Σ by 20–60 %; DDIM is 1st order."""
    _, cov = _exact_moments("dpmpp_2m", schedule_name, 20)
    assert float((cov - SIGMA).norm() / SIGMA.norm()) > 0.15
    _, cov = _exact_moments("ddim", schedule_name, 20, spacing="logsnr")
    assert float((cov - SIGMA).norm() / SIGMA.norm()) > 0.15


def test_dpmpp_3m_on_the_mixture_and_its_order():
    """3M on the mixture matches its moments at 20 steps, and converges faster than 2M on the same grid."""
    gmm = default_mixture()
    sched = make_schedule("cosine", 1000)
    den = Denoiser(gmm.model_fn(sched), sched, cond=COND)
    x_T = torch.randn(4000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def solve(name, steps):
        return sample_loop(den, make_sampler(name, sched, spacing="logsnr"), x_T.shape, steps, None, x_T=x_T)

    x = solve("dpmpp_3m", 20)
    errs = moment_errors(x, gmm)
    assert errs["mean"] < 0.04 and errs["cov"] < 0.03 and errs["weights"] < 0.04, errs
    ref = solve("dpmpp_3m", 200)
    rms = {nm: float((solve(nm, 20) - ref).pow(2).sum(1).mean().sqrt()) for nm in ("dpmpp_2m", "dpmpp_3m")}
    assert rms["dpmpp_3m"] < rms["dpmpp_2m"] / 2, rms  # measured ≈ 0.008 vs 0.022


def test_dpmpp_3m_uses_only_history_from_the_preceding_grid_points():
    """Jumping ahead on the grid (img2img-style) must not extrapolate from x̂₀'s of other grid points."""
    gmm = default_mixture()
    sched = make_schedule("linear", 1000)
    den = Denoiser(gmm.model_fn(sched), sched, cond=COND)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    s = make_sampler("dpmpp_3m", sched, spacing="karras")
    s.set_timesteps(20)
    for t in s.timesteps[:3].tolist():  # leaves x̂₀ history at grid points 1 and 2
        s.step(den(x, t), t, x)
    t8 = int(s.timesteps[8])
    fresh = make_sampler("dpmpp_3m", sched, spacing="karras")
    fresh.set_timesteps(20)
    assert torch.equal(s.step(den(x, t8), t8, x), fresh.step(den(x, t8), t8, x))  # first order, no history
