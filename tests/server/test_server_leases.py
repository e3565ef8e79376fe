"""Jobs are leased in the store (issue 10, row 10): two real servers on one data folder (SQLite) or one
PostgreSQL never run the same book at once; a server killed mid-book has its job taken over by the
other once the lease runs out; a server that cannot bind its port claims nothing."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from serverkit import Server, make_book, photo_bytes, read_events, wait_status

from taleloom.server.store import Job, Store, database_url

ENV = {"TALELOOM_TEST_DELAY": "0.15", "TALELOOM_WORKERS": "2", "TALELOOM_JOB_LEASE_SECONDS": "3",
       "TALELOOM_MAX_QUEUE_PER_USER": "10"}


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request):
    if request.param == "sqlite":
        return dict(ENV)
    return {**ENV, "TALELOOM_DATABASE_URL": request.getfixturevalue("postgres").new_database()}


def jobs_of(srv: Server) -> list[Job]:
    store = Store(database_url(srv.env.get("TALELOOM_DATABASE_URL"), srv.data_dir))
    try:
        with store.session() as s:
            from sqlalchemy import select

            return list(s.scalars(select(Job).order_by(Job.id)))
    finally:
        store.close()


def running_somewhere(srv: Server) -> bool:
    return any(j.status == "running" for j in jobs_of(srv))


def test_two_servers_on_one_store_never_run_a_book_twice(tmp_path, env):
    a = Server(tmp_path, env=env).start()
    b = None
    try:
        token = a.token("ann")
        ca = a.client(token)
        books = [make_book(ca, pages=2, photo=photo_bytes(colour=(30 * i, 90, 160)), seed=i) for i in range(4)]
        deadline = time.monotonic() + 30
        while not running_somewhere(a) and time.monotonic() < deadline:
            time.sleep(0.05)
        b = Server(tmp_path, env=env).start()  # starts while a's jobs run: must not take them
        cb = b.client(token)
        books += [make_book(cb, pages=2, photo=photo_bytes(colour=(90, 30 * i, 160)), seed=10 + i) for i in range(2)]
        for book in books:
            assert wait_status(cb, book["id"], timeout=120)["status"] == "done"
        if "TALELOOM_DATABASE_URL" not in env:  # SQLite is one process: the second one says so
            assert f"another Taleloom process (pid {a.proc.pid})" in b.log.read_text()
        jobs = jobs_of(a)
        assert len(jobs) == 6 and all(j.status == "done" for j in jobs)
        assert [j.attempts for j in jobs] == [1] * 6, [(j.id, j.attempts, j.lease_owner) for j in jobs]
        pids = {j.lease_owner.split(":")[1] for j in jobs if j.lease_owner}
        assert not pids or pids <= {str(a.proc.pid), str(b.proc.pid)}

        # a server killed mid-book: the other takes its job once the lease has run out, and finishes it
        book = make_book(ca, pages=2, seed=99)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            job = jobs_of(a)[-1]
            if job.status == "running":
                break
            time.sleep(0.02)
        owner_pid = int(job.lease_owner.split(":")[1])
        (a if owner_pid == a.proc.pid else b).kill9()
        survivor = b if owner_pid == a.proc.pid else a
        body = wait_status(survivor.client(token), book["id"], timeout=120)
        assert body["status"] == "done", body
        last = jobs_of(survivor)[-1]
        assert last.attempts == 2 and last.lease_owner.split(":")[1] == str(survivor.proc.pid)
    finally:
        a.stop()
        if b is not None:
            b.stop()


def test_server_that_cannot_bind_claims_nothing(tmp_path):
    first = Server(tmp_path, env={"TALELOOM_WORKERS": "1"})
    store = Store(database_url(None, tmp_path))
    _, user = store.create_token("ann")
    store.add_book("b-queued", user.id, pages=1)
    store.close()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", first.port))
        busy.listen()
        with pytest.raises(RuntimeError, match="exited with 1"):
            first.start(timeout=30)
    assert "cannot listen" in first.log.read_text()
    [job] = jobs_of(first)
    assert job.status == "queued" and job.attempts == 0 and job.lease_owner is None


def test_events_stream_of_a_deleted_book_ends(tmp_path):
    srv = Server(tmp_path, env={"TALELOOM_TEST_DELAY": "0.5", "TALELOOM_WORKERS": "1"}).start()
    try:
        client = srv.client(srv.token())
        book = make_book(client, pages=2)
        events: list = []
        reader = threading.Thread(target=lambda: events.extend(read_events(client, book["id"], timeout=60)))
        reader.start()
        time.sleep(1.0)
        assert client.delete(f"/v1/books/{book['id']}").status_code == 204
        reader.join(60)
        assert not reader.is_alive(), "the events stream of a deleted book is still open"
        assert events[-1] == ("status", {"book_id": book["id"], "status": "deleted"})
        deadline = time.monotonic() + 30  # the worker stops and removes the folder
        while (srv.data_dir / "books" / book["id"]).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (srv.data_dir / "books" / book["id"]).exists()
    finally:
        srv.stop()
