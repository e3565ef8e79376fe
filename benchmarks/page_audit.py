"""Pages that check themselves, measured: how many pictures fail the aligned encoder's check the first
time, how many still fail after the redraws, what the check and the redraws cost, and how alike the
hero looks across a book's pages before and after (hero consistency: mean cosine of each page's hero
region with the other pages', in the aligned encoder's feature space).

    python benchmarks/page_audit.py            # 20 books x 4 pages, embedded illustrator, 2 redraws at most
    python benchmarks/page_audit.py --quick    # 5 books

The books are made from fixed heroes and scenes (no LLM, so the figure measures the pictures, not the
writer) and staged exactly as the pipeline stages them; the illustrator is the shipped embedded one at
its own size (32 px, before the x4 upscale), on 1 torch thread. Writes benchmarks/results/page_audit.json
and page_audit.png (first attempt vs kept picture of every redrawn page).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
HEROES = ["a small orange cat", "a brown dog", "a little fox", "a penguin", "a white rabbit", "a green frog",
          "a baby elephant", "a clever owl", "a tiny mouse", "a friendly bear"]
SCENES = ["{h} plays in the park on a sunny day", "{h} swims at the beach", "{h} looks at the moon at night",
          "{h} eats an apple in the kitchen", "{h} walks in the forest", "{h} flies a kite in the wind",
          "{h} sleeps under a tree", "{h} rides a bicycle in the city", "{h} builds a snowman in winter",
          "{h} sails a boat on the lake"]


def books(n: int, pages: int):
    from taleloom.book import Brief, CastMember, Page, Storybook

    out = []
    for b in range(n):
        hero = HEROES[b % len(HEROES)]
        scenes = [SCENES[(b * 3 + i) % len(SCENES)].format(h=hero) for i in range(pages)]
        out.append(Storybook(id=f"audit{b}", brief=Brief(pages=pages, seed=1000 + b),
                             cast=[CastMember(name="Hero", look=hero)],
                             pages=[Page(index=i + 1, text=s, scene=s) for i, s in enumerate(scenes)]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--books", type=int, default=20)
    ap.add_argument("--pages", type=int, default=4)
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="5 books (a smoke run; say so when quoting it)")
    args = ap.parse_args()
    n_books = 5 if args.quick else args.books

    import torch

    torch.set_num_threads(1)
    from PIL import Image

    from taleloom.backends import registry
    from taleloom.stages.audit import audit, hero_consistency
    from taleloom.stages.illustrate import illustrate
    from taleloom.stages.stage import stage

    illustrator = registry.create("illustrator", "embedded", device="cpu")
    encoder = illustrator.aligned
    rows, before_cons, after_cons, firsts, lasts = [], [], [], [], []
    draw_s = audit_s = 0.0
    grid: list[tuple[Image.Image, Image.Image]] = []
    for i, book in enumerate(books(n_books, args.pages)):
        requests = stage(book, illustrator.nearest_concepts)
        t0 = time.perf_counter()
        first = illustrate(requests, illustrator)
        t1 = time.perf_counter()
        heroes = [r.concepts[0] if r.concepts else book.cast[0].look for r in requests]
        settings = [r.concepts[1] if len(r.concepts) > 1 else p.scene for r, p in zip(requests, book.pages, strict=True)]
        kept, _, checks = audit(first, requests, heroes, settings, encoder, lambda reqs: illustrate(reqs, illustrator),
                                [True] * len(first), retries=args.retries)
        t2 = time.perf_counter()
        draw_s += t1 - t0
        audit_s += t2 - t1
        failed_first = sum(not c[0].passed for c in checks)
        failed_after = sum(not next(x for x in c if x.kept).passed for c in checks)
        redraws = sum(len(c) - 1 for c in checks)
        firsts.append(failed_first)
        lasts.append(failed_after)
        boxes = [r.hero_box for r in requests]  # the hero's place does not change with the seed
        before_cons.append(hero_consistency(first, encoder, boxes))
        after_cons.append(hero_consistency(kept, encoder, boxes))
        for f, k, c in zip(first, kept, checks, strict=True):
            if len(c) > 1 and len(grid) < 24:
                grid.append((f, k))
        rows.append({"book": book.id, "hero": book.cast[0].look, "subject": heroes[0], "failed_first": failed_first,
                     "failed_after": failed_after, "redraws": redraws, "draw_s": round(t1 - t0, 2),
                     "audit_s": round(t2 - t1, 2), "consistency_before": round(before_cons[-1], 4),
                     "consistency_after": round(after_cons[-1], 4),
                     "checks": [[c.model_dump() for c in cs] for cs in checks]})
        print(f"book {i + 1:>2}/{n_books} {heroes[0]:<18} failed first {failed_first}/{len(first)}, after "
              f"{failed_after}, redraws {redraws}, draw {t1 - t0:5.1f} s, audit+redraw {t2 - t1:5.1f} s", flush=True)
    pages = n_books * args.pages
    summary = {
        "books": n_books, "pages": pages, "retries": args.retries, "quick": args.quick,
        "failed_first_share": round(sum(firsts) / pages, 3), "failed_after_share": round(sum(lasts) / pages, 3),
        "draw_seconds": round(draw_s, 1), "audit_seconds": round(audit_s, 1),
        "time_cost_share": round(audit_s / draw_s, 3) if draw_s else None,
        "hero_consistency_before": round(statistics.mean(before_cons), 4),
        "hero_consistency_after": round(statistics.mean(after_cons), 4),
        "threads": 1, "load": os.getloadavg(), "machine": platform.machine(), "cpus": os.cpu_count(),
    }
    print(f"\npages failing the check: {summary['failed_first_share']:.1%} first time, "
          f"{summary['failed_after_share']:.1%} after up to {args.retries} redraws")
    print(f"time: drawing {draw_s:.1f} s, checking + redrawing {audit_s:.1f} s (+{summary['time_cost_share']:.0%})")
    print(f"hero consistency: {summary['hero_consistency_before']:.4f} before, {summary['hero_consistency_after']:.4f} after")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "page_audit.json").write_text(json.dumps({"summary": summary, "books": rows}, indent=2) + "\n")
    if grid:
        cell = 96
        sheet = Image.new("RGB", (cell * 2 + 8, cell * len(grid)), "white")
        for r, (f, k) in enumerate(grid):
            sheet.paste(f.convert("RGB").resize((cell, cell), Image.Resampling.NEAREST), (0, r * cell))
            sheet.paste(k.convert("RGB").resize((cell, cell), Image.Resampling.NEAREST), (cell + 8, r * cell))
        sheet.save(RESULTS / "page_audit.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
