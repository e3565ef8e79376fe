"""Training loop: ε- or v-prediction with min-SNR-γ weighting, condition dropout, EMA, AdamW + warm-up,
gradient clipping, bf16 autocast on CUDA, checkpoints every N steps and exact resume.

Exact resume: the data order is a pure function of (seed, step) and every random number comes from
one saved generator (plus the saved global torch/numpy/python states), so a resumed run yields the
same losses as an uninterrupted one. A non-finite loss stops training; the last checkpoint on disk,
written before it, stays good (checkpoints are only written after their losses are checked).
"""

from __future__ import annotations

import io
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from taleloom.config import resolve_device
from taleloom.diffusion.checkpoint import STATE_NAME, load_checkpoint, read_meta, save_checkpoint
from taleloom.diffusion.data import load_all, upsample_condition
from taleloom.diffusion.schedule import make_schedule, q_sample, snr, v_target
from taleloom.diffusion.text_encoder import ENCODER_ID, TextEncoder, cached_encode
from taleloom.diffusion.unet import UNet, UNetConfig, config_from_dict
from taleloom.errors import BadInputError, TaleloomError
from taleloom.files import atomic_write_bytes


class TrainingDivergedError(TaleloomError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """One training run. Saved (minus `unet`, which has its own section) in every checkpoint's config.json."""

    out_dir: str = "runs/engine"  # checkpoint folder: model.safetensors (EMA), config.json, train_state.pt
    unet: UNetConfig = field(default_factory=UNetConfig)  # the network to train
    schedule: str = "cosine"  # noise schedule name ("linear" | "cosine")
    timesteps: int = 1000  # discrete diffusion steps T
    prediction_type: str = "v"  # network target: "eps" (noise) or "v" (√ᾱ·ε − √(1−ᾱ)·x0)
    min_snr_gamma: float = 5.0  # min-SNR-γ loss weighting (Hang et al. 2023); 0 = plain MSE on the target
    cond_drop_prob: float = 0.1  # probability of replacing the caption by the null condition (for CFG)
    batch_size: int = 64  # images per optimizer step
    max_steps: int = 10_000  # optimizer steps in total (a resumed run continues up to this)
    lr: float = 2e-4  # peak AdamW learning rate
    warmup_steps: int = 500  # linear warm-up from 0 to lr
    lr_schedule: str = "constant"  # after warm-up: "constant" or "cosine" (decays to lr·min_lr_ratio)
    min_lr_ratio: float = 0.1  # final lr / peak lr for the cosine schedule
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    adam_betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    grad_clip: float = 1.0  # max global gradient norm; 0 = no clipping
    ema_decay: float = 0.9995  # EMA of weights (warmed up as (1+s)/(10+s)); 0 = no EMA
    seed: int = 0  # seeds data order, noise, timesteps, dropout and the model's initial weights
    device: str = "auto"  # "auto" (CUDA if present), "cpu", "cuda", "cuda:1" ...
    bf16: bool = True  # bf16 autocast for the forward pass on CUDA (ignored on CPU)
    channels_last: bool | None = None  # channels_last memory format; None = on CUDA only
    compile: bool = False  # torch.compile the model for training
    checkpoint_every: int = 1000  # write a checkpoint every N steps (and at the end)
    log_every: int = 25  # refresh the progress bar / train_log.jsonl every N steps
    cond_noise_aug: float = (
        0.0  # super-resolution: add N(0, σ²) noise to the conditioning image, σ ~ U(0, this)
    )
    cache_dir: str = ""  # where caption embeddings are cached; "" = <out_dir>/cache
    init_from: str = ""  # fine-tune: start from this checkpoint's weights (model and EMA), fresh optimizer
    vae: str = ""  # latent diffusion: an autoencoder checkpoint; the U-Net learns its scaled latents
    hflip: bool = False  # train on every picture and its mirror image (mirrored before encoding: see mirrored())
    hflip_except: tuple[str, ...] = ()  # caption words whose pictures stay unmirrored (text, a direction)

    def __post_init__(self) -> None:
        if isinstance(self.unet, dict):
            self.unet = UNetConfig.from_dict(self.unet)
        self.adam_betas = tuple(self.adam_betas)  # type: ignore[assignment]
        self.hflip_except = tuple(self.hflip_except)
        if self.prediction_type not in ("eps", "v"):
            raise ValueError(f"prediction_type must be 'eps' or 'v', got {self.prediction_type!r}")
        make_schedule(self.schedule, self.timesteps)  # unknown name → ValueError listing the known ones
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        for name in ("batch_size", "max_steps", "checkpoint_every", "log_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["unet"] = self.unet.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a (TOML/JSON) dict; unknown keys raise ValueError naming them."""
        return config_from_dict(cls, d)


@dataclass
class TrainResult:
    out_dir: Path
    start_step: int  # steps already done when this call began (0, or the resumed step)
    step: int  # steps done when it returned
    losses: list[float]  # loss of every step this call ran, in order


def loss_weights(config: TrainConfig, schedule) -> torch.Tensor:
    """Per-timestep loss weight (T,): min-SNR-γ, expressed for the chosen target (Hang et al. 2023, eq. 9)."""
    s = snr(schedule, torch.arange(schedule.num_timesteps))
    if config.min_snr_gamma <= 0:
        return torch.ones_like(s)
    clipped = s.clamp(max=config.min_snr_gamma)
    return clipped / s if config.prediction_type == "eps" else clipped / (s + 1)


def _kept_init_step(out: Path) -> int | None:
    """The `init_from_step` a run's own config.json recorded, if any: on resume it is the truth, whereas the
    init_from folder may hold other weights by then (a phase exported over the model it started from)."""
    try:
        value = json.loads((out / "config.json").read_text()).get("init_from_step")
    except (OSError, ValueError):
        return None
    return int(value) if value is not None else None


def lr_at(config: TrainConfig, step: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up, then constant or cosine."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return config.lr
    progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    ratio = config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, progress))
    )
    return config.lr * ratio


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> torch.Tensor:
    """Dataset indices of batch `step`: consecutive slices of per-epoch permutations seeded by (seed, epoch)."""
    out, got, pos = [], 0, step * batch_size
    while got < batch_size:
        epoch, offset = divmod(pos, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        take = perm[offset : offset + batch_size - got]
        out.append(take)
        got += len(take)
        pos += len(take)
    return torch.cat(out)


def _rng_states(gen: torch.Generator) -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "gen": gen.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def _set_rng_states(gen: torch.Generator, s: dict[str, Any]) -> None:
    gen.set_state(s["gen"])
    torch.set_rng_state(s["torch"])
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    np.random.set_state((s["numpy"][0], s["numpy"][1].numpy().astype(np.uint32), *s["numpy"][2:]))
    random.setstate(s["python"])


def _check_dataset(config: TrainConfig, images: torch.Tensor, conds: torch.Tensor | None) -> None:
    u = config.unet
    if (
        images.shape[1] != u.in_channels
        or images.shape[-1] != u.image_size
        or images.shape[-2] != u.image_size
    ):
        raise BadInputError(
            f"dataset images are {tuple(images.shape[1:])}, the U-Net expects ({u.in_channels}, {u.image_size}, {u.image_size})",
            "resize the dataset (data.image_size) or change unet.image_size / unet.in_channels",
        )
    if (conds is None) != (u.cond_channels == 0) or (conds is not None and conds.shape[1] != u.cond_channels):
        got = 0 if conds is None else conds.shape[1]
        raise BadInputError(
            f"dataset gives {got} conditioning-image channels, the U-Net has cond_channels={u.cond_channels}",
            "a super-resolution dataset yields (image, low_res, caption); set unet.cond_channels to match",
        )


# Fields that may differ on resume without changing the trajectory (where it stops, how it reports).
# max_steps is one only under a constant learning rate: the cosine decay is stretched over max_steps, so
# raising it on resume raises the learning rate of every later step (warned, and logged in train_log.jsonl).
_RESUME_FREE = frozenset({"max_steps", "checkpoint_every", "log_every", "out_dir", "cache_dir", "device", "compile"})


def _changed_training_fields(saved: dict[str, Any], config: TrainConfig) -> list[str]:
    now = config.to_dict()
    free = _RESUME_FREE if config.lr_schedule == "constant" else _RESUME_FREE - {"max_steps"}
    return sorted(k for k, v in saved.items()
                  if k != "unet" and k not in free and k in now and _plain(v) != _plain(now[k]))


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _init_from_checkpoint(model: UNet, ema: list[torch.Tensor] | None, params: list, config: TrainConfig) -> None:
    """Copy a saved checkpoint's weights into a new run (the EMA starts from them too). Why: a later phase
    can continue a shipped model when its training state (optimizer, RNG) was not kept."""
    if UNetConfig.from_dict(read_meta(config.init_from)["unet"]) != config.unet:
        raise BadInputError(
            f"cannot start from {config.init_from}: its U-Net config differs from this config's",
            "use the [unet] section that checkpoint was trained with",
        )
    source, _ = load_checkpoint(config.init_from)
    with torch.no_grad():
        model.load_state_dict(source.state_dict())
        if ema is not None:
            for e, p in zip(ema, params, strict=True):
                e.copy_(p)


def mirrored(images: torch.Tensor, conds: torch.Tensor | None, captions: list[str],
             keep: tuple[str, ...] = ()) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
    """The data set plus the left–right mirror image of each picture whose caption has none of the words in `keep`.

    Why: a small data set seen hundreds of times is learnt by heart (the v2 illustrator's training loss kept
    falling while its held-out pictures did not improve); a mirrored drawing is a new picture of the same
    thing. The pictures are mirrored before a latent model's autoencoder encodes them: a mirrored latent does
    not decode to the mirrored picture. A picture with writing or a direction in it ("stop sign", "left
    arrow") would be wrong mirrored, so its caption words can keep it as drawn."""
    words = [w.lower() for w in keep]
    pick = [i for i, c in enumerate(captions) if not any(w in c.lower() for w in words)]
    idx = torch.tensor(pick, dtype=torch.long)
    images = torch.cat([images, images[idx].flip(-1)])
    if conds is not None:
        conds = torch.cat([conds, conds[idx].flip(-1)])
    return images, conds, captions + [captions[i] for i in pick]


def train(
    config: TrainConfig,
    dataset: Dataset,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    text_encoder: TextEncoder | None = None,
) -> TrainResult:
    """Train `config.unet` on `dataset` (items: (image, caption) or (image, low_res, caption); images in [-1, 1]).

    Writes checkpoints to `config.out_dir`. `resume=True` continues the run saved there exactly;
    otherwise an existing checkpoint there is an error unless `overwrite=True`.
    """
    out = Path(config.out_dir)
    state_path = out / STATE_NAME
    if state_path.exists() and not resume and not overwrite:
        raise BadInputError(
            f"{out} already holds a training run", "pass --resume to continue it, or choose another out_dir"
        )
    if resume and not state_path.exists():  # a mistyped folder must not silently become a new run
        raise BadInputError(f"there is no training run to resume in {out} (no {STATE_NAME})",
                            "check out_dir, or start a new run without --resume")
    device = torch.device(resolve_device(config.device))
    cuda = device.type == "cuda"
    channels_last = cuda if config.channels_last is None else config.channels_last
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    images, conds, captions = load_all(
        dataset, progress=progress
    )  # uint8 (N, C, H, W), uint8 | None, list[str]
    if config.hflip:
        images, conds, captions = mirrored(images, conds, captions, config.hflip_except)
    latent = None
    if config.vae:  # float latents (N, z, h, w), already scaled to unit variance
        from taleloom.diffusion.latent import prepare_latents

        images, latent = prepare_latents(config.vae, images, out, progress=progress)
    _check_dataset(config, images, conds)
    n = images.shape[0]
    tokens, masks = cached_encode(
        captions, config.cache_dir or out / "cache", text_encoder, max_len=config.unet.max_text_len
    )
    images, tokens, masks = images.to(device), tokens.to(device), masks.to(device)
    conds = conds.to(device) if conds is not None else None

    torch.manual_seed(config.seed)
    model = UNet(config.unet).to(device=device, memory_format=memory_format).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        params,
        lr=config.lr,
        betas=config.adam_betas,
        weight_decay=config.weight_decay,
        **({"fused": True} if cuda else {}),
    )
    ema = [p.detach().clone() for p in params] if config.ema_decay > 0 else None
    gen = torch.Generator(device=device).manual_seed(config.seed)
    schedule = make_schedule(config.schedule, config.timesteps)
    weights = loss_weights(config, schedule).to(device)
    step = 0
    resumed_state: dict | None = None

    if resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)  # RNG states must stay on CPU
        if state["config"]["unet"] != config.unet.to_dict():
            raise BadInputError(
                f"cannot resume {out}: its U-Net config differs from this config's",
                "keep [unet] unchanged when resuming",
            )
        changed = _changed_training_fields(state["config"], config)
        if changed:
            import warnings

            warnings.warn(f"resuming {out} with changed training settings ({', '.join(changed)}): "
                          "the run continues, but it is no longer the uninterrupted run's trajectory", stacklevel=2)
            out.mkdir(parents=True, exist_ok=True)
            with (out / "train_log.jsonl").open("a", encoding="utf-8") as f:  # the run's history says where
                f.write(json.dumps({"step": int(state["step"]), "event": "resumed with changed settings",
                                    "changed": {k: [state["config"].get(k), config.to_dict()[k]] for k in changed}})
                        + "\n")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if ema is not None and state["ema"] is not None:
            for e, s in zip(ema, state["ema"], strict=True):
                e.copy_(s)
        _set_rng_states(gen, state["rng"])
        step = int(state["step"])
        resumed_state = state
    elif config.init_from:
        _init_from_checkpoint(model, ema, params, config)
    # the steps behind the weights a fine-tune started from, kept with the run (the init_from folder may be
    # replaced later: scripts/export_assets.py exports a phase over the shipped model it started from)
    if resumed_state is not None and "init_from_step" in resumed_state:
        init_from_step = int(resumed_state["init_from_step"])
    elif resumed_state is not None and (kept := _kept_init_step(out)) is not None:  # an older sidecar
        init_from_step = kept
    else:  # a new run (read now, before anything can replace that folder); a run folder's own step does
        # not count the phase it started from (its init_from_step), an exported folder's step counts all
        source = read_meta(config.init_from) if config.init_from else {}
        init_from_step = int(source.get("step", 0)) + int(source.get("init_from_step", 0))
    start_step = step
    forward = torch.compile(model) if config.compile else model

    def save() -> None:
        sd = model.state_dict()
        if ema is not None:
            names = [k for k, p in model.named_parameters() if p.requires_grad]
            sd.update(dict(zip(names, ema, strict=True)))
        sidecar = {
            "step": step,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "ema": ema,
            "rng": _rng_states(gen),
            "config": config.to_dict(),
            "init_from_step": init_from_step,
        }
        buf = io.BytesIO()
        torch.save(sidecar, buf)
        atomic_write_bytes(state_path, buf.getvalue())
        train_meta = {k: v for k, v in config.to_dict().items() if k != "unet"}
        save_checkpoint(
            out,
            sd,
            {
                "unet": config.unet.to_dict(),
                "schedule": config.schedule,
                "timesteps": config.timesteps,
                "prediction_type": config.prediction_type,
                "text_encoder": ENCODER_ID,
                "train": train_meta,
                "step": step,
                **({"init_from_step": init_from_step} if config.init_from else {}),
                "ema": ema is not None,
                **({"latent": latent} if latent is not None else {}),
            },
        )

    losses: list[float] = []
    pending: list[torch.Tensor] = []
    last_saved = step if state_path.exists() and resume else None
    log_path = out / "train_log.jsonl"
    out.mkdir(parents=True, exist_ok=True)

    def flush(t0: float, steps_timed: int) -> float:
        vals = torch.stack(pending).float().cpu().tolist() if pending else []
        pending.clear()
        first = step - len(vals)
        for i, v in enumerate(vals):
            if not math.isfinite(v):
                where = f"{out} (step {last_saved})" if last_saved is not None else "none was written yet"
                raise TrainingDivergedError(
                    f"training stopped: the loss became {v} at step {first + i + 1}; last good checkpoint: {where}",
                    "lower lr, raise warmup_steps or grad clipping, or check the data for NaNs; then --resume",
                )
        losses.extend(vals)
        ips = steps_timed * config.batch_size / max(time.perf_counter() - t0, 1e-9)
        if vals:
            with log_path.open("a") as f:
                f.write(
                    json.dumps(
                        {
                            "step": step,
                            "loss": sum(vals) / len(vals),
                            "lr": lr_at(config, step - 1),
                            "img_per_s": ips,
                        }
                    )
                    + "\n"
                )
        return ips

    from tqdm.auto import tqdm

    bar = tqdm(total=config.max_steps, initial=step, unit="step", disable=not progress, dynamic_ncols=True)
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and config.bf16)
    t0, timed = time.perf_counter(), 0
    while step < config.max_steps:
        idx = batch_indices(step, config.batch_size, n, config.seed).to(device)
        b = idx.shape[0]
        if latent is None:
            x0 = images[idx].float().div_(127.5).sub_(1.0).contiguous(memory_format=memory_format)  # (B, C, H, W)
        else:
            x0 = images[idx].contiguous(memory_format=memory_format)
        t = torch.randint(0, schedule.num_timesteps, (b,), generator=gen, device=device)
        noise = torch.randn(x0.shape, generator=gen, device=device)
        drop = torch.rand(b, generator=gen, device=device) < config.cond_drop_prob
        ctx, mask = tokens[idx], masks[idx]  # (B, L, D), (B, L)
        null_ctx, null_mask = model.null_context(b, ctx.shape[1])
        ctx = torch.where(drop[:, None, None], null_ctx, ctx)
        mask = torch.where(drop[:, None], null_mask, mask)
        cond = None
        if conds is not None:
            cond = upsample_condition(conds[idx].float().div_(127.5).sub_(1.0), x0.shape[-1])  # (B, c, H, W)
            sigma = torch.rand(b, 1, 1, 1, generator=gen, device=device) * config.cond_noise_aug
            cond = (cond + sigma * torch.randn(cond.shape, generator=gen, device=device)).contiguous(
                memory_format=memory_format
            )
        x_t = q_sample(schedule, x0, t, noise)
        target = noise if config.prediction_type == "eps" else v_target(schedule, x0, noise, t)

        for g in opt.param_groups:
            g["lr"] = lr_at(config, step)
        with amp:
            pred = forward(x_t, t, ctx, mask, cond)
        per_image = (pred.float() - target).pow(2).mean(dim=(1, 2, 3))  # (B,)
        loss = (weights[t] * per_image).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                decay = min(config.ema_decay, (1 + step) / (10 + step))
                torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
        pending.append(loss.detach())
        step += 1
        timed += 1
        bar.update(1)

        if step % config.log_every == 0 or step % config.checkpoint_every == 0 or step == config.max_steps:
            ips = flush(t0, timed)
            t0, timed = time.perf_counter(), 0
            bar.set_postfix(loss=f"{losses[-1]:.4f}", img_s=f"{ips:.1f}")
        if step % config.checkpoint_every == 0 or step == config.max_steps:
            save()
            last_saved = step
    bar.close()
    return TrainResult(out, start_step, step, losses)
