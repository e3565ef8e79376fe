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

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.decoder_channels = tuple(int(c) for c in self.decoder_channels)
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


class _Res(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


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
        layers: list[nn.Module] = [nn.Conv2d(c.latent_channels, ch[0], 3, padding=1)]
        for i, width in enumerate(ch):
            if i > 0:
                layers.append(_Up(ch[i - 1], width))
            layers += [_Res(width) for _ in range(c.dec_res_blocks)]
        layers += [nn.SiLU(), nn.Conv2d(ch[-1], c.in_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


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

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        mean, logvar = self.encode(x)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + torch.exp(0.5 * logvar) * noise
        return self.decode(z), mean, logvar


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
