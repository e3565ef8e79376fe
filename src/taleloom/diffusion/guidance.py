"""The denoiser the samplers call: one network, classifier-free guidance, prediction type → ε.

CFG (Ho & Salimans 2022): ε = ε_u + g·(ε_c − ε_u), with cond and uncond run as ONE batched forward.
A negative prompt is just `uncond` = the negative prompt's encoding instead of the null context.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from taleloom.diffusion.schedule import Schedule, eps_from_v

# model_fn(x (B,C,H,W), t (B,) long, context (B,L,D), context_mask (B,L) bool, cond_image or None) -> (B,C,H,W)
ModelFn = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor
]
Condition = tuple[torch.Tensor, torch.Tensor]  # (context (B|1, L, D), mask (B|1, L) bool)

PREDICTION_TYPES = ("eps", "v")


def _fit_batch(t: torch.Tensor, batch: int, what: str) -> torch.Tensor:
    """Broadcast a batch-1 tensor to `batch` rows; any other mismatch is an error naming the tensor."""
    if t.shape[0] == batch:
        return t
    if t.shape[0] == 1:
        return t.expand(batch, *t.shape[1:])
    raise ValueError(f"{what} has batch {t.shape[0]} but the sample has batch {batch}")


def _pad_tokens(ctx: torch.Tensor, mask: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad (B, L, D) tokens and (B, L) mask to `length` (padding is masked out)."""
    extra = length - ctx.shape[1]
    if extra == 0:
        return ctx, mask
    ctx = torch.cat([ctx, ctx.new_zeros(ctx.shape[0], extra, ctx.shape[2])], dim=1)
    mask = torch.cat([mask, mask.new_zeros(mask.shape[0], extra)], dim=1)
    return ctx, mask


