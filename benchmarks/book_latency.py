"""Seconds per stage and in total for one book on the embedded defaults (this machine's CPU), and the
orchestration overhead: total minus the time spent inside models (model loading included).

    python benchmarks/book_latency.py [--pages 4] [--photo PATH] [--lang en] [--llm SPEC] [--out benchmarks/results]
                                      [--name book_latency] [--keep book.pdf] [--sheet docs/samples/book.png]

Writes benchmarks/results/<name>.json and prints a markdown table for the README.
Targets (issue 6): total ≤ 90 s, overhead ≤ 3 % of total. Issue 11, with translation (--lang fr): the default
LLM ≤ 120 s, the SmolLM2 preset (--llm embedded:smollm2) ≤ 45 s; and the write stage's seconds ÷ (tokens it
generated ÷ the model's raw tokens/s, measured in the same run on the same loaded model) ≤ 1.3: the LLM is the
limit, not our calls. The machine is shared: the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_TOTAL_S = 90.0
TARGET_OVERHEAD = 0.03
TARGET_TRANSLATED_S = {"embedded": 120.0, "embedded:smollm2": 45.0}
TARGET_WRITE_RATIO = 1.3
RAW_RUNS = 3  # raw speed measurements after the book (the median is used)


class CountingLLM:
    """Wraps the book's LLM: tokens generated and seconds, per stage (set `stage` on the stage's own thread
    when it starts: two stages may run at once)."""

    def __init__(self, inner):
        self.inner, self.tokens, self.seconds, self.calls = inner, {}, {}, {}
        self._local = threading.local()

    @property
    def stage(self) -> str:
        return getattr(self._local, "stage", "")

    @stage.setter
    def stage(self, name: str) -> None:
        self._local.stage = name

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def chat(self, messages, sampling=None, schema=None):
        return self.answer(messages, sampling, schema).text

    def answer(self, messages, sampling=None, schema=None):
        t0 = time.perf_counter()
        a = self.inner.answer(messages, sampling, schema)
        self.tokens[self.stage] = self.tokens.get(self.stage, 0) + a.usage.completion_tokens
        self.seconds[self.stage] = self.seconds.get(self.stage, 0.0) + time.perf_counter() - t0
        self.calls[self.stage] = self.calls.get(self.stage, 0) + 1
        return a


def raw_tokens_per_second(llm, n: int = 96) -> float:
    """The model's own speed on this machine now: one free-running answer of `n` tokens, prompt excluded
    (a one-token answer to the same prompt is timed and subtracted)."""
    from taleloom.backends.base import Sampling

    ask = [{"role": "user", "content": "Tell a long story about a cat and a boat."}]
    t0 = time.perf_counter()
    llm.answer(ask, Sampling(seed=1, max_tokens=1, temperature=0.7))
    t1 = time.perf_counter()
    a = llm.answer(ask, Sampling(seed=1, max_tokens=n, temperature=0.7))
    t2 = time.perf_counter()
    return (a.usage.completion_tokens - 1) / max(1e-6, (t2 - t1) - (t1 - t0))


def measure(pages: int, photo: Path, lang: str, seed: int, llm_spec: str | None = None,
            keep: Path | None = None) -> dict:
    t_import = time.perf_counter()
    from taleloom.book import Brief
    from taleloom.config import Settings, cpu_threads, most_threads
    from taleloom.orchestrator import Backends, create_book, run_book
    from taleloom.pipeline import STAGES

    import_s = time.perf_counter() - t_import
    settings = Settings(**({"llm": llm_spec} if llm_spec else {}))  # the embedded defaults unless told
    backends = Backends.from_settings(settings)
    counting = CountingLLM(backends.get("llm").inner)  # the model itself: the new pool below meters it once
    backends = Backends(settings, llm=counting)
    load_before = os.getloadavg()

    def on_event(ev) -> None:
        if ev.kind == "started":
            counting.stage = ev.stage  # events come from the thread that runs the stage

    with tempfile.TemporaryDirectory(prefix="taleloom-bench-") as tmp:
        book_dir = Path(tmp) / "bench"
        t0 = time.perf_counter()
        create_book(book_dir, Brief(pages=pages, lang=lang, hero="Mina", seed=seed), photo, None)
        created = time.perf_counter()
        book = run_book(book_dir, backends, on_event)
        total = time.perf_counter() - t0
        if keep is not None:  # the book itself, to read (docs/samples)
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(book_dir / book.files["pdf"], keep)
    # the shared machine's speed drifts by ~10 % from one minute to the next (24.3 and 27.6 tokens/s a minute
    # apart, 16:57, in a traced run of this script): the median of RAW_RUNS measurements, each kept in the JSON
    raws = [raw_tokens_per_second(counting.inner) for _ in range(RAW_RUNS)]
    raw = sorted(raws)[len(raws) // 2]
    stages = {n: {"seconds": book.stages[n].seconds or 0.0, "model_seconds": book.stages[n].model_seconds or 0.0,
                  "status": book.stages[n].status, "model": book.stages[n].model_id} for n in STAGES}
    model_s = sum(s["model_seconds"] for s in stages.values())
    # Stages may overlap (translation beside the pictures), so the overhead is the time outside every stage
    # (wall clock minus the stages' time on the clock) plus each stage's own time outside its models.
    busy = book.wall_seconds
    inside = sum(max(0.0, s["seconds"] - s["model_seconds"]) for s in stages.values())
    overhead = (total - busy) + inside
    overlap = sum(s["seconds"] for s in stages.values()) - busy
    write_ratio = round(stages["write"]["seconds"] / max(1e-6, counting.tokens.get("write", 0) / raw), 3)
    target_book = TARGET_TRANSLATED_S.get(settings.llm)
    return {
        "pages": pages, "lang": lang, "seed": seed, "photo": str(photo.relative_to(ROOT) if photo.is_relative_to(ROOT)
                                                                 else photo),
        "total_seconds": round(total, 2), "create_seconds": round(created - t0, 3),
        "model_seconds": round(model_s, 2), "overhead_seconds": round(overhead, 2),
        "overlap_seconds": round(overlap, 2),
        "overhead_fraction": round(overhead / total, 4),
        "render_seconds": round(stages["bind"]["seconds"] - stages["bind"]["model_seconds"], 2),
        "import_seconds": round(import_s, 2),
        "stages": stages, "models": book.models,
        "llm": {"spec": settings.llm, "tokens_by_stage": counting.tokens, "calls_by_stage": counting.calls,
                "seconds_by_stage": {k: round(v, 2) for k, v in counting.seconds.items()},
                "raw_tokens_per_second": round(raw, 2), "raw_runs": [round(r, 2) for r in raws],
                "write_ratio": write_ratio,
                "n_threads": cpu_threads(asked := getattr(getattr(counting.inner, "options", None), "n_threads", None) or 0),
                "most_threads": most_threads(asked)},
        "translation": book.translation.model_dump() if book.translation else None,
        "targets": {"total_seconds": TARGET_TOTAL_S, "overhead_fraction": TARGET_OVERHEAD,
                    "translated_book_seconds": target_book, "write_ratio": TARGET_WRITE_RATIO},
        "meets_targets": {"total": total <= TARGET_TOTAL_S, "overhead": overhead / total <= TARGET_OVERHEAD,
                          "translated_book": (total <= target_book) if target_book and lang != "en" else None,
                          "write_ratio": write_ratio <= TARGET_WRITE_RATIO},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_1m_before": round(load_before[0], 2),
                    "load_average_1m_after": round(os.getloadavg()[0], 2), "torch_threads": _torch_threads(),
                    "load_average_1_5_15_before": [round(x, 2) for x in load_before],
                    "load_average_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
    }


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def markdown(r: dict) -> str:
    lines = [f"Book of {r['pages']} pages ({r['lang']}) on the embedded defaults, {r['machine']['cpus']} CPU cores "
             f""
             f"(torch threads {r['machine']['torch_threads']}; 1-minute load average after the run: "
             f"{r['machine']['load_average_1m_after']}):",
             "", "| stage | seconds | inside models | model |", "|---|---:|---:|---|"]
    for name, s in r["stages"].items():
        lines.append(f"| {name} | {s['seconds']:.1f} | {s['model_seconds']:.1f} | {s['model'] or ''} |")
    lines += [f"| **total** | **{r['total_seconds']:.1f}** | {r['model_seconds']:.1f} | |", "",
              f"Stages running at once saved {r.get('overlap_seconds', 0.0):.1f} s of wall clock. "
              f"Orchestration overhead (time outside every stage + each stage's time outside its models): "
              f"{r['overhead_seconds']:.2f} s = "
              f"{100 * r['overhead_fraction']:.1f} % (of which PDF/HTML rendering {r['render_seconds']:.2f} s). "
              f"Targets: total ≤ {TARGET_TOTAL_S:.0f} s ({'met' if r['meets_targets']['total'] else 'missed'}), "
              f"overhead ≤ {100 * TARGET_OVERHEAD:.0f} % ({'met' if r['meets_targets']['overhead'] else 'missed'}).",
              "", *llm_summary(r)]
    return "\n".join(lines)


def llm_summary(r: dict) -> list[str]:
    """Issue 11's figures, one per line: the LLM stages' split, raw speed, write ratio, total, the load."""
    llm, met = r["llm"], r["meets_targets"]
    target = r["targets"]["translated_book_seconds"]

    def verdict(ok: bool | None) -> str:
        return "no target" if ok is None else ("MET" if ok else "NOT met")

    threads = llm["n_threads"] if llm.get("most_threads", 0) <= llm["n_threads"] else \
        f"{llm['n_threads']} thread(s), up to {llm['most_threads']} while the other cores are idle"
    out = [f"LLM {llm['spec']} ({threads}):"]
    for stage in ("see", "write", "translate"):
        if stage in llm["tokens_by_stage"]:
            out.append(f"- {stage}: {r['stages'][stage]['seconds']:.1f} s, {llm['calls_by_stage'].get(stage, 0)} "
                       f"call(s), {llm['tokens_by_stage'][stage]} tokens generated")
    out += [f"- raw speed: {llm['raw_tokens_per_second']} tokens/s (median of {llm.get('raw_runs')} free-running "
            "answers, prompt excluded, after the book on the same model)",
            f"- write ratio: {r['stages']['write']['seconds']:.1f} s ÷ ({llm['tokens_by_stage'].get('write', 0)} tokens "
            f"÷ {llm['raw_tokens_per_second']} tokens/s) = {llm['write_ratio']} (target ≤ {TARGET_WRITE_RATIO}: "
            f"{verdict(met['write_ratio'])})",
            f"- book total: {r['total_seconds']:.1f} s (target ≤ {target} s with translation: "
            f"{verdict(met['translated_book'])})",
            f"- load average (1, 5, 15 min) before {r['machine']['load_average_1_5_15_before']}, after "
            f"{r['machine']['load_average_1_5_15_after']} on {r['machine']['cpus']} cores"]
    return out


def contact_sheet(pdf: Path, png: Path, dpi: int = 50, columns: int = 3) -> Path:
    """Every page of the book's PDF (pdftoppm, poppler-utils) side by side in one PNG, to read the book."""
    import subprocess

    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["pdftoppm", "-png", "-r", str(dpi), str(pdf), str(Path(tmp) / "p")], check=True)
        pages = [Image.open(p).convert("RGB") for p in sorted(Path(tmp).glob("p*.png"))]
    w, h = max(p.width for p in pages), max(p.height for p in pages)
    sheet = Image.new("RGB", (w * columns, h * -(-len(pages) // columns)), "white")
    for i, page in enumerate(pages):
        sheet.paste(page, ((i % columns) * w, (i // columns) * h))
    png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(png, optimize=True)
    return png


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=4)
    ap.add_argument("--photo", type=Path, default=ROOT / "src/taleloom/assets/samples/cat.jpg")
    ap.add_argument("--lang", default="en")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    ap.add_argument("--llm", default=None, help="LLM spec (default: the settings' llm)")
    ap.add_argument("--name", default="book_latency", help="result file name (without .json)")
    ap.add_argument("--keep", type=Path, default=None, help="copy the book's PDF to this path")
    ap.add_argument("--sheet", type=Path, default=None, help="and render its pages into this PNG (docs/samples)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    keep = args.keep or (Path(tempfile.mkdtemp(prefix="taleloom-book-")) / "book.pdf" if args.sheet else None)
    result = measure(args.pages, args.photo.resolve(), args.lang, args.seed, args.llm, keep)
    if args.sheet:
        print(f"pages of the book: {contact_sheet(keep, args.sheet)}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\n(written to {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path})")


if __name__ == "__main__":
    main()
