"""Does the caption name the photo's main subject? Old captioner (aligned emoji encoder alone) vs new
(EfficientNet-Lite0 ImageNet classifier + faces + facts), on real photos read from installed packages.

    python benchmarks/caption_accuracy.py               # template wording (fast, what the figure measures)
    python benchmarks/caption_accuracy.py --llm smollm2 # worded by the LLM as in a book (slower)
    python benchmarks/caption_accuracy.py --split dev   # only the photos that may be looked at while tuning
    python benchmarks/caption_accuracy.py --failures    # also print why each miss failed (labels, people)
    python benchmarks/caption_accuracy.py --sweep       # named vs wrong as the sureness bar moves (+ plot)
    python benchmarks/caption_accuracy.py --baseline benchmarks/results/caption_accuracy_baseline.json
                                                        # old vs new: a saved run beside this one, same photos

Photos: benchmarks/data/caption_photos.json (package, path, subject, accepted words, licence, split). They come
from scikit-image, scikit-learn and matplotlib wheels and Debian's opencv-doc, mate-backgrounds and
lomiri-wallpapers (`make bench-deps`); a missing one is skipped and listed. Splits: dev (may be looked at while
tuning), holdout (only in the figure), fresh (added later, labelled before any captioner saw them, never tuned on).
Per captioner: top-1 (the first concept names the subject), top-3 (one of the first three
does), named (the caption text names it: the target, >= 80 %), wrong (the first concept is something else) and
said-less (no subject named at all). Writes benchmarks/results/caption_accuracy.json and a contact sheet PNG.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from PIL import Image, ImageDraw  # noqa: E402

HERE = Path(__file__).parent
MANIFEST = HERE / "data" / "caption_photos.json"
RESULTS = HERE / "results"
TARGET = 0.80


def _suffix(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]*", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a file-name suffix (letters, digits, _ . -); the "
                                         "results always go to benchmarks/results")
    return value


def photo_path(entry: dict) -> Path:
    """Where the photo lies: inside an installed Python package, or at a Debian package's absolute path."""
    if entry["package"].startswith("pypi:"):
        top = entry["path"].split("/")[0]
        spec = importlib.util.find_spec(top)
        if spec is None or not spec.submodule_search_locations:
            return Path("/nonexistent") / entry["path"]
        return Path(list(spec.submodule_search_locations)[0]).parent / entry["path"]
    return Path(entry["path"])


def stem(word: str) -> str:
    return re.sub(r"(es|s)$", "", word) if len(word) > 3 else word


def names(text: str, accept: list[str]) -> bool:
    """Whether `text` contains one of the accepted words (singular or plural)."""
    words = {stem(w) for w in re.findall(r"[a-z]+", text.lower())}
    return bool(words & {stem(a) for a in accept})


def named_in_text(caption, accept: list[str]) -> bool:
    """The caption's text names the subject. A colour the captioner reports as a colour of the picture
    ("in orange and yellow tones") does not name an orange: such a word counts only when it is also a concept."""
    colours = {c["name"] for c in caption.facts.get("colours", [])} - {w for c in caption.concepts for w in c.split()}
    return names(caption.text, [a for a in accept if a not in colours])


def score(caption, accept: list[str]) -> dict:
    concepts = list(caption.concepts)
    return {"caption": caption.text, "concepts": concepts[:3],
            "top1": bool(concepts) and names(concepts[0], accept),
            "top3": any(names(c, accept) for c in concepts[:3]),
            "named": named_in_text(caption, accept),
            "wrong": bool(concepts) and not names(concepts[0], accept),
            "said_less": not concepts}


def diagnosis(caption) -> dict:
    """What the captioner saw: classifier labels with scores, people found, the COCO detector's objects, the
    subjects it chose."""
    f = caption.facts
    return {"labels": f.get("labels", {}), "faces": f.get("faces", 0), "bodies": f.get("bodies", 0),
            "objects": [f"{o['noun']} {o['score']:.2f} ({o['area']:.0%})" for o in f.get("objects", [])],
            "subjects": [f"{s['phrase']} ({s['level']} {s['score']:.2f})" for s in f.get("subjects", [])]}


def print_failures(rows: list[dict], key: str) -> None:
    """Each photo whose caption does not name its subject, with what the captioner saw."""
    misses = [r for r in rows if not r[key]["named"]]
    print(f"\n{len(misses)} photos whose '{key}' caption does not name the subject:")
    for r in misses:
        d = r[key]["diagnosis"]
        labels = ", ".join(f"{k} {v:.2f}" for k, v in d["labels"].items())
        print(f"- {r['id']} [{r['split']}] expected {r['subject']!r}\n    top-5: {labels}\n"
              f"    people: {d['faces']} faces, {d['bodies']} bodies; objects: {', '.join(d.get('objects', [])) or 'none'}; "
              f"subjects: {d['subjects'] or 'none'}\n"
              f"    caption: {r[key]['caption']!r}")


