#!/usr/bin/env python3
"""Train the embedded ×4 super-resolution model (32 → 128 pixels) on the emoji data set.

The U-Net sees the noisy high-resolution image concatenated with the bicubic-upsampled low-res
image (`cond_channels=3`). It is fully convolutional, so it trains on 64×64 patches (4 random
crops per training image, aligned to the low-res grid) and samples whole 128×128 pictures.
Seeded and resumable like every recipe here (`--resume`).

    python scripts/train_upscaler.py --out runs/upscaler --max-steps 4000 [--resume]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_emoji_dataset import DEFAULT_OUT, TEXT_CACHE, EmojiSuperRes  # noqa: E402

from taleloom.diffusion.train import TrainConfig, train  # noqa: E402
from taleloom.diffusion.unet import UNetConfig  # noqa: E402

SR_UNET = UNetConfig(
    cond_channels=3, base_channels=24, channel_mults=(1, 2, 4), num_res_blocks=1, attention_resolutions=(),
    num_heads=4, norm_groups=8, image_size=64, max_text_len=32,
)
PRESETS = {
    "cpu": dict(batch_size=16, max_steps=4000, lr=5e-4, warmup_steps=200, ema_decay=0.999, checkpoint_every=100),
    "gpu": dict(batch_size=64, max_steps=20000, lr=3e-4, warmup_steps=500, ema_decay=0.9995,
                checkpoint_every=1000, lr_schedule="cosine"),
}


def config_for(preset: str, out: str, **overrides) -> TrainConfig:
    kw = dict(PRESETS[preset], out_dir=out, unet=SR_UNET, schedule="cosine", timesteps=1000, prediction_type="v",
              min_snr_gamma=5.0, cond_drop_prob=0.1, cond_noise_aug=0.1, seed=0, device="auto", log_every=10,
              cache_dir=str(TEXT_CACHE))
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**kw)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_OUT, help="emoji data set folder (build_emoji_dataset.py)")
    p.add_argument("--out", default="runs/upscaler", help="checkpoint folder (outside git)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dataset = EmojiSuperRes(a.data, low=32, high=128, patch=SR_UNET.image_size)
    config = config_for(a.preset, a.out, max_steps=a.max_steps)
    print(f"{len(dataset)} patches from {dataset.n_images} training images; → {a.out}", flush=True)
    result = train(config, dataset, resume=a.resume, progress=not a.no_progress)
    print(f"done: step {result.step}, last loss {result.losses[-1] if result.losses else float('nan'):.4f}")


if __name__ == "__main__":
    main()
