"""Finding a model on this machine — a folder, or a Hugging Face repo id already in the local cache — and
never downloading one. A miss names the folder and how to get the model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field

from taleloom.backends.base import Options
from taleloom.errors import ModelNotFoundError


class TorchOptions(Options):
    """Where a local torch model runs."""

    device: str = Field("auto", description="'auto' (CUDA when present), 'cuda', 'cuda:1', 'cpu', 'mps'")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto: float16 on CUDA, float32 elsewhere")


def pick_dtype(options: TorchOptions, device: str):
    """The torch dtype for `options.dtype` on `device` (auto: float16 on CUDA, float32 elsewhere)."""
    import torch

    if options.dtype != "auto":
        return getattr(torch, options.dtype)
    return torch.float16 if device.startswith("cuda") else torch.float32


def how_to_get(backend: str, repo: str) -> str:
    folder = f"/models/{repo.split('/')[-1]}"
    return (f"get it with `hf download {repo} --local-dir {folder}` (or `huggingface-cli download ...`) "
            f"and point the spec at that folder: {backend}:{folder}")


def resolve_model_folder(location: str | None, backend: str, repo: str, marker: str = "config.json") -> Path:
    """`location` as a folder holding `marker` (a file or, with `marker=""`, anything), or a cached repo id.

    `repo` is the model suggested in the message when nothing is found.
    """
    get = how_to_get(backend, repo)
    if not location:
        raise ModelNotFoundError(f"the {backend} backend needs a model folder and none was given", get)
    path = Path(location).expanduser()
    if path.exists():
        if marker and path.is_dir() and not (path / marker).exists():
            raise ModelNotFoundError(f"{path} is not a model folder for {backend} (it has no {marker})",
                                     f"point at the folder that holds {marker}; {get}")
        return path
    if re.fullmatch(r"[\w.-]+/[\w.-]+", location) and not location.startswith("."):
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(location, local_files_only=True))
        except Exception as e:  # LocalEntryNotFoundError and friends
            raise ModelNotFoundError(f"{location} is not in the local Hugging Face cache ({type(e).__name__})",
                                     "nothing is downloaded at run time; " + how_to_get(backend, location)) from e
    raise ModelNotFoundError(f"model folder {path} does not exist", get)
