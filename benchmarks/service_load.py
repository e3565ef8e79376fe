"""Load on the HTTP service: 1, 4 and 16 concurrent clients on loopback, each making books one after
another while polling the status endpoint. Reports books per minute, p50/p99 latency of
GET /v1/books/{id} while generation runs, any 5xx, and how full the cross-book image batches were.

    python benchmarks/service_load.py                 # test backends that sleep like models (default)
    python benchmarks/service_load.py --delay 0 --books 3

Backends: the service's real code path (FastAPI, store, job pool, orchestrator, every real stage —
write with its checks, bind with WeasyPrint PDF + QR) with the fast test backends of
tests/server/testbackends.py standing in for the models. They sleep `--delay` seconds per unit of work
(a captioner or LLM call 1 unit, an illustrator call 4 + 1 per picture, up to 8 a call, an upscale or a narration 0.5), so
the load has the shape of a real one — model calls that hold a backend for a while — without
measuring the models themselves. Targets: no 5xx, status p99 < 100 ms, books/min at 4 clients >= 1.5x
one client. Writes benchmarks/results/service_load.json and service_load.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path[:0] = [str(ROOT / "tests" / "server"), str(ROOT / "tests")]

from serverkit import Server, photo_bytes  # noqa: E402


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def client(url: str, token: str, books: int, pages: int, poll: float, seed: int, stats: dict) -> None:
    """Makes `books` books in a row; polls each one's status every `poll` s until it is done."""
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        def count(r: httpx.Response) -> httpx.Response:
            stats["codes"][r.status_code] = stats["codes"].get(r.status_code, 0) + 1
            return r

        for i in range(books):
            photo = photo_bytes(colour=((seed + i) * 30 % 255, 99, 160))
            r = count(await http.post("/v1/books", data={"pages": str(pages), "seed": str(seed + i)},
                                      files={"photo": ("p.jpg", photo, "image/jpeg")}))
            if r.status_code != 202:
                stats["failed"] += 1
                continue
            book_id = r.json()["id"]
            while True:
                await asyncio.sleep(poll)
                t0 = time.perf_counter()
                r = count(await http.get(f"/v1/books/{book_id}"))
                stats["poll_latency"].append(time.perf_counter() - t0)
                status = r.json().get("status") if r.status_code == 200 else None
                if status in ("done", "failed"):
                    stats["done" if status == "done" else "failed"] += 1
                    break


