"""Gaussian-mixture data whose optimal denoiser is known in closed form: the samplers' exact test bench.

For x₀ ~ Σ_k w_k N(μ_k, Σ_k) and x_t = a x₀ + s ε (a = √ᾱ_t, s = √(1−ᾱ_t)):
    x_t | k ~ N(a μ_k, C_k),  C_k = a² Σ_k + s² I,
    E[ε | x_t] = Σ_k P(k | x_t) · s C_k⁻¹ (x_t − a μ_k),
which is the minimiser of the ε-prediction loss, i.e. a perfectly trained network. Plugged into a
sampler, any difference between its samples and the mixture is the sampler's own error.
Everything is float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from taleloom.diffusion.schedule import Schedule


@dataclass
class GaussianMixture:
    weights: torch.Tensor  # (K,) mixture weights, sum to 1
    means: torch.Tensor  # (K, d)
    covs: torch.Tensor  # (K, d, d) symmetric positive definite

    def __post_init__(self) -> None:
        self.weights = torch.as_tensor(self.weights, dtype=torch.float64)
        self.weights = self.weights / self.weights.sum()
        self.means = torch.as_tensor(self.means, dtype=torch.float64)
        self.covs = torch.as_tensor(self.covs, dtype=torch.float64)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    # --- the truth -------------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n exact samples (n, d) and their component labels (n,)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        chol = torch.linalg.cholesky(self.covs)  # (K, d, d)
        return self.means[k] + torch.einsum("nij,nj->ni", chol[k], z), k

    def mean(self) -> torch.Tensor:
        return self.weights @ self.means

    def cov(self) -> torch.Tensor:
        m = self.mean()
        second = torch.einsum(
            "k,kij->ij", self.weights, self.covs + torch.einsum("ki,kj->kij", self.means, self.means)
        )
        return second - torch.outer(m, m)

    def _log_joint(self, x: torch.Tensor, a: float, s: float) -> tuple[torch.Tensor, torch.Tensor]:
        """log w_k N(x; a μ_k, C_k) as (n, K), and C_k⁻¹(x − a μ_k) as (n, K, d)."""
        eye = torch.eye(self.dim, dtype=torch.float64, device=self.means.device)
        C = a * a * self.covs + s * s * eye  # (K, d, d)
        Cinv = torch.linalg.inv(C)
        r = x[:, None, :] - a * self.means[None]  # (n, K, d)
        Cr = torch.einsum("kij,nkj->nki", Cinv, r)
        maha = (r * Cr).sum(-1)
        logdet = torch.linalg.slogdet(C).logabsdet  # (K,)
        logp = -0.5 * (maha + logdet + self.dim * math.log(2 * math.pi)) + self.weights.log()
        return logp, Cr

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._log_joint(x.to(torch.float64), 1.0, 0.0)[0], dim=1)

    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """Most probable component of each point (n,), under the true mixture."""
        return self._log_joint(x.to(torch.float64), 1.0, 0.0)[0].argmax(dim=1)

    # --- the optimal denoiser --------------------------------------------------------------------
    def eps(self, x_t: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        """E[ε | x_t] for x_t (n, d) at noise level ᾱ."""
        a, s = math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)
        logp, Cr = self._log_joint(x_t.to(torch.float64), a, s)
        post = torch.softmax(logp, dim=1)  # (n, K)
        return (s * torch.einsum("nk,nki->ni", post, Cr)).to(x_t.dtype)

    def x0(self, x_t: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        """E[x₀ | x_t] (Tweedie)."""
        a, s = math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)
        return (x_t - s * self.eps(x_t, alpha_bar)) / a

    def v(self, x_t: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        """E[v | x_t], v = a ε − s x₀ = (ε − s x_t) / a."""
        a, s = math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)
        return (self.eps(x_t, alpha_bar) - s * x_t) / a

    def model_fn(self, schedule: Schedule, prediction_type: str = "eps"):
        """A `model_fn(x, t_batch, ctx, mask, cond_image)` for `Denoiser`: the perfect network.

        x may have any shape (B, …) whose trailing dims flatten to d; the text condition is ignored.
        """
        ac = schedule.alphas_cumprod
        fn = self.eps if prediction_type == "eps" else self.v

        def model(x, t, ctx=None, mask=None, cond_image=None):
            if not bool((t == t[0]).all()):
                raise ValueError("analytic model expects one timestep per batch")
            flat = x.reshape(x.shape[0], self.dim)
            return fn(flat, float(ac[int(t[0])])).reshape(x.shape)

        return model


def default_mixture() -> GaussianMixture:
    """Three well-separated 2-D components with distinct weights, shapes and orientations (in [−1, 1])."""
    return GaussianMixture(
        weights=[0.5, 0.3, 0.2],
        means=[[-0.5, -0.4], [0.55, -0.25], [0.05, 0.6]],
        covs=[
            [[0.030, 0.012], [0.012, 0.020]],
            [[0.010, -0.006], [-0.006, 0.025]],
            [[0.040, 0.0], [0.0, 0.008]],
        ],
    )


# --- distances to the truth ------------------------------------------------------------------------
def _projected_quantiles(gmm: GaussianMixture, theta: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Quantiles (P, n) of the 1-D mixtures θ_pᵀx₀ at `levels` (n,), from the exact CDF.

    The CDF is inverted by interpolation on a fine grid, then polished with two Newton steps.
    """
    m = theta @ gmm.means.T  # (P, K) projected means
    sd = torch.einsum("pi,kij,pj->pk", theta, gmm.covs, theta).sqrt()  # (P, K) projected std devs
    w = gmm.weights

    def cdf_pdf(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # x (P, N) → both (P, N)
        z = (x[..., None] - m[:, None]) / sd[:, None]
        cdf = (w * torch.special.ndtr(z)).sum(-1)
        pdf = (w * torch.exp(-0.5 * z * z) / (sd[:, None] * (2 * torch.pi) ** 0.5)).sum(-1)
        return cdf, pdf

    lo, hi = (m - 10 * sd).min(dim=1).values, (m + 10 * sd).max(dim=1).values
    grid = lo[:, None] + (hi - lo)[:, None] * torch.linspace(0, 1, 20_001, dtype=torch.float64)  # (P, G)
    cdf_grid = cdf_pdf(grid)[0]
    x = torch.empty(len(theta), len(levels), dtype=torch.float64)
    for p in range(len(theta)):  # per direction: invert the tabulated CDF linearly
        idx = torch.searchsorted(cdf_grid[p], levels).clamp(1, grid.shape[1] - 1)
        c0, c1 = cdf_grid[p, idx - 1], cdf_grid[p, idx]
        frac = ((levels - c0) / (c1 - c0).clamp(min=1e-300)).clamp(0, 1)
        x[p] = grid[p, idx - 1] + frac * (grid[p, idx] - grid[p, idx - 1])
    for _ in range(2):
        cdf, pdf = cdf_pdf(x)
        x = x - (cdf - levels) / pdf.clamp(min=1e-300)
    return x


class ExactSlices:
    """Sliced 2-Wasserstein distance from n samples to the exact mixture, with the slices computed once.

    Each slice compares the sorted projected samples with the mixture's exact projected quantiles at
    (i + ½)/n, so there is no reference-sample noise; what remains is the samples' own noise.
    """

    def __init__(self, gmm: GaussianMixture, n: int, num_projections: int = 64, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        theta = torch.randn(num_projections, gmm.dim, generator=g, dtype=torch.float64)
        self.gmm, self.n = gmm, n
        self.theta = theta / theta.norm(dim=1, keepdim=True)  # (P, d) unit directions
        self.quantiles = _projected_quantiles(
            gmm, self.theta, (torch.arange(n, dtype=torch.float64) + 0.5) / n
        )

    def distance(self, x: torch.Tensor) -> float:
        x = x.to(torch.float64).reshape(-1, self.gmm.dim)
        if x.shape[0] != self.n:
            raise ValueError(f"expected {self.n} samples, got {x.shape[0]}")
        proj = (x @ self.theta.T).T.sort(dim=1).values  # (P, n)
        return float(((proj - self.quantiles) ** 2).mean().sqrt())


def sliced_wasserstein(
    x: torch.Tensor, gmm: GaussianMixture, num_projections: int = 64, seed: int = 0
) -> float:
    """Sliced 2-Wasserstein distance between the samples x (n, d) and the exact mixture (see ExactSlices)."""
    return ExactSlices(gmm, x.shape[0], num_projections, seed).distance(x)


def moment_errors(x: torch.Tensor, gmm: GaussianMixture) -> dict[str, float]:
    """‖mean error‖₂, ‖cov error‖_F and max |weight error| of samples x (n, d) against the mixture."""
    x = x.to(torch.float64).reshape(x.shape[0], gmm.dim)
    counts = torch.bincount(gmm.assign(x), minlength=len(gmm.weights)).to(torch.float64)
    return {
        "mean": float((x.mean(0) - gmm.mean()).norm()),
        "cov": float((torch.cov(x.T) - gmm.cov()).norm()),
        "weights": float((counts / x.shape[0] - gmm.weights).abs().max()),
    }
