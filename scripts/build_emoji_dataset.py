#!/usr/bin/env python3
"""Build the captioned emoji image set the embedded illustrator is trained on (never committed).

Every fully-qualified emoji of the `emoji` package that Noto Color Emoji draws is rendered with
Pillow (the font's colour bitmaps at size 109, `embedded_color=True`), composited on white and
saved as a 128×128 PNG, in several seeded "views" (the canonical glyph, then copies moved, scaled
and slightly turned), so held-out images of seen concepts exist. Captions come from CLDR: the
emoji's English name, its aliases, and — when the OpenMoji npm package is at hand — the CLDR
keyword tags that OpenMoji's `openmoji.json` lists.

Left out on purpose (documented in the model card): skin-tone variants (2,040 of 3,963 fully
qualified emoji — they would dominate and differ only in one colour), flags (262 near-identical
rectangles that a 32-pixel model cannot tell apart) and keycaps (12).

Splits, seeded: 10% of concepts are held out entirely ("unseen"); of the rest, 5% of images are
held out ("heldout"); everything else is "train".

    python scripts/build_emoji_dataset.py                 # → ~/.cache/taleloom/emoji
    python scripts/build_emoji_dataset.py --limit 20 --out /tmp/emoji   # a quick sample

The result is a folder with images/*.png and manifest.json (parameters, one record per image
with its captions, split and sha256). `load_split()` packs a split into a uint8 array (cached as
.npy beside the manifest) for training.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FORMAT_VERSION = 1
FONT_PATH = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
FONT_SIZE = 109  # the one bitmap strike of Noto Color Emoji (136×128 px glyph cells)
DEFAULT_OUT = Path.home() / ".cache" / "taleloom" / "emoji"
TEXT_CACHE = Path.home() / ".cache" / "taleloom" / "text"  # MiniLM encodings of the captions (train.py cache)
OPENMOJI_VERSION = "17.0.0"  # npm package; its data file lists CLDR keyword tags (CC BY-SA 4.0)
MAX_EMOJI_VERSION = 15.1  # the Debian font (2023) draws nothing newer
IMAGE_SIZE = 128
SPLITS = ("train", "heldout", "unseen")

# Caption templates: {name} is the CLDR name, {a} its article ("a red apple", "cherries").
TEMPLATES = (
    "{name}",
    "an emoji of {a}{name}",
    "{a}{name} emoji",
    "a picture of {a}{name}",
    "a cute drawing of {a}{name}",
)


@dataclass(frozen=True)
class Concept:
    """One emoji: its characters and what CLDR calls it."""

    emoji: str
    name: str  # CLDR English short name, e.g. "red apple"
    aliases: tuple[str, ...]  # GitHub/Slack-style aliases from the emoji package, as words
    keywords: tuple[str, ...]  # CLDR keyword tags where known (via OpenMoji's data), else ()
    group: str  # CLDR group when known ("food-drink"), else ""


def _words(code: str) -> str:
    """':red_apple:' → 'red apple'."""
    return code.strip(":").replace("_", " ").strip()


def cldr_name(emoji_char: str) -> str:
    """The CLDR English name the `emoji` package holds for one emoji."""
    import emoji

    return _words(emoji.EMOJI_DATA[emoji_char]["en"])


def _is_skin_tone(e: str) -> bool:
    return any(0x1F3FB <= ord(c) <= 0x1F3FF for c in e)


def _is_flag(e: str) -> bool:
    return any(0x1F1E6 <= ord(c) <= 0x1F1FF for c in e) or "\U000e007f" in e


def _is_keycap(e: str) -> bool:
    return "\u20e3" in e


def select_emoji() -> list[str]:
    """Fully-qualified emoji the Debian font can draw, minus skin tones, flags and keycaps (sorted)."""
    import emoji

    out = []
    for e, data in emoji.EMOJI_DATA.items():
        if data["status"] != emoji.STATUS["fully_qualified"] or float(data["E"]) > MAX_EMOJI_VERSION:
            continue
        if _is_skin_tone(e) or _is_flag(e) or _is_keycap(e):
            continue
        out.append(e)
    return sorted(out, key=lambda e: [ord(c) for c in e])


def openmoji_tags(cache: Path) -> dict[str, tuple[tuple[str, ...], str]]:
    """emoji → (CLDR keyword tags, group) from the OpenMoji npm package, or {} when npm can't fetch it."""
    tgz = cache / f"openmoji-{OPENMOJI_VERSION}.tgz"
    if not tgz.exists():
        if shutil.which("npm") is None:
            return {}
        cache.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(["npm", "pack", f"openmoji@{OPENMOJI_VERSION}", "--silent"], cwd=cache,
                           check=True, capture_output=True, timeout=300)
        except (subprocess.SubprocessError, OSError) as e:
            print(f"note: no OpenMoji keywords ({e}); captions use CLDR names and aliases only", file=sys.stderr)
            return {}
    with tarfile.open(tgz) as tar:
        data = json.load(tar.extractfile("package/data/openmoji.json"))  # type: ignore[arg-type]
    out = {}
    for row in data:
        tags = tuple(t.strip() for t in row.get("tags", "").split(",") if t.strip())
        out[row["emoji"].replace("\ufe0f", "")] = (tags, row.get("group", ""))
    return out