class Denoiser:
    """`denoiser(x_t, t) -> ε̂` with guidance; wraps a network of either prediction type."""

    def __init__(
        self,
        model_fn: ModelFn,
        schedule: Schedule,
        prediction_type: str = "eps",
        cond: Condition | None = None,
        uncond: Condition | None = None,
        guidance: float = 1.0,
        cond_image: torch.Tensor | None = None,
    ):
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"unknown prediction type {prediction_type!r}; choose one of: {', '.join(PREDICTION_TYPES)}"
            )
        if guidance < 0:
            raise ValueError(f"guidance must be >= 0 (1 = no guidance, 3–7 typical), got {guidance}")
        if guidance != 1.0 and uncond is None:
            raise ValueError("guidance != 1 needs an unconditional input: pass uncond=model.null_context(B)")
        if cond is None:
            raise ValueError("Denoiser needs a condition: pass cond=(context, mask)")
        self.model_fn = model_fn
        self.schedule = schedule
        self.prediction_type = prediction_type
        self.cond = cond
        self.uncond = uncond
        self.guidance = float(guidance)
        self.cond_image = cond_image
        self.num_evals = 0  # network forwards so far (a batched cond+uncond forward counts once)

    def _forward(self, x: torch.Tensor, t: int, conds: list[Condition]) -> list[torch.Tensor]:
        """Run the network once on len(conds) copies of x stacked along the batch; split the result."""
        B, k = x.shape[0], len(conds)
        ctxs = [_fit_batch(c, B, "context") for c, _ in conds]
        masks = [_fit_batch(m, B, "context mask") for _, m in conds]
        length = max(c.shape[1] for c in ctxs)
        padded = [_pad_tokens(c, m, length) for c, m in zip(ctxs, masks, strict=True)]
        ctx = torch.cat([c for c, _ in padded])  # (kB, L, D)
        mask = torch.cat([m for _, m in padded])  # (kB, L)
        xk = x if k == 1 else torch.cat([x] * k)  # (kB, C, H, W)
        tb = torch.full((k * B,), int(t), dtype=torch.long, device=x.device)
        ci = self.cond_image
        if ci is not None:
            ci = _fit_batch(ci, B, "cond_image")
            ci = ci if k == 1 else torch.cat([ci] * k)
        out = self.model_fn(xk, tb, ctx, mask, ci).to(x.dtype)
        self.num_evals += 1
        return list(out.chunk(k)) if k > 1 else [out]

    def __call__(self, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """ε̂(x_t, t) for a scalar timestep t shared by the batch."""
        g = self.guidance
        if self.uncond is None or g == 1.0:
            (out,) = self._forward(x_t, t, [self.cond])
        elif g == 0.0:
            (out,) = self._forward(x_t, t, [self.uncond])
        else:
            out_c, out_u = self._forward(x_t, t, [self.cond, self.uncond])
            out = out_u + g * (out_c - out_u)
        if self.prediction_type == "v":  # linear, so guiding v then converting equals converting then guiding
            tb = torch.full((x_t.shape[0],), int(t), dtype=torch.long, device=x_t.device)
            out = eps_from_v(self.schedule, x_t, out, tb)
        return out


class RegionDenoiser(Denoiser):
    """Region prompts (MultiDiffusion, Bar-Tal et al. 2023): the background prompt denoises the whole
    picture and each region's prompt denoises its own window of it, as if that window were a picture
    of its own (the network is convolutional), so a hero is drawn whole inside its box. The guided
    predictions are blended per pixel by feathered weights, where a region outweighs the background:
    each step is then the least-squares agreement of the per-region steps, as in the paper.

    `regions`: (condition, box) pairs; box = (y0, y1, x0, x1) in the sample's own pixels (latent pixels
    for a latent model), shared by the batch, each side a multiple of the U-Net's downsampling.
    """

    def __init__(self, model_fn: ModelFn, schedule: Schedule, prediction_type: str, cond: Condition,
                 regions: list[tuple[Condition, tuple[int, int, int, int]]], uncond: Condition | None = None,
                 guidance: float = 1.0, region_weight: float = 4.0, feather: int = 2):
        super().__init__(model_fn, schedule, prediction_type, cond=cond, uncond=uncond, guidance=guidance)
        for _, (y0, y1, x0, x1) in regions:
            if not (0 <= y0 < y1 and 0 <= x0 < x1):
                raise ValueError(f"region box {(y0, y1, x0, x1)} is empty or negative")
        self.regions = regions
        self.region_weight = float(region_weight)
        self.feather = int(feather)

    def _guided(self, x: torch.Tensor, t: int, cond: Condition) -> torch.Tensor:
        g = self.guidance
        if self.uncond is None or g == 1.0:
            return self._forward(x, t, [cond])[0]
        out_c, out_u = self._forward(x, t, [cond, self.uncond])
        return out_u + g * (out_c - out_u)

    def window_weight(self, h: int, w: int, device, dtype) -> torch.Tensor:
        """(h, w) weights of a region's window: region_weight inside, ramping down over `feather` pixels."""
        def ramp(n: int) -> torch.Tensor:
            i = torch.arange(n, device=device, dtype=dtype)
            d = torch.minimum(i, n - 1 - i) + 1
            return (d / max(self.feather, 1)).clamp(max=1.0)

        return self.region_weight * ramp(h)[:, None] * ramp(w)[None, :]

    def __call__(self, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        H, W = x_t.shape[-2:]
        num = self._guided(x_t, t, self.cond)
        den = torch.ones(H, W, device=x_t.device, dtype=x_t.dtype)
        for cond, (y0, y1, x0, x1) in self.regions:
            y1, x1 = min(y1, H), min(x1, W)
            out = self._guided(x_t[..., y0:y1, x0:x1], t, cond)
            wgt = self.window_weight(y1 - y0, x1 - x0, x_t.device, x_t.dtype)
            num[..., y0:y1, x0:x1] += wgt * out
            den[y0:y1, x0:x1] += wgt
        out = num / den
        if self.prediction_type == "v":  # blending v then converting = converting then blending (linear, Σw = 1)
            tb = torch.full((x_t.shape[0],), int(t), dtype=torch.long, device=x_t.device)
            out = eps_from_v(self.schedule, x_t, out, tb)
        return out
