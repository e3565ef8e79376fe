"""Load on the HTTP service: 1, 4 and 16 concurrent clients on loopback, each making books one after
another while polling the status endpoint. Reports books per minute, p50/p99 latency of
GET /v1/books/{id} while generation runs, any 5xx, and how full the cross-book image batches were.

    python benchmarks/service_load.py                 # test backends that sleep like models (default)
    python benchmarks/service_load.py --delay 0 --books 3
    python benchmarks/service_load.py --mixed 120     # books, cut streams, single steps and pollers at
                                                      # once for 2 minutes (service_load_mixed.json)

Backends: the service's real code path (FastAPI, store, job pool, orchestrator, every real stage —
write with its checks, bind with WeasyPrint PDF + QR) with the fast test backends of
tests/server/testbackends.py standing in for the models. They sleep `--delay` seconds per unit of work
(a captioner or LLM call 1 unit, an illustrator call 4 + 1 per picture, up to 8 a call, an upscale or a narration 0.5), so
the load has the shape of a real one — model calls that hold a backend for a while — without
measuring the models themselves. Targets: no 5xx, status p99 < 100 ms, books/min at 4 clients >= 1.5x
one client; in the mixed run, no 5xx and status p99 < 100 ms. Writes benchmarks/results/service_load.json
and service_load.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import subprocess
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


def run_probed(server: Server, prober_token: str, book_id: str, hz: float, load, stats: dict):
    """Run the async `load` while a separate process polls `book_id`'s status; returns the seconds the
    load took, the prober's status latencies and the HTTP codes of both together."""
    ctx = multiprocessing.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    prober = ctx.Process(target=probe, args=(server.url, prober_token, book_id, hz, stop, out), daemon=True)
    prober.start()
    t0 = time.perf_counter()
    asyncio.run(load())
    elapsed = time.perf_counter() - t0
    stop.set()
    lat, probe_codes = out.get(timeout=60)
    prober.join(10)
    codes = {str(k): v for k, v in stats["codes"].items()}
    for k, v in probe_codes.items():
        codes[str(k)] = codes.get(str(k), 0) + v
    return elapsed, lat, codes


def status_latency(lat: list[float]) -> dict:
    """The prober's status-request count and p50 / p99 / max latency in ms."""
    return {"status_requests": len(lat),
            "status_p50_ms": round(1000 * percentile(lat, 0.50), 2) if lat else None,
            "status_p99_ms": round(1000 * percentile(lat, 0.99), 2) if lat else None,
            "status_max_ms": round(1000 * max(lat), 2) if lat else None}


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds the server process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_cost(server: Server, gets: int = 300) -> dict:
    """One client, one GET after another, nothing else sent: p50 latency of the status of a finished 4-page
    book and of a running one, and the server's CPU ms per GET of the finished book (its workers are idle
    then, so the CPU is the route's own: a figure that does not depend on what else runs on the machine)."""
    token = server.token("status-cost")
    with server.client(token) as http:
        def times(book_id: str, want: str) -> tuple[list[float], int]:
            lat, seen = [], 0
            while len(lat) < gets:
                t0 = time.perf_counter()
                r = http.get(f"/v1/books/{book_id}")
                if r.json()["status"] != want:
                    return lat, seen
                lat.append(time.perf_counter() - t0)
                seen += 1
            return lat, seen

        def new_book() -> str:
            return http.post("/v1/books", data={"pages": "4"},
                             files={"photo": ("p.jpg", photo_bytes(), "image/jpeg")}).json()["id"]

        running_id = new_book()
        while http.get(f"/v1/books/{running_id}").json()["status"] != "running":
            time.sleep(0.02)
        running, _ = times(running_id, "running")
        while http.get(f"/v1/books/{running_id}").json()["status"] not in ("done", "failed"):
            time.sleep(0.2)
        times(running_id, "done")  # warm: the manifest is parsed once
        idle0, t_idle = server_cpu_s(server.proc.pid), time.perf_counter()
        time.sleep(5)  # what the idle server burns on its own (lease and event threads) is not the route's
        idle_rate = (server_cpu_s(server.proc.pid) - idle0) / (time.perf_counter() - t_idle)
        cpu0, t0 = server_cpu_s(server.proc.pid), time.perf_counter()
        finished, _ = times(running_id, "done")
        cpu = server_cpu_s(server.proc.pid) - cpu0 - idle_rate * (time.perf_counter() - t0)
    return {"gets_finished": len(finished), "status_finished_p50_ms": round(1000 * percentile(finished, 0.5), 2),
            "status_finished_p99_ms": round(1000 * percentile(finished, 0.99), 2),
            "server_cpu_ms_per_finished_get": round(1000 * cpu / len(finished), 2),
            "server_idle_cpu_ms_per_s": round(1000 * idle_rate, 2),
            "gets_running": len(running),
            "status_running_p50_ms": round(1000 * percentile(running, 0.5), 2) if running else None,
            "status_running_p99_ms": round(1000 * percentile(running, 0.99), 2) if running else None}


