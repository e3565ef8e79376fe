"""Aligned image encoder: a small CNN and a linear projection W trained so that W·f(image) lands on the
frozen MiniLM sentence embedding of the image's caption (talk 000, slide 11; CLIP-style InfoNCE).

It is the embedded captioner's eye (`top_concepts`: the emoji names nearest to a picture), our
text–image alignment metric (`score`, and the feature space of the FD-aligned distance in
benchmarks/illustrator_quality.py), and the embedded illustrator's concept matcher
(`nearest_concepts`: scene text → the concepts the diffusion model was trained on).

Shipped in `taleloom/assets/aligned/`: model.safetensors + config.json (the network), and
vocabulary.json + vocabulary.safetensors (every concept's name and two precomputed MiniLM
matrices: `names`, the bare name's embedding, and `prototypes`, the mean over its caption variants).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from taleloom.errors import ModelNotFoundError

FORMAT_VERSION = 1
WEIGHTS, CONFIG, VOCAB_JSON, VOCAB_TENSORS = "model.safetensors", "config.json", "vocabulary.json", "vocabulary.safetensors"


@dataclass
class AlignedConfig:
    """Shape of the aligned encoder."""

    image_size: int = 32  # input pictures are squared on white and resized to this (pixels)
    channels: tuple[int, ...] = (16, 32, 64, 128)  # CNN width per resolution level (each level halves H, W)
    blocks_per_level: int = 2  # 3×3 conv blocks per level
    embed_dim: int = 384  # output space: all-MiniLM-L6-v2 sentence embeddings
    dropout: float = 0.1  # on the pooled features, during training

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)

    @classmethod
    def from_dict(cls, d: dict) -> AlignedConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class AlignedNet(nn.Module):
    """CNN f (conv blocks, global average pool) then the projection W; output L2-normalised (B, embed_dim)."""

    def __init__(self, config: AlignedConfig):
        super().__init__()
        self.config = cfg = config
        layers: list[nn.Module] = [nn.Conv2d(3, cfg.channels[0], 3, padding=1)]
        ch = cfg.channels[0]
        for i, out in enumerate(cfg.channels):
            for _ in range(cfg.blocks_per_level):
                layers += [nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, out, 3, padding=1)]
                ch = out
            if i < len(cfg.channels) - 1:
                layers.append(nn.AvgPool2d(2))
        layers += [nn.GroupNorm(8, ch), nn.SiLU()]
        self.cnn = nn.Sequential(*layers)
        self.drop = nn.Dropout(cfg.dropout)
        self.proj = nn.Linear(ch, cfg.embed_dim)  # W
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # ln(1/0.07), as CLIP

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, S, S) in [-1, 1] → pooled CNN features (B, C)."""
        return self.cnn(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(self.drop(self.features(x))), dim=-1)  # (B, embed_dim)


def preprocess(images: Sequence[Image.Image] | Image.Image, size: int) -> torch.Tensor:
    """PIL pictures → (B, 3, size, size) in [-1, 1]: transparency on white, padded square, resized."""
    from taleloom.diffusion.data import pil_to_tensor, square, to_rgb

    images = [images] if isinstance(images, Image.Image) else list(images)
    return torch.stack([pil_to_tensor(square(to_rgb(im), size)) for im in images])