def probe(url: str, token: str, book_id: str, hz: float, stop, out) -> None:
    """In its own process, so the load clients' work never delays its clock: GET the status of a
    book at a steady rate until told to stop; sends back (latencies, http codes)."""
    latencies, codes = [], {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        while not stop.is_set():
            t0 = time.perf_counter()
            r = http.get(f"/v1/books/{book_id}")
            latencies.append(time.perf_counter() - t0)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
            time.sleep(max(0.0, 1 / hz - (time.perf_counter() - t0)))
    out.put((latencies, codes))


def run_level(server: Server, clients: int, books_each: int, pages: int, poll: float, hz: float) -> dict:
    # the prober's own book, made before the load starts: its status costs what any book's does
    prober_token = server.token(f"probe-{clients}")
    with server.client(prober_token) as http:
        book_id = http.post("/v1/books", data={"pages": "1"},
                            files={"photo": ("p.jpg", photo_bytes(), "image/jpeg")}).json()["id"]
        while http.get(f"/v1/books/{book_id}").json()["status"] not in ("done", "failed"):
            time.sleep(0.2)
    before = httpx.get(f"{server.url}/healthz").json()["batching"]
    ctx = multiprocessing.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    prober = ctx.Process(target=probe, args=(server.url, prober_token, book_id, hz, stop, out), daemon=True)
    prober.start()
    stats = {"codes": {}, "done": 0, "failed": 0, "poll_latency": []}
    tokens = [server.token(f"load-{clients}-{i}") for i in range(clients)]

    async def load():
        await asyncio.gather(*(client(server.url, tokens[i], books_each, pages, poll, 1000 * i, stats)
                               for i in range(clients)))

    t0 = time.perf_counter()
    asyncio.run(load())
    elapsed = time.perf_counter() - t0
    stop.set()
    lat, probe_codes = out.get(timeout=60)
    prober.join(10)
    after = httpx.get(f"{server.url}/healthz").json()["batching"]
    codes = {str(k): v for k, v in stats["codes"].items()}
    for k, v in probe_codes.items():
        codes[str(k)] = codes.get(str(k), 0) + v
    calls, images = after["calls"] - before["calls"], after["images"] - before["images"]
    polls = stats["poll_latency"]
    row = {"clients": clients, "books": stats["done"], "failed": stats["failed"], "seconds": round(elapsed, 2),
           "books_per_min": round(stats["done"] / elapsed * 60, 2),
           "status_requests": len(lat),
           "status_p50_ms": round(1000 * percentile(lat, 0.50), 2) if lat else None,
           "status_p99_ms": round(1000 * percentile(lat, 0.99), 2) if lat else None,
           "status_max_ms": round(1000 * max(lat), 2) if lat else None,
           "client_polls": len(polls),
           "client_poll_p50_ms": round(1000 * percentile(polls, 0.50), 2) if polls else None,
           "client_poll_p99_ms": round(1000 * percentile(polls, 0.99), 2) if polls else None,
           "http_codes": codes, "5xx": sum(n for c, n in codes.items() if c.startswith("5")),
           "image_calls": calls, "images": images, "mean_image_batch": round(images / calls, 2) if calls else None}
    print(json.dumps(row), flush=True)
    return row


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["levels"]
    xs = [r["clients"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(xs, [r["books_per_min"] for r in rows], "o-")
    a.set_xscale("log", base=2)
    a.set_xticks(xs, [str(x) for x in xs])
    a.set_xlabel("concurrent clients")
    a.set_ylabel("books / min")
    a.set_title("throughput")
    b.plot(xs, [r["status_p50_ms"] for r in rows], "o-", label="p50")
    b.plot(xs, [r["status_p99_ms"] for r in rows], "s-", label="p99")
    b.axhline(100, color="grey", ls="--", label="target p99")
    b.set_xscale("log", base=2)
    b.set_xticks(xs, [str(x) for x in xs])
    b.set_xlabel("concurrent clients")
    b.set_ylabel("ms")
    b.set_title("GET /v1/books/{id} latency during generation")
    b.legend()
    fig.suptitle(f"taleloom serve, {result['settings']['workers']} workers, test backends "
                 f"(delay {result['settings']['delay_s']} s/unit), {result['settings']['pages']}-page books")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", default="1,4,16", help="comma-separated client counts")
    ap.add_argument("--books", type=int, default=4, help="books each client makes at 1 and 4 clients")
    ap.add_argument("--books16", type=int, default=2, help="books each client makes at 16 clients")
    ap.add_argument("--pages", type=int, default=4)
    ap.add_argument("--delay", type=float, default=0.2, help="test backends' seconds per unit of model work")
    ap.add_argument("--workers", type=int, default=4, help="TALELOOM_WORKERS: books made at once")
    ap.add_argument("--poll", type=float, default=0.5, help="seconds between status polls per load client")
    ap.add_argument("--hz", type=float, default=20, help="status requests per second of the latency prober")
    ap.add_argument("--out", type=Path, default=RESULTS / "service_load.json")
    args = ap.parse_args()

    env = {"TALELOOM_TEST_DELAY": str(args.delay), "TALELOOM_WORKERS": str(args.workers),
           "TALELOOM_MAX_QUEUE_TOTAL": "64", "TALELOOM_MAX_QUEUE_PER_USER": "4"}
    levels = []
    load_at_start = [round(x, 2) for x in os.getloadavg()]  # other work on the machine skews every figure
    with tempfile.TemporaryDirectory(prefix="taleloom-load-") as tmp:
        server = Server(Path(tmp), env=env).start()
        try:
            run_level(server, 1, 1, args.pages, args.poll, args.hz)  # warm-up: the first book loads fonts
            for n in (int(x) for x in args.clients.split(",")):
                levels.append(run_level(server, n, args.books16 if n >= 16 else args.books, args.pages, args.poll,
                                        args.hz))
        finally:
            server.stop()
    by = {r["clients"]: r for r in levels}
    speedup = round(by[4]["books_per_min"] / by[1]["books_per_min"], 2) if 1 in by and 4 in by else None
    result = {
        "benchmark": "service_load",
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "load_average_at_start": load_at_start},
        "settings": {"workers": args.workers, "pages": args.pages, "delay_s": args.delay, "poll_s": args.poll,
                     "probe_hz": args.hz,
                     "backends": "tests/server/testbackends.py (captioner, llm, illustrator, upscaler, narrator = "
                                 "test); real FastAPI/uvicorn, SQLite store, job pool, orchestrator, write stage, "
                                 "WeasyPrint bind", "concurrency": "captioner=1 llm=1 illustrator=1 (batched) "
                                 "upscaler=1 narrator=2"},
        "levels": levels,
        "speedup_4_vs_1": speedup,
        "targets": {"no_5xx": all(r["5xx"] == 0 for r in levels),
                    "status_p99_under_100ms": all((r["status_p99_ms"] or 0) < 100 for r in levels),
                    "speedup_4_vs_1_at_least_1.5": speedup is not None and speedup >= 1.5},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out.with_suffix(".png"))
    print(json.dumps({k: result[k] for k in ("speedup_4_vs_1", "targets")}))


if __name__ == "__main__":
    main()
