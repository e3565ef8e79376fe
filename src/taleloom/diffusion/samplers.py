"""Samplers with one contract: `set_timesteps(n)`, `.timesteps`, `step(eps, t, sample, generator) -> prev`.

Every sampler consumes an ε-prediction at integer timestep `t` and returns the sample at the next
(less noisy) timestep of its grid; the last step lands on clean data (ᾱ = 1). Coefficients are
computed in float64 from the schedule and applied as Python floats, so float32 images stay float32.

Timestep spacing (`spacing=`):
- "trailing" (default; Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are
  Flawed", Table 2): t_i = round(T − i·T/n) − 1 for i = 0…n−1, evenly spaced over the schedule's T.
  Every grid starts at the noisiest step T−1 (the level training saw for pure noise), n = T gives
  T−1, …, 0, and n = 20 ends at t = 49 before the jump to clean data.
- "logsnr": t = T−1 first (pure noise), then n−1 points uniform in λ = log(α/σ) from
  λ = −log(SIGMA_HI) (VE noise level σ/α = 10) down to t = 0, rounded to integer timesteps (the
  spacing Lu et al. 2022 recommend for DPM-Solver in pixel space). Above σ/α ≈ 10 the data prediction
  x̂₀ is constant to O(σ_data²/σ²), so the exponential-integrator step from T−1 is exact there; spending
  grid points at higher noise only starves the region where x̂₀ changes (σ/α ∈ [0.05, 2]). Without the
  clip, the cosine schedule's clipped last β (ᾱ_{T−1} ≈ 1e−8, λ ≈ −9.9) put 8 of 20 points at t ≥ 991
  (Lu et al. likewise truncate the cosine schedule's λ range; diffusers: lambda_min_clipped).
- "karras": t = T−1 first, then n−1 points at the EDM noise levels of Karras et al. 2022 (eq. 5,
  ρ = 7) from σ/α = SIGMA_HI down to the schedule's smallest, σ_0/α_0, rounded to integer timesteps.
  (EDM's own σ_max = 80 puts 8 of 20 points above σ/α = 10 and is 2.6x less accurate at 20 steps on
  the benchmark's mixture, by sliced W2 against a 1000-step solution from the same noise.)
Both reach t = 0 for any n ≥ 2, so the final jump to clean data (x̂₀ at σ_0, 0.6–1 % noise) is tiny;
see benchmarks/sampler_accuracy.py for what each buys. Rounding can repeat a timestep where the target
levels are dense (near t = 0); repeats are pushed apart by one so the grid stays strictly descending.
"""

from __future__ import annotations

import math
import operator

import torch

from taleloom.diffusion.schedule import Schedule
from taleloom.errors import choice_error

CLEAN = -1  # pseudo-timestep of clean data: ᾱ = 1


SPACINGS = ("trailing", "logsnr", "karras")
SIGMA_HI = 10.0  # largest noise level σ/α of the graded part of the "logsnr" / "karras" grids
KARRAS_RHO = 7.0


def _check_steps(num_steps: int, T: int) -> int:
    try:
        n = operator.index(num_steps)
    except TypeError:
        raise ValueError(f"steps must be a positive integer, got {num_steps!r}") from None
    if n <= 0:
        raise ValueError(f"steps must be a positive integer, got {n}")
    if n > T:
        raise ValueError(f"steps must be at most the schedule's {T} timesteps, got {n}")
    return n


def trailing_timesteps(num_train_timesteps: int, num_steps: int) -> torch.Tensor:
    """Descending LongTensor of `num_steps` timesteps, trailing spacing over [0, T)."""
    T = num_train_timesteps
    n = _check_steps(num_steps, T)
    grid = T - torch.arange(n, dtype=torch.float64) * (T / n)
    return (grid.round() - 1).long()


