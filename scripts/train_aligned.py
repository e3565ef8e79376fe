#!/usr/bin/env python3
"""Train the aligned image encoder (CNN + projection W) against frozen MiniLM caption embeddings.

Loss: InfoNCE from each image to the text embeddings of all training concepts (one randomly chosen
caption variant per concept per step), with a learned temperature, as CLIP's image→text half with
the whole concept set as negatives. Seeded; `--resume` continues from <out>/train_state.pt.

    python scripts/train_aligned.py --out runs/aligned --steps 1500
    python scripts/export_assets.py     # copies the result into src/taleloom/assets/aligned/
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_emoji_dataset import DEFAULT_OUT, TEXT_CACHE, load_manifest, load_split  # noqa: E402

from taleloom.diffusion.aligned import AlignedConfig, AlignedEncoder, AlignedNet, save_aligned  # noqa: E402


def caption_embeddings(manifest: dict, cache: Path = TEXT_CACHE) -> tuple[torch.Tensor, torch.Tensor]:
    """(caps (C, K, 384) zero-padded, counts (C,)) MiniLM embeddings of every concept's captions (cached)."""
    from taleloom.diffusion.text_encoder import captions_key, get_text_encoder

    concepts = manifest["concepts"]
    flat = [c for con in concepts for c in con["captions"]]
    path = cache / f"aligned_{captions_key(flat, 32)}.pt"
    if path.exists():
        d = torch.load(path)
        return d["caps"], d["counts"]
    enc = get_text_encoder("cpu")
    emb = torch.cat([enc.embed(flat[i:i + 256]) for i in range(0, len(flat), 256)])
    counts = torch.tensor([len(con["captions"]) for con in concepts])
    caps = torch.zeros(len(concepts), int(counts.max()), emb.shape[1])
    pos = 0
    for i, n in enumerate(counts.tolist()):
        caps[i, :n] = emb[pos:pos + n]
        pos += n
    cache.mkdir(parents=True, exist_ok=True)
    torch.save({"caps": caps, "counts": counts}, path)
    return caps, counts


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shift by up to 3 px on white, and for a third of the images blur (down to half size and back)
    or add noise — generated pictures are softer and noisier than the rendered glyphs."""
    b, _, s, _ = x.shape
    pad = F.pad(x, (3, 3, 3, 3), value=1.0)
    ox, oy = torch.randint(0, 7, (2, b), generator=gen)
    x = torch.stack([pad[i, :, oy[i]:oy[i] + s, ox[i]:ox[i] + s] for i in range(b)])
    r = torch.rand(b, generator=gen)
    blur = r < 0.33
    if blur.any():
        small = F.interpolate(x[blur], size=(s // 2, s // 2), mode="bilinear", antialias=True, align_corners=False)
        x[blur] = F.interpolate(small, size=(s, s), mode="bilinear", align_corners=False)
    noisy = (r >= 0.33) & (r < 0.5)
    if noisy.any():
        x[noisy] = (x[noisy] + 0.1 * torch.randn(x[noisy].shape, generator=gen)).clamp(-1, 1)
    return x


def retrieval(enc: AlignedEncoder, images: torch.Tensor, concept_ids: list[int]) -> dict[str, float]:
    """Top-1/top-5 accuracy of finding each image's concept among all concepts (prototype embeddings)."""
    if not concept_ids:
        return {"top1": float("nan"), "top5": float("nan"), "n": 0}
    sims = enc.image_embed(images) @ enc.prototypes.T
    top = sims.topk(5, dim=1).indices
    truth = torch.tensor(concept_ids)[:, None]
    return {"top1": float((top[:, :1] == truth).any(1).float().mean()),
            "top5": float((top == truth).any(1).float().mean()), "n": len(concept_ids)}


def to_tensor(arr) -> torch.Tensor:
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_OUT)
    p.add_argument("--out", type=Path, default=Path("runs/aligned"))
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--resume", action="store_true")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = AlignedConfig()
    manifest = load_manifest(a.data)
    imgs, recs, _ = load_split(a.data, "train", cfg.image_size)
    x_train = to_tensor(imgs)
    caps, counts = caption_embeddings(manifest)
    names = caps[:, 0]
    prototypes = F.normalize(caps.sum(1) / counts[:, None], dim=-1)
    train_cids = sorted({r["concept"] for r in recs})
    col = {c: i for i, c in enumerate(train_cids)}  # concept id → classifier column
    labels = torch.tensor([col[r["concept"]] for r in recs])
    vocab = [{"name": c["name"], "emoji": c["emoji"], "group": c["group"], "trained": i in col}
             for i, c in enumerate(manifest["concepts"])]

    net = AlignedNet(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.05)
    gen = torch.Generator().manual_seed(a.seed)
    step, state_path = 0, a.out / "train_state.pt"
    if a.resume and state_path.exists():
        st = torch.load(state_path, weights_only=False)
        net.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        gen.set_state(st["gen"])
        step = st["step"]
    a.out.mkdir(parents=True, exist_ok=True)
    sched = lambda s: a.lr * min(1.0, (s + 1) / 100) * 0.5 * (1 + torch.cos(torch.tensor(s / a.steps * 3.14159)).item())  # noqa: E731
    t0, log = time.perf_counter(), a.out / "train_log.jsonl"
    while step < a.steps:
        net.train()
        idx = torch.randint(0, len(x_train), (a.batch_size,), generator=gen)
        x = augment(x_train[idx].clone(), gen)
        pick = (torch.rand(len(train_cids), generator=gen) * counts[train_cids]).long()
        text = caps[train_cids, pick]  # (C_train, 384): one caption variant per concept
        logits = net.logit_scale.exp().clamp(max=100) * net(x) @ text.T
        loss = F.cross_entropy(logits, labels[idx])
        for g in opt.param_groups:
            g["lr"] = sched(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0 or step == a.steps:
            with log.open("a") as f:
                f.write(json.dumps({"step": step, "loss": loss.item(), "s": round(time.perf_counter() - t0, 1)}) + "\n")
            torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "gen": gen.get_state(), "step": step},
                       state_path)
    net.eval()
    enc = AlignedEncoder(net, vocab, names, prototypes)
    metrics = {}
    for split in ("train", "heldout", "unseen"):
        im, rr, _ = load_split(a.data, split, cfg.image_size)
        metrics[split] = retrieval(enc, to_tensor(im), [r["concept"] for r in rr])
    print(json.dumps(metrics))
    save_aligned(a.out / "model", net, vocab, names, prototypes,
                 {"train": {"steps": step, "batch_size": a.batch_size, "lr": a.lr, "seed": a.seed}, "metrics": metrics})


if __name__ == "__main__":
    main()
