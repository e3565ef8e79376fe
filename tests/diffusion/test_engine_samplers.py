"""Samplers, guidance and editing checked against exact answers.

The data is a 2-D, three-component Gaussian mixture whose optimal ε-predictor E[ε | x_t] is known in
closed form (taleloom.diffusion.analytic): a perfectly trained network. Whatever distance remains
between a sampler's output and the mixture is the sampler's own error.
"""

from __future__ import annotations

import pytest
import torch

from taleloom.diffusion.analytic import default_mixture, moment_errors
from taleloom.diffusion.edit import (
    img2img,
    img2img_start_index,
    inpaint,
    interpolate,
    lerp_condition,
    slerp,
)
from taleloom.diffusion.guidance import Denoiser
from taleloom.diffusion.sample import sample_loop
from taleloom.diffusion.samplers import SAMPLERS, make_sampler
from taleloom.diffusion.schedule import make_schedule
from taleloom.errors import BadInputError

N = 4000  # points per distribution check
# Tolerances for N points: the sampling noise of N exact samples alone reaches about half of these
# (mean ≈ 0.02, weights ≈ 0.02, cov ≈ 0.01 at worst over seeds); a biased sampler overshoots them.
TOL = {"mean": 0.04, "cov": 0.03, "weights": 0.04}
COND = (torch.zeros(1, 1, 4), torch.ones(1, 1, dtype=torch.bool))  # the analytic model ignores text


@pytest.fixture(scope="module")
def gmm():
    return default_mixture()


@pytest.fixture(scope="module", params=["linear", "cosine"])
def schedule(request):
    return make_schedule(request.param, 1000)


def exact_denoiser(gmm, schedule, prediction_type="eps"):
    return Denoiser(gmm.model_fn(schedule, prediction_type), schedule, prediction_type, cond=COND)


def run(denoiser, schedule, name, steps, seed=0, n=N, **kw):
    g = torch.Generator().manual_seed(seed)
    return sample_loop(denoiser, make_sampler(name, schedule, **kw), (n, 2), steps, g, dtype=torch.float64)


# --- distribution checks --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,steps,kw",
    [
        ("ddpm", 200, {}),
        ("ddim", 100, {}),
        ("ddim", 100, {"eta": 1.0}),
        ("dpmpp_2m", 25, {}),
        ("dpmpp_2m", 20, {"spacing": "logsnr"}),
    ],
    ids=["ddpm-200", "ddim-100", "ddim-eta1-100", "dpmpp_2m-25", "dpmpp_2m-logsnr-20"],
)
def test_sampler_matches_true_mixture(gmm, schedule, name, steps, kw):
    x = run(exact_denoiser(gmm, schedule), schedule, name, steps, **kw)
    assert torch.isfinite(x).all()
    errs = moment_errors(x, gmm)
    for key, tol in TOL.items():
        assert errs[key] < tol, (name, schedule.name, errs)


def test_distribution_check_catches_a_biased_sampler(gmm):
    """The check has power: ε under-predicted by 10% (a slightly wrong model) fails it."""
    sched = make_schedule("cosine", 1000)
    den = exact_denoiser(gmm, sched)
    x = run(lambda x, t: 0.9 * den(x, t), sched, "ddim", 100)
    errs = moment_errors(x, gmm)
    assert any(errs[k] >= TOL[k] for k in TOL), errs


