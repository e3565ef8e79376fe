"""The write stage's first call on the default LLM (Qwen2.5-Coder-1.5B in its model process), cold and with
the book's instructions evaluated ahead (TextModel.preload(book_prefix(brief)), as the orchestrator does while the
photo is looked at): seconds, tokens, and the write ratio of that one call (seconds ÷ (tokens ÷ the model's
raw tokens/s, measured in the same process)). Each case runs in a fresh model process; the answers must be
the same text (prefix reuse is exact).

    python benchmarks/write_prefix.py [--llm embedded]

Writes benchmarks/results/write_prefix.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from book_latency import raw_tokens_per_second  # noqa: E402

ABOUT = "A tabby cat sitting on a wooden floor. The photo shows tabby cat and Egyptian cat."


def one(spec: str, warm: bool) -> dict:
    from taleloom.backends import registry
    from taleloom.book import Brief
    from taleloom.stages import write

    llm = registry.create("llm", spec)
    brief = Brief(pages=4, hero="Mina", seed=0)
    t0 = time.perf_counter()
    llm.preload([write.book_prefix(brief)] if warm else [])
    preload = time.perf_counter() - t0
    messages = [{"role": "system", "content": write.BOOK_SYSTEM},
                {"role": "user", "content": write._book_prompt(ABOUT, brief, "Mina", "cat", 4, 4)}]
    sampling = write.story_sampling(brief).model_copy(update={"max_tokens": 600})
    t0 = time.perf_counter()
    answer = llm.answer(messages, sampling, None)
    seconds = time.perf_counter() - t0
    raw = raw_tokens_per_second(llm)
    llm._child().close()
    tokens = answer.usage.completion_tokens
    return {"warm": warm, "preload_seconds": round(preload, 2), "seconds": round(seconds, 2),
            "prompt_tokens": answer.usage.prompt_tokens, "tokens": tokens, "raw_tokens_per_second": round(raw, 2),
            "ratio": round(seconds / (tokens / raw), 3), "text": answer.text}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llm", default="embedded")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    cold, warm = one(args.llm, False), one(args.llm, True)
    for r in (cold, warm):
        print(f"{'warm' if r['warm'] else 'cold'}: {r['seconds']} s for {r['tokens']} tokens "
              f"(prompt {r['prompt_tokens']}), raw {r['raw_tokens_per_second']} tokens/s, ratio {r['ratio']}; "
              f"preload {r['preload_seconds']} s")
    same = cold["text"] == warm["text"]
    print(f"same answer: {same}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "write_prefix.json").write_text(json.dumps(
        {"llm": args.llm, "load_average_1m_before": round(load, 2), "same_answer": same,
         "cold": {k: v for k, v in cold.items() if k != "text"}, "warm": {k: v for k, v in warm.items() if k != "text"}},
        indent=2) + "\n")


if __name__ == "__main__":
    main()
