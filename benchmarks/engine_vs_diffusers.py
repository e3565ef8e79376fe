"""Our U-Net, training step and samplers against diffusers' UNet2DConditionModel + DDIMScheduler /
DPMSolverMultistepScheduler, in one run, at matched parameter count, resolution, batch and text length.

    python benchmarks/engine_vs_diffusers.py [--size 32] [--batch 16] [--sample-batch 4] [--steps 20]
                                             [--reps 5] [--threads 1] [--device cpu|cuda] [--peak-tflops X]
                                             [--out benchmarks/results]

Both models run the same training-step code (v-prediction, min-SNR weights, AdamW, clipping, EMA) and
the same classifier-free-guided sampling (cond + uncond in one batched forward); only the network and
the sampler differ. Measurements alternate ours/theirs and report medians, so load from other
processes hits both sides alike. Ratios are throughput ratios ours/diffusers (> 1 = ours faster).
Targets (issue 2): ≥ 1.0× on CPU; ≥ 1.2× on a GPU. On CUDA the training step runs under bf16 autocast
(as taleloom.diffusion.train does) and the JSON also gives model FLOP utilisation: FLOPs of one training
step counted by torch's FlopCounterMode (matmuls, convolutions, attention; forward + backward), divided by
the step time and by the GPU's dense bf16 peak (`--peak-tflops`, or looked up for H100/H200/A100).
Writes benchmarks/results/engine_vs_diffusers.json (engine_vs_diffusers_cuda.json on a GPU) and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["a red apple", "grinning face with smiling eyes", "a small house with a tree", "blue whale"]


def diffusers_unet(size: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=size,
        in_channels=3,
        out_channels=3,
        block_out_channels=(64, 128, 128),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=384,
        attention_head_dim=32,
        norm_num_groups=32,
    )  # fmt: skip  — self- and cross-attention at 16 and 8 px for 32 px input, like ours


def our_config(size: int, target_params: int):
    """Our U-Net with the same levels/attention, its width chosen so the parameter count matches `target_params`."""
    from taleloom.diffusion.unet import UNet, UNetConfig, count_parameters

    best = None
    for base in range(32, 129, 4):
        cfg = UNetConfig(base_channels=base, channel_mults=(1, 2, 2), num_res_blocks=2,
                         attention_resolutions=(size // 2, size // 4), num_heads=4, image_size=size)  # fmt: skip
        with torch.device("meta"):
            n = count_parameters(UNet(cfg))
        if best is None or abs(n - target_params) < abs(best[1] - target_params):
            best = (cfg, n)
    return best[0]


PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0}  # dense, from the data sheets


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    if given or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_flops(step) -> int:
    """FLOPs of one call of `step` (forward + backward + optimizer), as torch's FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def median_times(fns: dict, reps: int, device: torch.device = torch.device("cpu")) -> dict[str, float]:
    """Warm each fn once, then alternate them `reps` times; median seconds per call."""
    for f in fns.values():
        f()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def make_train_step(forward, model, schedule, batch, size, ctx, mask, device=torch.device("cpu")):
    """The body of taleloom.diffusion.train's loop, for any network `forward(x, t, ctx, mask)`."""
    from taleloom.diffusion.schedule import q_sample, snr, v_target

    cuda = device.type == "cuda"
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, **({"fused": True} if cuda else {}))
    ema = [p.detach().clone() for p in params]
    s = snr(schedule, torch.arange(schedule.num_timesteps))
    weights = (s.clamp(max=5.0) / (s + 1)).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    x0 = torch.rand(batch, 3, size, size, generator=gen, device=device) * 2 - 1

    def step():
        t = torch.randint(0, schedule.num_timesteps, (batch,), generator=gen, device=device)
        noise = torch.randn(x0.shape, generator=gen, device=device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            pred = forward(q_sample(schedule, x0, t, noise), t, ctx, mask)
        loss = (weights[t] * (pred.float() - v_target(schedule, x0, noise, t)).pow(2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - 0.999)

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16, help="training batch")
    ap.add_argument(
        "--sample-batch", type=int, default=4, help="pictures per sampled batch (x2 with guidance)"
    )
    ap.add_argument("--steps", type=int, default=20, help="sampler steps")
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: robust on a shared machine)"
    )
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, auto")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="the accelerator's dense bf16 peak for MFU (looked up for H100/H200/A100 when omitted)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from taleloom.config import resolve_device

    device = torch.device(resolve_device(args.device))

    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    from taleloom.diffusion.guidance import Denoiser
    from taleloom.diffusion.sample import sample_loop
    from taleloom.diffusion.samplers import make_sampler
    from taleloom.diffusion.schedule import make_schedule
    from taleloom.diffusion.text_encoder import get_text_encoder
    from taleloom.diffusion.unet import UNet, count_parameters

    load0 = os.getloadavg()
    theirs = diffusers_unet(args.size)
    n_theirs = count_parameters(theirs)
    cfg = our_config(args.size, n_theirs)
    ours = UNet(cfg)
    n_ours = count_parameters(ours)
    with torch.no_grad():  # our output conv starts at zero; give both networks non-trivial outputs
        for p in ours.parameters():
            if not p.any():
                p.normal_(0, 0.02)
    ours, theirs = ours.to(device), theirs.to(device)
    schedule = make_schedule("cosine", 1000)
    L = cfg.max_text_len

    # same text tokens and mask for both: real MiniLM encodings of the prompts, padded to L
    enc = get_text_encoder("cpu", L)

    def encode(prompts):
        return tuple(x.to(device) for x in enc.encode(prompts))

    tok, mask = encode([PROMPTS[i % len(PROMPTS)] for i in range(args.batch)])

    def our_fwd(x, t, c, m):
        return ours(x, t, c, m)

    def their_fwd(x, t, c, m):
        return theirs(x, t, encoder_hidden_states=c, encoder_attention_mask=m.float()).sample

    print(f"params: ours {n_ours:,} (base_channels={cfg.base_channels}), diffusers {n_theirs:,}; "
          f"{args.size}px, text length {L}, device {device}, threads {args.threads}")  # fmt: skip
    ours.train(), theirs.train()
    steps_fn = {
        "ours": make_train_step(our_fwd, ours, schedule, args.batch, args.size, tok, mask, device),
        "diffusers": make_train_step(their_fwd, theirs, schedule, args.batch, args.size, tok, mask, device),
    }
    train_t = median_times(steps_fn, args.reps, device)
    flops = {k: step_flops(f) for k, f in steps_fn.items()}
    ours.eval(), theirs.eval()

    b = args.sample_batch
    cond = encode(PROMPTS[:b])
    with torch.no_grad():
        uncond = ours.null_context(b)
    x_T = torch.randn(b, 3, args.size, args.size, generator=torch.Generator().manual_seed(1)).to(device)
    cat_ctx, cat_mask = torch.cat([cond[0], uncond[0]]), torch.cat([cond[1], uncond[1]])

    def ours_sample(name, model_fn=our_fwd):
        def run():
            den = Denoiser(lambda x, t, c, m, ci: model_fn(x, t, c, m), schedule, "eps", cond=cond, uncond=uncond,
                           guidance=args.guidance)  # fmt: skip
            return sample_loop(
                den, make_sampler(name, schedule), x_T.shape, args.steps, None, x_T=x_T.clone()
            )

        return run

    def diffusers_sample(scheduler_cls, model_fn=their_fwd, **kw):
        def run():
            sch = scheduler_cls(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon",
                                timestep_spacing="trailing", **kw)  # fmt: skip
            sch.set_timesteps(args.steps)
            x = x_T.clone()
            with torch.no_grad():
                for t in sch.timesteps:  # the loop diffusers' pipelines write out
                    tb = torch.full((2 * b,), int(t), dtype=torch.long, device=device)
                    e_c, e_u = model_fn(torch.cat([x, x]), tb, cat_ctx, cat_mask).chunk(2)
                    x = sch.step(e_u + args.guidance * (e_c - e_u), t, x).prev_sample
            return x

        return run

    ddim_kw = {"clip_sample": False, "set_alpha_to_one": True}
    dpm_kw = {"algorithm_type": "dpmsolver++", "solver_order": 2}
    sample_t = median_times({
        "ours_ddim": ours_sample("ddim"), "diffusers_ddim": diffusers_sample(DDIMScheduler, **ddim_kw),
        "ours_dpmpp_2m": ours_sample("dpmpp_2m"), "diffusers_dpmpp_2m": diffusers_sample(DPMSolverMultistepScheduler, **dpm_kw),
    }, max(3, args.reps), device)  # fmt: skip

    # sanity: our samplers and diffusers' schedulers agree when driven by the same network
    def rel_diff(a, b):
        return float((a - b).abs().max() / b.abs().max())

    agree = {
        "ddim": rel_diff(ours_sample("ddim")(), diffusers_sample(DDIMScheduler, our_fwd, **ddim_kw)()),
        "dpmpp_2m": rel_diff(ours_sample("dpmpp_2m")(), diffusers_sample(DPMSolverMultistepScheduler, our_fwd, **dpm_kw)()),
    }  # fmt: skip

    train_ips = {k: args.batch / v for k, v in train_t.items()}
    rows = [
        (
            "training step",
            "img/s",
            train_ips["ours"],
            train_ips["diffusers"],
            train_ips["ours"] / train_ips["diffusers"],
        )
    ]
    for s in ("ddim", "dpmpp_2m"):
        o, d = sample_t[f"ours_{s}"], sample_t[f"diffusers_{s}"]
        rows.append((f"sampling {s} ({args.steps} steps)", "s/batch", o, d, d / o))
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    peak = peak_tflops(device, args.peak_tflops)
    achieved = {k: flops[k] / train_t[k] / 1e12 for k in flops}  # TFLOP/s in the training step
    result = {
        "device": str(device), "cpu": platform.processor() or platform.machine(), "threads": args.threads,
        "gpu": gpu, "gpu_note": None if gpu else "CPU run: the GPU target (>= 1.2x, with MFU) needs "
                                                 "`--device cuda` on a CUDA machine",
        "train_step_flops": flops, "train_tflops_per_s": achieved, "peak_bf16_tflops": peak,
        "train_mfu": {k: v / peak for k, v in achieved.items()} if peak else None,
        "torch": torch.__version__, "diffusers": __import__("diffusers").__version__,
        "load_average_before_after": [load0[0], os.getloadavg()[0]],
        "params": {"ours": n_ours, "diffusers": n_theirs, "ratio": n_ours / n_theirs},
        "ours_config": cfg.to_dict(), "resolution": args.size, "train_batch": args.batch,
        "sample_batch": b, "cfg_batch": 2 * b, "text_length": L, "sampler_steps": args.steps, "reps": args.reps,
        "train_img_per_s": train_ips,
        "sample_seconds_per_batch": sample_t,
        "speed_ratio_ours_over_diffusers": {r[0]: r[4] for r in rows},
        "target": 1.2 if gpu else 1.0, "meets_target": all(r[4] >= (1.2 if gpu else 1.0) for r in rows),
        "max_rel_diff_same_network_ours_vs_diffusers_scheduler": agree,
    }  # fmt: skip

    print(f"\n| {'':28} | {'unit':7} | {'ours':>8} | {'diffusers':>9} | speed ours/diffusers |")
    print(f"|{'-' * 30}|{'-' * 9}|{'-' * 10}|{'-' * 11}|{'-' * 22}|")
    for name, unit, o, d, r in rows:
        print(f"| {name:28} | {unit:7} | {o:8.3f} | {d:9.3f} | {r:19.2f}× |")
    print(f"\nsame network, our sampler vs diffusers' scheduler, max |Δx0| / max |x0|: {agree}")
    mfu = result["train_mfu"]
    print("training step TFLOP/s: " + ", ".join(f"{k} {v:.3f}" for k, v in achieved.items())
          + (f"; MFU ours {mfu['ours']:.1%}, diffusers {mfu['diffusers']:.1%} of {peak:g}" if mfu else ""))

    args.out.mkdir(parents=True, exist_ok=True)
    stem = "engine_vs_diffusers" + ("_cuda" if gpu else "")
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, result, args.out / f"{stem}.png")
    print(f"wrote {args.out / stem}.json and .png")


def plot(rows, result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = [r[0] for r in rows]
    ratios = [r[4] for r in rows]
    bars = ax.barh(names, ratios, color=["#4c72b0" if r >= 1 else "#c44e52" for r in ratios])
    ax.axvline(1.0, color="k", lw=1, ls="--")
    for bar, (_, unit, o, d, r) in zip(bars, rows, strict=True):
        ax.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f" {r:.2f}×  ({o:.2f} vs {d:.2f} {unit})",
            va="center",
            fontsize=8,
        )
    ax.set_xlim(0, max(ratios) * 1.6)
    ax.invert_yaxis()
    p = result["params"]
    ax.set_xlabel("speed ratio ours / diffusers (> 1 = ours faster)")
    ax.set_title(
        f"{result['gpu'] or 'CPU, ' + str(result['threads']) + ' thread(s)'}, {result['resolution']}px; params {p['ours'] / 1e6:.2f}M vs {p['diffusers'] / 1e6:.2f}M",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