def test_ode_samplers_converge_at_their_order(gmm):
    """Same x_T: DDIM's error vs a 500-step solution halves per doubling, DPM-Solver++(2M)'s quarters."""
    sched = make_schedule("cosine", 1000)
    den = exact_denoiser(gmm, sched)
    x_T = torch.randn(200, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def solve(name, steps):
        return sample_loop(den, make_sampler(name, sched), (200, 2), steps, None, x_T=x_T)

    ref = solve("dpmpp_2m", 500)
    err = {
        (nm, s): float((solve(nm, s) - ref).norm(dim=1).mean())
        for nm in ("ddim", "dpmpp_2m")
        for s in (40, 80)
    }
    assert 1.7 < err["ddim", 40] / err["ddim", 80] < 2.3, err
    assert err["dpmpp_2m", 40] / err["dpmpp_2m", 80] > 3.0, err
    assert err["dpmpp_2m", 80] < err["ddim", 80] / 3, err


# --- determinism ----------------------------------------------------------------------------------
def test_ddim_eta0_is_deterministic_given_x_T(gmm, schedule):
    den = exact_denoiser(gmm, schedule)
    x_T = torch.randn(64, 2, dtype=torch.float64)
    a = sample_loop(
        den, make_sampler("ddim", schedule), (64, 2), 20, torch.Generator().manual_seed(1), x_T=x_T
    )
    b = sample_loop(
        den, make_sampler("ddim", schedule), (64, 2), 20, torch.Generator().manual_seed(2), x_T=x_T
    )
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_same_seed_bit_identical_different_seed_differs(gmm, name):
    sched = make_schedule("linear", 1000)
    den = exact_denoiser(gmm, sched)
    sampler = make_sampler(name, sched)  # reused: multistep state must reset in set_timesteps
    a = sample_loop(den, sampler, (64, 2), 10, torch.Generator().manual_seed(7), dtype=torch.float64)
    b = sample_loop(den, sampler, (64, 2), 10, torch.Generator().manual_seed(7), dtype=torch.float64)
    c = sample_loop(den, sampler, (64, 2), 10, torch.Generator().manual_seed(8), dtype=torch.float64)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_ddim_eta1_equals_ddpm(gmm):
    sched = make_schedule("cosine", 1000)
    den = exact_denoiser(gmm, sched)
    a = run(den, sched, "ddpm", 30, seed=5, n=256)
    b = run(den, sched, "ddim", 30, seed=5, n=256, eta=1.0)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


# --- the contract -----------------------------------------------------------------------------------
def test_timesteps_trailing_descending():
    sched = make_schedule("linear", 1000)
    s = make_sampler("dpmpp_2m", sched)
    s.set_timesteps(20)
    assert s.timesteps.dtype == torch.long and len(s.timesteps) == 20
    assert s.timesteps[0] == 999 and s.timesteps[-1] == 49
    assert torch.all(s.timesteps[1:] < s.timesteps[:-1])
    s.set_timesteps(1000)
    assert torch.equal(s.timesteps, torch.arange(999, -1, -1))


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_timesteps_logsnr_strictly_descending_to_zero(name):
    s = make_sampler("ddim", make_schedule(name, 1000), spacing="logsnr")
    for n in (1, 2, 7, 20, 100, 1000):
        s.set_timesteps(n)
        ts = s.timesteps
        assert len(ts) == n and ts[0] == 999 and torch.all(ts[1:] < ts[:-1])
        assert n == 1 or ts[-1] == 0


def test_bad_sampler_names_and_steps():
    sched = make_schedule("linear", 1000)
    with pytest.raises(ValueError) as info:
        make_sampler("euler", sched)
    assert all(name in str(info.value) for name in SAMPLERS)
    for bad in (0, -3, 1001):
        with pytest.raises(ValueError, match="steps"):
            make_sampler("ddim", sched).set_timesteps(bad)
    with pytest.raises(ValueError, match="eta"):
        make_sampler("ddim", sched, eta=-0.5)
    with pytest.raises(ValueError, match="logsnr"):
        make_sampler("ddpm", sched, spacing="bogus")


def test_sample_loop_checks_and_callback(gmm):
    sched = make_schedule("linear", 1000)
    den = exact_denoiser(gmm, sched)
    seen = []
    sample_loop(
        den, make_sampler("ddim", sched), (8, 2), 5, None, callback=lambda i, n, x: seen.append((i, n))
    )
    assert seen == [(i, 5) for i in range(5)]
    with pytest.raises(ValueError, match="shape"):
        sample_loop(den, make_sampler("ddim", sched), (8, 2), 5, None, x_T=torch.zeros(4, 2))
    with pytest.raises(ValueError, match="start_index"):
        sample_loop(den, make_sampler("ddim", sched), (8, 2), 5, None, start_index=5)


# --- guidance -------------------------------------------------------------------------------------
class TextToyModel:
    """A fake network whose output depends on the text: x·0.5 + mean of the real tokens. Counts calls."""

    def __init__(self):
        self.batches = []

    def __call__(self, x, t, ctx, mask, cond_image=None):
        self.batches.append(x.shape[0])
        m = mask[..., None].to(ctx.dtype)
        tok = (ctx * m).sum((1, 2)) / (m.sum((1, 2)) * ctx.shape[2]).clamp(min=1)  # (B,)
        out = 0.5 * x + tok[:, None, None, None]
        return out + cond_image if cond_image is not None else out


def _cond(value, length=3, batch=1):
    return torch.full((batch, length, 4), float(value)), torch.ones(batch, length, dtype=torch.bool)


def test_cfg_arithmetic_and_single_batched_forward():
    sched = make_schedule("linear", 1000)
    x = torch.randn(2, 1, 2, 2)
    cond, uncond = _cond(1.0), _cond(-2.0, length=5)  # different token lengths are padded
    eps_c = Denoiser(TextToyModel(), sched, cond=cond)(x, 500)
    eps_u = Denoiser(TextToyModel(), sched, cond=uncond)(x, 500)
    torch.testing.assert_close(
        Denoiser(TextToyModel(), sched, cond=cond, uncond=uncond, guidance=1.0)(x, 500), eps_c
    )
    torch.testing.assert_close(
        Denoiser(TextToyModel(), sched, cond=cond, uncond=uncond, guidance=0.0)(x, 500), eps_u
    )
    model = TextToyModel()
    guided = Denoiser(model, sched, cond=cond, uncond=uncond, guidance=4.0)(x, 500)
    torch.testing.assert_close(guided, eps_u + 4.0 * (eps_c - eps_u))
    assert model.batches == [4]  # cond and uncond for both images in one forward


def test_negative_prompt_replaces_null_condition():
    sched = make_schedule("linear", 1000)
    x = torch.zeros(1, 1, 1, 1)
    null, negative, cond = _cond(0.0), _cond(-1.0), _cond(1.0)
    plain = Denoiser(TextToyModel(), sched, cond=cond, uncond=null, guidance=3.0)(x, 10)
    neg = Denoiser(TextToyModel(), sched, cond=cond, uncond=negative, guidance=3.0)(x, 10)
    assert float(plain) == pytest.approx(3.0) and float(neg) == pytest.approx(5.0)  # pushed further from it


def test_cond_image_goes_to_both_halves():
    sched = make_schedule("linear", 1000)
    x, ci = torch.zeros(2, 1, 2, 2), torch.ones(1, 1, 2, 2)
    out = Denoiser(TextToyModel(), sched, cond=_cond(1.0), uncond=_cond(0.0), guidance=2.0, cond_image=ci)(
        x, 3
    )
    torch.testing.assert_close(out, torch.full_like(x, 3.0))  # (0+1) + 2·((1+1) − (0+1))


def test_bad_guidance_and_prediction_type():
    sched = make_schedule("linear", 1000)
    with pytest.raises(ValueError, match="guidance"):
        Denoiser(TextToyModel(), sched, cond=_cond(1), uncond=_cond(0), guidance=-1.0)
    with pytest.raises(ValueError, match="uncond"):
        Denoiser(TextToyModel(), sched, cond=_cond(1), guidance=2.0)
    with pytest.raises(ValueError, match="prediction"):
        Denoiser(TextToyModel(), sched, prediction_type="x0", cond=_cond(1))


def test_v_prediction_converts_to_the_same_eps(gmm, schedule):
    x = torch.randn(300, 2, dtype=torch.float64)
    den_eps, den_v = exact_denoiser(gmm, schedule, "eps"), exact_denoiser(gmm, schedule, "v")
    for t in (0, 1, 250, 700, 999):
        torch.testing.assert_close(den_v(x, t), den_eps(x, t), rtol=0, atol=1e-9)
    a = run(den_eps, schedule, "dpmpp_2m", 15, n=300)
    b = run(den_v, schedule, "dpmpp_2m", 15, n=300)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-8)