def run_level(server: Server, clients: int, books_each: int, pages: int, poll: float, hz: float) -> dict:
    # the prober's own book, made before the load starts: its status costs what any book's does
    prober_token = server.token(f"probe-{clients}")
    with server.client(prober_token) as http:
        book_id = http.post("/v1/books", data={"pages": "1"},
                            files={"photo": ("p.jpg", photo_bytes(), "image/jpeg")}).json()["id"]
        while http.get(f"/v1/books/{book_id}").json()["status"] not in ("done", "failed"):
            time.sleep(0.2)
    before = httpx.get(f"{server.url}/healthz").json()["batching"]
    stats = {"codes": {}, "done": 0, "failed": 0, "poll_latency": []}
    tokens = [server.token(f"load-{clients}-{i}") for i in range(clients)]

    async def load():
        await asyncio.gather(*(client(server.url, tokens[i], books_each, pages, poll, 1000 * i, stats)
                               for i in range(clients)))

    elapsed, lat, codes = run_probed(server, prober_token, book_id, hz, load, stats)
    after = httpx.get(f"{server.url}/healthz").json()["batching"]
    calls, images = after["calls"] - before["calls"], after["images"] - before["images"]
    polls = stats["poll_latency"]
    row = {"clients": clients, "books": stats["done"], "failed": stats["failed"], "seconds": round(elapsed, 2),
           "books_per_min": round(stats["done"] / elapsed * 60, 2), **status_latency(lat),
           "client_polls": len(polls),
           "client_poll_p50_ms": round(1000 * percentile(polls, 0.50), 2) if polls else None,
           "client_poll_p99_ms": round(1000 * percentile(polls, 0.99), 2) if polls else None,
           "http_codes": codes, "5xx": sum(n for c, n in codes.items() if c.startswith("5")),
           "image_calls": calls, "images": images, "mean_image_batch": round(images / calls, 2) if calls else None}
    print(json.dumps(row), flush=True)
    return row


# ---------------------------------------------------------------------------------- mixed run

