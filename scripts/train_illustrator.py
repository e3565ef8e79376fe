#!/usr/bin/env python3
"""Train the embedded illustrator's base text-to-image model (32×32 pixels) on the emoji data set.

Seeded and resumable (the engine's `train()` writes model.safetensors + config.json + train_state.pt
every --checkpoint-every steps; `--resume` continues exactly). Presets:

    --preset cpu          phase 1 of the shipped model: ~2M parameters, batch 32, constant lr 1e-3, 6,000 steps
                          (shipped run: 2 CPU cores shared with other jobs; see the model card)
    --preset cpu-anneal   phase 2, only with --resume on the phase-1 folder: the same run continued to
                          9,000 steps with the lr on a cosine curve (the engine's "cosine" schedule over
                          warm-up..max_steps, so it drops from 1e-3 to 2.9e-4 at step 6,000 and decays to 5e-5)
    --preset cpu-finetune phase 3, with --init-from the phase-2 model (the step-9,000 weights shipped at commit
                          425e9cc): a new run of 3,000 steps that starts from those weights (model and EMA; the
                          phase-2 optimizer state was not kept), warm-up 100 steps to lr 1.5e-4, cosine down to
                          1.5e-5. Steps 9,000..12,000 of the shipped model.
    --preset gpu          the same network, batch 128, 20k steps (minutes on one GPU)

    python scripts/build_emoji_dataset.py
    python scripts/train_illustrator.py --out runs/illustrator --threads 1                    # steps 0..6000
    python scripts/train_illustrator.py --out runs/illustrator --threads 1 --preset cpu-anneal --resume
    mkdir -p runs/step9000 && git archive 425e9cc src/taleloom/assets/illustrator | tar -x -C runs/step9000 --strip-components=4
    python scripts/train_illustrator.py --out runs/illustrator-ft --threads 1 --preset cpu-finetune --init-from runs/step9000
    python scripts/export_assets.py --illustrator runs/illustrator-ft   # fp16 into src/taleloom/assets/ + hashes

All phases are deterministic (data order, noise and timesteps are functions of the seed and the saved
generator state), so the commands, run in sequence, reproduce the shipped run step for step.
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
    "cpu-anneal": dict(batch_size=32, max_steps=9000, lr=1e-3, warmup_steps=50, ema_decay=0.995, checkpoint_every=50,
                       lr_schedule="cosine", min_lr_ratio=0.05),
    "cpu-finetune": dict(batch_size=32, max_steps=3000, lr=1.5e-4, warmup_steps=100, ema_decay=0.995,
                         checkpoint_every=50, lr_schedule="cosine", min_lr_ratio=0.1),
    "gpu": dict(batch_size=128, max_steps=20000, lr=4e-4, warmup_steps=500, ema_decay=0.9995,
                checkpoint_every=1000, lr_schedule="cosine"),
}


def main(argv: list[str] | None = None) -> None:
    run_recipe(__doc__, "runs/illustrator", PRESETS, dict(unet=BASE_UNET),
               lambda data: EmojiCaptions(data, size=BASE_UNET.image_size), argv)


if __name__ == "__main__":
    main()
