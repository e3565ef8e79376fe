"""Fuzz the HTTP service: Schemathesis over the server's own OpenAPI schema (positive and negative
examples for every operation, half of the book routes aimed at a real book of the caller's) plus a
corpus of hostile image files (truncated, decompression bombs, CMYK, 16-bit, animated, EXIF-rotated,
zero-byte, SVG, polyglots, seeded byte flips of real files) sent to every route that takes an image
(the book's photo, the picture and the mask of an edit, the photo to caption), from several clients
at once, against a real `taleloom serve` process on loopback with the fast test backends.

    python benchmarks/fuzz_service.py                  # about 5,500 requests
    python benchmarks/fuzz_service.py --examples 5 --rounds 1

Prints requests tried, status counts, 5xx, process deaths (the server is started again and the run
goes on) and the server's peak resident memory (VmHWM). Targets: >= 5,000 requests, 0 process deaths,
0 5xx, peak RSS < 2 GB. Writes benchmarks/results/fuzz_service.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path[:0] = [str(ROOT / "tests" / "server"), str(ROOT / "tests")]

from fuzzkit import Tally, Watched, fuzz_files, fuzz_schema, hostile_corpus  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=80, help="Schemathesis examples per operation and mode")
    ap.add_argument("--rounds", type=int, default=3, help="times every hostile file goes to every image route")
    ap.add_argument("--mutants", type=int, default=60, help="byte-flipped copies of real files in the corpus")
    ap.add_argument("--threads", type=int, default=4, help="clients sending hostile files at once")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "fuzz_service.json")
    args = ap.parse_args()

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    tally = Tally()
    t0 = time.perf_counter()
    corpus = hostile_corpus(seed=args.seed, mutants=args.mutants)
    with tempfile.TemporaryDirectory(prefix="taleloom-fuzz-") as tmp:
        target = Watched(Path(tmp), tally)
        try:
            fuzz_files(target, tally, corpus, rounds=args.rounds, threads=args.threads)
            files_done = tally.requests
            print(f"hostile files: {files_done} requests, {time.perf_counter() - t0:.0f} s", flush=True)
            fuzz_schema(target, tally, examples=args.examples, seed=args.seed)
        finally:
            target.stop()
    seconds = time.perf_counter() - t0
    summary = tally.summary()
    result = {
        "benchmark": "fuzz_service",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_at_start": load_at_start},
        "settings": {**vars(args), "out": str(args.out), "corpus_files": len(corpus),
                     "image_routes": ["POST /v1/books photo", "POST /v1/captions image", "POST /v1/images/edits image",
                                      "POST /v1/images/edits mask"],
                     "backends": "tests/server/testbackends.py (test captioner, llm, illustrator, upscaler, narrator)"},
        "seconds": round(seconds, 1),
        "hostile_file_requests": files_done,
        "schema_requests": tally.requests - files_done,
        **summary,
        "targets": {"requests_at_least_5000": summary["requests"] >= 5000, "no_5xx": summary["5xx"] == 0,
                    "no_process_deaths": summary["process_deaths"] == 0,
                    "peak_rss_under_2gb": summary["peak_rss_mb"] < 2048},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'requests':>10} {'5xx':>5} {'deaths':>7} {'no answer':>10} {'peak RSS MB':>12} {'seconds':>8}")
    print(f"{summary['requests']:>10} {summary['5xx']:>5} {summary['process_deaths']:>7} {summary['no_answer']:>10} "
          f"{summary['peak_rss_mb']:>12} {seconds:>8.0f}")
    print("statuses:", json.dumps(summary["statuses"]))
    for e in summary["server_errors"][:20]:
        print("5xx:", json.dumps(e)[:400])
    print(json.dumps(result["targets"]))


if __name__ == "__main__":
    main()
