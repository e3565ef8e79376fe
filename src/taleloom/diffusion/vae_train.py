"""Training the autoencoder of a latent diffusion model: L1 reconstruction + a perceptual term + a small
KL term (Rombach et al. 2022, §3 and appendix G), on random crops, with checkpoints and exact resume.

The perceptual term compares feature maps of a frozen CNN (LPIPS-style: channel-normalised, squared
difference, averaged): by default the first two levels of our own aligned encoder, which was
trained on emoji and so responds to their edges and colour regions; "none" turns it off (tests).
Exact resume works as in train.py: data order and crop offsets are functions of (seed, step) and the
one saved generator, and the sidecar keeps weights, optimizer and every RNG state.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from taleloom.config import resolve_device
from taleloom.diffusion.checkpoint import STATE_NAME, save_checkpoint
from taleloom.diffusion.data import load_all
from taleloom.diffusion.train import TrainingDivergedError, _rng_states, _set_rng_states, batch_indices, lr_at
from taleloom.diffusion.unet import config_from_dict
from taleloom.diffusion.vae import KIND, AutoencoderKL, VAEConfig, kl_divergence, load_vae
from taleloom.errors import BadInputError
from taleloom.files import atomic_write_bytes

PERCEPTUAL = ("aligned", "none")


@dataclass
class VAETrainConfig:
    """One autoencoder training run; saved (minus `vae`) in every checkpoint's config.json."""

    out_dir: str = "runs/vae"
    vae: VAEConfig = field(default_factory=VAEConfig)
    batch_size: int = 16
    crop_size: int = 64  # train on random crops of this size (0 = whole pictures); must divide by the factor
    max_steps: int = 4000
    lr: float = 5e-4
    warmup_steps: int = 100
    lr_schedule: str = "cosine"  # "constant" | "cosine" (as train.lr_at)
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    kl_weight: float = 1e-4  # weight of the mean per-element KL (keeps latents near N(0, I) and smooth)
    perceptual: str = "aligned"  # "aligned" (our encoder's first levels) or "none"
    perceptual_weight: float = 0.5
    # L1 between the pictures' finite differences (edge_distance): where the latent fixes an edge, the pixel
    # L1 pays little for spreading it over two or three pixels, while flat-colour styles are told apart by
    # exactly that step (a blurred edge reads as a gradient-shaded style). 0 = off.
    edge_weight: float = 0.0
    # a trained autoencoder to start from: its encoder (and its decoder, where [vae] gives it the same
    # shape) is loaded first; with decoder_only its encoder stays frozen and the decoder learns to draw
    # the encoder's posterior means (what a latent U-Net produces), so the latent space does not move
    init_from: str = ""
    decoder_only: bool = False
    # with [vae] decoder_classes: the share of pictures decoded with no class (0), so that the decoder also
    # draws a latent whose prompt names none of its classes
    class_dropout: float = 0.1
    # adversarial term (patch discriminator, hinge loss; Esser et al. 2021 as latent diffusion uses it): L1
    # and perceptual distances are minimised by a blur where the latent does not say which detail; a
    # discriminator of real vs decoded patches pushes the decoder to draw a sharp one. Its term is scaled by
    # the ratio of gradient norms at the decoder's last layer (adaptive_weight) times this weight (0.5 in
    # latent diffusion). The discriminator trains from the first step; the decoder feels it from
    # `adversarial_start` on. 0 = off.
    adversarial_weight: float = 0.0
    adversarial_start: int = 0
    disc_channels: int = 32
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 250
    log_every: int = 25

    def __post_init__(self) -> None:
        if isinstance(self.vae, dict):
            self.vae = VAEConfig.from_dict(self.vae)
        self.adam_betas = tuple(self.adam_betas)  # type: ignore[assignment]
        if self.perceptual not in PERCEPTUAL:
            raise ValueError(f"perceptual must be one of {', '.join(PERCEPTUAL)}, got {self.perceptual!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if not 0.0 <= self.class_dropout < 1.0:
            raise ValueError(f"class_dropout must be in [0, 1), got {self.class_dropout}")
        if self.edge_weight < 0:
            raise ValueError(f"edge_weight must be >= 0 (0 = off), got {self.edge_weight}")
        if self.adversarial_weight < 0 or self.adversarial_start < 0 or self.disc_channels <= 0:
            raise ValueError("adversarial_weight and adversarial_start must be >= 0 and disc_channels positive")
        for name in ("batch_size", "max_steps", "checkpoint_every", "log_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.decoder_only and not self.init_from:
            raise ValueError("decoder_only trains a new decoder for a trained encoder: set init_from to that "
                             "autoencoder's folder")
        if self.crop_size and (self.crop_size % self.vae.factor or self.crop_size > self.vae.image_size):
            raise ValueError(f"crop_size {self.crop_size} must divide by the factor {self.vae.factor} "
                             f"and be at most image_size {self.vae.image_size}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["vae"] = self.vae.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VAETrainConfig:
        return config_from_dict(cls, d)


@dataclass
class VAETrainResult:
    out_dir: Path
    start_step: int
    step: int
    losses: list[float]  # total loss of every step this call ran


class PatchDiscriminator(nn.Module):
    """Real or decoded, per overlapping patch (~22 px receptive field): three strided 4×4 convolutions with
    spectral normalisation (a bounded critic, so the hinge loss stays stable without a warm-up schedule)."""

    def __init__(self, channels: int = 32, in_channels: int = 3):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        c = channels
        self.net = nn.Sequential(
            sn(nn.Conv2d(in_channels, c, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(c, 2 * c, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * c, 4 * c, 4, 1, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(4 * c, 1, 3, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """The adversarial term's scale (Esser et al. 2021): the ratio of the two losses' gradient norms at the
    decoder's last layer, so that `adversarial_weight` means the same whatever the reconstruction loss's scale
    (a fixed weight on a critic's O(1) output would swamp an L1 of 0.07)."""
    g_rec = torch.autograd.grad(rec_loss, last, retain_graph=True)[0]
    g_adv = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, 1e4).detach()


class PerceptualLoss(nn.Module):
    """Frozen feature extractor; loss = mean over levels of the squared difference of channel-normalised maps."""

    def __init__(self, cnn: nn.Sequential, levels: int = 2):
        super().__init__()
        cuts, seen = [], 0  # the layer index before each AvgPool: the end of a level
        for i, layer in enumerate(cnn):
            if isinstance(layer, nn.AvgPool2d):
                cuts.append(i)
                seen += 1
                if seen == levels:
                    break
        self.cnn = cnn[: cuts[-1] + 1] if cuts else cnn
        self.taps = set(c - 1 for c in cuts)
        for p in self.cnn.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # always frozen (dropout/norm in eval mode)
        return super().train(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.cnn):
            x = layer(x)
            if i in self.taps:
                out.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-6))
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B,) perceptual distance between pictures x and y in [-1, 1]."""
        fx, fy = self.features(x), self.features(y)
        return sum((a - b).pow(2).sum(dim=1).flatten(1).mean(dim=1) for a, b in zip(fx, fy, strict=True)) / len(fx)


def perceptual_net(name: str, device: torch.device) -> PerceptualLoss | None:
    if name == "none":
        return None
    from taleloom.diffusion.aligned import load_aligned_encoder

    enc = load_aligned_encoder(None, device="cpu")
    import copy

    return PerceptualLoss(copy.deepcopy(enc.net.cnn)).to(device)


def edge_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B,) mean absolute difference of the horizontal and vertical steps between neighbouring pixels of x and y:
    zero for a picture shifted in colour by a constant, large for a sharp edge drawn blurred."""
    dx = (x[..., :, 1:] - x[..., :, :-1]) - (y[..., :, 1:] - y[..., :, :-1])
    dy = (x[..., 1:, :] - x[..., :-1, :]) - (y[..., 1:, :] - y[..., :-1, :])
    return (dx.abs().flatten(1).mean(dim=1) + dy.abs().flatten(1).mean(dim=1)) / 2


def random_crops(images: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """One crop of size×size per picture at offsets drawn from `gen` (same generator → same crops)."""
    b, _, h, w = images.shape
    if not size or size == h:
        return images
    ys = torch.randint(0, h - size + 1, (b,), generator=gen, device=gen.device).tolist()
    xs = torch.randint(0, w - size + 1, (b,), generator=gen, device=gen.device).tolist()
    return torch.stack([images[i, :, y : y + size, x : x + size] for i, (y, x) in enumerate(zip(ys, xs, strict=True))])


def vae_meta(config: VAETrainConfig, step: int) -> dict[str, Any]:
    return {"kind": KIND, KIND: config.vae.to_dict(),
            "train": {k: v for k, v in config.to_dict().items() if k != "vae"}, "step": step}


def train_vae(config: VAETrainConfig, dataset: Dataset, *, resume: bool = False, overwrite: bool = False,
              progress: bool = True) -> VAETrainResult:
    """Train `config.vae` on a dataset of (image, caption) items at `vae.image_size` (captions unused)."""
    out = Path(config.out_dir)
    state_path = out / STATE_NAME
    if state_path.exists() and not resume and not overwrite:
        raise BadInputError(f"{out} already holds a training run",
                            "pass --resume to continue it, or choose another out_dir")
    if resume and not state_path.exists():
        raise BadInputError(f"there is no training run to resume in {out} (no {STATE_NAME})",
                            "check out_dir, or start a new run without --resume")
    device = torch.device(resolve_device(config.device))
    images, _, captions = load_all(dataset, progress=progress)
    v = config.vae
    if images.shape[1] != v.in_channels or images.shape[-1] != v.image_size or images.shape[-2] != v.image_size:
        raise BadInputError(
            f"dataset images are {tuple(images.shape[1:])}, the autoencoder expects "
            f"({v.in_channels}, {v.image_size}, {v.image_size})", "set [vae] image_size to the pictures' size")
    images = images.to(device)
    n = images.shape[0]
    labels = None
    if v.decoder_classes:
        labels = torch.tensor([v.class_index(c) for c in captions], device=device)
        if not bool((labels > 0).any()):
            raise BadInputError(f"no caption of the {n} training pictures ends with any of [vae] decoder_classes "
                                f"(e.g. {captions[0]!r})", "list the texts the captions end with, such as their "
                                "style words")

    torch.manual_seed(config.seed)
    model = AutoencoderKL(v).to(device).train()
    if config.init_from and not resume:
        start_from(model, config.init_from)
    trained = model.decoder if config.decoder_only else model
    if config.decoder_only:
        model.encoder.requires_grad_(False).eval()
    opt = torch.optim.AdamW(trained.parameters(), lr=config.lr, betas=config.adam_betas,
                            weight_decay=config.weight_decay)
    disc = opt_d = None
    if config.adversarial_weight > 0:
        disc = PatchDiscriminator(config.disc_channels, v.in_channels).to(device).train()
        opt_d = torch.optim.AdamW(disc.parameters(), lr=config.lr, betas=(0.5, 0.9))
    perc = perceptual_net(config.perceptual, device)
    gen = torch.Generator(device=device).manual_seed(config.seed)
    step = 0
    if resume:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if VAEConfig.from_dict(state["config"]["vae"]) != v:
            raise BadInputError(f"cannot resume {out}: its [vae] config differs from this config's",
                                "keep [vae] unchanged when resuming")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if disc is not None:
            disc.load_state_dict(state["disc"])
            opt_d.load_state_dict(state["disc_optimizer"])
        _set_rng_states(gen, state["rng"])
        step = int(state["step"])
    start_step = step
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "train_log.jsonl"

    def save() -> None:
        buf = io.BytesIO()
        extra = {"disc": disc.state_dict(), "disc_optimizer": opt_d.state_dict()} if disc is not None else {}
        torch.save({"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "rng": _rng_states(gen), "config": config.to_dict(), **extra}, buf)
        atomic_write_bytes(state_path, buf.getvalue())
        save_checkpoint(out, model.state_dict(), vae_meta(config, step))

    from tqdm.auto import tqdm

    losses: list[float] = []
    pending: list[torch.Tensor] = []  # (total, rec, perceptual, kl, adversarial, discriminator, edge) per step
    bar = tqdm(total=config.max_steps, initial=step, unit="step", disable=not progress, dynamic_ncols=True)
    t0, timed = time.perf_counter(), 0
    while step < config.max_steps:
        idx = batch_indices(step, config.batch_size, n, config.seed).to(device)
        x = random_crops(images[idx], config.crop_size, gen).float().div_(127.5).sub_(1.0)
        cls = None
        if labels is not None:
            keep = torch.rand(idx.shape, generator=gen, device=gen.device) >= config.class_dropout
            cls = torch.where(keep, labels[idx], torch.zeros_like(labels[idx]))
        for g in opt.param_groups:
            g["lr"] = lr_at(config, step)  # type: ignore[arg-type]  # same lr fields as TrainConfig
        if config.decoder_only:
            with torch.no_grad():
                mean, _ = model.encode(x)
            x_hat = model.decode(mean, cls)
        else:
            x_hat, mean, logvar = model(x, gen, cls)
        rec = (x_hat - x).abs().flatten(1).mean(dim=1)
        p_term = perc(x_hat, x) if perc is not None else torch.zeros_like(rec)
        kl = torch.zeros_like(rec) if config.decoder_only else kl_divergence(mean, logvar)
        edge = edge_distance(x_hat, x) if config.edge_weight else torch.zeros_like(rec)
        loss = (rec + config.perceptual_weight * p_term + config.kl_weight * kl + config.edge_weight * edge).mean()
        g_adv = d_loss = torch.zeros((), device=device)
        if disc is not None and step >= config.adversarial_start:
            g_adv = -disc(x_hat).mean()  # hinge, the decoder's side
            loss = loss + config.adversarial_weight * adaptive_weight(loss, g_adv, model.decoder.net[-1].weight) * g_adv
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        if disc is not None:  # the discriminator's side: real patches above +1, decoded below -1
            d_loss = F.relu(1.0 - disc(x)).mean() + F.relu(1.0 + disc(x_hat.detach())).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        pending.append(torch.stack([loss.detach(), rec.mean().detach(), p_term.mean().detach(), kl.mean().detach(),
                                    g_adv.detach(), d_loss.detach(), edge.mean().detach()]))
        step += 1
        timed += 1
        bar.update(1)
        if step % config.log_every == 0 or step % config.checkpoint_every == 0 or step == config.max_steps:
            vals = torch.stack(pending).cpu()
            pending.clear()
            for i, total in enumerate(vals[:, 0].tolist()):
                if not math.isfinite(total):
                    raise TrainingDivergedError(
                        f"autoencoder training stopped: the loss became {total} at step {step - len(vals) + i + 1}",
                        "lower lr or check the data; then --resume from the last checkpoint")
            losses.extend(vals[:, 0].tolist())
            m = vals.mean(dim=0).tolist()
            ips = timed * config.batch_size / max(time.perf_counter() - t0, 1e-9)
            t0, timed = time.perf_counter(), 0
            with log_path.open("a") as f:
                adv = {"adversarial": m[4], "discriminator": m[5]} if disc is not None else {}
                adv |= {"edge": m[6]} if config.edge_weight else {}
                f.write(json.dumps({"step": step, "loss": m[0], "rec_l1": m[1], "perceptual": m[2], "kl": m[3], **adv,
                                    "lr": lr_at(config, step - 1), "img_per_s": ips}) + "\n")  # type: ignore[arg-type]
            bar.set_postfix(loss=f"{m[0]:.4f}", l1=f"{m[1]:.4f}", kl=f"{m[3]:.2f}")
        if step % config.checkpoint_every == 0 or step == config.max_steps:
            save()
    bar.close()
    return VAETrainResult(out, start_step, step, losses)


def start_from(model: AutoencoderKL, folder: str) -> None:
    """Load a trained autoencoder's encoder into `model` (the shapes must agree: the latent space is the
    point), and its decoder too when `model`'s decoder has the same shape (else the decoder starts fresh)."""
    source, _ = load_vae(Path(folder).expanduser())
    try:
        model.encoder.load_state_dict(source.encoder.state_dict())
    except RuntimeError as e:
        raise BadInputError(f"init_from {folder}: its encoder does not fit this [vae] config",
                            "keep [vae] channels, num_res_blocks and latent_channels as that autoencoder's; "
                            "only decoder_channels / decoder_res_blocks may differ") from e
    if source.config.dec_channels == model.config.dec_channels and \
            source.config.dec_res_blocks == model.config.dec_res_blocks:
        # a decoder gaining classes starts as the source's: its new FiLM layers are zero (they change nothing)
        missing, unexpected = model.decoder.load_state_dict(source.decoder.state_dict(), strict=False)
        new = [k for k in missing if ".film." not in k and not k.startswith("classes.")]
        if new or unexpected:
            raise BadInputError(f"init_from {folder}: its decoder does not fit this [vae] config "
                                f"(missing {new[:3]}, unexpected {unexpected[:3]})",
                                "start a decoder with classes from one with the same decoder_channels")


@torch.no_grad()
def encode_dataset(model: AutoencoderKL, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Posterior means of uint8 pictures (N, C, S, S) → float latents (N, z, S/f, S/f), in batches."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, images.shape[0], batch):
        x = images[i : i + batch].to(device).float().div_(127.5).sub_(1.0)
        out.append(model.encode(x)[0].cpu())
    return torch.cat(out)