# --- editing --------------------------------------------------------------------------------------
def test_img2img_strength_to_start_index():
    assert img2img_start_index(20, 1.0) == 0
    assert img2img_start_index(20, 0.5) == 10
    assert img2img_start_index(20, 0.3) == 14
    assert img2img_start_index(10, 0.01) == 9  # at least one step runs
    for bad in (0.0, -0.2, 1.5):
        with pytest.raises(BadInputError, match="strength"):
            img2img_start_index(20, bad)


def test_img2img_runs_the_remaining_steps_and_preserves_the_data_distribution(gmm):
    """Re-noising true data to level t, then reversing exactly, gives the true distribution back."""
    sched = make_schedule("cosine", 1000)
    den = exact_denoiser(gmm, sched)
    calls = []
    counting = lambda x, t: calls.append(t) or den(x, t)  # noqa: E731
    x0, _ = gmm.sample(N, torch.Generator().manual_seed(11))
    out = img2img(counting, make_sampler("ddpm", sched), x0, 0.5, 100, torch.Generator().manual_seed(0))
    assert len(calls) == 50 and calls[0] == 499
    errs = moment_errors(out, gmm)
    assert all(errs[k] < TOL[k] for k in TOL), errs
    small = img2img(den, make_sampler("ddim", sched), x0, 0.05, 100, torch.Generator().manual_seed(0))
    assert (small - x0).norm(dim=1).median() < 0.1  # low strength keeps the picture


