"""CPU cost of the local LLM's two llama.cpp settings, each on and off: weights in the CPU_REPACK layout
(Options.repack) and the JSON grammar checked on the sampled token first (backends/llm/grammar_sampling.py).

    python benchmarks/llm_speedups.py [--llm embedded] [--tokens 64] [--out benchmarks/results]

For each of the 4 combinations, in its own process (a model loads its weights once; the grammar patch is
process-wide), the default model on 1 thread: a 300-token prompt evaluated alone, then a JSON answer of
`--tokens` tokens under the write stage's page schema, and the same answer length free-running. Figures are
CPU seconds of the process (time.process_time), not wall time: on a shared machine the wall time mostly
says how busy the others are, the CPU time what the work costs (still inflated when a sibling hyperthread is
busy: compare rows of one run). Writes benchmarks/results/llm_speedups.json and prints a table.
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
PROMPT = ("A picture book for a 6-year-old reader, 4 pages, warm and gentle. It is about: a grey tabby cat on a "
          "windowsill in the sun. ") * 8
ASK = [{"role": "user", "content": "Write the first page of a picture book about a grey cat called Mina who "
                                   "sits on a windowsill in the sun, as JSON with its text and its scene."}]


def one(spec: str, repack: bool, grammar_last: bool, tokens: int) -> dict:
    """One combination, in this process."""
    sys.path.insert(0, str(ROOT / "src"))
    from taleloom.backends.llm import grammar_sampling

    if not grammar_last:
        grammar_sampling.install = lambda: None  # the grammar before top-k, as llama-cpp-python has it
    from taleloom.backends import registry

    llm = registry.create("llm", spec, process="inline", n_threads=1, repack=repack)
    llama = llm._load()
    toks = llama.tokenize(PROMPT.encode())[:300]
    llama.reset()
    t0 = time.process_time()
    llama.eval(toks)
    prompt_s = time.process_time() - t0
    schema = {"type": "object", "properties": {"text": {"type": "string", "minLength": 40, "maxLength": 2000},
                                               "scene": {"type": "string", "minLength": 20, "maxLength": 160}},
              "required": ["text", "scene"]}
    out = {}
    for name, grammar in (("json", llm._grammar(schema)), ("free", None)):
        llama.reset()
        t0 = time.process_time()
        a = llama.create_chat_completion(messages=ASK, max_tokens=tokens, temperature=0.7, seed=1, grammar=grammar)
        cpu = time.process_time() - t0
        prompt = a["usage"]["prompt_tokens"]
        answer = a["usage"]["completion_tokens"]
        # the answer's own cost: its prompt's share (at the rate just measured) taken off
        out[name] = {"tokens": answer, "cpu_seconds": round(cpu, 2),
                     "tokens_per_cpu_s": round(answer / max(1e-6, cpu - prompt * prompt_s / len(toks)), 2)}
    return {"repack": repack, "grammar_last": grammar_last, "prompt_tokens": len(toks),
            "prompt_tokens_per_cpu_s": round(len(toks) / prompt_s, 1),
            "json_tokens_per_cpu_s": out["json"]["tokens_per_cpu_s"],
            "free_tokens_per_cpu_s": out["free"]["tokens_per_cpu_s"], **out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llm", default="embedded")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    ap.add_argument("--one", nargs=2, type=int, metavar=("REPACK", "GRAMMAR_LAST"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.llm, bool(args.one[0]), bool(args.one[1]), args.tokens)))
        return
    load_before, rows = [round(x, 2) for x in os.getloadavg()], []
    for repack, last in ((0, 0), (1, 0), (0, 1), (1, 1)):
        done = subprocess.run([sys.executable, __file__, "--llm", args.llm, "--tokens", str(args.tokens), "--one",
                               str(repack), str(last)], capture_output=True, text=True,
                              env=os.environ | {"OMP_NUM_THREADS": "1"})
        line = next((x for x in reversed(done.stdout.splitlines()) if x.startswith("{")), None)
        if line is None:
            raise SystemExit(f"repack={repack} grammar_last={last} failed: {done.stderr[-800:]}")
        rows.append(json.loads(line))
        print(rows[-1], flush=True)
    record = {"llm": args.llm, "tokens": args.tokens, "rows": rows, "threads": 1,
              "load_average_1_5_15_before": load_before,
              "load_average_1_5_15_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "llm_speedups.json").write_text(json.dumps(record, indent=1) + "\n")
    print("\n| repack | grammar last | prompt tok/CPU-s | JSON answer tok/CPU-s | free answer tok/CPU-s |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['repack']} | {r['grammar_last']} | {r['prompt_tokens_per_cpu_s']} | {r['json_tokens_per_cpu_s']} "
              f"| {r['free_tokens_per_cpu_s']} |")
    print(f"\nload {load_before} -> {record['load_average_1_5_15_after']} on {record['cpus']} cores")


if __name__ == "__main__":
    main()
