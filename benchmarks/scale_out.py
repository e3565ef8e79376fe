"""Scale-out: books per minute with 1, 2 and 4 `taleloom worker` processes on one PostgreSQL, then with the
illustrator on Ray Serve with 1 vs 2 replicas; pictures per batched call, status p99 and 5xx of the API.

    python benchmarks/scale_out.py            # full: 6 books per worker, 0.5 s per unit of model work
    python benchmarks/scale_out.py --quick    # under 5 minutes: 2 books per worker, 0.2 s per unit
    python benchmarks/scale_out.py --no-ray   # workers only (no `taleloom[ray]` installed)

Everything real on loopback — a throwaway PostgreSQL, one API process (`taleloom serve --workers 0`), N
worker processes (`taleloom worker --threads 1`), a local Ray head started by the script — with the test
backends of tests/server/testbackends.py standing in for the models: they sleep `--delay` seconds per unit
(a caption or LLM call 1 unit, an illustrator call 4 + 1 per picture, an upscale or narration 0.5). A sleeping
model needs no core, so the worker figure measures the service (claiming, leases, events, stages, PDF
binding) rather than the models; the real CPU work left (WeasyPrint binding, PIL, PostgreSQL, the API) runs
on this machine's cores. In the Ray runs the replicas' illustrator sleeps `--ray-factor` times longer (a GPU
model being the slow role), so the illustrator is the bottleneck that replicas relieve. All books are queued
at once; a separate process polls one book's status at `--hz` all along. Targets: 2 workers >= 1.8x one,
status p99 < 100 ms, 0 5xx. Writes benchmarks/results/scale_out.json and scale_out.png; the last line
printed is `2 workers: N× one worker`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path[:0] = [str(ROOT / "tests" / "server"), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from pg import Postgres  # noqa: E402
from serverkit import HERE, Server, Worker, free_port, photo_bytes  # noqa: E402
from service_load import run_probed, status_latency  # noqa: E402


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def make_books(url: str, token: str, n: int, pages: int, stats: dict) -> None:
    """Queue `n` books at once, then poll them (every 0.5 s, all together) until each is done or failed."""
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        def count(r: httpx.Response) -> httpx.Response:
            stats["codes"][r.status_code] = stats["codes"].get(r.status_code, 0) + 1
            return r

        ids = []
        for i in range(n):
            r = count(await http.post("/v1/books", data={"pages": str(pages), "seed": str(i)},
                                      files={"photo": ("p.jpg", photo_bytes(colour=(i * 30 % 255, 99, 160)),
                                                       "image/jpeg")}))
            if r.status_code == 202:
                ids.append(r.json()["id"])
            else:
                stats["failed"] += 1
        left = set(ids)
        while left:
            await asyncio.sleep(0.5)
            for book in list(left):
                r = count(await http.get(f"/v1/books/{book}"))
                status = r.json().get("status") if r.status_code == 200 else None
                if status in ("done", "failed"):
                    stats[status] += 1
                    left.discard(book)


def db_activity(url: str) -> dict[str, int]:
    """The database's counters so far (pg_stat_database): commits, rows read/written. Includes the status polls."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT xact_commit, tup_fetched, tup_inserted, tup_updated, tup_deleted FROM "
                           "pg_stat_database WHERE datname = current_database()").fetchone()
    return dict(zip(("commits", "rows_fetched", "rows_inserted", "rows_updated", "rows_deleted"), row, strict=True))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc: Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_get_cost(api: Server, token: str, book_id: str, db: str, n: int = 50) -> float:
    """PostgreSQL commits one GET /v1/books/{id} costs, measured after the run, less the commits the idle
    processes make meanwhile (workers looking for jobs), measured over a quiet window just before."""
    time.sleep(1.0)
    t0, c0 = time.monotonic(), db_activity(db)["commits"]
    time.sleep(2.0)
    t1, c1 = time.monotonic(), db_activity(db)["commits"]
    with api.client(token) as http:
        for _ in range(n):
            http.get(f"/v1/books/{book_id}")
    time.sleep(1.0)
    t2, c2 = time.monotonic(), db_activity(db)["commits"]
    idle_rate = (c1 - c0 - 1) / (t1 - t0)  # - 1: the counter read's own commit
    return round(max(0.0, c2 - c1 - 1 - idle_rate * (t2 - t1)) / n, 2)