def _ve_sigmas(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """σ_t/α_t = √((1−ᾱ_t)/ᾱ_t) (float64, increasing in t): the noise level of x_t/α_t."""
    ac = alphas_cumprod.to(torch.float64)
    return (torch.log1p(-ac) - ac.log()).mul(0.5).exp()


def _snap_to_grid(log_sigma: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Grid [T−1, nearest t (in log σ) to each target…], strictly descending (repeats pushed apart)."""
    T = log_sigma.shape[0]
    t = [T - 1] + (log_sigma[None, :] - targets.log()[:, None]).abs().argmin(dim=1).tolist()
    n = len(t)
    for i in range(n - 2, -1, -1):  # from the clean end: strictly above the next one
        t[i] = max(t[i], t[i + 1] + 1)
    for i in range(n):  # from the noisy end: at most T−1−i
        t[i] = min(t[i], T - 1 - i)
    return torch.tensor(t, dtype=torch.long)


def _graded_timesteps(alphas_cumprod: torch.Tensor, num_steps: int, rho: float | None) -> torch.Tensor:
    T = alphas_cumprod.shape[0]
    n = _check_steps(num_steps, T)
    sig = _ve_sigmas(alphas_cumprod)
    if n == 1:
        return torch.tensor([T - 1], dtype=torch.long)
    hi, lo = min(SIGMA_HI, float(sig[-2])), float(sig[0])
    # n = 2: the one graded point is t = 0 (the grid always reaches the smallest noise level)
    r = torch.linspace(0.0, 1.0, n - 1, dtype=torch.float64) if n > 2 else torch.ones(1, dtype=torch.float64)
    if rho is None:  # uniform in log σ = uniform in λ
        targets = torch.exp(math.log(hi) + r * (math.log(lo) - math.log(hi)))
    else:  # Karras et al. 2022, eq. 5
        targets = (hi ** (1 / rho) + r * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    return _snap_to_grid(sig.log(), targets)


def logsnr_timesteps(alphas_cumprod: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Descending LongTensor: T−1, then `num_steps`−1 timesteps uniform in log-SNR from σ/α = SIGMA_HI to t = 0."""
    return _graded_timesteps(alphas_cumprod, num_steps, None)


def karras_timesteps(alphas_cumprod: torch.Tensor, num_steps: int, rho: float = KARRAS_RHO) -> torch.Tensor:
    """Descending LongTensor: T−1, then `num_steps`−1 timesteps at Karras (ρ) levels from σ/α = SIGMA_HI to t = 0."""
    return _graded_timesteps(alphas_cumprod, num_steps, rho)


class Sampler:
    """Base class: the timestep grid, ᾱ look-ups and the shared ε → x̂₀ conversion."""

    name = "base"
    order = 1  # model evaluations needed before the sampler reaches its full order
    init_noise_sigma = 1.0  # x_T ~ N(0, init_noise_sigma² I)

    def __init__(self, schedule: Schedule, clip_sample: float | None = None, spacing: str = "trailing"):
        if spacing not in SPACINGS:
            raise choice_error("timestep spacing", spacing, SPACINGS)
        self.schedule = schedule
        self.clip_sample = clip_sample  # clamp x̂₀ to [−c, c] (images: 1.0); None = exact, no clamp
        self.spacing = spacing  # "trailing", "logsnr" or "karras", see the module doc
        self._ac = schedule.alphas_cumprod.to(torch.float64)  # ᾱ_t, (T,)
        self.timesteps = torch.empty(0, dtype=torch.long)
        self._index: dict[int, int] = {}

    @property
    def num_train_timesteps(self) -> int:
        return self.schedule.num_timesteps

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)

    def set_timesteps(self, num_steps: int) -> None:
        """Choose the grid for `num_steps` model evaluations and reset any multistep state."""
        if self.spacing == "logsnr":
            self.timesteps = logsnr_timesteps(self._ac, num_steps)
        elif self.spacing == "karras":
            self.timesteps = karras_timesteps(self._ac, num_steps)
        else:
            self.timesteps = trailing_timesteps(self.num_train_timesteps, num_steps)
        self._index = {int(t): i for i, t in enumerate(self.timesteps)}
        self.reset()

    def reset(self) -> None:
        """Forget multistep history (subclasses with state override)."""

    def index_of(self, t: int | torch.Tensor) -> int:
        t = int(t)
        if t not in self._index:
            raise ValueError(
                f"timestep {t} is not on this sampler's grid; call set_timesteps() and step through .timesteps"
            )
        return self._index[t]

    def prev_timestep(self, t: int | torch.Tensor) -> int:
        """The timestep `step(…, t, …)` moves to; CLEAN (−1) after the last one."""
        i = self.index_of(t)
        return int(self.timesteps[i + 1]) if i + 1 < self.num_steps else CLEAN

    def alpha_bar(self, t: int) -> float:
        """ᾱ_t as a float64 Python number; ᾱ_CLEAN = 1."""
        return 1.0 if t == CLEAN else float(self._ac[t])

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: int) -> torch.Tensor:
        """q(x_t | x₀) at a scalar timestep: √ᾱ_t x₀ + √(1−ᾱ_t) ε (identity for CLEAN)."""
        ac = self.alpha_bar(int(t))
        return math.sqrt(ac) * x0 + math.sqrt(1.0 - ac) * noise

    def predict_x0(self, eps: torch.Tensor, sample: torch.Tensor, ac_t: float) -> torch.Tensor:
        x0 = (sample - math.sqrt(1.0 - ac_t) * eps) / math.sqrt(ac_t)
        if self.clip_sample is not None:
            x0 = x0.clamp(-self.clip_sample, self.clip_sample)
        return x0

    def step(
        self,
        eps: torch.Tensor,
        t: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(schedule={self.schedule.name!r}, steps={self.num_steps})"


def _randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Gaussian noise drawn on the generator's device (so a CPU seed reproduces anywhere), moved to x's."""
    device = generator.device if generator is not None else x.device
    z = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
    return z.to(x.device)


class DDPMSampler(Sampler):
    """Ancestral sampling, Ho et al. 2020 eq. 6–7, on a respaced grid.

    Between grid points s > p the effective β = 1 − ᾱ_s/ᾱ_p; x_p ~ N(μ̃(x_s, x̂₀), β̃) with
    β̃ = (1−ᾱ_p)/(1−ᾱ_s)·β (the "fixed small" variance). The last step returns the posterior mean x̂₀.
    """

    name = "ddpm"

    def step(self, eps, t, sample, generator=None):
        t = int(t)
        p = self.prev_timestep(t)
        ac_t, ac_p = self.alpha_bar(t), self.alpha_bar(p)
        beta = 1.0 - ac_t / ac_p
        x0 = self.predict_x0(eps, sample, ac_t)
        c0 = math.sqrt(ac_p) * beta / (1.0 - ac_t)
        ct = math.sqrt(1.0 - beta) * (1.0 - ac_p) / (1.0 - ac_t)
        prev = c0 * x0 + ct * sample
        if p != CLEAN:
            var = (1.0 - ac_p) / (1.0 - ac_t) * beta
            prev = prev + math.sqrt(var) * _randn_like(sample, generator)
        return prev


class DDIMSampler(Sampler):
    """Song et al. 2021, eq. 12: x_p = √ᾱ_p x̂₀ + √(1−ᾱ_p−σ²) ε̂ + σ z, σ = η·√β̃.

    η = 0 is the deterministic probability-flow-like sampler; η = 1 equals DDPM ancestral.
    """

    name = "ddim"

    def __init__(
        self,
        schedule: Schedule,
        eta: float = 0.0,
        clip_sample: float | None = None,
        spacing: str = "trailing",
    ):
        super().__init__(schedule, clip_sample, spacing)
        if eta < 0:
            raise ValueError(f"DDIM eta must be >= 0, got {eta}")
        self.eta = float(eta)

    def step(self, eps, t, sample, generator=None):
        t = int(t)
        p = self.prev_timestep(t)
        ac_t, ac_p = self.alpha_bar(t), self.alpha_bar(p)
        x0 = self.predict_x0(eps, sample, ac_t)
        if self.clip_sample is not None:  # keep ε consistent with the clamped x̂₀
            eps = (sample - math.sqrt(ac_t) * x0) / math.sqrt(1.0 - ac_t)
        sigma = self.eta * math.sqrt((1.0 - ac_p) / (1.0 - ac_t) * (1.0 - ac_t / ac_p))
        prev = math.sqrt(ac_p) * x0 + math.sqrt(max(1.0 - ac_p - sigma**2, 0.0)) * eps
        if sigma > 0:
            prev = prev + sigma * _randn_like(sample, generator)
        return prev


class DPMSolverPP2MSampler(Sampler):
    """DPM-Solver++(2M), Lu et al. 2022 ("DPM-Solver++", Algorithm 2), data-prediction form.

    With λ = log(α/σ), α = √ᾱ, σ = √(1−ᾱ) and h = λ_p − λ_s:
        x_p = (σ_p/σ_s) x_s − α_p (e^{−h} − 1) D,
    where D = x̂₀(s) on the first step (no history) and the final step to clean data, and otherwise
    D = (1 + 1/2r) x̂₀(s) − (1/2r) x̂₀(s_prev), r = h_prev / h (second-order multistep).
    Deterministic: `generator` is accepted for the shared contract and ignored.
    """

    name = "dpmpp_2m"
    order = 2

    def reset(self) -> None:
        self._last: tuple[int, torch.Tensor] | None = None  # (timestep, x̂₀) of the previous step

    def _lambda(self, ac: float) -> float:
        return 0.5 * (math.log(ac) - math.log1p(-ac))

    def step(self, eps, t, sample, generator=None):
        t = int(t)
        i = self.index_of(t)
        p = self.prev_timestep(t)
        ac_t = self.alpha_bar(t)
        x0 = self.predict_x0(eps, sample, ac_t)
        last = self._last
        self._last = (t, x0)
        if p == CLEAN:  # σ_p = 0, λ_p = ∞: the first-order update is exactly x̂₀
            return x0
        ac_p = self.alpha_bar(p)
        lam_t, lam_p = self._lambda(ac_t), self._lambda(ac_p)
        h = lam_p - lam_t
        d = x0
        # second order only when the history is the grid's previous point (img2img may start mid-grid)
        if last is not None and i > 0 and last[0] == int(self.timesteps[i - 1]):
            h_prev = lam_t - self._lambda(self.alpha_bar(last[0]))
            r = h_prev / h
            d = (1.0 + 0.5 / r) * x0 - (0.5 / r) * last[1]
        sigma_ratio = math.sqrt((1.0 - ac_p) / (1.0 - ac_t))
        return sigma_ratio * sample - math.sqrt(ac_p) * math.expm1(-h) * d


class DPMSolverPP3MSampler(DPMSolverPP2MSampler):
    """DPM-Solver++(3M): the third-order multistep of Lu et al. 2022 (as in their code and diffusers).

    With h = λ_p − λ_s, r₀ = h₀/h, r₁ = h₁/h (h₀, h₁ the two previous λ steps) and x̂₀ history m₀, m₁, m₂:
        D₁⁰ = (m₀ − m₁)/r₀,  D₁¹ = (m₁ − m₂)/r₁,
        D₁ = D₁⁰ + r₀/(r₀ + r₁)·(D₁⁰ − D₁¹),  D₂ = (D₁⁰ − D₁¹)/(r₀ + r₁),
        x_p = (σ_p/σ_s) x_s − α_p(e^{−h} − 1) m₀ + α_p((e^{−h} − 1)/h + 1) D₁ − α_p((e^{−h} − 1 + h)/h² − ½) D₂.
    Warm-up: first order on the first step, second order (2M) on the second; the final step to clean
    data returns x̂₀. Deterministic; `generator` is ignored.
    """

    name = "dpmpp_3m"
    order = 3

    def reset(self) -> None:
        self._hist: list[tuple[int, torch.Tensor]] = []  # (timestep, x̂₀) of consecutive grid points

    def step(self, eps, t, sample, generator=None):
        t = int(t)
        i = self.index_of(t)
        p = self.prev_timestep(t)
        ac_t = self.alpha_bar(t)
        m0 = self.predict_x0(eps, sample, ac_t)
        # use history only while it is the grid's preceding points (img2img may start mid-grid)
        hist = []  # most recent first
        for k, (tt, m) in enumerate(reversed(self._hist), 1):
            if i - k < 0 or tt != int(self.timesteps[i - k]):
                break
            hist.append((tt, m))
        self._hist = (self._hist + [(t, m0)])[-2:]
        if p == CLEAN:
            return m0
        ac_p = self.alpha_bar(p)
        lam_t, lam_p = self._lambda(ac_t), self._lambda(ac_p)
        h = lam_p - lam_t
        a_p, em = math.sqrt(ac_p), math.expm1(-h)
        sigma_ratio = math.sqrt((1.0 - ac_p) / (1.0 - ac_t))
        if not hist:
            return sigma_ratio * sample - a_p * em * m0
        t1, m1 = hist[0]
        r0 = (lam_t - self._lambda(self.alpha_bar(t1))) / h
        if len(hist) == 1:
            d = (1.0 + 0.5 / r0) * m0 - (0.5 / r0) * m1
            return sigma_ratio * sample - a_p * em * d
        t2, m2 = hist[1]
        r1 = (self._lambda(self.alpha_bar(t1)) - self._lambda(self.alpha_bar(t2))) / h
        d10, d11 = (m0 - m1) / r0, (m1 - m2) / r1
        d1 = d10 + (r0 / (r0 + r1)) * (d10 - d11)
        d2 = (d10 - d11) / (r0 + r1)
        return (
            sigma_ratio * sample - a_p * em * m0 + a_p * (em / h + 1.0) * d1
            - a_p * ((em + h) / (h * h) - 0.5) * d2
        )  # fmt: skip


SAMPLERS: dict[str, type[Sampler]] = {
    "ddpm": DDPMSampler,
    "ddim": DDIMSampler,
    "dpmpp_2m": DPMSolverPP2MSampler,
    "dpmpp_3m": DPMSolverPP3MSampler,
}


def make_sampler(name: str, schedule: Schedule, **kw) -> Sampler:
    """Build a sampler by name ('ddpm', 'ddim' (eta=…), 'dpmpp_2m', 'dpmpp_3m'); unknown names raise ValueError.

    Every sampler also takes clip_sample=None and spacing="trailing" | "logsnr" | "karras".
    """
    if name not in SAMPLERS:
        raise choice_error("sampler", name, list(SAMPLERS))  # a ValueError with the known names as its hint
    return SAMPLERS[name](schedule, **kw)
