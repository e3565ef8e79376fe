"""Noise schedules as small pure functions chosen by name, plus the forward process q(x_t | x_0).

Discrete time: t ∈ {0, …, T-1}; x_t = √ᾱ_t · x_0 + √(1-ᾱ_t) · ε.  Derived tensors are computed
once in `Schedule` (float64 for accuracy, cast at use).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from taleloom.errors import choice_error


def linear_beta_schedule(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al. 2020 (DDPM) linear betas, rescaled so any `timesteps` spans the same noise range as 1000."""
    scale = 1000 / timesteps
    return torch.linspace(beta_start * scale, beta_end * scale, timesteps, dtype=torch.float64)


def cosine_beta_schedule(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal 2021, 'Improved DDPM': ᾱ(t) = cos²(((t/T)+s)/(1+s) · π/2), betas clipped at 0.999."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    alphas_cumprod = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - alphas_cumprod[1:] / alphas_cumprod[:-1]
    return betas.clamp(0, 0.999)


SCHEDULES = {"linear": linear_beta_schedule, "cosine": cosine_beta_schedule}


@dataclass(frozen=True)
class Schedule:
    """All per-timestep coefficients of one schedule (length T tensors, float64)."""

    name: str
    betas: torch.Tensor

    @property
    def num_timesteps(self) -> int:
        return self.betas.shape[0]

    @property
    def alphas_cumprod(self) -> torch.Tensor:  # ᾱ_t
        return torch.cumprod(1.0 - self.betas, dim=0)

    def coefficients(self, t: torch.Tensor, dtype=torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(√ᾱ_t, √(1-ᾱ_t)) for integer timesteps `t` (any shape)."""
        ac = self._ac.to(device=device if device is not None else t.device)[t.long()]
        return ac.sqrt().to(dtype), (1 - ac).sqrt().to(dtype)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ac", self.alphas_cumprod)


def make_schedule(name: str, timesteps: int = 1000) -> Schedule:
    """Build a schedule by name ('linear' or 'cosine'); unknown names raise ValueError listing the known ones."""
    if name not in SCHEDULES:
        raise choice_error("noise schedule", name, list(SCHEDULES))  # a ValueError, hint lists the known ones
    if timesteps < 2:
        raise ValueError(f"timesteps must be at least 2, got {timesteps}")
    return Schedule(name, SCHEDULES[name](timesteps))


def _expand(coef: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return coef.reshape(coef.shape + (1,) * (x.ndim - coef.ndim))


def q_sample(schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Sample x_t ~ q(x_t | x_0) = N(√ᾱ_t x_0, (1-ᾱ_t) I). `t` has shape (B,)."""
    if noise is None:
        noise = torch.randn_like(x0)
    a, s = schedule.coefficients(t, dtype=x0.dtype, device=x0.device)
    return _expand(a, x0) * x0 + _expand(s, x0) * noise


def snr(schedule: Schedule, t: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ᾱ_t / (1-ᾱ_t) at integer timesteps `t` (float32)."""
    a, s = schedule.coefficients(t, dtype=torch.float64)
    return (a**2 / s**2).float()


def log_snr(schedule: Schedule, t: torch.Tensor) -> torch.Tensor:
    return snr(schedule, t).log()


def v_target(schedule: Schedule, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """v = √ᾱ_t ε − √(1-ᾱ_t) x_0 (Salimans & Ho 2022, progressive distillation)."""
    a, s = schedule.coefficients(t, dtype=x0.dtype, device=x0.device)
    return _expand(a, x0) * noise - _expand(s, x0) * x0


def eps_from_v(schedule: Schedule, x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    a, s = schedule.coefficients(t, dtype=x_t.dtype, device=x_t.device)
    return _expand(a, x_t) * v + _expand(s, x_t) * x_t


def x0_from_eps(schedule: Schedule, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    a, s = schedule.coefficients(t, dtype=x_t.dtype, device=x_t.device)
    return (x_t - _expand(s, x_t) * eps) / _expand(a, x_t)
