#!/usr/bin/env python3
"""How good is the embedded illustrator? Measured in our aligned encoder's feature space.

- FD-aligned: Fréchet distance between Gaussians fitted to aligned-encoder embeddings of generated and of
  held-out real images (held-out images of seen concepts). NOT Inception FID: the feature network is our
  own 32-pixel emoji encoder, and the sample is small (see `n` in the JSON), so compare figures only
  within this benchmark. `fd_real_floor` is the same distance between two real samples of the same size.
- Prompt retrieval: top-1/top-5 accuracy of finding an image's own concept among all concept names,
  for generated images of held-out prompts and for the real held-out images (the ceiling).
- Diversity: mean pairwise cosine distance across seeds for one prompt, next to real images of a concept.
- Trilemma: FD-aligned and retrieval vs sampler steps (DDIM and DPM-Solver++ at 5/10/20/50, DDPM at 250)
  with seconds per image on this CPU.
- Guidance sweep (`--sweep 1,3,5,7.5,10`): retrieval, FD-aligned and diversity per classifier-free
  guidance scale for DPM-Solver++ 20 steps, on `--sweep-n` held-out prompts (default: all of them).
- Timing of a batch of 4 final pictures (base 32 px + ×4 upscale to 128 px) with `--threads` threads.

Writes benchmarks/results/illustrator_quality.json, illustrator_trilemma.png and the sample grid
illustrator_samples.png (`--sweep-only`: illustrator_guidance_sweep.json only). `--model` measures a
checkpoint folder (a training run) instead of the shipped asset. Needs the emoji data set (built if
missing, ~1 minute).

    python benchmarks/illustrator_quality.py [--n 32] [--threads 2] [--quick] [--sweep 1,3,5] [--model DIR]
    python benchmarks/illustrator_quality.py --timing-only --threads 2   # re-time the batch of 4 on a quiet machine
    python benchmarks/illustrator_quality.py --v1-v2 --n 48 --threads 2  # v1 vs v2 (see illustrator_compare.py)
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from build_emoji_dataset import DEFAULT_OUT, build, load_split, storybook_concept  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
GRID_PROMPTS = ["red apple", "cat", "dog", "sun", "deciduous tree", "house", "rocket", "girl"]
TARGETS = {"retrieval_top5_ratio": 0.70, "dpmpp20_vs_ddpm250_fd": 0.05, "batch4_final_seconds": 10.0}


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature rows of `a` and `b`."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(linalg.sqrtm(s1 @ s2))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def retrieval(emb: torch.Tensor, prototypes: torch.Tensor, truth: list[int]) -> dict[str, float]:
    top = (emb @ prototypes.T).topk(5, dim=1).indices
    t = torch.tensor(truth)[:, None]
    return {"top1": round(float((top[:, :1] == t).any(1).float().mean()), 4),
            "top5": round(float((top == t).any(1).float().mean()), 4)}


def diversity(emb: torch.Tensor) -> float:
    """Mean pairwise cosine distance between the rows (embeddings are unit vectors)."""
    sims = emb @ emb.T
    n = emb.shape[0]
    return float((1 - sims)[~torch.eye(n, dtype=torch.bool)].mean())


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def pil_batch(images) -> torch.Tensor:
    return to_tensor(np.stack([np.asarray(im.convert("RGB")) for im in images]))


def generate(pipe, prompts: list[str], sampler: str, steps: int, guidance: float, batch: int = 16,
             spacing: str = "trailing"):
    """Generated pictures (PIL) and seconds per picture; seed i for prompt i."""
    out, t0 = [], time.perf_counter()
    for s in range(0, len(prompts), batch):
        out += pipe.generate(prompts[s:s + batch], sampler=sampler, steps=steps, guidance=guidance,
                             seeds=list(range(s, s + len(prompts[s:s + batch]))), spacing=spacing)
    return out, (time.perf_counter() - t0) / len(prompts)


def time_batch4(ill, up, guidance: float, threads: int, reps: int = 3) -> dict:
    """A batch of 4 final pictures through the real backends (base 32 px → ×4 → 128 px): median of `reps`."""
    from taleloom.book import ImageRequest

    reqs = [ImageRequest(prompt=n, concepts=[n], seed=i, guidance=guidance) for i, n in enumerate(GRID_PROMPTS[:4])]
    up.upscale_batch(ill.generate(reqs[:1]), 4, seeds=[0])  # warm-up
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        base = ill.generate(reqs)
        t_base = time.perf_counter() - t0
        finals = up.upscale_batch(base, 4, seeds=[r.seed for r in reqs])
        runs.append((time.perf_counter() - t0, t_base))
    t_all, t_base = sorted(runs)[len(runs) // 2]
    return {"seconds": round(t_all, 2), "base_seconds": round(t_base, 2), "runs": [round(r[0], 2) for r in runs],
            "threads": threads, "load_average_1m": os.getloadavg()[0], "size": list(finals[0].size),
            "base_steps": 20, "upscale_steps": up.options.steps}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_OUT)
    p.add_argument("--n", type=int, default=32, help="held-out prompts to generate per configuration")
    p.add_argument("--guidance", type=float, default=None,
                   help="guidance scale of the main measurements (default: ImageRequest's default)")
    p.add_argument("--sweep", type=lambda s: [float(x) for x in s.split(",")], default=None,
                   help="comma-separated guidance scales to sweep with DPM-Solver++ 20, e.g. 1,3,5,7.5,10")
    p.add_argument("--sweep-n", type=int, default=0, help="held-out prompts per sweep point (0 = all)")
    p.add_argument("--sweep-only", action="store_true", help="run only the guidance sweep")
    p.add_argument("--sweep-sampler", default="dpmpp_2m:trailing",
                   help="SAMPLER:SPACING of the sweep, e.g. dpmpp_3m:logsnr (20 steps)")
    p.add_argument("--model", type=Path, default=None, help="checkpoint folder instead of the shipped asset")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="only DPM-Solver++ 20 and DDPM 250 (no full curve)")
    p.add_argument("--timing-only", action="store_true",
                   help="only re-time the batch of 4 final pictures (with --threads) into the existing JSON")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--v1-v2", action="store_true",
                   help="v1 and v2 side by side on the multi-style held-out set (benchmarks/illustrator_compare.py): "
                        "illustrator_v1_v2.json + illustrator_v1_v2_samples.png")
    p.add_argument("--v2-model", type=Path, default=None, help="with --v1-v2: a v2 checkpoint folder instead of the asset")
    p.add_argument("--scene-pairs", type=int, default=None,
                   help="with --v1-v2: held-out (hero, setting) pairs (default illustrator_compare.SCENE_PAIRS, 96; "
                        "the first 24 are stop 26's pairs)")
    p.add_argument("--grid", type=Path, default=REPO / "docs" / "illustrator_v1_v2.png",
                   help="with --v1-v2: where else to save the grid of held-out prompts × styles")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.v1_v2:
        from illustrator_compare import run

        run(n=a.n, threads=a.threads, v2_dir=a.v2_model, guidance=a.guidance or 3.0, out=a.out,
            quick=a.quick, grid_path=a.grid, **({"scene_pairs": a.scene_pairs} if a.scene_pairs else {}))
        return
    if a.timing_only:
        from taleloom.backends.image.embedded import EmbeddedIllustrator, EmbeddedUpscaler

        path = a.out / "illustrator_quality.json"
        result = json.loads(path.read_text())
        ill, up = EmbeddedIllustrator(str(a.model) if a.model else None), EmbeddedUpscaler()
        result["batch4_final"] = time_batch4(ill, up, result["guidance"], a.threads)
        result["verdict"]["batch4_met"] = bool(result["batch4_final"]["seconds"] <= TARGETS["batch4_final_seconds"])
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["batch4_final"]))
        return
    if not (a.data / "manifest.json").exists():
        build(a.data, progress=False)

    from taleloom.assets import verified_dir
    from taleloom.backends.image.embedded import EmbeddedIllustrator, EmbeddedUpscaler
    from taleloom.book import ImageRequest
    from taleloom.diffusion.aligned import load_aligned_encoder
    from taleloom.diffusion.pipeline import TextToImage

    if a.guidance is None:
        a.guidance = ImageRequest.model_fields["guidance"].default
    enc = load_aligned_encoder(None, "cpu")
    model_dir = a.model or verified_dir("illustrator")
    pipe = TextToImage(model_dir)
    real_h, recs_h, manifest = load_split(a.data, "heldout", 32)
    concepts = manifest["concepts"]
    keep = [i for i, r in enumerate(recs_h) if storybook_concept(concepts[r["concept"]])]
    real_h, recs_h = real_h[keep], [recs_h[i] for i in keep]
    emb_real = enc.image_embed(to_tensor(real_h))
    rng = random.Random(0)
    pick = sorted(rng.sample(range(len(recs_h)), min(a.n, len(recs_h))))
    prompts = [concepts[recs_h[i]["concept"]]["name"] for i in pick]
    truth = [recs_h[i]["concept"] for i in pick]
    real_train, recs_t, _ = load_split(a.data, "train", 32)
    keep_t = [i for i, r in enumerate(recs_t) if storybook_concept(concepts[r["concept"]])]
    floor_idx = rng.sample(keep_t, len(pick))
    emb_floor = enc.image_embed(to_tensor(real_train[floor_idx]))

    name_to_id = {c["name"]: i for i, c in enumerate(concepts)}
    all_real, all_recs, _ = load_split(a.data, ("train", "heldout"), 32)

    def seed_diversity(guidance: float) -> tuple[list[float], list[float]]:
        """8 seeds of each of 4 prompts vs the 4 real views of the same concepts."""
        gen_div, real_div = [], []
        for name in GRID_PROMPTS[:4]:
            ims = pipe.generate([name] * 8, steps=20, guidance=guidance, seeds=list(range(100, 108)))
            gen_div.append(diversity(enc.image_embed(pil_batch(ims))))
            views = [i for i, r in enumerate(all_recs) if r["concept"] == name_to_id[name]]
            real_div.append(diversity(enc.image_embed(to_tensor(all_real[views]))))
        return gen_div, real_div

    step = json.loads((Path(model_dir) / "config.json").read_text()).get("step")
    if a.sweep:
        sweep_pick = sorted(random.Random(1).sample(range(len(recs_h)), a.sweep_n or len(recs_h))) \
            if a.sweep_n and a.sweep_n < len(recs_h) else list(range(len(recs_h)))
        s_prompts = [concepts[recs_h[i]["concept"]]["name"] for i in sweep_pick]
        s_truth = [recs_h[i]["concept"] for i in sweep_pick]
        sweep_sampler, _, sweep_spacing = a.sweep_sampler.partition(":")
        sweep_spacing = sweep_spacing or "trailing"
        sweep = {"sampler": sweep_sampler, "spacing": sweep_spacing, "steps": 20, "n": len(sweep_pick), "model_step": step,
                 "model": str(a.model) if a.model else "shipped asset", "threads": a.threads,
                 "real_ceiling": retrieval(emb_real[sweep_pick], enc.prototypes, s_truth),
                 "fd_real_floor": round(frechet(enc.image_embed(to_tensor(real_train[
                     random.Random(2).sample(keep_t, len(sweep_pick))])).numpy(), emb_real.numpy()), 4),
                 "real_views_diversity": None, "rows": []}
        for g in a.sweep:
            images, spi = generate(pipe, s_prompts, sweep_sampler, 20, g, spacing=sweep_spacing)
            emb = enc.image_embed(pil_batch(images))
            gen_div, real_div = seed_diversity(g)
            sweep["real_views_diversity"] = round(float(np.mean(real_div)), 4)
            row = {"guidance": g, **retrieval(emb, enc.prototypes, s_truth),
                   "fd_aligned": round(frechet(emb.numpy(), emb_real.numpy()), 4),
                   "diversity_8_seeds": round(float(np.mean(gen_div)), 4), "seconds_per_image": round(spi, 4)}
            sweep["rows"].append(row)
            print(json.dumps(row), flush=True)
        if a.sweep_only:
            a.out.mkdir(parents=True, exist_ok=True)
            (a.out / "illustrator_guidance_sweep.json").write_text(json.dumps(sweep, indent=2) + "\n")
            return

    result: dict = {
        "feature_space": "FD-aligned: Fréchet distance of our aligned encoder's 384-d embeddings (not Inception FID)",
        "model": str(a.model) if a.model else "shipped asset", "model_step": step,
        "n_generated": len(pick), "n_real_heldout": len(recs_h), "guidance": a.guidance, "threads": a.threads,
        "candidates": len(concepts), "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "real_ceiling": retrieval(emb_real[pick], enc.prototypes, truth),
        "fd_real_floor": round(frechet(emb_floor.numpy(), emb_real.numpy()), 4),
        "targets": TARGETS,
    }
    configs = [("dpmpp_2m", 20), ("ddpm", 250)] if a.quick else \
        [(s, n) for s in ("ddim", "dpmpp_2m") for n in (5, 10, 20, 50)] + [("ddpm", 250)]
    curve = []
    for sampler, steps in configs:
        images, spi = generate(pipe, prompts, sampler, steps, a.guidance)
        emb = enc.image_embed(pil_batch(images))
        row = {"sampler": sampler, "steps": steps, "seconds_per_image": round(spi, 4),
               "fd_aligned": round(frechet(emb.numpy(), emb_real.numpy()), 4), **retrieval(emb, enc.prototypes, truth)}
        curve.append(row)
        print(json.dumps(row), flush=True)
    result["trilemma"] = curve
    best = {(r["sampler"], r["steps"]): r for r in curve}
    gen20 = best[("dpmpp_2m", 20)]
    result["generated_dpmpp20"] = {"top1": gen20["top1"], "top5": gen20["top5"]}
    ceiling5 = result["real_ceiling"]["top5"]
    ratio = gen20["top5"] / ceiling5 if ceiling5 else float("nan")
    fd_gap = (gen20["fd_aligned"] - best[("ddpm", 250)]["fd_aligned"]) / best[("ddpm", 250)]["fd_aligned"]

    # diversity: 8 seeds of 4 prompts vs the 4 real views of the same concepts
    gen_div, real_div = seed_diversity(a.guidance)
    result["diversity"] = {"prompts": GRID_PROMPTS[:4], "generated_8_seeds": round(float(np.mean(gen_div)), 4),
                           "real_views": round(float(np.mean(real_div)), 4)}
    if a.sweep:
        result["guidance_sweep"] = sweep

    ill, up = EmbeddedIllustrator(str(a.model) if a.model else None), EmbeddedUpscaler()
    result["batch4_final"] = time_batch4(ill, up, a.guidance, a.threads)
    t_all = result["batch4_final"]["seconds"]
    result["verdict"] = {
        "retrieval_top5_ratio": round(ratio, 3), "retrieval_met": bool(ratio >= TARGETS["retrieval_top5_ratio"]),
        "dpmpp20_vs_ddpm250_fd_gap": round(fd_gap, 3),
        "fd_met": bool(fd_gap <= TARGETS["dpmpp20_vs_ddpm250_fd"]),
        "batch4_met": bool(t_all <= TARGETS["batch4_final_seconds"]),
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "illustrator_quality.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["verdict"]))
    plot(result, a.out / "illustrator_trilemma.png")
    sample_grid(ill, up, manifest, a.data, a.out / "illustrator_samples.png", a.guidance)


def plot(result: dict, path: Path) -> None:
    """Left: FD-aligned vs steps, with the real-vs-real floor; right: retrieval vs seconds, with the real ceiling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result["trilemma"]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].axhline(result["fd_real_floor"], color="grey", ls="--", label="real vs real (same n)")
    ax[1].axhline(result["real_ceiling"]["top5"], color="grey", ls="--", label="real images (ceiling)")
    for sampler, style in (("ddim", "o-"), ("dpmpp_2m", "s-"), ("ddpm", "^")):
        rows = [r for r in curve if r["sampler"] == sampler]
        if rows:
            ax[0].plot([r["steps"] for r in rows], [r["fd_aligned"] for r in rows], style, label=sampler)
            ax[1].plot([r["seconds_per_image"] for r in rows], [r["top5"] for r in rows], style, label=sampler)
    ax[0].set(xscale="log", xlabel="sampler steps", ylabel="FD-aligned (lower is better)", title="quality vs steps")
    ax[1].set(xscale="log", xlabel="CPU seconds per 32 px image", ylabel="prompt retrieval top-5",
              title="alignment vs time")
    for x in ax:
        x.legend()
        x.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def sample_grid(ill, up, manifest: dict, data: Path, path: Path, guidance: float) -> None:
    """Rows: fixed prompts. Columns: a real glyph (128 px), then 4 seeds of final pictures (128 px)."""
    from PIL import Image, ImageDraw

    from taleloom.book import ImageRequest

    name_to_id = {c["name"]: i for i, c in enumerate(manifest["concepts"])}
    rows = []
    for name in GRID_PROMPTS:
        rec = next(r for r in manifest["images"] if r["concept"] == name_to_id[name] and r["view"] == 0)
        real = Image.open(data / rec["file"]).convert("RGB")
        base = ill.generate([ImageRequest(prompt=name, concepts=[name], seed=s, guidance=guidance)
                             for s in range(4)])
        rows.append([real] + up.upscale_batch(base, 4, seeds=list(range(4))))
    cell, label = 128, 18
    sheet = Image.new("RGB", (5 * cell, len(rows) * (cell + label)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, ims) in enumerate(zip(GRID_PROMPTS, rows, strict=True)):
        y = r * (cell + label)
        draw.text((4, y + 3), f"{name}  (real glyph | 4 seeds, guidance {guidance:g}: 32 px, x4 upscaled to 128 px)", fill="black")
        for c, im in enumerate(ims):
            sheet.paste(im.resize((cell, cell)), (c * cell, y + label))
    sheet.save(path)


if __name__ == "__main__":
    main()