def run_config(pg: Postgres, tmp: Path, name: str, workers: int, books: int, pages: int, env: dict, hz: float) -> dict:
    """One API process + `workers` worker processes on a fresh database: `books` books, timed."""
    db = pg.new_database()
    env = {**env, "TALELOOM_DATABASE_URL": db, "TALELOOM_WORKERS": "1",
           "TALELOOM_MAX_QUEUE_PER_USER": "500", "TALELOOM_MAX_QUEUE_TOTAL": "500"}
    data = tmp / name
    api = Server(data, env=env, args=("--workers", "0")).start()
    procs: list[Server] = [api]
    try:
        with ThreadPoolExecutor(workers) as pool:
            procs += list(pool.map(lambda _: Worker(data, env=env).start(), range(workers)))
        token = api.token("bench")
        with api.client(token) as http:  # warm-up: one 1-page book per worker (each loads its fonts and modules
            # outside the timed run); the first is the prober's book, whose status costs what any book's does
            warm = [http.post("/v1/books", data={"pages": "1"},
                              files={"photo": ("p.jpg", photo_bytes(), "image/jpeg")}).json()["id"]
                    for _ in range(workers)]
            probe_id = warm[0]
            while any(http.get(f"/v1/books/{b}").json()["status"] not in ("done", "failed") for b in warm):
                time.sleep(0.2)
        stats = {"codes": {}, "done": 0, "failed": 0}
        load_before, db_before = load_average(), db_activity(db)
        cpu_before = [cpu_seconds(p.proc.pid) for p in procs]
        elapsed, lat, codes = run_probed(api, token, probe_id, hz,
                                         lambda: make_books(api.url, token, books, pages, stats), stats)
        cpu = [cpu_seconds(p.proc.pid) - c for p, c in zip(procs, cpu_before, strict=True)]
        polls = sum(codes.values()) - books  # every request of the run but the POSTs: status GETs
        per_get = status_get_cost(api, token, probe_id, db)
    finally:
        for p in procs:
            p.stop()
    time.sleep(1.0)  # PostgreSQL publishes a session's counters when it goes idle or ends
    db_load = {k: v - db_before[k] for k, v in db_activity(db).items()}  # (stopping adds a few commits)
    row = {"config": name, "workers": workers, "books": books, "done": stats["done"], "failed": stats["failed"],
           "seconds": round(elapsed, 1), "books_per_min": round(60 * stats["done"] / elapsed, 2),
           **status_latency(lat), "5xx": sum(v for k, v in codes.items() if int(k) >= 500), "http_codes": codes,
           "load_average_before": load_before, "load_average_after": load_average(),
           "db_per_book": {k: round(v / max(1, stats["done"]), 1) for k, v in db_load.items()},
           "db_commits_per_status_get": per_get,
           "db_commits_per_book_without_polls": round((db_load["commits"] - polls * per_get) / max(1, stats["done"]), 1),
           "db_commits_per_s": round(db_load["commits"] / elapsed, 1),
           "cpu_s_per_book": {"api": round(cpu[0] / max(1, stats["done"]), 2),
                              "workers": round(sum(cpu[1:]) / max(1, stats["done"]), 2)}}
    print(json.dumps({k: row[k] for k in ("config", "books", "done", "seconds", "books_per_min", "status_p99_ms",
                                          "5xx", "cpu_s_per_book", "db_per_book")}), flush=True)
    return row