def make_concepts(chars: list[str], tags: dict[str, tuple[tuple[str, ...], str]]) -> list[Concept]:
    import emoji

    concepts = []
    for e in chars:
        name = cldr_name(e)
        aliases = tuple(dict.fromkeys(a for a in (_words(x) for x in emoji.EMOJI_DATA[e].get("alias", []))
                                      if a.lower() != name.lower() and not re.search(r"\d$", a)))
        kw, group = tags.get(e.replace("\ufe0f", ""), ((), ""))
        concepts.append(Concept(e, name, aliases, tuple(k for k in kw if k != name), group))
    return concepts


def _article(name: str) -> str:
    if name.endswith("s") and not name.endswith("ss"):  # "cherries", "sunglasses": no article
        return ""
    return "an " if name[0].lower() in "aeiou" else "a "


def captions_for(c: Concept) -> list[str]:
    """Caption variants for one concept; the first is always the bare CLDR name."""
    caps = [t.format(name=c.name, a=_article(c.name)) for t in TEMPLATES]
    caps += [f"{a}" for a in c.aliases[:2]]
    if c.keywords:
        caps.append(f"{c.name}, {', '.join(c.keywords[:3])}")
    return list(dict.fromkeys(caps))


def render_glyph(font: ImageFont.FreeTypeFont, e: str) -> Image.Image | None:
    """The emoji's colour bitmap as RGBA, cropped to its opaque pixels; None if the font lacks it."""
    canvas = Image.new("RGBA", (160, 144), (255, 255, 255, 0))
    ImageDraw.Draw(canvas).text((4, 4), e, font=font, embedded_color=True)
    box = canvas.getchannel("A").getbbox()
    if box is None or box[2] - box[0] < 8 or box[3] - box[1] < 8 or font.getlength(e) > 140:
        return None  # empty (no glyph) or drawn as several glyphs side by side (no ligature)
    return canvas.crop(box)


def compose(glyph: Image.Image, view: int, rng: random.Random, size: int = IMAGE_SIZE) -> Image.Image:
    """Place a glyph on a white square: view 0 is centred with a small margin; later views are
    scaled (0.65–0.95), shifted and turned (±12°) at random."""
    if view == 0:
        scale, angle, dx, dy = 0.875, 0.0, 0.0, 0.0
    else:
        scale, angle = rng.uniform(0.65, 0.95), rng.uniform(-12, 12)
        dx, dy = rng.uniform(-1, 1), rng.uniform(-1, 1)
    g = glyph
    if angle:
        g = g.rotate(angle, resample=Image.BICUBIC, expand=True)
    side = scale * size
    f = side / max(g.size)
    g = g.resize((max(1, round(g.width * f)), max(1, round(g.height * f))), Image.LANCZOS)
    free_x, free_y = size - g.width, size - g.height
    x = round(free_x / 2 + dx * free_x / 2)
    y = round(free_y / 2 + dy * free_y / 2)
    out = Image.new("RGBA", (size, size), (255, 255, 255, 255))
    out.alpha_composite(g, (x, y))
    return out.convert("RGB")


def assign_splits(n_concepts: int, views: int, seed: int, unseen_frac: float = 0.10,
                  heldout_frac: float = 0.05) -> list[list[str]]:
    """split[concept][view]: whole concepts go to 'unseen'; a share of other images to 'heldout'."""
    rng = random.Random(seed)
    order = list(range(n_concepts))
    rng.shuffle(order)
    unseen = set(order[: round(unseen_frac * n_concepts)])
    images = [(c, v) for c in range(n_concepts) if c not in unseen for v in range(views)]
    rng.shuffle(images)
    heldout = set(images[: round(heldout_frac * len(images))])
    return [["unseen" if c in unseen else "heldout" if (c, v) in heldout else "train" for v in range(views)]
            for c in range(n_concepts)]


