"""Seconds per write and translate call for a book on the embedded LLM (SmolLM2-135M on this CPU), with
the number of LLM calls, how many answers the checks rejected, and the CPU time of the process.

    python benchmarks/write_latency.py [--pages 4] [--seeds 0 1 2] [--langs fr ko] [--llm smollm2] [--process inline]

--process picks where llama.cpp runs: child (the default: a supervised model process, so CPU seconds here
are this process's only and the first call includes starting the child) or inline (in this process;
the figures before issue 10), written to write_latency_inline.json.

Writes benchmarks/results/write_latency.json and prints a markdown table. On a shared machine the wall
time grows with the load (llama.cpp runs one thread here); the CPU seconds say what the work costs.
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

ROOT = Path(__file__).resolve().parents[1]
CAPTION = "a grey cat sitting next to a red ball in a green garden"


class Counting:
    """Wraps a TextModel: counts calls and failed answers (BackendError) for the table."""

    def __init__(self, inner):
        self.inner, self.calls, self.errors = inner, 0, 0
        self.model_id = inner.model_id

    def chat(self, messages, sampling=None, schema=None):
        self.calls += 1
        try:
            return self.inner.chat(messages, sampling, schema)
        except Exception:
            self.errors += 1
            raise


MODEL_PIDS: list[int] = []  # model child processes whose CPU time counts too (process="child")


def cpu_seconds() -> float:
    """CPU time of this process plus its model child (read from /proc: the child does the LLM's work)."""
    total = time.process_time()
    for pid in MODEL_PIDS:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def timed(fn):
    w0, c0 = time.perf_counter(), cpu_seconds()
    result = fn()
    return result, time.perf_counter() - w0, cpu_seconds() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--langs", nargs="*", default=["fr", "ko"])
    ap.add_argument("--llm", default="smollm2")
    ap.add_argument("--process", choices=["child", "inline"], default=None,
                    help="llama.cpp in a child process (default for local GGUF models) or in this one")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from taleloom.backends.base import Sampling
    from taleloom.backends.registry import create
    from taleloom.book import Brief, Caption
    from taleloom.errors import BackendError
    from taleloom.stages.translate import translate
    from taleloom.stages.write import write_story

    llm, load_s, _ = timed(lambda: create("llm", args.llm, **({"process": args.process} if args.process else {})))
    if getattr(llm, "options", None) is not None and getattr(llm.options, "process", None) == "child":
        _, start_s, _ = timed(lambda: llm.chat([{"role": "user", "content": "hi"}], Sampling(max_tokens=1)))
        load_s += start_s  # starting the child and loading the model in it, before the timed steps
        MODEL_PIDS.append(llm._child().process.pid)  # its CPU time counts from here
    rows = []
    for seed in args.seeds:
        model = Counting(llm)
        brief = Brief(pages=args.pages, hero="Mina", seed=seed)
        try:
            draft, wall, cpu = timed(lambda: write_story(Caption(text=CAPTION), brief, model))  # noqa: B023
            ok = True
        except BackendError as e:
            draft, ok = None, False
            print(f"seed {seed}: {e.message[:200]}", file=sys.stderr)
            wall = cpu = float("nan")
        rows.append({"step": "write", "seed": seed, "ok": ok, "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
                     "llm_calls": model.calls, "title": draft.title if draft else None})
        if draft is None:
            continue
        texts = [draft.title] + [p.text for p in draft.pages]
        for lang in args.langs:
            model = Counting(llm)
            out, wall, cpu = timed(lambda: translate(texts, lang, model))  # noqa: B023
            rows.append({"step": f"translate {lang}", "seed": seed, "ok": not out.kept_english,
                         "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "llm_calls": model.calls,
                         "kept_english": len(out.kept_english), "texts": len(texts)})
    result = {"llm": llm.model_id, "process": args.process or "default", "pages": args.pages, "load_seconds": round(load_s, 2), "rows": rows,
              "machine": {"cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
                          "processor": platform.processor() or platform.machine(), "python": platform.python_version()}}
    args.out.mkdir(parents=True, exist_ok=True)
    name = "write_latency_inline.json" if args.process == "inline" else "write_latency.json"
    (args.out / name).write_text(json.dumps(result, indent=2) + "\n")

    print(f"{llm.model_id} ({result['process']} process), {args.pages}-page book, {os.cpu_count()} CPUs, "
          f"load average {result['machine']['load_average_1min']} (model load {load_s:.2f} s)\n")
    print("| step | runs | ok | wall s (median) | CPU s (median) | LLM calls (median) |")
    print("|---|---|---|---|---|---|")
    for step in dict.fromkeys(r["step"] for r in rows):
        rs = [r for r in rows if r["step"] == step]
        done = [r for r in rs if r["seconds"] == r["seconds"]]  # not NaN
        med = {k: statistics.median(r[k] for r in done) if done else float("nan")
               for k in ("seconds", "cpu_seconds", "llm_calls")}
        print(f"| {step} | {len(rs)} | {sum(r['ok'] for r in rs)} | {med['seconds']:.1f} | "
              f"{med['cpu_seconds']:.1f} | {med['llm_calls']:.0f} |")


if __name__ == "__main__":
    main()
