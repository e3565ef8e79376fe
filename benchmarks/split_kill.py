"""Kill any process of the split service at every stage: PostgreSQL + 2 API processes + 2 worker processes.

    python benchmarks/split_kill.py [--books 8] [--delay 0.2] [--threads 1]

Everything runs on loopback: a throwaway PostgreSQL cluster, API process S (`taleloom serve --workers 0`,
never killed: it streams every book's events and answers the status polls), API process K (takes half the
submissions; killed and started again), and two `taleloom worker` processes, with the fast test backends
slowed by TALELOOM_TEST_DELAY so that every stage lasts long enough to be hit. For each stage in turn, as
soon as some book is in it, SIGKILL alternately the worker that runs that book (a new worker is started at
once) or API process K (started again on its port). A worker is killed only while every job it holds has
been started fewer than 3 times (server/jobs.py MAX_ATTEMPTS: a job that keeps killing its worker is
failed on purpose).

Afterwards: every book must be done, with one job each, whose claim count is exactly 1 + the kills of the
workers that held it (a book started any other extra time would have been run twice); every file its
manifest names is served by S (0 lost); and every stream on S, which hears the workers only through
PostgreSQL LISTEN/NOTIFY, must end with the book's `done`. Event latency is the time from an event's
creation in a worker (its `at`) to its arrival at the client through S (same machine, same clock).

Prints a table and writes benchmarks/results/split_kill.json. Wall times are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "server"), str(ROOT / "tests"), str(ROOT / "src")]

from pg import Postgres  # noqa: E402
from serverkit import Server, Worker, iter_events, photo_bytes  # noqa: E402
from sqlalchemy import select  # noqa: E402

from taleloom.pipeline import STAGES  # noqa: E402
from taleloom.server.jobs import MAX_ATTEMPTS  # noqa: E402
from taleloom.server.store import Job, Store, database_url  # noqa: E402

POLL_S = 0.05


class Stream:
    """One book's events stream on API process S, read on a thread: (arrival epoch seconds, kind, data)."""

    def __init__(self, client: httpx.Client, book_id: str):
        self.events: list[tuple[float, str, dict]] = []
        self.error: str | None = None
        self.thread = threading.Thread(target=self._read, args=(client, book_id), daemon=True)
        self.thread.start()

    def _read(self, client: httpx.Client, book_id: str) -> None:
        try:
            for kind, data in iter_events(client, book_id, timeout=600):
                self.events.append((time.time(), kind, data))
        except (httpx.HTTPError, AssertionError) as e:
            self.error = f"{type(e).__name__}: {e}"


def jobs_in(url: str, data_dir: Path) -> list[Job]:
    store = Store(database_url(url, data_dir))
    try:
        with store.session() as s:
            return list(s.scalars(select(Job).order_by(Job.id)))
    finally:
        store.close()


def pid_of(job: Job) -> int | None:
    return int(job.lease_owner.split(":")[1]) if job.lease_owner else None


def state_of(client: httpx.Client, book_id: str) -> tuple[str, str | None]:
    """(status, stage) of a book as API process S tells it (S makes no book: it hears the workers' events)."""
    try:
        body = client.get(f"/v1/books/{book_id}", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return "unknown", None
    return body.get("status", "unknown"), (body.get("current") or {}).get("stage")


def files_lost(client: httpx.Client, book_id: str) -> list[str]:
    manifest = client.get(f"/v1/books/{book_id}/manifest.json").json()
    names = ["book.pdf", "book.html", "qr.png"] + [f"pages/{p['index']}.png" for p in manifest["pages"]]
    names += [f"audio/{p['index']}.wav" for p in manifest["pages"] if p.get("audio")]
    return [n for n in names if client.get(f"/v1/books/{book_id}/{n}").status_code != 200]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 4)


