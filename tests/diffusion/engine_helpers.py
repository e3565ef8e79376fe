"""Shared tiny models and datasets for the engine tests (imported, not a conftest, to stay out of others' way)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import torch
from torch.utils.data import Dataset

from taleloom.diffusion.train import TrainConfig, train
from taleloom.diffusion.unet import UNet, UNetConfig

CAPTIONS = [
    "red circle",
    "blue circle",
    "green square",
    "yellow square",
    "a cat",
    "a dog",
    "a tree",
    "a house",
]


def tiny_unet_config(size: int = 8, **kw) -> UNetConfig:
    base = dict(image_size=size, base_channels=16, channel_mults=(1, 2), num_res_blocks=1,
                attention_resolutions=(size // 2,), num_heads=2)  # fmt: skip
    return UNetConfig(**{**base, **kw})


def randomized(model: UNet, seed: int = 0) -> UNet:
    """Fill the zero-initialised layers with noise, so a fresh model's output depends on every input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


class TinyImages(Dataset):
    """N random-but-fixed images (C, S, S) in [-1, 1] on the 8-bit grid, with captions; optional low-res copies."""

    def __init__(self, n: int = 8, size: int = 8, low_res: int | None = None, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(0, 256, (n, 3, size, size), generator=g).float() / 127.5 - 1
        self.captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(n)]
        self.low_res = low_res

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        if self.low_res is None:
            return self.x[i], self.captions[i]
        low = torch.nn.functional.avg_pool2d(self.x[i][None], self.x.shape[-1] // self.low_res)[0]
        return self.x[i], low, self.captions[i]


_CHECKPOINTS: dict[str, Path] = {}


def tiny_checkpoint(kind: str = "t2i") -> Path:
    """A 16px model trained a few steps (once per test session): 't2i' or 'sr' (x2 super-resolution)."""
    if kind not in _CHECKPOINTS:
        out = Path(tempfile.mkdtemp(prefix=f"taleloom-{kind}-"))
        atexit.register(shutil.rmtree, out, True)
        if kind == "sr":
            cfg = tiny_unet_config(16, cond_channels=3)
            data = TinyImages(4, 16, low_res=8)
        else:
            cfg, data = tiny_unet_config(16), TinyImages(4, 16)
        train(TrainConfig(out_dir=str(out), unet=cfg, batch_size=4, max_steps=3, warmup_steps=1,
                          checkpoint_every=3, cond_noise_aug=0.1 if kind == "sr" else 0.0), data, progress=False)  # fmt: skip
        _CHECKPOINTS[kind] = out
    return _CHECKPOINTS[kind]
