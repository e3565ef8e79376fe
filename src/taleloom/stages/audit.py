"""Pages that check themselves: after illustrate, each picture is looked at by the aligned image encoder
(diffusion/aligned.py) against its scene and the cast sheet —

- hero present: how the picture ranks the hero's concept among all the encoder's concepts (1.0 = the
  nearest concept of all, 0.5 = no better than the median concept);
- setting present: the same for the scene's setting;
- consistent: cosine similarity of the hero region's features (the request's `hero_box` when the
  illustrator lays out a whole scene, else the middle of the picture) with the mean of the other pages' —

and a page below a threshold is drawn again with a new seed, up to `retries` times. Of all attempts the
page keeps the one with the best margin over the thresholds; every attempt is returned for the manifest.

This module takes pictures, requests and texts, and a `redraw` function: it knows nothing of how the
illustrator lays out a scene, so the layout can change without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from taleloom.book import ImageRequest, PageCheck
from taleloom.stages.stage import page_seed


@dataclass(frozen=True)
class Thresholds:
    hero: float = 0.90  # the hero's concept among the 10 % nearest to the picture
    # the setting not among the 20 % of concepts least like the picture: a loose bar, because the embedded
    # illustrator draws the hero's concept and the setting only as far as the composition shows it
    setting: float = 0.20
    consistency: float = 0.50  # hero-region cosine with the other pages

    def margin(self, hero: float, setting: float, consistency: float) -> float:
        """How far the weakest check is above (> 0) or below (< 0) its threshold, relative to it."""
        return min(hero / self.hero, setting / self.setting, consistency / self.consistency) - 1.0


@dataclass
class Scores:
    hero: float
    setting: float
    consistency: float


Box = tuple[float, float, float, float]  # (left, top, right, bottom) in fractions of the picture
MIDDLE: Box = (0.2, 0.2, 0.8, 0.8)  # a lone subject is drawn in the middle


def hero_region(image: Image.Image, box: Box | None = None) -> Image.Image:
    """The part of the picture where the hero stands: `box` (the request's hero_box), else the middle."""
    w, h = image.size
    left, top, right, bottom = box or MIDDLE
    return image.crop((round(left * w), round(top * h), max(round(right * w), 1), max(round(bottom * h), 1)))


def _text_vectors(encoder, texts: Sequence[str]) -> torch.Tensor:
    """(N, D) unit vectors: a concept's own prototype when the text is one, else its MiniLM embedding."""
    index = {c: i for i, c in enumerate(encoder.concepts)}
    out = []
    for t in texts:
        i = index.get(t)
        out.append(encoder.prototypes[i] if i is not None else encoder.text_embed([t])[0].to(encoder.device))
    return F.normalize(torch.stack(out).float(), dim=-1)


@torch.no_grad()
def score(images: Sequence[Image.Image], heroes: Sequence[str], settings: Sequence[str], encoder,
          boxes: Sequence[Box | None] | None = None) -> list[Scores]:
    """The three checks for each picture: the hero in its box (the whole picture when it has none), the
    setting in the whole picture, and the hero region against the mean of the *other* pictures'."""
    boxes = list(boxes) if boxes else [None] * len(images)
    whole = encoder.image_embed(list(images)).float()  # (B, D)
    regions = encoder.image_embed([hero_region(im, b) if b else im for im, b in zip(images, boxes, strict=True)])
    vocab = encoder.prototypes.float().T  # (D, V)

    def rank(emb: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        sims = (emb * _text_vectors(encoder, texts)).sum(-1)  # (B,)
        return (emb @ vocab < sims[:, None]).float().mean(dim=1)

    hero, setting = rank(regions.float(), heroes), rank(whole, settings)
    consistency = _consistency(images, encoder, boxes)
    return [Scores(float(h), float(s), float(c)) for h, s, c in zip(hero, setting, consistency, strict=True)]


def _consistency(images: Sequence[Image.Image], encoder, boxes: Sequence[Box | None] | None = None) -> torch.Tensor:
    """(B,) cosine of each hero region's features with the mean of the other pages' (1 for a single page)."""
    boxes = boxes or [None] * len(images)
    crops = [hero_region(im, box) for im, box in zip(images, boxes, strict=True)]
    regions = F.normalize(encoder.image_embed(crops).float(), dim=-1)  # (B, D)
    n = len(images)
    if n < 2:
        return torch.ones(n)
    others = (regions.sum(0, keepdim=True) - regions) / (n - 1)
    return F.cosine_similarity(regions, others, dim=-1)


@torch.no_grad()
def hero_consistency(images: Sequence[Image.Image], encoder, boxes: Sequence[Box | None] | None = None) -> float:
    """Mean over pages of the hero region's cosine with the other pages' mean (the benchmark's figure)."""
    return float(_consistency(images, encoder, boxes).mean()) if len(images) > 1 else 1.0


def audit(images: list[Image.Image], requests: list[ImageRequest], heroes: list[str], settings: list[str],
          encoder, redraw: Callable[[list[ImageRequest]], list[Image.Image]], may_redraw: Sequence[bool],
          retries: int = 2, thresholds: Thresholds | None = None) -> tuple[list[Image.Image], list[ImageRequest],
                                                                         list[list[PageCheck]]]:
    """Check every picture; redraw failing ones (where `may_redraw`) with new seeds up to `retries` times.

    Returns the kept pictures, their requests (seed of the kept attempt) and every page's checks."""
    th = thresholds or Thresholds()
    images, requests = list(images), list(requests)
    checks: list[list[PageCheck]] = [[] for _ in images]
    best: list[tuple[float, int]] = [(-float("inf"), 0)] * len(images)  # (margin, attempt) of the kept picture
    candidates: dict[tuple[int, int], tuple[Image.Image, ImageRequest]] = {}
    current = list(range(len(images)))  # pages looked at this round
    for attempt in range(retries + 1):
        scores = score(images, heroes, settings, encoder, [r.hero_box for r in requests])
        failing = []
        for i in current:
            s = scores[i]
            margin = th.margin(s.hero, s.setting, s.consistency)
            passed = margin >= 0
            checks[i].append(PageCheck(attempt=attempt, seed=requests[i].seed, hero=round(s.hero, 4),
                                       setting=round(s.setting, 4), consistency=round(s.consistency, 4),
                                       passed=passed))
            candidates[(i, attempt)] = (images[i], requests[i])
            if margin > best[i][0]:
                best[i] = (margin, attempt)
            if not passed and may_redraw[i]:
                failing.append(i)
        if not failing or attempt == retries:
            break
        fresh = [requests[i].model_copy(update={"seed": page_seed(requests[i].seed, 1000 + attempt)}) for i in failing]
        for i, req, img in zip(failing, fresh, redraw(fresh), strict=True):
            images[i], requests[i] = img, req
        current = failing
    for i, (_, attempt) in enumerate(best):
        images[i], requests[i] = candidates[(i, attempt)]
        for c in checks[i]:
            c.kept = c.attempt == attempt
    return images, requests, checks