def build(out: Path, views: int = 4, seed: int = 0, limit: int | None = None,
          keywords: bool = True, npm_cache: Path | None = None, progress: bool = True) -> dict:
    """Render, caption and split the data set into `out`; returns the manifest (also written)."""
    if not FONT_PATH.exists():
        raise SystemExit(f"{FONT_PATH} is missing: install the Debian package fonts-noto-color-emoji")
    font = ImageFont.truetype(str(FONT_PATH), size=FONT_SIZE)
    chars = select_emoji()
    tags = openmoji_tags(npm_cache or out.parent / "npm") if keywords else {}
    if limit:  # a seeded sample, rendered until `limit` glyphs exist
        random.Random(seed).shuffle(chars)
    glyphs: dict[str, Image.Image] = {}
    for e in chars:
        g = render_glyph(font, e)
        if g is not None:
            glyphs[e] = g
            if limit and len(glyphs) == limit:
                break
    chars = sorted(glyphs, key=lambda e: [ord(c) for c in e])
    concepts = make_concepts(chars, tags)
    splits = assign_splits(len(concepts), views, seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    records = []
    it = range(len(concepts))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="rendering", unit="emoji")
    for ci in it:
        c = concepts[ci]
        rng = random.Random(f"{seed}:{c.emoji}")
        for v in range(views):
            img = compose(glyphs[c.emoji], v, rng)
            buf = io.BytesIO()
            img.save(buf, format="PNG", optimize=False)
            data = buf.getvalue()
            rel = f"images/{ci:05d}_{v}.png"
            (out / rel).write_bytes(data)
            records.append({"file": rel, "concept": ci, "view": v, "split": splits[ci][v],
                            "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {
        "format_version": FORMAT_VERSION,
        "params": {"views": views, "seed": seed, "limit": limit, "image_size": IMAGE_SIZE,
                   "font": FONT_PATH.name, "font_size": FONT_SIZE, "keywords_from": f"openmoji@{OPENMOJI_VERSION}"
                   if tags else None, "excluded": ["skin-tone variants", "flags", "keycaps",
                                                   f"emoji newer than {MAX_EMOJI_VERSION}"]},
        "licences": {"images": "Noto Color Emoji, SIL Open Font License 1.1",
                     "names": "Unicode CLDR (Unicode License v3) via the emoji package (BSD)",
                     "keywords": "CLDR tags as listed by OpenMoji's openmoji.json (CC BY-SA 4.0)" if tags else None},
        "concepts": [{"emoji": c.emoji, "name": c.name, "aliases": list(c.aliases), "keywords": list(c.keywords),
                      "group": c.group, "captions": captions_for(c)} for c in concepts],
        "images": records,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
    for stale in out.glob("pack_*.npz"):  # packed arrays of an older build
        stale.unlink()
    return manifest


def verify(root: Path) -> list[str]:
    """Files whose sha256 no longer matches the manifest (empty list: the data set is intact)."""
    manifest = json.loads((root / "manifest.json").read_text())
    return [r["file"] for r in manifest["images"]
            if hashlib.sha256((root / r["file"]).read_bytes()).hexdigest() != r["sha256"]]


def load_manifest(root: Path | str = DEFAULT_OUT) -> dict:
    path = Path(root) / "manifest.json"
    if not path.exists():
        raise SystemExit(f"no emoji data set at {root}: run `python scripts/build_emoji_dataset.py --out {root}`")
    return json.loads(path.read_text())


def load_split(root: Path | str = DEFAULT_OUT, split: str | tuple[str, ...] = "train",
               size: int = IMAGE_SIZE) -> tuple[np.ndarray, list[dict], dict]:
    """(images uint8 (N,size,size,3), image records, manifest) for one or several splits.

    Packed arrays are cached beside the manifest (pack_<size>.npz) so training starts fast."""
    root = Path(root)
    manifest = load_manifest(root)
    splits = (split,) if isinstance(split, str) else tuple(split)
    for s in splits:
        if s not in SPLITS:
            raise ValueError(f"unknown split {s!r}; known: {', '.join(SPLITS)}")
    pack = root / f"pack_{size}.npz"
    if pack.exists():
        arr = np.load(pack)["images"]
    else:
        arr = np.stack([np.asarray(Image.open(root / r["file"]).convert("RGB").resize((size, size), Image.BICUBIC)
                                   if size != IMAGE_SIZE else Image.open(root / r["file"]).convert("RGB"))
                        for r in manifest["images"]])
        np.savez(pack, images=arr)
    idx = [i for i, r in enumerate(manifest["images"]) if r["split"] in splits]
    return arr[idx], [manifest["images"][i] for i in idx], manifest


# The illustrator's vocabulary: what storybook scenes are made of. Symbols (signs, buttons, zodiac,
# clocks), smileys, objects and the gendered/combined variants of people are left to the captioner.
STORYBOOK_GROUPS = ("animals-nature", "food-drink", "travel-places", "activities")
_PEOPLE_SKIP = re.compile(r"^(man|woman|men|women) |family|kiss|couple|hand|finger|thumb|palm|fist|nail|holding|with |facing")


def storybook_concept(concept: dict) -> bool:
    """Is this concept in the illustrator's training vocabulary? (its group, or a plain person/body concept)"""
    if concept["group"] in STORYBOOK_GROUPS:
        return True
    return concept["group"] == "people-body" and not _PEOPLE_SKIP.search(concept["name"])


def _to_tensor(a: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div(127.5).sub(1.0)


class EmojiCaptions:
    """(image (3,size,size) in [-1,1], caption) pairs for the base model: every training image once per
    caption variant — the bare name, "an emoji of …", the aliases and the keyword caption — for the
    concepts `only` accepts (default: the storybook vocabulary)."""

    def __init__(self, root: Path | str = DEFAULT_OUT, size: int = 32, split: str | tuple[str, ...] = "train",
                 only=storybook_concept):
        self.images, records, manifest = load_split(root, split, size)
        keep = [i for i, r in enumerate(records) if only is None or only(manifest["concepts"][r["concept"]])]
        self.images, records = self.images[keep], [records[i] for i in keep]
        self.n_images = len(records)
        self.items: list[tuple[int, str]] = []
        for i, r in enumerate(records):
            caps = manifest["concepts"][r["concept"]]["captions"]
            for c in caps[:2] + caps[len(TEMPLATES):]:
                self.items.append((i, c))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        j, caption = self.items[i]
        return _to_tensor(self.images[j]), caption


class EmojiSuperRes:
    """(high-res patch (3,patch,patch), upsampled low-res patch (3,patch,patch), caption) for the ×4 model.

    The low-res input is the 32-pixel image (what the base model draws), upsampled bicubic to 128 the
    way `upsample_condition` does at sampling time, then cropped at the same place as the target."""

    def __init__(self, root: Path | str = DEFAULT_OUT, low: int = 32, high: int = IMAGE_SIZE, patch: int = 64,
                 crops_per_image: int = 4, seed: int = 0, split: str | tuple[str, ...] = "train"):
        import torch

        from taleloom.diffusion.data import upsample_condition

        self.hr, records, manifest = load_split(root, split, high)
        lr, _, _ = load_split(root, split, low)
        self.n_images = len(records)
        up = []
        for i in range(0, len(lr), 256):  # (N, 3, high, high) uint8, bicubic like sampling
            x = upsample_condition(torch.from_numpy(lr[i:i + 256]).permute(0, 3, 1, 2).float() / 127.5 - 1, high)
            up.append(((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
        self.up = np.concatenate(up)
        rng = random.Random(seed)
        step = high // low  # crops start on the low-res grid
        self.items = [(i, step * rng.randrange((high - patch) // step + 1), step * rng.randrange((high - patch) // step + 1),
                       manifest["concepts"][r["concept"]]["name"])
                      for i, r in enumerate(records) for _ in range(crops_per_image)]
        self.patch = patch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int):
        i, y, x, caption = self.items[k]
        p = self.patch
        return _to_tensor(self.hr[i, y:y + p, x:x + p]), _to_tensor(self.up[i, y:y + p, x:x + p]), caption


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (outside git)")
    p.add_argument("--views", type=int, default=4, help="images per emoji (view 0 is the canonical glyph)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="only this many emoji (a quick sample)")
    p.add_argument("--no-keywords", action="store_true", help="skip OpenMoji's CLDR keyword tags (no npm)")
    p.add_argument("--verify", action="store_true", help="only check the existing files against the manifest")
    a = p.parse_args(argv)
    if a.verify:
        bad = verify(a.out)
        print("intact" if not bad else f"{len(bad)} files differ from the manifest, e.g. {bad[:3]}")
        sys.exit(1 if bad else 0)
    m = build(a.out, views=a.views, seed=a.seed, limit=a.limit, keywords=not a.no_keywords)
    counts = {s: sum(r["split"] == s for r in m["images"]) for s in SPLITS}
    print(f"{len(m['concepts'])} concepts, {len(m['images'])} images {counts} → {a.out}")


if __name__ == "__main__":
    main()
