"""The command line both diffusion recipes share (train_illustrator.py, train_upscaler.py): arguments,
the common TrainConfig fields, and the call to the engine's `train()`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from build_emoji_dataset import DEFAULT_OUT, TEXT_CACHE

from taleloom.diffusion.train import TrainConfig, train

COMMON = dict(schedule="cosine", timesteps=1000, prediction_type="v", min_snr_gamma=5.0, cond_drop_prob=0.1,
              seed=0, device="auto", log_every=10, cache_dir=str(TEXT_CACHE))


def run_recipe(doc: str, default_out: str, presets: dict[str, dict[str, Any]], fixed: dict[str, Any],
               make_dataset: Callable[[Path], Any], argv: list[str] | None = None) -> None:
    """Parse the recipe's flags, build its dataset and TrainConfig (COMMON < preset < fixed), train."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_OUT, help="emoji data set folder (build_emoji_dataset.py)")
    p.add_argument("--out", default=default_out, help="checkpoint folder (outside git)")
    p.add_argument("--preset", choices=sorted(presets), default="cpu")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out exactly")
    p.add_argument("--init-from", default="", help="start a new run from this checkpoint folder's weights")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dataset = make_dataset(a.data)
    kw = {**COMMON, **presets[a.preset], **fixed, "out_dir": a.out}
    if a.max_steps:
        kw["max_steps"] = a.max_steps
    if a.init_from:
        kw["init_from"] = a.init_from
    print(f"{len(dataset)} training items from {dataset.n_images} images; → {a.out}", flush=True)
    result = train(TrainConfig(**kw), dataset, resume=a.resume, progress=not a.no_progress)
    print(f"done: step {result.step}, last loss {result.losses[-1] if result.losses else float('nan'):.4f}")
