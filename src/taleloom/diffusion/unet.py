"""Text-conditioned U-Net for pixel-space diffusion (Ho et al. 2020; Dhariwal & Nichol 2021; Rombach et al. 2022).

Time enters every residual block as a GroupNorm scale/shift; text enters twice: token embeddings
through cross-attention (with a padding mask) at the attention resolutions, and their masked mean
added to the time embedding. A learned null condition stands in for "no text" (condition dropout,
classifier-free guidance). Optional `cond_channels` are concatenated to the input (super-resolution).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


def config_from_dict(cls, d: dict):
    """`cls(**d)` for a config dataclass, but a misspelt key is a ValueError naming it and the known
    ones (a typo in a recipe file must not be silently ignored or end in a bare TypeError)."""
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    return cls(**d)


@dataclass
class UNetConfig:
    """Everything that fixes the U-Net's shape. Passed whole to every block and saved in checkpoints."""

    in_channels: int = 3  # channels of the noisy image x_t
    out_channels: int = 3  # channels of the prediction (ε or v), normally == in_channels
    cond_channels: int = (
        0  # extra image channels concatenated to x_t (e.g. 3 for the x4 upsampler's low-res image)
    )
    base_channels: int = 64  # channels at the first (full) resolution
    channel_mults: tuple[int, ...] = (1, 2, 2)  # channel multiplier per resolution level; len-1 downsamplings
    num_res_blocks: int = 2  # residual blocks per level on the way down (one more on the way up)
    attention_resolutions: tuple[int, ...] = (16, 8)  # feature-map sizes (H) with self- and cross-attention
    num_heads: int = 4  # attention heads (channels per head = channels // num_heads)
    text_dim: int = 384  # width of the text token embeddings (all-MiniLM-L6-v2: 384)
    max_text_len: int = 32  # text tokens per prompt (padding + mask beyond the prompt's length)
    dropout: float = 0.0  # dropout inside residual blocks
    image_size: int = 32  # training resolution (H == W); informative, the network is fully convolutional
    norm_groups: int = 32  # GroupNorm groups (reduced to gcd(groups, channels) where needed)
    pooled_text: bool = True  # also add the masked mean of the text tokens to the time embedding

    def __post_init__(self) -> None:
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        self.attention_resolutions = tuple(int(r) for r in self.attention_resolutions)
        for c in self.channel_mults:
            if (self.base_channels * c) % self.num_heads:
                raise ValueError(
                    f"channels {self.base_channels * c} not divisible by num_heads={self.num_heads}"
                )
        if self.image_size % 2 ** (len(self.channel_mults) - 1):
            raise ValueError(
                f"image_size {self.image_size} must be divisible by 2**{len(self.channel_mults) - 1}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        """Build from a (JSON/TOML) dict; unknown keys raise ValueError naming them."""
        return config_from_dict(cls, d)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (B,) timesteps → (B, dim) (Vaswani et al. 2017, as in DDPM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _norm(cfg: UNetConfig, ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(cfg.norm_groups, ch), ch, eps=1e-6)


class ResBlock(nn.Module):
    """GN → SiLU → conv → GN·(1+scale)+shift (from time+text embedding) → SiLU → dropout → conv, plus skip."""

    def __init__(self, cfg: UNetConfig, in_ch: int, out_ch: int, emb_dim: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cfg, in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2, self.conv2 = _norm(cfg, out_ch), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out, H, W)
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)  # (B, out, 1, 1) each
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over the H·W positions, then cross-attention from them to the text tokens."""

    def __init__(self, cfg: UNetConfig, ch: int):
        super().__init__()
        self.heads = cfg.num_heads
        self.norm = _norm(cfg, ch)
        self.qkv = nn.Linear(ch, 3 * ch)
        self.proj = nn.Linear(ch, ch)
        self.norm_x = nn.LayerNorm(ch)
        self.q = nn.Linear(ch, ch)
        self.kv = nn.Linear(cfg.text_dim, 2 * ch)
        self.proj_x = nn.Linear(ch, ch)
        for lin in (self.proj, self.proj_x):  # residual branches start at zero
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, C) → (B, heads, N, C/heads)
        b, n, c = x.shape
        return x.view(b, n, self.heads, c // self.heads).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:  # (B, heads, N, d) → (B, N, heads·d)
        b, h, n, d = x.shape
        return x.transpose(1, 2).reshape(b, n, h * d)

    def forward(self, x: torch.Tensor, context: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        h = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        h = F.scaled_dot_product_attention(
            self._split(q), self._split(k), self._split(v)
        )  # (B, heads, HW, d)
        tokens = tokens + self.proj(self._merge(h))
        q = self._split(self.q(self.norm_x(tokens)))  # (B, heads, HW, d)
        k, v = self.kv(context).chunk(2, dim=-1)  # (B, L, C) each
        h = F.scaled_dot_product_attention(q, self._split(k), self._split(v), attn_mask=attn_mask)
        tokens = tokens + self.proj_x(self._merge(h))
        return tokens.transpose(1, 2).reshape(b, c, hh, ww)


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """The blocks of one resolution level on one side of the U (res blocks, optional attention, resampler)."""

    def __init__(self, res: nn.ModuleList, attn: nn.ModuleList | None, resample: nn.Module | None):
        super().__init__()
        self.res, self.attn, self.resample = res, attn, resample


class UNet(nn.Module):
    """ε/v-predicting U-Net: forward(x_t, t, context, context_mask, cond_image) → (B, out_channels, H, W)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = cfg = config
        ch0 = cfg.base_channels
        emb = 4 * ch0
        self.time_mlp = nn.Sequential(nn.Linear(ch0, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.text_pool = nn.Linear(cfg.text_dim, emb) if cfg.pooled_text else None
        self.null_token = nn.Parameter(torch.randn(cfg.text_dim) * 0.02)  # learned "no text" token
        self.conv_in = nn.Conv2d(cfg.in_channels + cfg.cond_channels, ch0, 3, padding=1)

        self.down = nn.ModuleList()
        skips, ch, size = [ch0], ch0, cfg.image_size
        for i, mult in enumerate(cfg.channel_mults):
            out, res, attn = ch0 * mult, nn.ModuleList(), nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                res.append(ResBlock(cfg, ch, out, emb))
                ch = out
                if size in cfg.attention_resolutions:
                    attn.append(AttentionBlock(cfg, ch))
                skips.append(ch)
            last = i == len(cfg.channel_mults) - 1
            self.down.append(Level(res, attn if len(attn) else None, None if last else Downsample(ch)))
            if not last:
                skips.append(ch)
                size //= 2

        self.mid1, self.mid_attn, self.mid2 = (
            ResBlock(cfg, ch, ch, emb),
            AttentionBlock(cfg, ch),
            ResBlock(cfg, ch, ch, emb),
        )

        self.up = nn.ModuleList()
        for i, mult in reversed(list(enumerate(cfg.channel_mults))):
            out, res, attn = ch0 * mult, nn.ModuleList(), nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                res.append(ResBlock(cfg, ch + skips.pop(), out, emb))
                ch = out
                if size in cfg.attention_resolutions:
                    attn.append(AttentionBlock(cfg, ch))
            self.up.append(Level(res, attn if len(attn) else None, Upsample(ch) if i > 0 else None))
            if i > 0:
                size *= 2

        self.norm_out = _norm(cfg, ch)
        self.conv_out = nn.Conv2d(ch, cfg.out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def null_context(self, batch_size: int, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The learned null condition: (context (B, L, D), mask (B, L)); one real token, the rest padding."""
        length = length or self.config.max_text_len
        ctx = self.null_token.new_zeros(batch_size, length, self.config.text_dim)
        ctx[:, 0] = self.null_token
        mask = torch.zeros(batch_size, length, dtype=torch.bool, device=ctx.device)
        mask[:, 0] = True
        return ctx, mask

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor,
        cond_image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: (B, C, H, W); t: (B,) long; context: (B, L, D); context_mask: (B, L) bool, True = real token;
        cond_image: (B, cond_channels, H, W) or None. Returns (B, out_channels, H, W)."""
        cfg = self.config
        if cfg.cond_channels:
            if cond_image is None:
                raise ValueError(f"this U-Net needs cond_image with {cfg.cond_channels} channels")
            x = torch.cat([x, cond_image.to(x.dtype)], dim=1)  # (B, C + cond, H, W)
        mask = context_mask.bool()
        mask = mask | ~mask.any(
            dim=1, keepdim=True
        )  # an all-padding row would give NaN: attend to everything
        context = context.to(x.dtype)

        emb = self.time_mlp(timestep_embedding(t, cfg.base_channels).to(x.dtype))  # (B, 4·ch0)
        if self.text_pool is not None:
            m = mask.to(context.dtype)[..., None]  # (B, L, 1)
            pooled = (context * m).sum(1) / m.sum(1)  # (B, D)
            emb = emb + self.text_pool(pooled)
        emb = F.silu(emb)
        attn_mask = mask[:, None, None, :]  # (B, 1, 1, L) broadcast over heads and queries

        h = self.conv_in(x)  # (B, ch0, H, W)
        skips = [h]
        for level in self.down:
            for j, block in enumerate(level.res):
                h = block(h, emb)
                if level.attn is not None:
                    h = level.attn[j](h, context, attn_mask)
                skips.append(h)
            if level.resample is not None:
                h = level.resample(h)
                skips.append(h)

        h = self.mid2(self.mid_attn(self.mid1(h, emb), context, attn_mask), emb)

        for level in self.up:
            for j, block in enumerate(level.res):
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
                if level.attn is not None:
                    h = level.attn[j](h, context, attn_mask)
            if level.resample is not None:
                h = level.resample(h)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, out_channels, H, W)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
