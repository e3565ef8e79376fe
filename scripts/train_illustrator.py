#!/usr/bin/env python3
"""Train the embedded illustrator's base text-to-image model (32×32 pixels) on the emoji data set.

Seeded and resumable (the engine's `train()` writes model.safetensors + config.json + train_state.pt
every --checkpoint-every steps; `--resume` continues exactly). Two presets:

    --preset cpu   the shipped model: ~2M parameters, batch 32, as many steps as the CPU allows
                   (shipped run: 2 CPU cores shared with other jobs; see the model card)
    --preset gpu   the same network, batch 128, 20k steps (minutes on one GPU)

    python scripts/build_emoji_dataset.py
    python scripts/train_illustrator.py --out runs/illustrator --max-steps 4000 [--resume]
    python scripts/export_assets.py     # copies the checkpoint into src/taleloom/assets/, fp16 + hashes
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_emoji_dataset import EmojiCaptions  # noqa: E402
from recipe import run_recipe  # noqa: E402

from taleloom.diffusion.unet import UNetConfig  # noqa: E402

BASE_UNET = UNetConfig(
    base_channels=24, channel_mults=(1, 2, 4), num_res_blocks=1, attention_resolutions=(8,), num_heads=4,
    norm_groups=8, image_size=32, max_text_len=32, dropout=0.0,
)
PRESETS = {
    "cpu": dict(batch_size=32, max_steps=6000, lr=1e-3, warmup_steps=50, ema_decay=0.995, checkpoint_every=50),
    "gpu": dict(batch_size=128, max_steps=20000, lr=4e-4, warmup_steps=500, ema_decay=0.9995,
                checkpoint_every=1000, lr_schedule="cosine"),
}


def main(argv: list[str] | None = None) -> None:
    run_recipe(__doc__, "runs/illustrator", PRESETS, dict(unet=BASE_UNET),
               lambda data: EmojiCaptions(data, size=BASE_UNET.image_size), argv)


if __name__ == "__main__":
    main()
