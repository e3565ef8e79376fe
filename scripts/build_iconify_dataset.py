#!/usr/bin/env python3
"""Build the multi-style data set of the v2 illustrator from Iconify's colour emoji sets (never committed).

The same storybook concepts drawn in nine styles: the npm packages `@iconify-json/{noto, noto-v1,
twemoji, openmoji, fluent-emoji, fluent-emoji-flat, emojione, fxemoji, streamline-emojis}` (exact
versions in taleloom.backends.image.styles) are fetched with `npm pack` into the cache, and each
icon's SVG is rasterised with resvg (the `resvg-py` wheel, MIT; resvg itself Apache-2.0/MIT) at
112 px, centred on a white 128 px square. Two more styles are derived: `pixel` (twemoji reduced to
a 32×32 grid and 16 colours) and `ink` (OpenMoji's dark outlines in black on cream paper).

Concepts are the aligned encoder's vocabulary (CLDR names of the emoji) limited to the storybook
groups (`storybook_concept`), found in a set through its `chars.json` (code points → icon name) or,
for the sets without one, by the name's slug. Captions: "<concept>, <style words>" (styles.caption).

Split, seeded: 5% of the (concept, style) pictures are held out ("heldout"): the concept is seen in
other styles, this drawing of it is not. Output: images/*.png, captions.jsonl (the training split, for
`taleloom engine train`), manifest.json (every picture: concept, style, split, sha256; the licences).

    python scripts/build_iconify_dataset.py                       # → ~/.cache/taleloom/iconify
    python scripts/build_iconify_dataset.py --limit 30 --out /tmp/iconify   # a quick sample
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
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_emoji_dataset import storybook_concept  # noqa: E402

from taleloom.backends.image.styles import DERIVED_FROM, DERIVED_TRANSFORM, STYLES, caption  # noqa: E402

FORMAT_VERSION = 1
DEFAULT_OUT = Path.home() / ".cache" / "taleloom" / "iconify"
NPM_CACHE = Path.home() / ".cache" / "taleloom" / "npm"
IMAGE_SIZE, GLYPH_SIZE = 128, 112


def npm_tarball(package: str, version: str, cache: Path = NPM_CACHE) -> Path:
    """The package's tarball in the cache, fetched once with `npm pack` (the npm registry, pinned version)."""
    name = package.lstrip("@").replace("/", "-") + f"-{version}.tgz"
    tgz = cache / name
    if not tgz.exists():
        if shutil.which("npm") is None:
            raise SystemExit(f"{package}@{version} is not in {cache} and npm is not installed: install npm")
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", f"{package}@{version}", "--silent"], cwd=cache, check=True,
                       capture_output=True, timeout=600)
    return tgz


def load_set(package: str, version: str) -> tuple[dict, dict[str, str], dict]:
    """(icons.json, chars.json, info.json) of one Iconify set."""
    with tarfile.open(npm_tarball(package, version)) as tar:
        def read(name: str, default):
            try:
                return json.load(tar.extractfile(f"package/{name}"))  # type: ignore[arg-type]
            except KeyError:
                return default
        return read("icons.json", {}), read("chars.json", {}), read("info.json", {})


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def codepoints(emoji: str) -> str:
    return "-".join(f"{ord(c):x}" for c in emoji if ord(c) != 0xFE0F)


def find_icon(icons: dict, chars: dict[str, str], emoji: str, name: str) -> str | None:
    """The icon's name in a set: by code points, else by the concept's slug (with or without hyphens)."""
    body, aliases = icons["icons"], icons.get("aliases", {})
    cands = [chars.get(codepoints(emoji)), chars.get(codepoints(emoji) + "-fe0f"), slug(name),
             slug(name).replace("-", ""), slug(name).removesuffix("-face"), slug(name).replace("-", "_")]
    for c in cands:
        if not c:
            continue
        c = aliases.get(c, {}).get("parent", c) if c not in body else c
        if c in body:
            return c
    return None


def svg_of(icons: dict, icon: str) -> str:
    rec = icons["icons"][icon]
    w, h = rec.get("width", icons.get("width", 16)), rec.get("height", icons.get("height", 16))
    left, top = rec.get("left", icons.get("left", 0)), rec.get("top", icons.get("top", 0))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'viewBox="{left} {top} {w} {h}" width="{GLYPH_SIZE}" height="{GLYPH_SIZE}">{rec["body"]}</svg>')