def test_inpaint_keeps_the_known_region_exactly(gmm):
    """Images of shape (B, 1, 1, 2): keep the first coordinate, regenerate the second."""
    sched = make_schedule("linear", 1000)
    den = exact_denoiser(gmm, sched)
    x0, _ = gmm.sample(512, torch.Generator().manual_seed(4))
    image = x0.reshape(512, 1, 1, 2)
    mask = torch.tensor([0.0, 1.0]).reshape(1, 1, 1, 2)
    seen = []

    def spy(x, t):  # after each step the known pixel should sit at the current noise level
        seen.append(float(x[:, 0, 0, 0].var()))
        return den(x, t)

    for name in sorted(SAMPLERS):
        seen.clear()
        out = inpaint(spy, make_sampler(name, sched), image, mask, 20, torch.Generator().manual_seed(0))
        assert torch.equal(out[..., 0], image[..., 0])
        assert torch.isfinite(out).all() and not torch.allclose(out[..., 1], image[..., 1])
        assert seen[0] > 0.9 and seen[-1] < 0.5  # noise at the start, close to the data at the end
    a = inpaint(den, make_sampler("ddpm", sched), image, mask, 10, torch.Generator().manual_seed(3))
    b = inpaint(den, make_sampler("ddpm", sched), image, mask, 10, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_inpaint_mask_of_another_size_is_refused(gmm):
    sched = make_schedule("linear", 1000)
    image = torch.zeros(1, 3, 8, 8)
    with pytest.raises(BadInputError) as info:
        inpaint(
            exact_denoiser(gmm, sched), make_sampler("ddim", sched), image, torch.ones(1, 1, 8, 6), 5, None
        )
    assert "6x8" in str(info.value) and "8x8" in str(info.value)
    with pytest.raises(BadInputError, match=r"\[0, 1\]"):
        inpaint(
            exact_denoiser(gmm, sched),
            make_sampler("ddim", sched),
            image,
            2 * torch.ones(1, 1, 8, 8),
            5,
            None,
        )


def test_slerp_and_lerp_condition():
    a, b = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    u, v = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    mid = slerp(u, v, 0.5)
    torch.testing.assert_close(mid.norm(dim=1), torch.ones(1))  # stays on the sphere, unlike lerp
    torch.testing.assert_close(slerp(u, u, 0.3), u)  # parallel: falls back to lerp
    ctx, mask = lerp_condition(_cond(0.0, length=2), _cond(2.0, length=3), 0.25)
    assert ctx.shape == (1, 3, 4) and mask.all()
    torch.testing.assert_close(ctx[0, 0], torch.full((4,), 0.5))


def test_interpolate_endpoints_match_plain_sampling():
    sched = make_schedule("linear", 1000)
    na, nb = torch.randn(2, 1, 2, 2, dtype=torch.float64), torch.randn(2, 1, 2, 2, dtype=torch.float64)
    ca, cb = _cond(0.0), _cond(1.0)

    def denoiser_for(cond):
        return Denoiser(TextToyModel(), sched, cond=cond)

    frames = interpolate(denoiser_for, make_sampler("ddim", sched), na, nb, ca, cb, [0.0, 0.5, 1.0], 8)
    assert len(frames) == 3
    for frame, noise, cond in ((frames[0], na, ca), (frames[2], nb, cb)):
        plain = sample_loop(denoiser_for(cond), make_sampler("ddim", sched), noise.shape, 8, None, x_T=noise)
        torch.testing.assert_close(frame, plain)