class RayIllustrators:
    """A local Ray head with the test illustrator deployed; `scale(n)` sets its replicas."""

    def __init__(self, tmp: Path, delay: float, max_batch: int):
        from taleloom.scale import cluster
        from taleloom.scale.deployments import RoleConfig

        self.tmp = tmp
        # the head's environment is its replicas': the test plugin importable, sleeping `delay` per unit
        os.environ.update(TALELOOM_PLUGINS="testbackends:register", TALELOOM_TEST_DELAY=str(delay),
                          PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
        self.address = cluster.start_head(tmp, free_port(), num_cpus=4)
        cluster.connect(self.address)
        self.config = RoleConfig("illustrator", "test", 1, max_batch=max_batch, num_cpus=1,
                                 plugins="testbackends:register")

    def scale(self, replicas: int) -> None:
        from taleloom.scale.deployments import deploy

        self.config.replicas = replicas
        deploy(self.config)

    def batches(self) -> dict[int, int]:
        """Model calls by pictures per call, summed over the replicas (asked until each has answered)."""
        from ray import serve

        handle = serve.get_deployment_handle("ModelServer", "taleloom-illustrator")
        seen: dict[str, dict] = {}
        for _ in range(40 * self.config.replicas):
            about = handle.describe.remote().result(timeout_s=60)
            seen[about["replica"]] = about["batches"]
            if len(seen) >= self.config.replicas:
                break
        total: dict[int, int] = {}
        for b in seen.values():
            for size, calls in b.items():
                total[int(size)] = total.get(int(size), 0) + calls
        return total

    def stop(self) -> None:
        import ray

        from taleloom.scale import cluster

        ray.shutdown()
        cluster.stop_head(self.tmp)


def per_call(before: dict[int, int], after: dict[int, int]) -> dict:
    calls = {s: after.get(s, 0) - before.get(s, 0) for s in after}
    n = sum(calls.values())
    return {"illustrator_calls": n, "pictures_per_call": round(sum(s * c for s, c in calls.items()) / n, 2) if n else None,
            "calls_by_size": {str(s): c for s, c in sorted(calls.items()) if c}}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["runs"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    names = [r["config"] for r in rows]
    a.bar(names, [r["books_per_min"] for r in rows], color=["C0" if "ray" not in n else "C1" for n in names])
    a.set_ylabel("books / min")
    a.set_title("throughput")
    a.tick_params(axis="x", rotation=20)
    b.bar(names, [r["status_p99_ms"] or 0 for r in rows], color="C2")
    b.axhline(100, color="grey", ls="--", label="target p99")
    b.set_ylabel("status p99, ms")
    b.set_title("GET /v1/books/{id} during the run")
    b.tick_params(axis="x", rotation=20)
    b.legend()
    s = result["settings"]
    fig.suptitle(f"taleloom scale-out, test backends sleeping {s['delay_s']} s/unit, {s['pages']}-page books, "
                 f"{result['machine']['cpus']} cores (load {result['machine']['load_average_at_start']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer books, shorter sleeps: under 5 minutes")
    ap.add_argument("--workers", default="1,2,4", help="worker-process counts to run")
    ap.add_argument("--books-per-worker", type=int, default=None, help="books queued per worker (6; quick 2)")
    ap.add_argument("--delay", type=float, default=None, help="test backends' seconds per unit (0.5; quick 0.2)")
    ap.add_argument("--pages", type=int, default=4)
    ap.add_argument("--hz", type=float, default=10, help="status requests per second of the latency prober")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray Serve runs")
    ap.add_argument("--ray-workers", type=int, default=4, help="worker processes in the Ray runs")
    ap.add_argument("--ray-books", type=int, default=None, help="books in each Ray run (16; quick 6)")
    ap.add_argument("--ray-factor", type=float, default=2.0, help="the replicas' illustrator sleeps this much longer")
    ap.add_argument("--max-batch", type=int, default=8, help="pictures per illustrator call at most (Ray)")
    ap.add_argument("--out", type=Path, default=RESULTS / "scale_out.json")
    args = ap.parse_args()
    per_worker = args.books_per_worker or (2 if args.quick else 6)
    delay = args.delay if args.delay is not None else (0.2 if args.quick else 0.5)
    ray_books = args.ray_books or (6 if args.quick else 16)
    env = {"TALELOOM_TEST_DELAY": str(delay)}
    t_start, load_start = time.monotonic(), load_average()
    runs = []
    pg = Postgres().start()
    try:
        with tempfile.TemporaryDirectory(prefix="taleloom-scale-") as tmp:
            for n in (int(x) for x in args.workers.split(",")):
                runs.append(run_config(pg, Path(tmp), f"{n} worker{'s' if n > 1 else ''}", n, per_worker * n,
                                       args.pages, env, args.hz))
            if not args.no_ray:
                ray = RayIllustrators(Path(tmp) / "ray", delay * args.ray_factor, args.max_batch)
                try:
                    ray_env = {**env, "TALELOOM_ILLUSTRATOR": f"ray:{ray.address}"}
                    for replicas in (1, 2):
                        ray.scale(replicas)
                        before = ray.batches()
                        row = run_config(pg, Path(tmp), f"ray x{replicas}", args.ray_workers, ray_books,
                                         args.pages, ray_env, args.hz)
                        runs.append({**row, "ray_replicas": replicas, **per_call(before, ray.batches())})
                finally:
                    ray.stop()
    finally:
        pg.stop()
    by = {r["config"]: r for r in runs}
    one, two = by.get("1 worker"), by.get("2 workers")
    speedup = round(two["books_per_min"] / one["books_per_min"], 2) if one and two else None
    ray1, ray2 = by.get("ray x1"), by.get("ray x2")
    ray_speedup = round(ray2["books_per_min"] / ray1["books_per_min"], 2) if ray1 and ray2 else None
    result = {
        "benchmark": "scale_out", "quick": args.quick, "seconds": round(time.monotonic() - t_start, 1),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_at_start": load_start, "load_average_at_end": load_average()},
        "settings": {"delay_s": delay, "pages": args.pages, "books_per_worker": per_worker, "probe_hz": args.hz,
                     "ray_workers": args.ray_workers, "ray_books": ray_books, "ray_factor": args.ray_factor,
                     "max_batch": args.max_batch, "threads_per_worker": 1,
                     "backends": "tests/server/testbackends.py (sleeping); real PostgreSQL, taleloom serve --workers 0, "
                                 "taleloom worker, orchestrator, every stage, WeasyPrint bind; Ray: local head, "
                                 "the illustrator as a Ray Serve deployment (@serve.batch)"},
        "runs": runs, "speedup_2_vs_1_workers": speedup, "speedup_2_vs_1_ray_replicas": ray_speedup,
        "targets": {"2_workers_at_least_1.8x": speedup is not None and speedup >= 1.8,
                    "status_p99_under_100ms": all((r["status_p99_ms"] or 0) < 100 for r in runs),
                    "no_5xx": all(r["5xx"] == 0 for r in runs)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out.with_suffix(".png"))
    print(f"{'config':<12} {'books':>5} {'s':>6} {'books/min':>9} {'p50 ms':>7} {'p99 ms':>7} {'5xx':>4} {'pics/call':>9}")
    for r in runs:
        print(f"{r['config']:<12} {r['done']:>5} {r['seconds']:>6} {r['books_per_min']:>9} {r['status_p50_ms']!s:>7} "
              f"{r['status_p99_ms']!s:>7} {r['5xx']:>4} {r.get('pictures_per_call', '-')!s:>9}")
    print(json.dumps({"targets": result["targets"], "ray x2 vs x1": ray_speedup, "seconds": result["seconds"]}))
    print(f"2 workers: {speedup}× one worker")


if __name__ == "__main__":
    main()
