"""Does a page's picture show what its scene is about? The stage's choice of the second concept of a whole
scene (beside the hero), old against new, on hand-labelled scenes.

The scenes are the picture descriptions Qwen2.5-Coder-1.5B wrote in story_quality runs
(benchmarks/results/story_quality_qwen_*.json), each labelled by hand with every concept of the v2
illustrator's vocabulary a reader would accept beside the hero (the friend the scene names, the place,
or the thing it is about), and the concepts that draw the hero: benchmarks/data/scene_concepts.json. The
"dev" scenes were looked at while the rules were written; "test" was labelled after the first rules (the
word list STAND_INS was then written from its misses); "test2" after the word list.

- old: the concept nearest to the whole scene sentence (MiniLM), the cast's names removed; the hero as the
  concept nearest to the hero's whole look.
- new (stages/stage.py, beside_hero): a friend the scene names, drawn as their look's concept; else the concepts
  the scene names word for word (stages/concept_match.py), the nearest of them to the sentence; else a friend or
  a thing the page's text names, or what the pages before named (the stage reads the whole book: each
  labelled scene is looked at in its book, from the source run's JSON); else the nearest concept to the scene
  without the photo's colour and light words, never a body part. The labels were made from the scene alone.
  The hero (and a friend): the kind (the look's first part) named word for word, else nearest to the kind.

    python benchmarks/scene_concepts.py     → benchmarks/results/scene_concepts.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LABELS = REPO / "benchmarks" / "data" / "scene_concepts.json"


def old_setting(scene: str, cast, nearest, exclude: set[str]) -> str | None:
    """The stage before this change: the nearest concept to the scene without the cast's names."""
    from taleloom.stages.stage import without_names

    taken = {w for name in exclude for w in name.lower().split()}
    for name in nearest(without_names(scene, cast), 5):
        if name not in exclude and not taken & set(name.lower().split()):
            return name
    return None


def book_pages(labelled: dict) -> list:
    """The pages of the book a labelled scene comes from (its source run's JSON: text and scene of every page),
    so the stage sees what it sees in a book: the page's text and the pages before. The labelled page keeps
    its labelled scene."""
    from taleloom.book import Page

    run = json.loads((REPO / "benchmarks" / "results" / labelled["source"]).read_text(encoding="utf-8"))
    books = [b for m in run["models"].values() for b in m["books"]
             if b["brief"] == labelled["brief"] and b["seed"] == labelled["seed"]]
    drafts = books[0]["pages"] if books else []
    pages = [Page(index=i, text=d.get("text", ""), scene=d.get("scene", "")) for i, d in enumerate(drafts, 1)]
    pages = [p for p in pages if p.index != labelled["page"]]
    return sorted([*pages, Page(index=labelled["page"], text=drafts[labelled["page"] - 1]["text"]
                                if len(drafts) >= labelled["page"] else "", scene=labelled["scene"])],
                  key=lambda p: p.index)


def old_subject(look: str, nearest) -> str | None:
    """The stage before this change: the hero as the concept nearest to the whole look."""
    found = nearest(look, 1)
    return found[0] if found else None


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "scene_concepts.json")
    a = p.parse_args(argv)

    from taleloom.book import Brief, CastMember, Storybook
    from taleloom.config import Settings
    from taleloom.orchestrator import Backends
    from taleloom.stages.stage import beside_hero, concept_mapper_for, main_subject

    ill = Backends.from_settings(Settings()).get("illustrator")  # through its pool, as a book reaches it
    mapper = concept_mapper_for(ill)
    scenes = json.loads(LABELS.read_text(encoding="utf-8"))["scenes"]
    rows, hits = [], {}
    for s in scenes:
        cast = [CastMember(name=c["name"], look=c["look"], role="hero" if i == 0 else "friend")
                for i, c in enumerate(s["cast"])]
        pages = book_pages(s)
        book = Storybook(id="bench", brief=Brief(pages=len(pages)), cast=cast, pages=pages)
        page = next(p for p in pages if p.index == s["page"])
        hero = main_subject(book, mapper)
        exclude = {hero} if hero else set()
        old_hero = old_subject(cast[0].look, mapper)
        old = old_setting(s["scene"], cast, mapper, {old_hero} if old_hero else set())
        new = beside_hero(book, page, mapper, exclude)[1]
        row = {"split": s["split"], "scene": s["scene"], "old_hero": old_hero, "hero": hero, "old": old, "new": new,
               "accept": s["accept"], "old_ok": old in s["accept"], "new_ok": new in s["accept"],
               "old_hero_ok": old_hero in s["hero_accept"], "new_hero_ok": hero in s["hero_accept"]}
        rows.append(row)
        for split in (s["split"], "all"):
            h = hits.setdefault(split, {"n": 0, "old": 0, "new": 0, "old_hero": 0, "new_hero": 0})
            h["n"] += 1
            for key in ("old", "new", "old_hero", "new_hero"):
                h[key] += row[f"{key}_ok"]
    summary = {k: {"n": v["n"], **{key: round(v[key] / v["n"], 3) for key in ("old", "new", "old_hero", "new_hero")}}
               for k, v in hits.items()}
    print("| scenes | n | beside the hero, old: nearest to the sentence | new: friend, then named things "
          "| hero, old: nearest to the look | new: the kind first |")
    print("|---|---|---|---|---|---|")
    for k, v in summary.items():
        print(f"| {k} | {v['n']} | {v['old']:.0%} | {v['new']:.0%} | {v['old_hero']:.0%} | {v['new_hero']:.0%} |")
    for r in rows:
        if not r["new_ok"]:
            print(f"  miss ({r['split']}): {r['scene'][:80]!r} → {r['new']} (old {r['old']}; accept {r['accept'][:3]})")
    result = {"labels": str(LABELS.relative_to(REPO)), "illustrator": ill.inner.model_id, "summary": summary,
              "rows": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"(written to {a.out})")
    return result


if __name__ == "__main__":
    main()
