"""Tokens/s of the default LLM with its thread count fixed at 1, fixed at 2, and chosen before each decode
from how busy the other cores are (backends/llm/spare_cores.py, the default), on a quiet machine and beside
a busy process.

    python benchmarks/llm_threads.py [--llm embedded] [--tokens 64] [--out benchmarks/results]

Why: llama.cpp's threads spin while they wait for each other, so on a 2-core machine 2 threads are faster
when nothing else runs and many times slower beside a busy process; a fixed count loses one way or the other.
Each mode runs the model in its own child process, as a book does, and answers a ~480-token prompt with
--tokens tokens at temperature 0 under three conditions: quiet; busy (a CPU-bound process on one core
throughout); and busy from halfway (that process starts BUSY_FROM_S seconds into the call). The prompt's
evaluation and the writing are timed apart (the answer streams: its first token ends the prompt's part).
The answers must be the same text in every mode (the count never changes what is written).
Writes llm_threads.json (with the 1-minute load average beside each row) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
BUSY_FROM_S = 4.0
HOG = [sys.executable, "-c", "while True: pass"]
TEXT = ("A picture book for a 6-year-old reader, 4 pages, warm and gentle. It is about: a grey tabby cat on a "
        "windowsill in the sun, who wants to catch the sunbeam that moves across the floor. ") * 12


def timed(llm, condition: str, tokens: int) -> dict:
    """One streamed answer under `condition`; the prompt differs per condition (no prefix reuse between them)."""
    from taleloom.backends.base import Sampling

    ask = [{"role": "user", "content": f"[{condition}] {TEXT}\nTell this story in your own words."}]
    hog = subprocess.Popen(HOG) if condition == "busy" else None
    try:
        t0 = time.perf_counter()
        first, text, n = None, [], 0
        started = False
        for piece in llm.stream(ask, Sampling(seed=1, max_tokens=tokens, temperature=0.0)):
            if first is None:
                first = time.perf_counter()
            if condition == "busy from halfway" and not started and time.perf_counter() - t0 >= BUSY_FROM_S:
                hog, started = subprocess.Popen(HOG), True
            text.append(piece)
            n += 1
        t1 = time.perf_counter()
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return {"condition": condition, "prompt_seconds": round(first - t0, 2), "answer_pieces": n,
            "writing_tokens_per_second": round((n - 1) / max(1e-6, t1 - first), 2), "seconds": round(t1 - t0, 2),
            "load_average_1m": round(os.getloadavg()[0], 2), "text": "".join(text)}


def mode(spec: str, name: str, threads: int | None, tokens: int) -> list[dict]:
    from taleloom.backends import registry

    llm = registry.create("llm", spec, n_threads=threads, process="child")
    llm.preload()
    rows = [dict(timed(llm, c, tokens), mode=name) for c in ("quiet", "busy", "busy from halfway")]
    llm._child().close()  # one model process at a time
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llm", default="embedded")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = ap.parse_args()
    from taleloom.config import cpu_threads, most_threads

    modes = [("fixed 1", 1), ("fixed 2", 2), (f"spare cores ({cpu_threads()}..{most_threads()})", None)]
    rows = [r for name, n in modes for r in mode(args.llm, name, n, args.tokens)]
    same = len({(r["condition"], r["text"]) for r in rows}) == 3
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "llm_threads.json").write_text(json.dumps(
        {"llm": args.llm, "cpus": os.cpu_count(), "tokens": args.tokens, "busy_from_s": BUSY_FROM_S,
         "answers_identical_across_modes": same, "runs": rows}, indent=1) + "\n")
    print("| mode | condition | prompt s | writing tokens/s | total s | load |\n|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['condition']} | {r['prompt_seconds']} | {r['writing_tokens_per_second']} | "
              f"{r['seconds']} | {r['load_average_1m']} |")
    print(f"answers identical across modes: {same}")


if __name__ == "__main__":
    main()
