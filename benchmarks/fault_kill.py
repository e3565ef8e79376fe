"""Fault injection on a real server: kill -9 of the LLM's model process, and of the API process itself, at every
stage of a book, with books in flight; and streams cut mid-answer.

    python benchmarks/fault_kill.py [--books 4] [--delay 0.3] [--streams 5]

The server runs on loopback with the real SmolLM2 in its supervised child process (the only native model
process; `taleloom serve` restarts it) and the fast test backends for the other roles, slowed by
TALELOOM_TEST_DELAY so every stage lasts long enough to be hit. Two campaigns, each with `--books` books
submitted together: (1) for each stage in order, as soon as some book is in it, SIGKILL the model child;
(2) the same with SIGKILL of the API process, which is then started again on the same data folder (each
book sees at most 2 API deaths: a job that outlives 3 is failed on purpose, see MAX_API_KILLS).
Afterwards every book must be done, every file its manifest names must be served (0 lost), and no
model child may outlive its API process. Then `--streams` times: a chat stream is read for one chunk and
cut, and a small chat call is timed from the cut (target: the LLM is free again within 1 s).

Prints a table and writes benchmarks/results/fault_kill.json. Wall times are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "server"), str(ROOT / "tests"), str(ROOT / "src")]

from serverkit import Server, photo_bytes  # noqa: E402

from taleloom.pipeline import STAGES  # noqa: E402

POLL_S = 0.05
# A job whose API process died under it 3 times is failed on purpose (server/jobs.py MAX_ATTEMPTS: a book
# that kills the server must not take it down for ever), so the API is killed only while every running
# book has been interrupted fewer than twice: each book sees at most 2 API deaths.
MAX_API_KILLS = 2


def children_of(pid: int) -> list[int]:
    """Model child processes (llama_child) whose parent is `pid`."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"llama_child" in cmd and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def orphans() -> list[int]:
    """llama_child processes whose parent is init (an API process died and left them)."""
    return children_of(1)


def submit(client: httpx.Client, n: int, tag: str) -> list[str]:
    ids = []
    for i in range(n):
        r = client.post("/v1/books", data={"pages": "1", "lang": "fr", "idea": f"a {tag} fox who finds a kite {i}",
                                           "seed": str(i)}, files={"photo": ("p.jpg", photo_bytes(), "image/jpeg")})
        r.raise_for_status()
        ids.append(r.json()["id"])
    return ids


