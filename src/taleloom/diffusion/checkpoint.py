"""Self-describing checkpoints: `model.safetensors` (weights) + `config.json` (format version, U-Net config,
schedule, prediction type, training config, step). Written atomically; a missing or damaged checkpoint
raises ModelNotFoundError naming the path and what to do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from taleloom.diffusion.unet import UNet, UNetConfig
from taleloom.errors import ModelNotFoundError
from taleloom.files import atomic_write_bytes, atomic_write_json

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
STATE_NAME = "train_state.pt"  # resume sidecar: raw weights, optimizer, EMA, RNG states

_TRAIN_HINT = (
    "train one with `taleloom engine train CONFIG`, or pass a folder holding model.safetensors + config.json"
)


def checkpoint_dir(path: str | os.PathLike) -> Path:
    """Accept the folder, its model.safetensors or its config.json."""
    p = Path(path)
    return p.parent if p.name in (WEIGHTS_NAME, CONFIG_NAME) else p


def save_checkpoint(
    path: str | os.PathLike, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write weights, then config.json (with format_version) last, each atomically. Returns the folder."""
    from safetensors.torch import save

    out = checkpoint_dir(path)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state_dict.items()}
    atomic_write_bytes(out / WEIGHTS_NAME, save(tensors, metadata={"format_version": str(FORMAT_VERSION)}))
    atomic_write_json(out / CONFIG_NAME, {"format_version": FORMAT_VERSION, **meta})
    return out


def read_meta(path: str | os.PathLike, section: str = "unet") -> dict[str, Any]:
    """config.json of a checkpoint, with its format version checked. `section` is the network the
    caller expects ("unet" for a diffusion model, "vae" for an autoencoder): a checkpoint of the other
    kind is refused by name instead of failing later on missing weights."""
    folder = checkpoint_dir(path)
    cfg_path = folder / CONFIG_NAME
    if not folder.exists():
        raise ModelNotFoundError(f"no diffusion checkpoint at {folder}", _TRAIN_HINT)
    if not cfg_path.is_file():
        raise ModelNotFoundError(f"checkpoint {folder} has no {CONFIG_NAME}", _TRAIN_HINT)
    try:
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelNotFoundError(f"checkpoint config {cfg_path} is corrupted ({e})", _TRAIN_HINT) from e
    if not isinstance(meta, dict) or section not in meta:
        other = next((k for k in ("unet", "vae") if isinstance(meta, dict) and k in meta), None)
        what = {"unet": "a Taleloom diffusion model", "vae": "a Taleloom autoencoder"}
        found = f"; it is {what[other]} checkpoint" if other else ""
        raise ModelNotFoundError(
            f"{cfg_path} is not {what.get(section, section)} checkpoint (no {section!r} section{found})",
            _TRAIN_HINT,
        )
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelNotFoundError(
            f"checkpoint {folder} has format_version {version!r}; this Taleloom reads version {FORMAT_VERSION}",
            "retrain it with this version of Taleloom, or use the Taleloom version that wrote it",
        )
    return meta


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[UNet, dict[str, Any]]:
    """Load (model in eval mode, meta). Raises ModelNotFoundError for a missing, foreign or damaged checkpoint."""
    from safetensors.torch import load_file

    folder = checkpoint_dir(path)
    meta = read_meta(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelNotFoundError(f"checkpoint {folder} has no {WEIGHTS_NAME}", _TRAIN_HINT)
    try:
        config = UNetConfig.from_dict(meta["unet"])
        state = load_file(str(weights))
        model = UNet(config)
        model.load_state_dict(state, strict=True)
    except Exception as e:  # safetensors parse errors, shape/key mismatches, bad config values
        raise ModelNotFoundError(f"checkpoint {folder} is corrupted or incomplete: {_first_line(e)}", _TRAIN_HINT) from e
    return model.to(device).eval(), meta


def _first_line(e: Exception, limit: int = 300) -> str:
    """torch's load_state_dict report lists every mismatched tensor (hundreds of lines); one line says enough."""
    text = " ".join(str(e).split("\n\t")[:2]).splitlines()[0] if str(e) else type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