def rasterise(svg: str) -> Image.Image:
    """SVG → the glyph at GLYPH_SIZE, centred on a white IMAGE_SIZE square (RGB)."""
    import resvg_py

    png = resvg_py.svg_to_bytes(svg_string=svg, width=GLYPH_SIZE, height=GLYPH_SIZE)
    glyph = Image.open(io.BytesIO(bytes(png))).convert("RGBA")
    glyph.thumbnail((GLYPH_SIZE, GLYPH_SIZE), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255, 255))
    off = ((IMAGE_SIZE - glyph.size[0]) // 2, (IMAGE_SIZE - glyph.size[1]) // 2)
    canvas.alpha_composite(glyph, off)
    return canvas.convert("RGB")


def build(out: Path, seed: int = 0, limit: int | None = None, heldout_frac: float = 0.05,
          min_styles: int = 6, progress: bool = True) -> dict:
    from taleloom.diffusion.aligned import load_aligned_encoder

    vocab = [c for c in load_aligned_encoder(None, device="cpu").vocabulary if storybook_concept(c)]
    base = {name: s for name, s in STYLES.items() if name not in DERIVED_FROM}
    sets = {name: load_set(s.source, s.version) for name, s in base.items()}
    found: dict[str, dict[str, str]] = {}  # concept → style → icon
    for c in vocab:
        hits = {st: icon for st, (icons, chars, _) in sets.items()
                if (icon := find_icon(icons, chars, c["emoji"], c["name"]))}
        if len(hits) >= min_styles:
            found[c["name"]] = hits
    names = sorted(found)
    if limit:
        names = sorted(random.Random(seed).sample(names, min(limit, len(names))))
    emoji_of = {c["name"]: c["emoji"] for c in vocab}
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    records = []
    it = names
    if progress:
        from tqdm import tqdm

        it = tqdm(names, desc="rasterising", unit="concept")
    for ci, name in enumerate(it):
        pictures: dict[str, Image.Image] = {}
        for st, icon in sorted(found[name].items()):
            try:
                pictures[st] = rasterise(svg_of(sets[st][0], icon))
            except Exception as e:  # one broken SVG must not stop the build
                print(f"skipped {st}:{icon} ({e})", file=sys.stderr)
        for derived, src in DERIVED_FROM.items():
            if src in pictures:
                pictures[derived] = DERIVED_TRANSFORM[derived](pictures[src])
        for st, img in sorted(pictures.items()):
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            data = buf.getvalue()
            rel = f"images/{ci:04d}_{st}.png"
            (out / rel).write_bytes(data)
            records.append({"file": rel, "concept": name, "emoji": emoji_of[name], "style": st,
                            "caption": caption(name, st), "sha256": hashlib.sha256(data).hexdigest()})
    order = list(range(len(records)))
    rng.shuffle(order)
    held = set(order[: round(heldout_frac * len(records))])
    for i, r in enumerate(records):
        r["split"] = "heldout" if i in held else "train"
    with (out / "captions.jsonl").open("w", encoding="utf-8") as f:
        for r in records:
            if r["split"] == "train":
                f.write(json.dumps({"file": r["file"], "caption": r["caption"]}, ensure_ascii=False) + "\n")
    manifest = {
        "format_version": FORMAT_VERSION,
        "params": {"seed": seed, "limit": limit, "image_size": IMAGE_SIZE, "glyph_size": GLYPH_SIZE,
                   "heldout_frac": heldout_frac, "min_styles": min_styles, "rasteriser": "resvg-py"},
        "styles": {name: {"words": s.words, "source": f"{s.source}@{s.version}", "licence": s.licence,
                          "attribution": s.attribution, "derived_from": DERIVED_FROM.get(name)}
                   for name, s in STYLES.items()},
        "concepts": names,
        "images": records,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
    return manifest


def load_manifest(root: Path | str = DEFAULT_OUT) -> dict:
    path = Path(root) / "manifest.json"
    if not path.exists():
        raise SystemExit(f"no Iconify data set at {root}: run `python scripts/build_iconify_dataset.py --out {root}`")
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (outside git)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="only this many concepts (a quick sample)")
    p.add_argument("--min-styles", type=int, default=6, help="keep concepts drawn by at least this many sets")
    a = p.parse_args(argv)
    m = build(a.out, seed=a.seed, limit=a.limit, min_styles=a.min_styles)
    counts = {s: sum(r["split"] == s for r in m["images"]) for s in ("train", "heldout")}
    per_style = {s: sum(r["style"] == s for r in m["images"]) for s in STYLES}
    print(f"{len(m['concepts'])} concepts, {len(m['images'])} pictures {counts}; per style {per_style} → {a.out}")


if __name__ == "__main__":
    main()
