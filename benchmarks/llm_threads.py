"""Raw tokens/s of the default LLM with 1 and with 2 llama.cpp threads, on this machine as it is now.

    python benchmarks/llm_threads.py [--llm embedded] [--tokens 16] [--out benchmarks/results]

Why: llama.cpp's threads spin while they wait for each other, so on a 2-core machine shared with other work,
2 threads can be many times slower than 1; the default is half the cores (config.cpu_threads). Each count is
timed on one answer of --tokens tokens minus a one-token answer to the same prompt (the prompt's cost).
Writes llm_threads.json with the 1-minute load average beside each figure (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def tokens_per_second(spec: str, threads: int, n: int) -> dict:
    from taleloom.backends import registry
    from taleloom.backends.base import Sampling

    llm = registry.create("llm", spec, n_threads=threads, process="inline")
    ask = [{"role": "user", "content": "Tell a long story about a cat and a boat."}]
    llm.answer(ask, Sampling(seed=1, max_tokens=1))  # load the model
    t0 = time.perf_counter()
    llm.answer(ask, Sampling(seed=1, max_tokens=1))
    t1 = time.perf_counter()
    a = llm.answer(ask, Sampling(seed=1, max_tokens=n))
    t2 = time.perf_counter()
    return {"threads": threads, "tokens": a.usage.completion_tokens,
            "tokens_per_second": round((a.usage.completion_tokens - 1) / max(1e-6, (t2 - t1) - (t1 - t0)), 2),
            "load_average_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llm", default="embedded")
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = ap.parse_args()
    rows = [tokens_per_second(args.llm, t, args.tokens) for t in (1, 2)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "llm_threads.json").write_text(json.dumps({"llm": args.llm, "cpus": os.cpu_count(), "runs": rows},
                                                          indent=1) + "\n")
    print("| threads | tokens/s | load |\n|---:|---:|---:|")
    for r in rows:
        print(f"| {r['threads']} | {r['tokens_per_second']} | {r['load_average_1m']} |")


if __name__ == "__main__":
    main()
