"""The bridge between a latent U-Net and its autoencoder, for training and for sampling.

A latent model's checkpoint folder holds its autoencoder in `vae/` (copied there when training
starts, so the folder stands alone) and config.json's "latent" section: the autoencoder's folder
name, the factor, the picture size and `scale` — 1/std of the training latents (Rombach et al. 2022,
§4.3.2), so the U-Net sees unit-variance data as in pixel space.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from taleloom.diffusion.checkpoint import CONFIG_NAME, WEIGHTS_NAME, checkpoint_dir
from taleloom.diffusion.vae import AutoencoderKL, load_vae

VAE_SUBDIR = "vae"


def prepare_latents(vae_path: str | os.PathLike, images: torch.Tensor, out: Path,
                    progress: bool = False) -> tuple[torch.Tensor, dict[str, Any]]:
    """uint8 pictures (N, C, S, S) → (scaled latents (N, z, S/f, S/f), the "latent" meta section).

    Copies the autoencoder into `out/vae` and caches the encoded latents in `out/cache` keyed by the
    autoencoder's weights and the pictures, so a resumed run does not encode the data set again."""
    from taleloom.diffusion.vae_train import encode_dataset

    src = checkpoint_dir(vae_path)
    model, meta = load_vae(src)
    if images.shape[-1] != model.config.image_size:
        from taleloom.errors import BadInputError

        raise BadInputError(
            f"dataset pictures are {images.shape[-1]} px, the autoencoder {src} was trained at "
            f"{model.config.image_size} px", "set [data] image_size to the autoencoder's image_size")
    dst = out / VAE_SUBDIR
    dst.mkdir(parents=True, exist_ok=True)
    if src.resolve() != dst.resolve():
        for name in (WEIGHTS_NAME, CONFIG_NAME):
            shutil.copyfile(src / name, dst / name)
    h = hashlib.sha256((src / WEIGHTS_NAME).read_bytes())
    h.update(images.numpy().tobytes())
    cache = out / "cache" / f"latents_{h.hexdigest()[:16]}.pt"
    if cache.is_file():
        z = torch.load(cache, weights_only=True)
    else:
        z = encode_dataset(model, images)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(z, cache)
    scale = float(1.0 / z.float().std().clamp_min(1e-6))
    section = {"vae": VAE_SUBDIR, "scale": scale, "factor": model.config.factor,
               "image_size": model.config.image_size, "vae_step": meta.get("step")}
    return z * scale, section


class LatentCodec:
    """Pictures ↔ the U-Net's scaled latents, for a latent checkpoint folder."""

    def __init__(self, folder: str | os.PathLike, section: dict[str, Any], device: torch.device | str = "cpu"):
        self.vae: AutoencoderKL
        self.vae, _ = load_vae(Path(folder) / section.get("vae", VAE_SUBDIR), device)
        self.scale = float(section["scale"])
        self.factor = int(section["factor"])
        self.image_size = int(section["image_size"])

    @torch.no_grad()
    def decode(self, z: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        """Scaled latents (B, z, h, w) → pictures (B, 3, h·f, w·f) in [-1, 1]. `prompts` (one per latent) tell a
        class-conditioned decoder each picture's class (the class its prompt ends with, VAEConfig.class_index)."""
        classes = None
        if prompts is not None and self.vae.config.decoder_classes:
            classes = torch.tensor([self.vae.config.class_index(p) for p in prompts], device=z.device)
        return self.vae.decode(z / self.scale, classes).clamp(-1, 1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pictures (B, 3, S, S) in [-1, 1] → scaled posterior means."""
        return self.vae.encode(x)[0] * self.scale