async def mixed_client(url: str, token: str, kind: str, until: float, stats: dict, seed: int) -> None:
    """One client of the mixed run, doing its `kind` of work again and again until `until`."""
    import random

    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        def count(r: httpx.Response) -> httpx.Response:
            stats["codes"][r.status_code] = stats["codes"].get(r.status_code, 0) + 1
            stats["by_kind"][kind] = stats["by_kind"].get(kind, 0) + 1
            if r.status_code >= 500:
                stats["errors"].append({"kind": kind, "status": r.status_code, "body": r.text[:300]})
            return r

        books: list[str] = []
        while time.monotonic() < until:
            try:
                if kind == "books":  # make a book, follow it by polling
                    r = count(await http.post("/v1/books", data={"pages": str(rng.randint(1, 3)), "seed": str(seed)},
                                              files={"photo": ("p.jpg", photo_bytes(colour=(seed % 255, 99, 160)),
                                                               "image/jpeg")}))
                    if r.status_code == 202:
                        books.append(r.json()["id"])
                        while time.monotonic() < until:
                            await asyncio.sleep(0.5)
                            body = count(await http.get(f"/v1/books/{books[-1]}")).json()
                            if body.get("status") in ("done", "failed"):
                                stats["books_" + body["status"]] += 1
                                break
                    else:
                        await asyncio.sleep(1.0)
                elif kind == "cut-streams":  # events streams and chat streams, cut after their first bytes
                    if not books:
                        r = count(await http.post("/v1/books", data={"pages": "2"},
                                                  files={"photo": ("p.jpg", photo_bytes(), "image/jpeg")}))
                        if r.status_code == 202:
                            books.append(r.json()["id"])
                    if books:
                        async with http.stream("GET", f"/v1/books/{books[-1]}/events") as r:
                            count(r)
                            async for _ in r.aiter_bytes():
                                break
                    body = {"messages": [{"role": "user", "content": "tell me a story"}], "stream": True}
                    async with http.stream("POST", "/v1/chat/completions", json=body) as r:
                        count(r)
                        async for _ in r.aiter_bytes():
                            break
                    stats["cut_streams"] += 2
                    await asyncio.sleep(0.2)
                elif kind == "single-steps":
                    step = rng.choice(("image", "caption", "speech", "chat"))
                    if step == "image":
                        count(await http.post("/v1/images/generations",
                                              json={"prompt": "a red kite", "size": "64x64", "seed": seed}))
                    elif step == "caption":
                        count(await http.post("/v1/captions", files={"image": ("p.jpg", photo_bytes(), "image/jpeg")}))
                    elif step == "speech":
                        count(await http.post("/v1/audio/speech", json={"input": "Once upon a time."}))
                    else:
                        count(await http.post("/v1/chat/completions",
                                              json={"messages": [{"role": "user", "content": "hello"}]}))
                    await asyncio.sleep(0.1)
                else:  # pollers: the book list and a book's status, as a web page open on it would
                    r = count(await http.get("/v1/books"))
                    ids = [b["id"] for b in r.json()] if r.status_code == 200 else []
                    if not ids:
                        r = count(await http.post("/v1/books", data={"pages": "1"},
                                                  files={"photo": ("p.jpg", photo_bytes(), "image/jpeg")}))
                    for book_id in ids[:3]:
                        count(await http.get(f"/v1/books/{book_id}"))
                    await asyncio.sleep(0.5)
            except httpx.HTTPError as e:
                stats["transport_errors"].append(f"{kind}: {type(e).__name__}: {e}"[:200])
                await asyncio.sleep(0.5)


