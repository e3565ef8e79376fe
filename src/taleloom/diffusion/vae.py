"""KL-regularised autoencoder for latent diffusion (Kingma & Welling 2014; Rombach et al. 2022, §3).

The encoder maps a picture (3, S, S) in [-1, 1] to a diagonal Gaussian over latents (z_ch, S/f, S/f);
the decoder maps a latent back to a picture. The U-Net of a latent model denoises `scale · z` (scale
chosen so the latents have unit variance) and the decoder turns its result into pixels: the
diffusion model then works on 16×16 latents instead of 128×128 pixels.

No normalisation layers: the autoencoder trains on crops and is applied to whole pictures, and a
GroupNorm's statistics would differ between the two. Residual branches end in a zero-initialised
convolution, so a fresh network starts near identity per block and trains stably without norms.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from taleloom.diffusion.unet import config_from_dict

KIND = "vae"  # config.json "kind" of an autoencoder checkpoint


@dataclass
class VAEConfig:
    """Shape of the autoencoder. `channels` has one entry per resolution level; each level after the
    first halves H and W, so the downsampling factor is 2 ** (len(channels) - 1)."""

    in_channels: int = 3
    latent_channels: int = 4
    channels: tuple[int, ...] = (32, 64, 96, 128)  # f = 8
    num_res_blocks: int = 1  # residual blocks per level (encoder and decoder)
    image_size: int = 128  # pictures the latent model draws (informative: the network is convolutional)
    # the decoder's own widths (finest level first, as `channels`) and blocks per level; empty / 0: the
    # encoder's. A wider decoder can be trained later on a frozen encoder (vae_train decoder_only): the
    # latents, and so every U-Net trained on them, stay the same while the pictures get sharper.
    decoder_channels: tuple[int, ...] = ()
    decoder_res_blocks: int = 0
    # classes the decoder is told (FiLM in its residual blocks; class 0 = none): a picture's class is the one
    # whose text its caption (at sampling, its prompt) ends with (class_index), e.g. a trained style's words.
    # Why: a 16×16×4 latent keeps where an edge is but not how it is drawn; told "flat colours" or "soft 3d
    # shading", the decoder can draw the latent in that style (decoded real pictures lost the style probe's vote
    # from 80 % to 58 %, the flat styles read as shaded ones). Empty: an unconditioned decoder.
    decoder_classes: tuple[str, ...] = ()
    decoder_class_dim: int = 32

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.decoder_channels = tuple(int(c) for c in self.decoder_channels)
        self.decoder_classes = tuple(str(c) for c in self.decoder_classes)
        if len(set(self.decoder_classes)) != len(self.decoder_classes) or not all(self.decoder_classes):
            raise ValueError(f"decoder_classes must be distinct, non-empty texts, got {self.decoder_classes}")
        if self.decoder_class_dim <= 0:
            raise ValueError(f"decoder_class_dim must be positive, got {self.decoder_class_dim}")
        if not self.channels or min(self.channels) <= 0:
            raise ValueError(f"channels must be positive widths, got {self.channels}")
        if self.decoder_channels and (len(self.decoder_channels) != len(self.channels)
                                      or min(self.decoder_channels) <= 0):
            raise ValueError(f"decoder_channels must be {len(self.channels)} positive widths (one per level of "
                             f"channels), got {self.decoder_channels}")
        if self.image_size % self.factor:
            raise ValueError(f"image_size {self.image_size} must be divisible by the factor {self.factor}")

    @property
    def factor(self) -> int:
        return 2 ** (len(self.channels) - 1)

    @property
    def dec_channels(self) -> tuple[int, ...]:
        return self.decoder_channels or self.channels

    @property
    def dec_res_blocks(self) -> int:
        return self.decoder_res_blocks or self.num_res_blocks

    @property
    def latent_size(self) -> int:
        return self.image_size // self.factor

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VAEConfig:
        return config_from_dict(cls, d)

    def class_index(self, text: str) -> int:
        """1 + the index of the decoder class whose text `text` ends with (the longest such), else 0 (none)."""
        text = text.strip()
        found = [(len(c), i + 1) for i, c in enumerate(self.decoder_classes) if text.endswith(c)]
        return max(found)[1] if found else 0


class _Res(nn.Module):
    """A residual block; with `cond_dim`, a class embedding scales and shifts its inner features (FiLM,
    zero-initialised: a block given no class, or a new block, computes what it did unconditioned)."""

    def __init__(self, ch: int, cond_dim: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.film = nn.Linear(cond_dim, 2 * ch) if cond_dim else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = F.silu(self.conv1(F.silu(x)))
        if self.film is not None and emb is not None:
            scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return x + self.conv2(h)


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    def __init__(self, c: VAEConfig):
        super().__init__()
        ch = c.channels
        layers: list[nn.Module] = [nn.Conv2d(c.in_channels, ch[0], 3, padding=1)]
        for i, width in enumerate(ch):
            if i > 0:
                layers.append(nn.Conv2d(ch[i - 1], width, 3, stride=2, padding=1))
            layers += [_Res(width) for _ in range(c.num_res_blocks)]
        layers += [nn.SiLU(), nn.Conv2d(ch[-1], 2 * c.latent_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, c: VAEConfig):
        super().__init__()
        ch = c.dec_channels[::-1]
        cond = c.decoder_class_dim if c.decoder_classes else 0
        layers: list[nn.Module] = [nn.Conv2d(c.latent_channels, ch[0], 3, padding=1)]
        for i, width in enumerate(ch):
            if i > 0:
                layers.append(_Up(ch[i - 1], width))
            layers += [_Res(width, cond) for _ in range(c.dec_res_blocks)]
        layers += [nn.SiLU(), nn.Conv2d(ch[-1], c.in_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)
        self.classes = nn.Embedding(len(c.decoder_classes) + 1, cond) if cond else None  # row 0: no class

    def forward(self, z: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        emb = None
        if self.classes is not None:  # no classes given: class 0, the one trained for prompts naming none
            if classes is None:
                classes = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
            emb = self.classes(classes)
        for layer in self.net:
            z = layer(z, emb) if isinstance(layer, _Res) else layer(z)
        return z


class AutoencoderKL(nn.Module):
    """encode(x) → (mean, logvar); decode(z) → x̂. `forward` samples z with a given generator."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, S, S) in [-1, 1] → posterior mean and log-variance, each (B, z, S/f, S/f)."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """Latents (B, z, h, w) → pictures; `classes` (B,) decoder class indices (0 = none; config.class_index),
        used by a decoder trained with decoder_classes and ignored by any other."""
        return self.decoder(z, classes)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                classes: torch.Tensor | None = None):
        mean, logvar = self.encode(x)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + torch.exp(0.5 * logvar) * noise
        return self.decode(z, classes), mean, logvar


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) ‖ N(0, I)) per latent element, averaged: (B,) — 0 only for the prior itself."""
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)
    return kl.flatten(1).mean(dim=1)


def load_vae(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[AutoencoderKL, dict[str, Any]]:
    """(autoencoder in eval mode, meta) from a folder with model.safetensors + config.json (kind "vae")."""
    from safetensors.torch import load_file

    from taleloom.diffusion.checkpoint import WEIGHTS_NAME, _first_line, checkpoint_dir, read_meta
    from taleloom.errors import ModelNotFoundError

    folder = checkpoint_dir(path)
    meta = read_meta(folder, section=KIND)
    weights = Path(folder) / WEIGHTS_NAME
    hint = "train one with `taleloom engine train` and a recipe with a [vae] section"
    if not weights.is_file():
        raise ModelNotFoundError(f"autoencoder checkpoint {folder} has no {WEIGHTS_NAME}", hint)
    try:
        model = AutoencoderKL(VAEConfig.from_dict(meta[KIND]))
        model.load_state_dict(load_file(str(weights)), strict=True)
    except Exception as e:
        raise ModelNotFoundError(f"autoencoder checkpoint {folder} is corrupted or incomplete: {_first_line(e)}",
                                 hint) from e
    return model.to(device).eval(), meta
