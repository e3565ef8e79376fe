"""Captioned image datasets for the engine, and image ↔ tensor conversions shared by training and sampling.

A dataset folder holds PNG/JPEG files and a `captions.jsonl` manifest, one `{"file": ..., "caption": ...}`
per line. Items are `(image, caption)`, or `(image, low_res, caption)` for a super-resolution dataset;
images are float tensors (C, H, W) in [-1, 1].
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from taleloom.errors import BadInputError

MANIFEST = "captions.jsonl"


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any PIL mode → RGB; transparency is composited on `background` (white)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "P", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


def square(img: Image.Image, size: int, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Pad to a centred square on `background`, then resize to size×size (Lanczos)."""
    w, h = img.size
    if w != h:
        side = max(w, h)
        canvas = Image.new("RGB", (side, side), background)
        canvas.paste(img, ((side - w) // 2, (side - h) // 2))
        img = canvas
    return img if img.size == (size, size) else img.resize((size, size), Image.Resampling.LANCZOS)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image → (3, H, W) float in [-1, 1]."""
    data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(img.size[1], img.size[0], 3)
    return data.permute(2, 0, 1).float().div(127.5).sub(1.0)


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """(3, H, W) float in [-1, 1] → RGB PIL image (values clipped)."""
    arr = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0)
    return Image.fromarray(arr.contiguous().numpy(), "RGB")


def upsample_condition(low_res: torch.Tensor, size: int) -> torch.Tensor:
    """Low-res conditioning image (B, C, h, w) → (B, C, size, size), bicubic, clipped to [-1, 1].
    Training and sampling both call this, so the super-resolution model sees the same input."""
    return F.interpolate(low_res, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


class CaptionedImageFolder(Dataset):
    """Images + captions from `root/captions.jsonl`, squared on white and resized to `image_size`.

    `low_res_size`: also yield the image downsampled to that size (super-resolution training).
    `limit`: keep a random subset of that many items, chosen by `seed` (then in manifest order).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int,
        low_res_size: int | None = None,
        manifest: str = MANIFEST,
        limit: int | None = None,
        seed: int = 0,
    ):
        self.root = Path(root)
        path = self.root / manifest
        if not path.is_file():
            raise BadInputError(
                f"no caption manifest at {path}",
                f'a dataset folder needs {manifest} with one {{"file": ..., "caption": ...}} per line',
            )
        self.items: list[tuple[str, str]] = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                self.items.append((str(rec["file"]), str(rec["caption"])))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise BadInputError(f'{path}:{n} is not a {{"file", "caption"}} JSON object ({e})') from e
        if not self.items:
            raise BadInputError(f"{path} lists no images")
        if limit is not None and limit < len(self.items):
            keep = torch.randperm(len(self.items), generator=torch.Generator().manual_seed(seed))[:limit]
            self.items = [self.items[i] for i in sorted(keep.tolist())]
        self.image_size, self.low_res_size = image_size, low_res_size

    def __len__(self) -> int:
        return len(self.items)

    @property
    def captions(self) -> list[str]:
        return [c for _, c in self.items]

    def __getitem__(self, i: int):
        file, caption = self.items[i]
        try:
            with Image.open(self.root / file) as im:
                im.load()  # an RGB picture already at image_size is used as it is, after the file closes
                img = square(to_rgb(im), self.image_size)
        except (OSError, ValueError) as e:
            raise BadInputError(f"cannot read image {self.root / file}: {e}") from e
        if self.low_res_size is None:
            return pil_to_tensor(img), caption
        low = img.resize((self.low_res_size, self.low_res_size), Image.Resampling.BICUBIC)
        return pil_to_tensor(img), pil_to_tensor(low), caption


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def load_all(dataset: Dataset, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
    """Read a whole dataset once into memory as 8-bit: (images (N,C,H,W) uint8, low_res uint8 or None, captions)."""
    from tqdm.auto import tqdm

    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise BadInputError("the training dataset is empty")
    images, conds, captions = [], [], []
    for i in tqdm(range(n), desc="loading images", disable=not progress or n < 500, leave=False):
        item = dataset[i]
        if len(item) == 3:
            conds.append(_to_uint8(item[1]))
        images.append(_to_uint8(item[0]))
        captions.append(str(item[-1]))
    return torch.stack(images), (torch.stack(conds) if conds else None), captions


def image_grid(
    images: list[Image.Image], cols: int | None = None, scale: int = 1, pad: int = 2
) -> Image.Image:
    """Tile equal-size pictures on white, `cols` per row (default: near-square), each enlarged `scale`× (nearest)."""
    if not images:
        raise BadInputError("no images to put in a grid")
    w, h = images[0].size
    w, h = w * scale, h * scale
    cols = cols or max(1, round(len(images) ** 0.5 + 0.4999))
    rows = -(-len(images) // cols)
    grid = Image.new("RGB", (cols * w + (cols + 1) * pad, rows * h + (rows + 1) * pad), (255, 255, 255))
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        tile = im if scale == 1 else im.resize((w, h), Image.Resampling.NEAREST)
        grid.paste(tile, (pad + c * (w + pad), pad + r * (h + pad)))
    return grid
