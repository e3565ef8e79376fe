"""How much of the pictures' style and subject the v2 autoencoder keeps: real held-out pictures of every
style, encoded and decoded by each decoder named, judged by the probe of illustrator_probe.py (ImageNet
features, heads fitted on the real training pictures) beside the real pictures themselves.

    python benchmarks/vae_decoder.py [--vae src/taleloom/assets/illustrator-v2/vae] [--vae runs/v2-vae-decoder]
                                     [--per-style 10]

Why: a latent U-Net's pictures are only as sharp as its decoder makes them, and the probe tells styles
apart by fine marks (outlines, pixel steps, gradients); a decoder that blurs them caps the illustrator's
style figure whatever the U-Net does. The decoders compared must share the encoder (decoder_only
training keeps it), so the latents each one decodes are the same. Writes benchmarks/results/vae_decoder.json
and a grid PNG (top row real, then one row per decoder).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "benchmarks"))
from build_iconify_dataset import DEFAULT_OUT, load_manifest  # noqa: E402
from illustrator_probe import Probe  # noqa: E402

from taleloom.backends.image.styles import caption  # noqa: E402
from taleloom.diffusion.vae import load_vae  # noqa: E402

SHIPPED = REPO / "src/taleloom/assets/illustrator-v2/vae"


def held_out(recs: list[dict], per_style: int) -> list[dict]:
    """`per_style` held-out pictures of each style (seeded)."""
    by: dict[str, list[dict]] = {}
    for r in recs:
        if r["split"] == "heldout":
            by.setdefault(r["style"], []).append(r)
    rng, pick = random.Random(0), []
    for style in sorted(by):
        rng.shuffle(by[style])
        pick += by[style][:per_style]
    return pick


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)
                        for im in images])


def to_pil(x: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray(((p.permute(1, 2, 0).clamp(-1, 1).numpy() + 1) * 127.5).round().astype(np.uint8))
            for p in x]


def judge(probe: Probe, images: list[Image.Image], pick: list[dict]) -> dict:
    concept_f, style_f = probe.features(images)
    style = probe.style_accuracy(style_f, [r["style"] for r in pick])
    return {"concept_top5": round(probe.concept_hits(concept_f, [r["concept"] for r in pick])["top5"], 4),
            "style": round(style["mean_per_style"], 4),
            "per_style": {k: round(v, 3) for k, v in style["per_style"].items()}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vae", type=Path, action="append", help="autoencoder folder (repeat); default: the shipped one")
    p.add_argument("--data", type=Path, default=DEFAULT_OUT)
    p.add_argument("--per-style", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    recs = load_manifest(args.data)["images"]
    pick = held_out(recs, args.per_style)
    probe = Probe()
    concept_f, style_f = probe.cached_features([args.data / r["file"] for r in recs], [r["sha256"] for r in recs])
    train = [i for i, r in enumerate(recs) if r["split"] == "train"]
    probe.fit(concept_f[train], style_f[train], [recs[i]["concept"] for i in train], [recs[i]["style"] for i in train])
    real = [Image.open(args.data / r["file"]).convert("RGB") for r in pick]
    x = to_tensor(real)
    result: dict = {"pictures": len(pick), "per_style": args.per_style, "threads": args.threads,
                    "load_average_1m": round(os.getloadavg()[0], 2), "real": judge(probe, real, pick), "decoders": {}}
    print(f"real: concept top-5 {result['real']['concept_top5']:.1%}, style {result['real']['style']:.1%}")
    rows = [real]
    latents = None
    for folder in args.vae or [SHIPPED]:
        vae, meta = load_vae(folder)
        with torch.no_grad():
            z = vae.encode(x)[0]
            if latents is not None and not torch.equal(z, latents):
                print(f"note: {folder} has another encoder; its row decodes other latents")
            latents = z if latents is None else latents
            t0 = time.perf_counter()
            # a decoder trained with classes is told each picture's style, as the sampler tells it from the prompt
            classes = torch.tensor([vae.config.class_index(caption(r["concept"], r["style"])) for r in pick])
            decoded = vae.decode(z, classes)
            seconds = time.perf_counter() - t0
        pics = to_pil(decoded)
        rows.append(pics)
        res = judge(probe, pics, pick)
        res.update(l1=round(float((decoded.clamp(-1, 1) - x).abs().mean()), 4), step=meta.get("step"),
                   decoder_parameters=sum(p.numel() for p in vae.decoder.parameters()),
                   decode_ms_per_picture=round(1000 * seconds / len(pick), 2))
        result["decoders"][str(folder)] = res
        print(f"{folder}: L1 {res['l1']}, concept top-5 {res['concept_top5']:.1%}, style {res['style']:.1%}, "
              f"{res['decoder_parameters']:,} decoder parameters, {res['decode_ms_per_picture']} ms a picture")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vae_decoder.json").write_text(json.dumps(result, indent=2) + "\n")
    cols = len(sorted({r["style"] for r in pick}))
    grid = Image.new("RGB", (128 * cols, 128 * len(rows)), "white")
    for i, row in enumerate(rows):
        for j in range(cols):
            grid.paste(row[j * args.per_style].resize((128, 128)), (128 * j, 128 * i))
    grid.save(args.out / "vae_decoder.png")
    print(f"(written to {args.out / 'vae_decoder.json'} and vae_decoder.png)")


if __name__ == "__main__":
    main()
