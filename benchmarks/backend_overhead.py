"""Our diffusers backend vs the raw diffusers pipeline call, on the same SDXL-shaped random-weight model
(base + refiner, the same loaded weights, sampler, seeds and kwargs): seconds per image and our overhead.

    python benchmarks/backend_overhead.py          # CPU: tiny SDXL-shaped pipelines (what a CPU-only box can run)
    python benchmarks/backend_overhead.py --gpu    # CUDA: real SDXL shapes, 1024 px, 30 steps, fp16

Two measurements. End to end: runs come in pairs (backend and raw, in random order) so drifting machine
load hits both alike; overhead from the best and the median of each. Direct: the time our backend spends
outside the diffusers calls it makes (those calls timed from inside), which machine load barely touches.
Target: overhead <= 2 %. Writes benchmarks/results/backend_overhead_{cpu,gpu}.json and a plot next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"
TARGET_PCT = 2.0


def build(root: Path, gpu: bool) -> Path:
    from taleloom.backends.image.random_weights import build_sdxl

    if gpu:  # initialise on the GPU (fast), save in fp16
        build_sdxl(root / "base", root / "refiner", size="full", device="cuda", dtype=torch.float16)
        torch.cuda.empty_cache()
    else:
        build_sdxl(root / "base", root / "refiner", size="tiny")
    return root


def raw_call(ill, request, s) -> list:
    """Exactly what the backend asks diffusers for, written out by hand: base to latents, refiner finishes."""
    generator = [torch.Generator("cpu").manual_seed(request.seed)]
    common = dict(prompt=[request.prompt], negative_prompt=None, num_inference_steps=s.steps,
                  guidance_scale=s.guidance, generator=generator)
    latents = ill.pipe(**common, width=s.width, height=s.height, denoising_end=ill.options.refiner_switch,
                       output_type="latent").images
    return list(ill.refiner(**common, image=latents, denoising_start=ill.options.refiner_switch).images)


def direct_overhead(ill, request, repeats: int, gpu: bool) -> dict:
    """Time inside the diffusers pipeline calls vs the whole backend call: the rest is ours."""
    inside: list[float] = []
    classes = {type(ill.pipe), type(ill.refiner)}
    originals = {cls: cls.__call__ for cls in classes}

    def timing(original):
        def call(self, *args, **kwargs):
            sync(gpu)
            start = time.perf_counter()
            out = original(self, *args, **kwargs)
            sync(gpu)
            inside.append(time.perf_counter() - start)
            return out
        return call

    for cls, original in originals.items():
        cls.__call__ = timing(original)
    try:
        totals = []
        for _ in range(repeats):
            inside.clear()
            sync(gpu)
            start = time.perf_counter()
            ill.generate([request])
            sync(gpu)
            totals.append((time.perf_counter() - start, sum(inside)))
    finally:
        for cls, original in originals.items():
            cls.__call__ = original
    outside = [total - pipe for total, pipe in totals]
    pipe_median = statistics.median(p for _, p in totals)
    return {"outside_diffusers_s_median": statistics.median(outside), "outside_diffusers_s_max": max(outside),
            "inside_diffusers_s_median": pipe_median,
            "overhead_pct": 100.0 * statistics.median(outside) / pipe_median}


def sync(gpu: bool) -> None:
    if gpu:
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="CUDA, real SDXL shapes, 1024 px, 30 steps, fp16")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs of each (default 30 CPU, 5 GPU)")
    parser.add_argument("--steps", type=int, default=None, help="default 30 (GPU) / 10 (CPU)")
    parser.add_argument("--size", type=int, default=None, help="default 1024 (GPU) / 64 (CPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default 1 on CPU: steadier timings on a shared machine)")
    args = parser.parse_args()
    if args.gpu and not torch.cuda.is_available():
        print("--gpu needs a CUDA device", file=sys.stderr)
        return 2
    repeats = args.repeats or (5 if args.gpu else 30)
    steps = args.steps or (30 if args.gpu else 10)
    size = args.size or (1024 if args.gpu else 64)
    load_before = os.getloadavg()
    if args.threads or not args.gpu:
        torch.set_num_threads(args.threads or 1)

    from taleloom.backends.image.diffusers_backend import SDXLIllustrator
    from taleloom.book import ImageRequest

    with tempfile.TemporaryDirectory() as tmp:
        root = build(Path(tmp), args.gpu)
        device, dtype = ("cuda", "float16") if args.gpu else ("cpu", "float32")
        ill = SDXLIllustrator(str(root), device=device, dtype=dtype, steps=steps, sampler="euler_a")
    request = ImageRequest(prompt="a fox reading a book under a tree, storybook illustration", seed=7,
                           width=size, height=size, guidance=5.0, steps=steps)
    s = ill.settings(request)

    def timed(fn) -> tuple[float, list]:
        sync(args.gpu)
        start = time.perf_counter()
        with torch.inference_mode():
            images = fn()
        sync(args.gpu)
        return time.perf_counter() - start, images

    ours = lambda: ill.generate([request])  # noqa: E731
    raw = lambda: raw_call(ill, request, s)  # noqa: E731
    for fn in (ours, raw):  # warm-up: kernels, allocator, the scheduler cache
        timed(fn)
    order = random.Random(0)
    runs: dict[str, list[float]] = {"backend": [], "raw": []}
    images: dict[str, list] = {}
    for _ in range(repeats):
        pair = [("backend", ours), ("raw", raw)]
        order.shuffle(pair)
        for name, fn in pair:
            t, images[name] = timed(fn)
            runs[name].append(t)
    same = np.array_equal(np.asarray(images["backend"][0]), np.asarray(images["raw"][0]))
    backend_s, raw_s = runs["backend"], runs["raw"]
    b, r = statistics.median(backend_s), statistics.median(raw_s)
    overhead = 100.0 * (b - r) / r
    best = 100.0 * (min(backend_s) - min(raw_s)) / min(raw_s)
    direct = direct_overhead(ill, request, repeats, args.gpu)
    result = {
        "benchmark": "backend_overhead",
        "variant": "gpu" if args.gpu else "cpu",
        "note": ("CUDA, SDXL base + refiner shapes (random weights), fp16" if args.gpu else
                 "No GPU in this run: CPU variant with tiny random-weight SDXL-shaped pipelines (base + refiner); "
                 "the 1024 px / 30 step / fp16 configuration runs with --gpu"),
        "config": {"width": size, "height": size, "steps": steps, "sampler": "euler_a", "guidance": 5.0,
                   "refiner_switch": ill.options.refiner_switch, "dtype": dtype, "device": device,
                   "repeats": repeats, "images_per_call": 1},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                    # other work on the machine makes end-to-end CPU timings noisy; the direct figure is not
                    "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
                    "gpu": torch.cuda.get_device_name() if args.gpu else None},
        "seconds_per_image": {"backend_median": b, "raw_median": r, "backend_best": min(backend_s),
                              "raw_best": min(raw_s), "backend_runs": backend_s, "raw_runs": raw_s},
        "overhead_pct": {"end_to_end_median": overhead, "end_to_end_best": best, "direct": direct["overhead_pct"]},
        "direct": direct,
        "target_pct": TARGET_PCT,
        "within_target": direct["overhead_pct"] <= TARGET_PCT,
        "identical_images": bool(same),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"backend_overhead_{result['variant']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out.with_suffix(".png"))
    print(f"backend {b:.4f} s/image, raw diffusers {r:.4f} s/image (medians); overhead end-to-end "
          f"{overhead:+.2f}% (median), {best:+.2f}% (best), direct {direct['overhead_pct']:+.3f}% "
          f"(target <= {TARGET_PCT}%); identical images: {same} -> {out}")
    return 0


def plot(result: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    runs = result["seconds_per_image"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.boxplot([runs["raw_runs"], runs["backend_runs"]], tick_labels=["raw diffusers", "taleloom backend"])
    ax.set_ylabel("seconds per image")
    c = result["config"]
    o = result["overhead_pct"]
    ax.set_title(f"SDXL base+refiner, {c['width']}px, {c['steps']} steps, {c['device']}\n"
                 f"overhead: direct {o['direct']:+.3f}%, end-to-end median {o['end_to_end_median']:+.1f}%",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