def run_mixed(server: Server, seconds: float, hz: float, mix: dict[str, int]) -> dict:
    """Books, cut streams, single steps and pollers all at once for `seconds`; a separate process
    measures GET /v1/books/{id} latency throughout."""
    prober_token = server.token("probe-mixed")
    with server.client(prober_token) as http:
        book_id = http.post("/v1/books", data={"pages": "1"},
                            files={"photo": ("p.jpg", photo_bytes(), "image/jpeg")}).json()["id"]
    stats = {"codes": {}, "by_kind": {}, "errors": [], "transport_errors": [], "books_done": 0, "books_failed": 0,
             "cut_streams": 0}
    clients = [(kind, server.token(f"mixed-{kind}-{i}")) for kind, n in mix.items() for i in range(n)]
    until = time.monotonic() + seconds

    async def load():
        await asyncio.gather(*(mixed_client(server.url, token, kind, until, stats, 100 + i)
                               for i, (kind, token) in enumerate(clients)))

    elapsed, lat, codes = run_probed(server, prober_token, book_id, hz, load, stats)
    health = httpx.get(f"{server.url}/healthz", timeout=30).json()
    row = {"seconds": round(elapsed, 1), "clients": dict(mix), "requests": sum(codes.values()),
           "requests_by_kind": stats["by_kind"], "http_codes": codes,
           "5xx": sum(n for c, n in codes.items() if c.startswith("5")), "server_errors": stats["errors"][:20],
           "transport_errors": stats["transport_errors"][:20], "books_done": stats["books_done"],
           "books_failed": stats["books_failed"], "streams_cut": stats["cut_streams"], **status_latency(lat),
           "server_alive_after": bool(health.get("ok"))}
    print(json.dumps({k: v for k, v in row.items() if k not in ("server_errors", "transport_errors")}), flush=True)
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
    ap.add_argument("--mixed", type=float, default=0, metavar="SECONDS",
                    help="instead of the client levels: the mixed run (books, cut streams, single steps, pollers) "
                         "for this many seconds; writes service_load_mixed.json")
    ap.add_argument("--mix", default="books=4,cut-streams=2,single-steps=3,pollers=4",
                    help="clients of each kind in the mixed run")
    args = ap.parse_args()
    if args.mixed:
        return main_mixed(args)

    env = {"TALELOOM_TEST_DELAY": str(args.delay), "TALELOOM_WORKERS": str(args.workers),
           "TALELOOM_MAX_QUEUE_TOTAL": "64", "TALELOOM_MAX_QUEUE_PER_USER": "4"}
    levels = []
    load_at_start = [round(x, 2) for x in os.getloadavg()]  # other work on the machine skews every figure
    uptime_at_start = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="taleloom-load-") as tmp:
        server = Server(Path(tmp), env=env).start()
        try:
            run_level(server, 1, 1, args.pages, args.poll, args.hz)  # warm-up: the first book loads fonts
            single = status_cost(server)
            print(json.dumps({"status_cost": single}), flush=True)
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
                    "cpus": os.cpu_count(), "load_average_at_start": load_at_start,
                    "uptime_at_start": uptime_at_start,
                    "uptime_at_end": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()},
        "settings": {"workers": args.workers, "pages": args.pages, "delay_s": args.delay, "poll_s": args.poll,
                     "probe_hz": args.hz,
                     "backends": "tests/server/testbackends.py (captioner, llm, illustrator, upscaler, narrator = "
                                 "test); real FastAPI/uvicorn, SQLite store, job pool, orchestrator, write stage, "
                                 "WeasyPrint bind", "concurrency": "captioner=1 llm=1 illustrator=1 (batched) "
                                 "upscaler=1 narrator=2"},
        "status_cost_one_client": single,
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


def main_mixed(args) -> None:
    mix = {k: int(v) for k, v in (p.split("=") for p in args.mix.split(","))}
    env = {"TALELOOM_TEST_DELAY": str(args.delay), "TALELOOM_WORKERS": str(args.workers),
           "TALELOOM_MAX_QUEUE_TOTAL": "64", "TALELOOM_MAX_QUEUE_PER_USER": "4"}
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    uptime_at_start = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="taleloom-mixed-") as tmp:
        server = Server(Path(tmp), env=env).start()
        try:
            row = run_mixed(server, args.mixed, args.hz, mix)
        finally:
            server.stop()
    result = {"benchmark": "service_load_mixed",
              "machine": {"platform": platform.platform(), "python": platform.python_version(),
                          "cpus": os.cpu_count(), "load_average_at_start": load_at_start,
                          "uptime_at_start": uptime_at_start,
                          "uptime_at_end": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()},
              "settings": {"workers": args.workers, "delay_s": args.delay, "probe_hz": args.hz, "mix": mix,
                           "backends": "tests/server/testbackends.py (all five roles = test)"},
              **row,
              "targets": {"no_5xx": row["5xx"] == 0, "status_p99_under_100ms": (row["status_p99_ms"] or 0) < 100,
                          "server_alive": row["server_alive_after"]}}
    out = args.out.with_name("service_load_mixed.json") if args.out.name == "service_load.json" else args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["targets"]))


if __name__ == "__main__":
    main()
