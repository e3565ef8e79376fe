"""The stateless service (issue 13, part 2), with the real parts on loopback: one PostgreSQL, two API
processes (`taleloom serve --workers 0`) and two `taleloom worker` processes. Any API process takes
books and streams the events of books a worker in another process makes; a book deleted on one API
process stops in its worker and its stream ends on the other; `kill -9` of a worker and of an API
process mid-book loses nothing: every book finishes once, with every file there."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest
from serverkit import (
    Server,
    Worker,
    free_port,
    iter_events,
    make_book,
    photo_bytes,
    taleloom_cmd,
    wait_status,
)
from sqlalchemy import select

from taleloom.server.store import Job, Store, database_url

ENV = {"TALELOOM_TEST_DELAY": "0.1", "TALELOOM_WORKERS": "1", "TALELOOM_JOB_LEASE_SECONDS": "3",
       "TALELOOM_MAX_QUEUE_PER_USER": "20"}


class Cluster:
    """API processes and workers on one database and one data folder; everything stopped at the end."""

    def __init__(self, data_dir, env: dict):
        self.data_dir, self.env = data_dir, env
        self.apis: list[Server] = []
        self.workers: list[Worker] = []

    def api(self) -> Server:
        srv = Server(self.data_dir, env=self.env, args=("--workers", "0")).start()
        self.apis.append(srv)
        return srv

    def worker(self) -> Worker:
        w = Worker(self.data_dir, env=self.env).start()
        self.workers.append(w)
        return w

    def jobs(self) -> list[Job]:
        store = Store(database_url(self.env["TALELOOM_DATABASE_URL"], self.data_dir))
        try:
            with store.session() as s:
                return list(s.scalars(select(Job).order_by(Job.id)))
        finally:
            store.close()

    def stop(self) -> None:
        for p in self.apis + self.workers:
            p.stop()


@pytest.fixture
def cluster(tmp_path, postgres):
    c = Cluster(tmp_path, {**ENV, "TALELOOM_DATABASE_URL": postgres.new_database()})
    yield c
    c.stop()


def follow(client, book_id: str, into: list) -> threading.Thread:
    """Read the book's events stream on a thread, appending (event, data) pairs as they arrive."""

    def read():
        for pair in iter_events(client, book_id, timeout=180):  # appended as they arrive
            into.append(pair)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def wait_for(what, timeout: float = 60.0, every: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"still waiting after {timeout} s")


def owner_pid(job: Job) -> int | None:
    return int(job.lease_owner.split(":")[1]) if job.lease_owner else None


def assert_whole(client, book_id: str) -> None:
    """0 files lost: every file the manifest names downloads, through whichever API process asks."""
    manifest = client.get(f"/v1/books/{book_id}/manifest.json").json()
    assert all(st["status"] in ("done", "skipped") for st in manifest["stages"].values()), manifest["stages"]
    urls = ["book.pdf", "book.html", "qr.png"]
    for page in manifest["pages"]:
        urls.append(f"pages/{page['index']}.png")
        if page.get("audio"):
            urls.append(f"audio/{page['index']}.wav")
    for url in urls:
        r = client.get(f"/v1/books/{book_id}/{url}")
        assert r.status_code == 200 and len(r.content) > 0, (url, r.status_code, r.text[:200])


def test_api_and_worker_processes_survive_kill_9_and_make_every_book_once(cluster):
    api_a, api_b = cluster.api(), cluster.api()
    token = api_a.token("ann")
    ca, cb = api_a.client(token), api_b.client(token)
    health = cb.get("/healthz").json()
    assert health["workers"] == 0 and health["events"] == "postgresql", health
    doomed = make_book(ca, pages=8, seed=99)["id"]  # the oldest job, and a long one: the first a worker takes
    books = [make_book(ca if i % 2 else cb, pages=2, photo=photo_bytes(colour=(40 * i, 90, 160)), seed=i)
             for i in range(4)]
    ids = [b["id"] for b in books]

    # streams on API B of books that worker processes make hear every stage as it happens
    streamed: list = []
    reader = follow(cb, ids[0], streamed)
    doomed_events: list = []
    doomed_reader = follow(cb, doomed, doomed_events)
    wait_for(lambda: streamed and doomed_events)  # the snapshots: the streams are open before any worker exists
    w1 = cluster.worker()

    # a book deleted on API A while a worker makes it: the worker stops and removes it, B's stream ends
    wait_for(lambda: cb.get(f"/v1/books/{doomed}").json()["status"] == "running")
    assert ca.delete(f"/v1/books/{doomed}").status_code == 204
    doomed_reader.join(60)
    assert not doomed_reader.is_alive(), "the stream on the other API process is still open"
    assert doomed_events[-1] == ("status", {"book_id": doomed, "status": "deleted"})
    w2 = cluster.worker()

    # kill -9 the worker running a book, mid-book, and the API process that took half the books
    running = wait_for(lambda: [j for j in cluster.jobs() if j.status == "running" and owner_pid(j)])
    victim = w1 if owner_pid(running[0]) == w1.proc.pid else w2
    held = {j.id for j in cluster.jobs() if j.status == "running" and owner_pid(j) == victim.proc.pid}
    victim.kill9()
    api_a.kill9()

    for book_id in ids:
        assert wait_status(cb, book_id, timeout=180)["status"] == "done"
    reader.join(60)
    assert not reader.is_alive(), "the events stream did not end with its book"

    jobs = cluster.jobs()
    assert sorted(j.book_id for j in jobs) == sorted(ids), "one job per book (the deleted one's is gone)"
    assert all(j.status == "done" for j in jobs), [(j.id, j.status, j.error) for j in jobs]
    survivor = w2 if victim is w1 else w1
    for j in jobs:  # a claim bumps `attempts`: only the killed worker's books were started twice
        assert j.attempts == (2 if j.id in held else 1), (j.id, j.attempts, held)
        assert owner_pid(j) in (survivor.proc.pid, victim.proc.pid)
        if j.id in held:
            assert owner_pid(j) == survivor.proc.pid
    for book_id in ids:
        assert_whole(cb, book_id)
    assert not (cluster.data_dir / "books" / doomed).exists()

    kinds = [k for k, _ in streamed]
    assert kinds[0] == "snapshot" and streamed[-1][1].get("status") == "done", kinds
    stages = {d.get("stage") for k, d in streamed if k == "started"}
    assert {"see", "write", "illustrate", "bind"} <= stages, f"stage events from the worker did not reach API B: {kinds}"


def test_split_processes_need_postgresql(tmp_path):
    """SQLite is one process: a worker, or an API process without workers, refuses to start and says why;
    so does a worker whose PostgreSQL cannot be reached."""
    down = f"postgresql://taleloom:secret@127.0.0.1:{free_port()}/taleloom"
    for args, env, says in ((["worker"], {}, "needs PostgreSQL"), (["serve", "--workers", "0"], {}, "needs PostgreSQL"),
                            (["worker"], {"TALELOOM_DATABASE_URL": down}, "cannot open the database")):
        out = subprocess.run(taleloom_cmd() + args, capture_output=True, text=True, timeout=60,
                             env={**Server(tmp_path).env, **env}, cwd=tmp_path)
        assert out.returncode == 2, out
        assert says in out.stderr and "TALELOOM_DATABASE_URL" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and "secret" not in out.stderr