SWEEP_BARS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def sweep_point(probs, facts: dict, accept: list[str], bar: float) -> dict:
    """The new captioner's template caption at another sureness bar, scored like the real one."""
    from taleloom.backends.vision.embedded import template
    from taleloom.backends.vision.subjects import Bars, name_subjects
    from taleloom.book import Caption

    subjects = name_subjects(probs, facts, Bars(noun=bar, thing=min(0.95, bar + 0.3), group=bar, also=bar))
    worded = {**facts, "subjects": [{"level": s.level} for s in subjects]}
    text = template([s.phrase for s in subjects], worded)
    return score(Caption(text=text, concepts=[s.noun for s in subjects], facts=facts, model_id="sweep"), accept)


def top5_ceiling(probs, facts: dict, accept: list[str]) -> bool:
    """Whether anything the classifier ranks in its top 5 (noun or group), or a face for a person, names the
    subject: no choice of bars can name more photos than this."""
    from taleloom.backends.vision.imagenet_nouns import GROUPS, labels

    words = " ".join(f"{labels()[i].noun} {GROUPS[labels()[i].group][0]}" for i in probs.argsort()[::-1][:5])
    return names(words + (" person people" if facts.get("faces") or facts.get("bodies") else ""), accept)


def plot_sweep(sweep: list[dict], ceiling: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.4, 4))
    bars = [s["bar"] for s in sweep]
    ax.plot(bars, [100 * s["named"] for s in sweep], "o-", label="subject named")
    ax.plot(bars, [100 * s["wrong"] for s in sweep], "s-", color="tab:red", label="something else named first")
    ax.axhline(100 * TARGET, color="grey", ls=":", label="target (named)")
    ax.axhline(100 * ceiling, color="tab:green", ls="--", label="classifier's top-5 ceiling")
    ax.axvline(0.5, color="black", lw=0.8, label="default bar")
    ax.set(xlabel="sureness bar (summed probability)", ylabel="% of photos", ylim=(0, 100),
           title=f"Caption accuracy vs sureness ({sweep[0]['n']} real photos, template wording)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def summary(rows: list[dict], key: str) -> dict:
    n = len(rows)
    out = {m: round(sum(r[key][m] for r in rows) / n, 3) if n else None
           for m in ("top1", "top3", "named", "wrong", "said_less")}
    out["n"] = n
    out["median_s"] = round(statistics.median(r[key]["seconds"] for r in rows), 3) if n else None
    return out


def contact_sheet(rows: list[dict], path: Path, cols: int = 6, side: int = 180) -> None:
    """Each photo with the old and new caption's first concept, green when it names the subject."""
    cell_h = side + 44
    sheet = Image.new("RGB", (cols * side, ((len(rows) + cols - 1) // cols) * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, r in enumerate(rows):
        x, y = (i % cols) * side, (i // cols) * cell_h
        im = Image.open(r["path"]).convert("RGB")
        im.thumbnail((side - 4, side - 4))
        sheet.paste(im, (x + (side - im.width) // 2, y + (side - im.height) // 2))
        draw.text((x + 3, y + side - 2), f"{r['id']} [{r['split']}]: {r['subject']}", fill="black")
        for j, key in enumerate(("old", "new")):
            res = r[key]
            said = ", ".join(res["concepts"][:2]) or "(says less)"
            colour = (0, 130, 0) if res["top1"] else (90, 90, 90) if res["said_less"] else (200, 0, 0)
            draw.text((x + 3, y + side + 12 + 13 * j), f"{key}: {said}"[:34], fill=colour)
    sheet.quantize(256).save(path, optimize=True)  # a palette PNG: a third of the bytes, still legible


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llm", default="none", help="LLM spec that words the captions ('none': the template)")
    ap.add_argument("--classifier", default="efficientnet-lite0", help="the new captioner's ImageNet classifier")
    ap.add_argument("--split", choices=("all", "dev", "holdout", "fresh"), default="all")
    ap.add_argument("--failures", action="store_true", help="print each miss with the labels and people seen")
    ap.add_argument("--baseline", type=Path, help="a saved JSON of an earlier run: its 'new' row is shown as 'before'")
    ap.add_argument("--sweep", action="store_true", help="also score the new captioner at other sureness bars")
    ap.add_argument("--out", default="", type=_suffix,
                    help="suffix of the result files in benchmarks/results (caption_accuracy<suffix>.json), not a path")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from taleloom.backends.vision.embedded import EmbeddedCaptioner

    captioners = {"old": EmbeddedCaptioner(classifier="none", llm=args.llm),
                  "new": EmbeddedCaptioner(classifier=args.classifier, llm=args.llm)}
    photos = json.loads(MANIFEST.read_text())["photos"]
    rows, missing = [], []
    for entry in photos:
        if args.split != "all" and entry["split"] != args.split:
            continue
        path = photo_path(entry)
        if not path.exists():
            missing.append(f"{entry['id']} ({entry['package']}: {entry['path']})")
            continue
        image = Image.open(path).convert("RGB")
        row, captions = {**entry, "path": str(path)}, {}
        for key, cap in captioners.items():
            cap.caption(image) if not rows else None  # first call loads the models: not timed
            t0 = time.perf_counter()
            caption = captions[key] = cap.caption(image)
            row[key] = {**score(caption, entry["accept"]), "seconds": round(time.perf_counter() - t0, 3),
                        "diagnosis": diagnosis(caption)}
        if args.sweep:
            from taleloom.backends.vision.facts import working_copy

            probs = captioners["new"].classifier.probs(working_copy(image))
            facts = captions["new"].facts
            row["sweep"] = {str(b): sweep_point(probs, facts, entry["accept"], b) for b in SWEEP_BARS}
            row["top5_ceiling"] = top5_ceiling(probs, facts, entry["accept"])
        rows.append(row)
        print(f"{entry['id']:>20} [{entry['split']:>7}] {entry['subject']:>14} | old: {row['old']['caption'][:50]!r:52}"
              f" | new: {row['new']['caption'][:70]!r}", flush=True)
    if missing:
        print(f"\nskipped {len(missing)} photos whose package is not installed: {', '.join(missing)}\n"
              "  (apt-get install opencv-doc; pip install scikit-image scikit-learn)", file=sys.stderr)
    if not rows:
        print("no photos found", file=sys.stderr)
        return 1

    table = {}
    before = {r["id"]: r for r in json.loads(args.baseline.read_text())["rows"]} if args.baseline else {}
    if before:  # the earlier run's new captioner, on the photos both runs have
        for r in rows:
            if r["id"] in before:
                r["before"] = before[r["id"]]["new"]
        rows = [r for r in rows if "before" in r]
    keys = list(captioners) + (["before"] if before else [])
    for split in ("all", "dev", "holdout", "fresh"):
        part = [r for r in rows if split == "all" or r["split"] == split]
        if part:
            table[split] = {key: summary(part, key) for key in keys}
    print(f"\n{'split':>8} {'captioner':>9} {'n':>3} {'top-1':>6} {'top-3':>6} {'named':>6} {'wrong':>6} "
          f"{'less':>6} {'s/photo':>8}")
    for split, by in table.items():
        for key, m in by.items():
            print(f"{split:>8} {key:>9} {m['n']:>3} {m['top1']:>6.1%} {m['top3']:>6.1%} {m['named']:>6.1%} "
                  f"{m['wrong']:>6.1%} {m['said_less']:>6.1%} {m['median_s']:>8.3f}")
    if args.failures:
        print_failures(rows, "new")
    sweep = []
    if args.sweep:
        n = len(rows)
        for b in SWEEP_BARS:
            sweep.append({"bar": b, "n": n, **{m: round(sum(r["sweep"][str(b)][m] for r in rows) / n, 3)
                                               for m in ("named", "wrong", "said_less")}})
        ceiling = round(sum(r["top5_ceiling"] for r in rows) / n, 3)
        print(f"\n{'bar':>5} {'named':>6} {'wrong':>6} {'less':>6}   (new captioner, template wording)")
        for s in sweep:
            print(f"{s['bar']:>5.1f} {s['named']:>6.1%} {s['wrong']:>6.1%} {s['said_less']:>6.1%}")
        print(f"top-5 ceiling (a top-5 label or a face names the subject): {ceiling:.1%}")
    named = table["all"]["new"]["named"]
    print(f"\ntarget: >= {TARGET:.0%} of photos have their main subject named — new captioner {named:.1%} "
          f"({'met' if named >= TARGET else 'NOT met'})")
    RESULTS.mkdir(exist_ok=True)
    kinds = sorted({r["subject"] for r in rows})
    out = {"llm": args.llm, "baseline": str(args.baseline or ""), "classifier": args.classifier, "photos": len(rows), "kinds_of_subject": len(kinds), "skipped": missing,
           "target_named": TARGET, "summary": table, "sweep": sweep,
           "top5_ceiling": round(sum(r["top5_ceiling"] for r in rows) / len(rows), 3) if args.sweep else None, "load": os.getloadavg(),
           "rows": [{k: v for k, v in r.items() if k != "path"} for r in rows]}
    suffix = "".join(f"_{re.sub(r'[^a-z0-9]+', '_', v.lower())}" for v, default in
                     ((args.classifier, "efficientnet-lite0"), (args.llm, "none")) if v != default) + args.out
    (RESULTS / f"caption_accuracy{suffix}.json").write_text(json.dumps(out, indent=1))
    contact_sheet(rows, RESULTS / f"caption_accuracy{suffix}.png")
    if sweep:
        plot_sweep(sweep, ceiling, RESULTS / f"caption_accuracy{suffix}_sweep.png")
    print(f"wrote {RESULTS / f'caption_accuracy{suffix}.json'} and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
