#!/usr/bin/env python3
"""Train the embedded ×4 super-resolution model (32 → 128 pixels) on the emoji data set.

The U-Net sees the noisy high-resolution image concatenated with the bicubic-upsampled low-res
image (`cond_channels=3`). It is fully convolutional, so it trains on 64×64 patches (4 random
crops per training image, aligned to the low-res grid) and samples whole 128×128 pictures.
Seeded and resumable like every recipe here (`--resume`).

    python scripts/train_upscaler.py --out runs/upscaler --max-steps 4000 [--resume]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_emoji_dataset import EmojiSuperRes  # noqa: E402
from recipe import run_recipe  # noqa: E402

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


def main(argv: list[str] | None = None) -> None:
    run_recipe(__doc__, "runs/upscaler", PRESETS, dict(unet=SR_UNET, cond_noise_aug=0.1),
               lambda data: EmojiSuperRes(data, low=32, high=128, patch=SR_UNET.image_size), argv)


if __name__ == "__main__":
    main()
