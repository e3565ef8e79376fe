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

An autoencoder for latent diffusion has a [vae] section (VAEConfig) instead of [unet], and its
[train] takes VAETrainConfig fields. A latent U-Net names that autoencoder in [train] `vae`; its
[unet] then works on latents (in_channels = latent_channels, image_size = pictures / factor) and
the data is read at the autoencoder's picture size.
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
from taleloom.diffusion.vae import VAEConfig
from taleloom.diffusion.vae_train import VAETrainConfig, VAETrainResult, train_vae
from taleloom.errors import BadInputError


@dataclass
class DataConfig:
    """Where the training images come from."""

    path: str = ""  # dataset folder holding captions.jsonl (one {"file", "caption"} per line)
    manifest: str = "captions.jsonl"  # manifest file name inside `path`
    low_res_size: int = 0  # > 0: also yield the image at this size (super-resolution training)
    limit: int = 0  # > 0: a random subset of this many items (chosen by train.seed)
    image_size: int = 0  # > 0: read pictures at this size (default: the network's; a latent U-Net: its autoencoder's)


@dataclass
class Recipe:
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig | VAETrainConfig = field(default_factory=TrainConfig)

    @property
    def image_size(self) -> int:
        """The size the pictures are read at."""
        if self.data.image_size:
            return self.data.image_size
        if isinstance(self.train, VAETrainConfig):
            return self.train.vae.image_size
        if self.train.vae:
            from taleloom.diffusion.checkpoint import read_meta

            return int(read_meta(self.train.vae, section="vae")["vae"]["image_size"])
        return self.train.unet.image_size

    def dataset(self) -> CaptionedImageFolder:
        if not self.data.path:
            raise BadInputError(
                "the recipe has no [data] path", "set [data] path to a folder with captions.jsonl"
            )
        return CaptionedImageFolder(
            Path(self.data.path).expanduser(), self.image_size, low_res_size=self.data.low_res_size or None,
            manifest=self.data.manifest, limit=self.data.limit or None, seed=self.train.seed,
        )  # fmt: skip


def recipe_from_dict(d: dict[str, Any], source: str = "config") -> Recipe:
    """Validate a recipe dict; unknown sections or fields raise BadInputError naming them."""
    unknown = set(d) - {"data", "unet", "vae", "train"}
    if unknown:
        raise BadInputError(
            f"{source}: unknown section(s) {', '.join(sorted(unknown))}",
            "use [data], [unet] (or [vae] for an autoencoder) and [train]",
        )
    if "unet" in d and "vae" in d:
        raise BadInputError(f"{source}: a recipe trains either a U-Net ([unet]) or an autoencoder ([vae]), not both",
                            "train the autoencoder first, then name its folder in the U-Net recipe's [train] vae")
    data_known = {f.name for f in fields(DataConfig)}
    bad = set(d.get("data", {})) - data_known
    if bad:
        raise BadInputError(
            f"{source}: unknown [data] field(s) {', '.join(sorted(bad))}",
            f"known: {', '.join(sorted(data_known))}",
        )
    try:
        if "vae" in d:
            vae = VAEConfig.from_dict(dict(d["vae"]))
            return Recipe(DataConfig(**d.get("data", {})), VAETrainConfig.from_dict({**d.get("train", {}), "vae": vae}))
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
) -> TrainResult | VAETrainResult:
    """Load the dataset a recipe names and train it (what `taleloom engine train CONFIG` runs)."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if isinstance(recipe.train, VAETrainConfig):
        return train_vae(recipe.train, recipe.dataset(), resume=resume, overwrite=overwrite, progress=progress)
    return train(recipe.train, recipe.dataset(), resume=resume, overwrite=overwrite, progress=progress)
