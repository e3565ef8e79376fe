"""Training recipes as files: one TOML or JSON with [data], [unet] and [train] sections.

```toml
[data]                       # a CaptionedImageFolder (see data.py)
path = "data/emoji32"        # folder with images + captions.jsonl (relative to the current directory)
low_res_size = 8             # optional: super-resolution data (unet.cond_channels must then be 3)
limit = 0                    # optional: train on a random subset of this many images (0 = all)

[unet]                       # UNetConfig fields
image_size = 32
base_channels = 64

[train]                      # TrainConfig fields
out_dir = "runs/emoji32"
max_steps = 20000
```
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from taleloom.diffusion.data import CaptionedImageFolder
from taleloom.diffusion.train import TrainConfig, TrainResult, train
from taleloom.diffusion.unet import UNetConfig
from taleloom.errors import BadInputError


@dataclass
class DataConfig:
    """Where the training images come from."""

    path: str = ""  # dataset folder holding captions.jsonl (one {"file", "caption"} per line)
    manifest: str = "captions.jsonl"  # manifest file name inside `path`
    low_res_size: int = 0  # > 0: also yield the image at this size (super-resolution training)
    limit: int = 0  # > 0: a random subset of this many items (chosen by train.seed)


@dataclass
class Recipe:
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def dataset(self) -> CaptionedImageFolder:
        if not self.data.path:
            raise BadInputError(
                "the recipe has no [data] path", "set [data] path to a folder with captions.jsonl"
            )
        return CaptionedImageFolder(
            self.data.path, self.train.unet.image_size, low_res_size=self.data.low_res_size or None,
            manifest=self.data.manifest, limit=self.data.limit or None, seed=self.train.seed,
        )  # fmt: skip


def recipe_from_dict(d: dict[str, Any], source: str = "config") -> Recipe:
    """Validate a recipe dict; unknown sections or fields raise BadInputError naming them."""
    unknown = set(d) - {"data", "unet", "train"}
    if unknown:
        raise BadInputError(
            f"{source}: unknown section(s) {', '.join(sorted(unknown))}", "use [data], [unet] and [train]"
        )
    data_known = {f.name for f in fields(DataConfig)}
    bad = set(d.get("data", {})) - data_known
    if bad:
        raise BadInputError(
            f"{source}: unknown [data] field(s) {', '.join(sorted(bad))}",
            f"known: {', '.join(sorted(data_known))}",
        )
    try:
        unet = UNetConfig.from_dict(dict(d.get("unet", {})))
        train_cfg = TrainConfig.from_dict({**d.get("train", {}), "unet": unet})
        return Recipe(DataConfig(**d.get("data", {})), train_cfg)
    except (TypeError, ValueError) as e:
        raise BadInputError(f"{source}: {e}") from e


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read a .toml or .json recipe."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(
            f"no training config at {p}", "pass a .toml or .json file with [data], [unet], [train]"
        )
    try:
        text = p.read_text(encoding="utf-8")
        d = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BadInputError(f"cannot parse {p}: {e}") from e
    return recipe_from_dict(d, str(p))


def train_recipe(
    recipe: Recipe | str | os.PathLike, resume: bool = False, overwrite: bool = False, progress: bool = True
) -> TrainResult:
    """Load the dataset a recipe names and train it (what `taleloom engine train CONFIG` runs)."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    return train(recipe.train, recipe.dataset(), resume=resume, overwrite=overwrite, progress=progress)
