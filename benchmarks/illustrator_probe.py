"""A second instrument for the v1/v2 comparison: linear probes on ImageNet features, trained on every style.

Why: the aligned encoder that ranks concept names saw only Noto Color Emoji at 32 px, so on the real
held-out pictures of the nine other styles it finds the concept in its top 5 only about a third of the
time (its "ceiling"), and the style classifier built on its feature maps tells only about half of the
real styles apart. A ceiling that low cannot tell a good multi-style illustrator from a poor one.

This probe uses a network that has never seen our data, EfficientNet-Lite0 with its ImageNet weights
(the captioner's, checked by sha256), and fits two linear heads on its features of the real *training*
pictures of the multi-style set, all styles together:
- concept: which of the data set's concepts (top-1/top-5), trained on every (concept, style) picture;
- style: which of the trained styles, on pooled features of several depths plus a colour histogram.
Both are applied unchanged to the real held-out pictures (the ceiling: drawings of seen concepts in a
style the concept was not seen in) and to generated pictures. Nothing in it is fitted on held-out or
generated pictures. Features of the real pictures are cached (keyed by the data set's image hashes).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CACHE = Path.home() / ".cache" / "taleloom" / "bench"
SIZE = 128  # the data set's and v2's picture size; ImageNet features work at this size too


def _prep(images: list[Image.Image]) -> torch.Tensor:
    arr = np.stack([np.asarray(im.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS)) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float()  # (B, 3, S, S) in 0..255


class Probe:
    """`fit(train_images, concepts, styles)`, then `concept_hits(images, truth)` and `style_accuracy(...)`."""

    def __init__(self):
        from taleloom.backends.vision.efficientnet_lite import load_lite

        self.net = load_lite()

    @torch.no_grad()
    def features(self, images: list[Image.Image], batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """(concept features (N, 1280), style features (N, D)) of PIL pictures."""
        net, cfg = self.net, self.net.config
        concept, style = [], []
        for i in range(0, len(images), batch):
            raw = _prep(images[i:i + batch])
            x = (raw - cfg.mean) / cfg.std
            x = F.relu6(net._bn0(net._conv_stem(x)))
            pooled = []
            for j, block in enumerate(net._blocks):
                x = block(x)
                if j in (1, 3, 5):  # early blocks: strokes, textures, outlines
                    pooled += [x.mean((2, 3)), x.std((2, 3))]
            head = F.relu6(net._bn1(net._conv_head(x))).mean((2, 3))  # (B, 1280)
            q = (raw / 64).clamp(0, 3.999).long()  # 4 levels per channel → 64 colours, of the drawn pixels
            code = (q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2]).flatten(1)
            drawn = ~(raw > 230).all(1).flatten(1)
            hist = torch.stack([torch.bincount(c[d], minlength=64).float() / max(int(d.sum()), 1)
                                for c, d in zip(code, drawn, strict=True)])
            concept.append(head)
            style.append(torch.cat([*pooled, head, hist], dim=1))
        return torch.cat(concept), torch.cat(style)

    def cached_features(self, files: list[Path], sha256: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        key = hashlib.sha256("".join(sha256).encode()).hexdigest()[:16]
        path = CACHE / f"probe_lite0_{SIZE}_{key}.pt"
        if path.is_file():
            d = torch.load(path, weights_only=True)
            return d["concept"], d["style"]
        c, s = self.features([Image.open(f) for f in files])
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"concept": c, "style": s}, path)
        return c, s

    @staticmethod
    def _linear(f: torch.Tensor, y: torch.Tensor, classes: int):
        """A ridge-regression classifier on standardised features (closed form: cheap on a busy CPU), its
        ridge chosen on a seeded fifth of the training pictures held aside, then refitted on all of them."""
        mu, sd = f.mean(0), f.std(0) + 1e-6
        z = torch.cat([(f - mu) / sd, torch.ones(len(f), 1)], dim=1).double()
        target = F.one_hot(y, classes).double()

        def solve(rows: torch.Tensor, ridge: float) -> torch.Tensor:
            a = z[rows]
            return torch.linalg.solve(a.T @ a + ridge * torch.eye(a.shape[1], dtype=a.dtype), a.T @ target[rows])

        perm = torch.randperm(len(f), generator=torch.Generator().manual_seed(0))
        cut = len(f) // 5
        fit_rows, check_rows = perm[cut:], perm[:cut]
        scores = {r: float((z[check_rows] @ solve(fit_rows, r)).argmax(1).eq(y[check_rows]).double().mean())
                  for r in (1.0, 10.0, 100.0, 1000.0)}
        w = solve(torch.arange(len(f)), max(scores, key=lambda r: (scores[r], r))).float()
        return lambda g: torch.cat([(g - mu) / sd, torch.ones(len(g), 1)], dim=1) @ w

    def fit(self, concept_f: torch.Tensor, style_f: torch.Tensor, concepts: list[str], styles: list[str]) -> None:
        self.concepts = sorted(set(concepts))
        self.styles = sorted(set(styles))
        self.concept_head = self._linear(concept_f, torch.tensor([self.concepts.index(c) for c in concepts]),
                                         len(self.concepts))
        self.style_head = self._linear(style_f, torch.tensor([self.styles.index(s) for s in styles]), len(self.styles))

    @torch.no_grad()
    def concept_hits(self, concept_f: torch.Tensor, truth: list[str]) -> dict[str, float]:
        top = self.concept_head(concept_f).topk(5, dim=1).indices
        t = torch.tensor([self.concepts.index(c) for c in truth])[:, None]
        return {"top1": round(float((top[:, :1] == t).any(1).float().mean()), 4),
                "top5": round(float((top == t).any(1).float().mean()), 4)}

    @torch.no_grad()
    def style_accuracy(self, style_f: torch.Tensor, labels: list[str]) -> dict:
        pred = [self.styles[i] for i in self.style_head(style_f).argmax(1).tolist()]
        per = {s: round(float(np.mean([p == s for p, lab in zip(pred, labels, strict=True) if lab == s])), 4)
               for s in sorted(set(labels))}
        return {"mean_per_style": round(float(np.mean(list(per.values()))), 4), "per_style": per,
                "overall": round(float(np.mean([p == lab for p, lab in zip(pred, labels, strict=True)])), 4)}
