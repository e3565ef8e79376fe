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

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_emoji_dataset import DEFAULT_OUT, TEXT_CACHE, EmojiCaptions  # noqa: E402

from taleloom.diffusion.train import TrainConfig, train  # noqa: E402
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


def config_for(preset: str, out: str, **overrides) -> TrainConfig:
    kw = dict(PRESETS[preset], out_dir=out, unet=BASE_UNET, schedule="cosine", timesteps=1000,
              prediction_type="v", min_snr_gamma=5.0, cond_drop_prob=0.1, seed=0, device="auto", log_every=10,
              cache_dir=str(TEXT_CACHE))
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**kw)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_OUT, help="emoji data set folder (build_emoji_dataset.py)")
    p.add_argument("--out", default="runs/illustrator", help="checkpoint folder (outside git)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dataset = EmojiCaptions(a.data, size=BASE_UNET.image_size)
    config = config_for(a.preset, a.out, max_steps=a.max_steps)
    print(f"{len(dataset)} (image, caption) pairs from {dataset.n_images} training images; → {a.out}", flush=True)
    result = train(config, dataset, resume=a.resume, progress=not a.no_progress)
    print(f"done: step {result.step}, last loss {result.losses[-1] if result.losses else float('nan'):.4f}")


if __name__ == "__main__":
    main()