def save_aligned(folder: str | os.PathLike, net: AlignedNet, vocabulary: list[dict], names: torch.Tensor,
                 prototypes: torch.Tensor, meta: dict | None = None) -> Path:
    """Write the network, its config and the concept vocabulary (fp16 embeddings) to `folder`."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().float().contiguous() for k, v in net.state_dict().items()}, str(out / WEIGHTS))
    (out / CONFIG).write_text(json.dumps({"format_version": FORMAT_VERSION, "aligned": asdict(net.config),
                                          "text_encoder": "sentence-transformers/all-MiniLM-L6-v2", **(meta or {})},
                                         indent=2) + "\n")
    save_file({"names": names.half().contiguous(), "prototypes": prototypes.half().contiguous()}, str(out / VOCAB_TENSORS))
    (out / VOCAB_JSON).write_text(json.dumps(vocabulary, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    return out


class AlignedEncoder:
    """The trained encoder plus its concept vocabulary; see the module docstring."""

    def __init__(self, net: AlignedNet, vocabulary: list[dict], names: torch.Tensor, prototypes: torch.Tensor,
                 device: str | torch.device = "cpu", meta: dict | None = None):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.vocabulary = vocabulary  # [{"name", "emoji", "group", "trained"}]
        self.concepts = [v["name"] for v in vocabulary]
        self.names = F.normalize(names.float(), dim=-1).to(self.device)  # (V, 384)
        self.prototypes = F.normalize(prototypes.float(), dim=-1).to(self.device)  # (V, 384)
        self.trained = torch.tensor([bool(v.get("trained", True)) for v in vocabulary], device=self.device)
        self.meta = meta or {}
        self._text = None

    @classmethod
    def load(cls, location: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> AlignedEncoder:
        """From `location` (a folder) or the shipped, hash-verified assets/aligned/."""
        from safetensors.torch import load_file

        if location:
            folder = Path(location)
        else:
            from taleloom.assets import verified_dir

            folder = verified_dir("aligned")
        hint = "pass a folder written by scripts/train_aligned.py, or leave the location empty for the shipped one"
        for name in (WEIGHTS, CONFIG, VOCAB_JSON, VOCAB_TENSORS):
            if not (folder / name).is_file():
                raise ModelNotFoundError(f"aligned encoder folder {folder} has no {name}", hint)
        try:
            meta = json.loads((folder / CONFIG).read_text())
            net = AlignedNet(AlignedConfig.from_dict(meta["aligned"]))
            net.load_state_dict(load_file(str(folder / WEIGHTS)))
            vocab = json.loads((folder / VOCAB_JSON).read_text(encoding="utf-8"))
            tensors = load_file(str(folder / VOCAB_TENSORS))
        except Exception as e:  # parse errors, key or shape mismatches
            raise ModelNotFoundError(f"aligned encoder in {folder} is corrupted or incomplete: {e}", hint) from e
        return cls(net, vocab, tensors["names"], tensors["prototypes"], device, meta)

    # --- images --------------------------------------------------------------------------------------
    @torch.no_grad()
    def image_embed(self, images: Sequence[Image.Image] | Image.Image | torch.Tensor) -> torch.Tensor:
        """(B, 384) L2-normalised embeddings. A tensor input is (B, 3, H, W) in [-1, 1], resized here."""
        if isinstance(images, torch.Tensor):
            x = images.float()
            s = self.net.config.image_size
            if x.shape[-1] != s:
                x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        else:
            x = preprocess(images, self.net.config.image_size)
        out = [self.net(x[i:i + 256].to(self.device)) for i in range(0, x.shape[0], 256)]
        return torch.cat(out)

    def top_concepts(self, image: Image.Image, k: int = 5) -> list[tuple[str, float]]:
        """The k vocabulary concepts nearest to the picture: [(name, cosine similarity)], best first."""
        sims = (self.image_embed(image) @ self.prototypes.T)[0]
        vals, idx = sims.topk(min(k, len(self.concepts)))
        return [(self.concepts[i], float(v)) for v, i in zip(vals.tolist(), idx.tolist(), strict=True)]

    # --- text ----------------------------------------------------------------------------------------
    @property
    def text_encoder(self):
        if self._text is None:
            from taleloom.diffusion.text_encoder import get_text_encoder

            self._text = get_text_encoder("cpu")
        return self._text

    def text_embed(self, texts: Sequence[str] | str) -> torch.Tensor:
        """MiniLM sentence embeddings (B, 384), L2-normalised."""
        return self.text_encoder.embed([texts] if isinstance(texts, str) else list(texts)).to(self.device)

    def score(self, image: Image.Image, text: str) -> float:
        """Cosine similarity of the picture and the text in the shared space (higher = better aligned)."""
        return float((self.image_embed(image) @ self.text_embed(text).T)[0, 0])

    def concept_vocabulary(self, trained_only: bool = True) -> list[str]:
        """Concept names; by default only those the diffusion model was trained on."""
        return [c for c, t in zip(self.concepts, self.trained.tolist(), strict=True) if t or not trained_only]

    def nearest_concepts(self, text: str, k: int = 5, trained_only: bool = True) -> list[str]:
        """The k concept names nearest to `text` by MiniLM similarity (the illustrator's vocabulary)."""
        sims = (self.text_embed(text) @ self.names.T)[0]
        if trained_only:
            sims = sims.masked_fill(~self.trained, -2.0)
        idx = sims.topk(min(k, int(self.trained.sum()) if trained_only else len(self.concepts))).indices
        return [self.concepts[i] for i in idx.tolist()]


_LOADED: dict[tuple[str, str], AlignedEncoder] = {}


def load_aligned_encoder(location: str | os.PathLike | None = None, device: str = "auto") -> AlignedEncoder:
    """One shared encoder per (location, device); `device="auto"` is the CPU (the network is tiny)."""
    dev = "cpu" if device == "auto" else device
    key = (str(location or ""), dev)
    if key not in _LOADED:
        _LOADED[key] = AlignedEncoder.load(location, dev)
    return _LOADED[key]