def run(args, pg: Postgres, data_dir: Path) -> dict:
    url = pg.new_database()
    env = {"TALELOOM_TEST_DELAY": str(args.delay), "TALELOOM_WORKERS": str(args.threads),
           "TALELOOM_JOB_LEASE_SECONDS": "6", "TALELOOM_MAX_QUEUE_PER_USER": str(args.books + 4),
           "TALELOOM_DATABASE_URL": url}
    s = Server(data_dir, env=env, args=("--workers", "0")).start()
    k = Server(data_dir, env=env, args=("--workers", "0")).start()
    workers = [Worker(data_dir, env=env, name=f"worker{i}").start() for i in range(2)]
    procs = [s, k, *workers]
    try:
        token = s.token("bench")
        cs, ck = s.client(token), k.client(token)
        ids = []
        for i in range(args.books):
            r = (cs if i % 2 else ck).post("/v1/books", data={"pages": "2", "seed": str(i), "lang": "fr"},
                                           files={"photo": ("p.jpg", photo_bytes(colour=(30 * i % 250, 90, 160)),
                                                            "image/jpeg")})
            r.raise_for_status()
            ids.append(r.json()["id"])
        streams = {b: Stream(s.client(token), b) for b in ids}
        t0 = time.monotonic()
        kills, expected = [], dict.fromkeys(ids, 1)
        pending, turn, starting = list(STAGES), 0, []
        deadline = time.monotonic() + args.timeout
        while pending and time.monotonic() < deadline:
            at = {b: state_of(cs, b) for b in ids}
            if all(status in ("done", "failed") for status, _ in at.values()):
                break
            found = sorted((pending.index(st), b, st) for b, (status, st) in at.items()
                           if status == "running" and st in pending)
            if not found:
                time.sleep(POLL_S)
                continue
            _, book, stage = found[0]
            if turn % 2 == 0:  # a worker: the one that runs `book`
                jobs = jobs_in(url, data_dir)
                job = next((j for j in jobs if j.book_id == book and j.status == "running"), None)
                victim = next((w for w in workers if job is not None and w.proc.pid == pid_of(job)), None)
                held = [j for j in jobs if j.status == "running" and victim and pid_of(j) == victim.proc.pid]
                if victim is None or any(j.attempts >= MAX_ATTEMPTS for j in held):
                    time.sleep(POLL_S)
                    continue
                victim.kill9()
                for j in held:
                    expected[j.book_id] += 1
                workers[workers.index(victim)] = fresh = Worker(data_dir, env=env, name=f"worker{len(procs)}")
                procs.append(fresh)
                starting.append(threading.Thread(target=fresh.start, daemon=True))  # the loop goes on meanwhile
                starting[-1].start()
                kills.append({"stage": stage, "book": book, "killed": "worker", "jobs_held": len(held)})
            else:  # API process K, which took half the books and their first requests
                k.kill9()
                starting.append(threading.Thread(target=k.start, daemon=True))
                starting[-1].start()
                kills.append({"stage": stage, "book": book, "killed": "api"})
            pending.remove(stage)
            turn += 1
        kills += [{"stage": st, "killed": None, "note": f"no book was seen in it (polled every {POLL_S} s)"}
                  for st in pending]
        done = {}
        while time.monotonic() < deadline and len(done) < len(ids):
            for b in ids:
                if b not in done and (body := cs.get(f"/v1/books/{b}").json())["status"] in ("done", "failed"):
                    done[b] = body
            time.sleep(0.2)
        wall = time.monotonic() - t0
        for t in starting:
            t.join(60)
        for st in streams.values():
            st.thread.join(30)
        jobs = jobs_in(url, data_dir)
        latencies = [arrival - datetime.fromisoformat(d["at"]).timestamp()
                     for st in streams.values() for arrival, kind, d in st.events
                     if kind in ("started", "progress", "finished", "done") and d.get("at")]
        return {
            "books": len(ids), "wall_s": round(wall, 1), "kills": kills,
            "done": sum(1 for v in done.values() if v["status"] == "done"),
            "failed": [{"id": b, "error": v.get("error")} for b, v in done.items() if v["status"] == "failed"],
            "unfinished": [b for b in ids if b not in done],
            "jobs_per_book": sorted({sum(1 for j in jobs if j.book_id == b) for b in ids}),
            "jobs_not_done": [(j.id, j.status) for j in jobs if j.status != "done"],
            "claims_beyond_kills": {b: [j.attempts for j in jobs if j.book_id == b] for b in ids
                                    if [j.attempts for j in jobs if j.book_id == b] != [expected[b]]},
            "files_lost": sum(len(files_lost(cs, b)) for b, v in done.items() if v["status"] == "done"),
            "streams_ended_done": sum(1 for st in streams.values()
                                      if st.events and st.events[-1][2].get("status") == "done"),
            "stream_errors": [st.error for st in streams.values() if st.error],
            "events_heard": sum(len(st.events) for st in streams.values()),
            "event_latency_s": {"n": len(latencies), "p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99),
                                "max": pct(latencies, 1.0),
                                "mean": round(statistics.fmean(latencies), 4) if latencies else None},
        }
    finally:
        for p in procs:
            p.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--books", type=int, default=8)
    ap.add_argument("--delay", type=float, default=0.2, help="TALELOOM_TEST_DELAY unit for the test backends")
    ap.add_argument("--threads", type=int, default=1, help="books each worker process makes at once")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole run")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = ap.parse_args()
    pg = Postgres().start()
    try:
        with tempfile.TemporaryDirectory(prefix="taleloom-split-") as tmp:
            result = run(args, pg, Path(tmp))
    finally:
        pg.stop()
    result = {"command": "python benchmarks/split_kill.py " + " ".join(sys.argv[1:]), "delay": args.delay,
              "threads": args.threads, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "load": round(os.getloadavg()[0], 1), **result}
    print(f"{'stage':<12} {'killed':<8} note")
    for kill in result["kills"]:
        print(f"{kill['stage']:<12} {str(kill['killed']):<8} {kill.get('note', '')}")
    lat = result["event_latency_s"]
    print(f"\nbooks {result['books']}: done {result['done']}, failed {len(result['failed'])}, "
          f"unfinished {len(result['unfinished'])}; jobs per book {result['jobs_per_book']}; "
          f"books claimed beyond their kills {len(result['claims_beyond_kills'])}; files lost {result['files_lost']}")
    print(f"streams on the never-killed API process ended with done: {result['streams_ended_done']}/{result['books']}; "
          f"events heard {result['events_heard']}; worker → client latency p50 {lat['p50']} s, p99 {lat['p99']} s, "
          f"max {lat['max']} s; wall {result['wall_s']} s at load {result['load']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "split_kill.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
