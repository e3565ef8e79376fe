"""A small, bounded fuzz run in the default suite (the big one is benchmarks/fuzz_service.py): hostile
image files to every route that takes an image, and Schemathesis requests over the whole OpenAPI
schema, against a real server process. No answer may be a 5xx, and the process must stay up."""

from __future__ import annotations

from fuzzkit import Tally, Watched, fuzz_files, fuzz_schema, hostile_corpus

SKIP = ("bomb-zlib-5000.png",)  # 25 million real pixels: the benchmark sends it; here it only costs time


def test_fuzz_small_run(tmp_path):
    tally = Tally()
    target = Watched(tmp_path, tally)
    try:
        corpus = {k: v for k, v in hostile_corpus(seed=1, mutants=12).items() if k not in SKIP}
        fuzz_files(target, tally, corpus, threads=2)
        fuzz_schema(target, tally, examples=3, seed=1)
    finally:
        target.stop()
    summary = tally.summary()
    assert summary["requests"] >= 300, summary
    assert summary["5xx"] == 0, summary["server_errors"]
    assert summary["process_deaths"] == 0, summary["deaths"]
    assert summary["no_answer"] == 0, summary["transport_errors"]
    assert summary["statuses"].get("413", 0) > 0 and summary["statuses"].get("200", 0) > 0  # both kinds were sent
