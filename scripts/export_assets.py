#!/usr/bin/env python3
"""Copy trained checkpoints into src/taleloom/assets/ (weights as fp16 safetensors) and rewrite
assets/manifest.json with the sha256 of every shipped file.

    python scripts/export_assets.py --illustrator runs/illustrator --upscaler runs/upscaler --aligned runs/aligned/model
    python scripts/export_assets.py --illustrator-v2 runs/v2-unet   # latent U-Net + its autoencoder (vae/)
    python scripts/export_assets.py --v2-decoder runs/v2-vae-decoder   # a new decoder for the shipped encoder

Any of the three may be left out (that asset stays as it is). The aligned encoder's vocabulary is
marked with the concepts the illustrator was trained on (`trained`), which `nearest_concepts` uses.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_emoji_dataset import DEFAULT_OUT, load_manifest, storybook_concept  # noqa: E402

from taleloom.assets import assets_root, write_manifest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1] / "src" / "taleloom" / "assets"


def base_step(src: Path) -> int:
    """Steps of the checkpoint a run started from (`init_from`), 0 for a run from scratch: what the trainer
    recorded when the run began (`init_from_step`), else (older runs) the init_from folder's step, read
    before the destination is replaced, since a phase that continued the shipped model names that folder."""
    meta = json.loads((src / "config.json").read_text())
    if "init_from_step" in meta:
        return int(meta["init_from_step"])
    init = meta["train"].get("init_from", "")
    return int(json.loads((Path(init) / "config.json").read_text()).get("step", 0)) if init else 0


def export_checkpoint(src: Path, dst: Path, image_size: int | None = None, base: int | None = None) -> None:
    """model.safetensors (fp16) + config.json; `image_size` overrides the informative U-Net field
    (the ×4 model trains on 64 px patches and samples 128 px pictures); `base`: base_step(src), when the
    init_from folder may be gone by now."""
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.half().contiguous() for k, v in load_file(str(src / "model.safetensors")).items()}
    save_file(tensors, str(dst / "model.safetensors"), metadata={"format_version": "1", "dtype": "float16"})
    meta = json.loads((src / "config.json").read_text())
    if image_size:
        meta["train"]["patch_size"] = meta["unet"]["image_size"]  # what it trained on
        meta["unet"]["image_size"] = image_size  # what it samples (fully convolutional)
    meta.pop("init_from_step", None)  # now `started_from_step` below
    meta["train"].pop("out_dir", None)
    meta["train"].pop("cache_dir", None)
    init = meta["train"].pop("init_from", "")
    if init:  # a later phase started from saved weights: count the steps of the whole model
        base = base_step(src) if base is None else base
        meta["train"]["started_from_step"] = base
        meta["step"] = base + int(meta["step"])
    (dst / "config.json").write_text(json.dumps(meta, indent=2) + "\n")


def export_v2(src: Path, dst: Path, data: Path) -> None:
    """The latent U-Net (fp16) with its autoencoder in vae/ (fp16), the concepts it was trained on
    (concepts.json, for nearest_concepts) and the prompt format its captions had."""
    from build_iconify_dataset import load_manifest as load_iconify

    from taleloom.backends.image.embedded import STYLED_PROMPTS

    base = base_step(src)
    if dst.exists():
        shutil.rmtree(dst)
    export_checkpoint(src, dst, base=base)
    export_checkpoint(src / "vae", dst / "vae")
    meta = json.loads((dst / "config.json").read_text())
    meta["prompts"] = STYLED_PROMPTS
    meta["train"]["vae"] = "vae"  # shipped beside it
    manifest = load_iconify(data)
    trained = sorted({r["concept"] for r in manifest["images"] if r["split"] == "train"})
    meta["data"] = {"set": "Iconify colour emoji, 9 sets + 2 derived styles (scripts/build_iconify_dataset.py)",
                    "pictures": len(manifest["images"]), "concepts": len(trained), "styles": sorted(manifest["styles"])}
    (dst / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    (dst / "concepts.json").write_text(json.dumps(trained, ensure_ascii=False) + "\n", encoding="utf-8")


def export_v2_decoder(src: Path, dst: Path) -> None:
    """Replace the shipped v2 autoencoder (`dst`) by a decoder_only run on its encoder: refused unless the
    run's encoder is the shipped one, tensor for tensor (the shipped U-Net's latents depend on it)."""
    from taleloom.diffusion.vae import load_vae

    new, meta = load_vae(src)
    old, old_meta = load_vae(dst)
    if not meta["train"].get("decoder_only"):
        raise SystemExit(f"{src} is not a decoder_only run: its encoder, and so the U-Net's latents, may differ")
    for (name, a), b in zip(new.encoder.state_dict().items(), old.encoder.state_dict().values(), strict=True):
        if not torch.equal(a.half(), b.half()):
            raise SystemExit(f"{src}: encoder tensor {name} differs from the shipped one in {dst}")
    init = Path(meta["train"].get("init_from", ""))
    earlier = json.loads((init / "config.json").read_text()) if (init / "config.json").is_file() else {}
    continued = earlier.get("train", {}).get("decoder_only") and earlier.get("vae") == meta["vae"]
    export_checkpoint(src, dst, base=int(earlier["step"]) if continued else 0)  # a phase continues the last
    meta = json.loads((dst / "config.json").read_text())
    meta["train"]["encoder"] = (old_meta["train"].get("encoder")  # a decoder exported before: its encoder's origin
                                or f"the first v2 autoencoder's ({old_meta['step']} steps), frozen")
    (dst / "config.json").write_text(json.dumps(meta, indent=2) + "\n")


def export_aligned(src: Path, dst: Path, data: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "config.json", "vocabulary.safetensors"):
        shutil.copyfile(src / name, dst / name)
    manifest = load_manifest(data)
    trained = {r["concept"] for r in manifest["images"] if r["split"] == "train"}
    vocab = json.loads((src / "vocabulary.json").read_text(encoding="utf-8"))
    for i, (v, c) in enumerate(zip(vocab, manifest["concepts"], strict=True)):
        v["trained"] = bool(i in trained and storybook_concept(c))
    (dst / "vocabulary.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--illustrator", type=Path)
    p.add_argument("--upscaler", type=Path)
    p.add_argument("--aligned", type=Path)
    p.add_argument("--illustrator-v2", type=Path, help="a latent U-Net run folder (with its vae/)")
    p.add_argument("--v2-decoder", type=Path, help="a decoder_only autoencoder run on the shipped v2 encoder")
    p.add_argument("--data", type=Path, default=DEFAULT_OUT)
    p.add_argument("--iconify-data", type=Path, default=Path.home() / ".cache" / "taleloom" / "iconify")
    a = p.parse_args(argv)
    root = ROOT if ROOT.is_dir() else assets_root()
    if a.illustrator:
        export_checkpoint(a.illustrator, root / "illustrator")
    if a.illustrator_v2:
        export_v2(a.illustrator_v2, root / "illustrator-v2", a.iconify_data)
    if a.v2_decoder:
        export_v2_decoder(a.v2_decoder, root / "illustrator-v2" / "vae")
    if a.upscaler:
        export_checkpoint(a.upscaler, root / "upscaler", image_size=128)
    if a.aligned:
        export_aligned(a.aligned, root / "aligned", a.data)
    m = write_manifest(root)
    print(f"{len(m['files'])} files, {m['bytes'] / 1e6:.1f} MB → {root / 'manifest.json'}")


if __name__ == "__main__":
    main()