def stage_of(client: httpx.Client, book_id: str) -> str | None:
    try:
        body = client.get(f"/v1/books/{book_id}", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None
    return (body.get("current") or {}).get("stage") if body.get("status") == "running" else None


def wait_all(client: httpx.Client, ids: list[str], timeout: float) -> dict[str, dict]:
    deadline, done = time.monotonic() + timeout, {}
    while time.monotonic() < deadline and len(done) < len(ids):
        for b in ids:
            if b not in done:
                body = client.get(f"/v1/books/{b}").json()
                if body["status"] in ("done", "failed"):
                    done[b] = body
        time.sleep(0.2)
    return done


def files_lost(client: httpx.Client, book: dict) -> list[str]:
    """Files the finished book names that the server does not serve."""
    urls = [p[k] for p in book.get("pages", []) for k in ("image", "audio") if p.get(k)]
    urls += [v for k, v in (book.get("links") or {}).items() if k in ("pdf", "html", "manifest") and v]
    lost = [u for u in urls if client.get(u).status_code != 200]
    expected = len(book.get("pages", [])) * 2 + 3
    return lost + ["(missing links)"] * max(0, expected - len(urls))


def campaign(kind: str, srv: Server, token: str, books: int, timeout: float) -> dict:
    """Submit `books`, then SIGKILL the model child (kind 'child') or the API ('api') once per stage."""
    client = srv.client(token, timeout=30)
    ids = submit(client, books, kind)
    kills, hits = [], dict.fromkeys(ids, 0)
    pending = list(STAGES)  # stages not hit yet; a stage is hit in whatever order books reach it
    deadline = time.monotonic() + timeout * 4
    while pending and time.monotonic() < deadline:
        at = {b: stage_of(client, b) for b in ids}
        if all(client.get(f"/v1/books/{b}").json()["status"] in ("done", "failed") for b in ids):
            break
        if kind == "api" and any(hits[b] >= MAX_API_KILLS for b, s in at.items() if s is not None):
            time.sleep(POLL_S)  # a book interrupted twice finishes first (see MAX_API_KILLS)
            continue
        found = sorted((hits[b], pending.index(s), b, s) for b, s in at.items() if s in pending)
        if not found:
            time.sleep(POLL_S)
            continue
        _, _, hit, stage = found[0]
        pending.remove(stage)
        for b, s in at.items():
            hits[b] += s is not None  # every running book is interrupted by an API kill
        if kind == "child":
            pids = children_of(srv.proc.pid)
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            kills.append({"stage": stage, "book": hit, "killed": pids or None,
                          "note": "" if pids else "no model child running at that moment"})
        else:
            pids = children_of(srv.proc.pid)
            srv.kill9()
            client.close()
            time.sleep(1.5)  # the child notices its parent is gone within 0.5 s
            left = [p for p in pids if Path(f"/proc/{p}").exists() and _state(p) != "Z"]
            srv.start()
            client = srv.client(token, timeout=30)
            kills.append({"stage": stage, "book": hit, "killed": "api", "children_left_behind": left})
    kills += [{"stage": s, "killed": None, "note": f"no book was seen in it (polled every {POLL_S} s)"}
              for s in pending]
    done = wait_all(client, ids, timeout * 4)
    result = {"kind": kind, "books": len(ids), "kills": kills, "interruptions_per_book": list(hits.values()),
              "done": sum(1 for b in done.values() if b["status"] == "done"),
              "failed": [{"id": b, "error": v.get("error")} for b, v in done.items() if v["status"] == "failed"],
              "unfinished": [b for b in ids if b not in done],
              "files_lost": sum(len(files_lost(client, v)) for v in done.values() if v["status"] == "done")}
    client.close()
    return result


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def cut_streams(srv: Server, token: str, n: int) -> list[float]:
    """Seconds from cutting a stream after its first chunk to the answer of the next small chat call."""
    out, base = [], []
    small = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "seed": 1}
    with srv.client(token, timeout=120) as client:
        client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        for _ in range(n):  # the same small call with no stream before it: what it costs by itself
            t0 = time.perf_counter()
            client.post("/v1/chat/completions", json=small).raise_for_status()
            base.append(time.perf_counter() - t0)
        for i in range(n):
            with client.stream("POST", "/v1/chat/completions", json={
                    "messages": [{"role": "user", "content": "Tell me a very long story about a dragon."}],
                    "max_tokens": 2000, "stream": True, "seed": i}) as r:
                next(line for line in r.iter_lines() if line.startswith("data: ") and '"content": "' in line)
            t0 = time.perf_counter()  # the connection is closed here
            client.post("/v1/chat/completions", json=small).raise_for_status()
            out.append(time.perf_counter() - t0)
    return out, base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--books", type=int, default=4, help="books in flight in the model-child campaign")
    ap.add_argument("--api-books", type=int, default=8, help="books in the API campaign (each sees <= 2 kills)")
    ap.add_argument("--delay", type=float, default=0.3, help="TALELOOM_TEST_DELAY unit for the test backends")
    ap.add_argument("--streams", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one stage")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fault-kill-") as tmp:
        srv = Server(Path(tmp), env={"TALELOOM_LLM": "smollm2", "TALELOOM_TEST_DELAY": str(args.delay),
                                     "TALELOOM_MAX_QUEUE_PER_USER": "64", "OMP_NUM_THREADS": "1"}).start()
        try:
            token = srv.token("fault")
            t0 = time.perf_counter()
            runs = [campaign("child", srv, token, args.books, args.timeout),
                    campaign("api", srv, token, args.api_books, args.timeout)]
            streams, baseline = cut_streams(srv, token, args.streams)
            wall = time.perf_counter() - t0
        finally:
            srv.stop()
        time.sleep(1.0)
        left = orphans()
    total = sum(r["books"] for r in runs)
    done = sum(r["done"] for r in runs)
    result = {"books": total, "done": done, "failed": sum(len(r["failed"]) for r in runs),
              "unfinished": sum(len(r["unfinished"]) for r in runs), "files_lost": sum(r["files_lost"] for r in runs),
              "child_kills": sum(1 for k in runs[0]["kills"] if k["killed"]),
              "api_kills": sum(1 for k in runs[1]["kills"] if k["killed"]),
              "children_left_behind": sorted({p for k in runs[1]["kills"] for p in k.get("children_left_behind", [])}
                                             | set(left)),
              "cut_stream_free_s": {"max": round(max(streams), 3), "median": round(statistics.median(streams), 3),
                                    "all": [round(s, 3) for s in streams],
                                    "same_call_alone_median": round(statistics.median(baseline), 3)},
              "campaigns": runs, "wall_seconds": round(wall, 1),
              "setup": {"llm": "smollm2 (child process)", "other_roles": "test backends", "delay": args.delay,
                        "books_per_campaign": [args.books, args.api_books]},
              "machine": {"cpus": os.cpu_count(), "load_average_1min_before": round(load0, 2),
                          "load_average_1min_after": round(os.getloadavg()[0], 2), "python": platform.python_version()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fault_kill.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"fault_kill: {total} books, SIGKILL of the model child at {result['child_kills']} stages and of the API "
          f"at {result['api_kills']} stages ({args.books} books in flight each; load {load0:.1f} -> "
          f"{result['machine']['load_average_1min_after']:.1f} on {os.cpu_count()} CPUs)\n")
    print("| figure | measured | target |")
    print("|---|---|---|")
    print(f"| books finished | {done} / {total} | all |")
    print(f"| books failed (all innocent: the kills came from outside) | {result['failed']} | 0 |")
    print(f"| files lost | {result['files_lost']} | 0 |")
    print(f"| model children left behind by a killed API | {len(result['children_left_behind'])} | 0 |")
    print(f"| next chat answered after a cut stream, s (max / median of {len(streams)}; the same call alone: "
          f"{result['cut_stream_free_s']['same_call_alone_median']:.2f}) | "
          f"{result['cut_stream_free_s']['max']:.2f} / {result['cut_stream_free_s']['median']:.2f} | < 1 |")
    for r in runs:
        for k in r["kills"]:
            if not k["killed"] or k.get("note"):
                print(f"  {r['kind']} @ {k['stage']}: {k.get('note') or 'not hit'}")


if __name__ == "__main__":
    main()
