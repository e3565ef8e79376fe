"""Noise schedules and the forward process against their closed forms."""

from __future__ import annotations

import pytest
import torch

from taleloom.diffusion.schedule import (
    SCHEDULES,
    eps_from_v,
    make_schedule,
    q_sample,
    snr,
    v_target,
    x0_from_eps,
)


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("t", [0, 100, 500, 999])
def test_q_sample_moments_match_closed_form(name, t):
    """x_t | x₀ ~ N(√ᾱ_t x₀, (1−ᾱ_t) I): sample mean and variance within 5 standard errors."""
    sched = make_schedule(name, 1000)
    n = 40_000
    x0 = torch.linspace(-1, 1, 5, dtype=torch.float64).repeat(n, 1)  # (n, 5): five different x₀ values
    torch.manual_seed(0)
    xt = q_sample(sched, x0, torch.full((n,), t))
    ac = float(sched.alphas_cumprod[t])
    mean, var = xt.mean(0), xt.var(0)
    exp_mean, exp_var = ac**0.5 * x0[0], 1 - ac
    assert torch.all((mean - exp_mean).abs() < 5 * (exp_var / n) ** 0.5), (mean, exp_mean)
    assert torch.all((var - exp_var).abs() < 5 * exp_var * (2 / n) ** 0.5), (var, exp_var)


def test_q_sample_with_given_noise_is_exact():
    sched = make_schedule("cosine", 1000)
    x0, noise, t = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2), torch.tensor([0, 10, 500, 999])
    ac = sched.alphas_cumprod[t].float()[:, None, None, None]
    torch.testing.assert_close(q_sample(sched, x0, t, noise), ac.sqrt() * x0 + (1 - ac).sqrt() * noise)


def test_unknown_schedule_lists_known_names():
    with pytest.raises(ValueError) as info:
        make_schedule("sigmoid", 1000)
    for known in SCHEDULES:
        assert known in str(info.value)
    assert "sigmoid" in str(info.value)


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("T", [50, 1000])
def test_snr_is_strictly_decreasing_and_alpha_bar_in_range(name, T):
    sched = make_schedule(name, T)
    ac = sched.alphas_cumprod
    assert torch.all((ac > 0) & (ac < 1))
    s = snr(sched, torch.arange(T))
    assert torch.all(s[1:] < s[:-1])
    assert s[0] > 100 and s[-1] < 1e-2  # starts almost clean, ends almost pure noise


def test_v_and_eps_conversions_round_trip():
    sched = make_schedule("linear", 1000)
    x0, eps = torch.randn(6, 3, 4, 4, dtype=torch.float64), torch.randn(6, 3, 4, 4, dtype=torch.float64)
    t = torch.tensor([0, 1, 200, 500, 800, 999])
    xt = q_sample(sched, x0, t, eps)
    torch.testing.assert_close(eps_from_v(sched, xt, v_target(sched, x0, eps, t), t), eps)
    torch.testing.assert_close(x0_from_eps(sched, xt, eps, t), x0)
