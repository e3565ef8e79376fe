"""The store, the same tests on SQLite and on a real PostgreSQL server started on loopback; plus a
whole book made by a server whose store is PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
from serverkit import Server, make_book, read_events, wait_status
from sqlalchemy import select, text

from taleloom.server.store import Store, Token, database_url, hash_token


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = database_url(None, tmp_path)
    else:
        url = database_url(request.getfixturevalue("postgres").new_database(), tmp_path)
    s = Store(url)
    yield s
    s.close()


def test_database_url():
    assert database_url("postgresql://u@h/db", None) == "postgresql+psycopg://u@h/db"
    assert database_url("postgres://u@h/db", None) == "postgresql+psycopg://u@h/db"


def test_tokens_are_stored_as_hashes(store):
    token, user = store.create_token("ann")
    assert store.user_for_token(token).id == user.id
    assert store.user_for_token(token + "x") is None
    with store.session() as s:
        rows = list(s.scalars(select(Token)))
    assert [r.hash for r in rows] == [hash_token(token)]
    with store.engine.connect() as conn:  # the token itself is nowhere in the table
        dump = " ".join(str(v) for row in conn.execute(text("SELECT * FROM tokens")) for v in row)
    assert token not in dump
    second, same = store.create_token("ann")
    assert same.id == user.id and second != token  # same name, same user, new token
    assert store.revoke_token(token) == 1
    assert store.user_for_token(token) is None and store.user_for_token(second).id == user.id


def test_books_jobs_and_queue_counts(store):
    _, ann = store.create_token("ann")
    _, ben = store.create_token("ben")
    job = store.add_book("b1", ann.id, pages=3, share_id="s1")
    store.add_book("b2", ben.id, pages=1)
    assert store.get_book("b1", ann.id).status == "queued"
    assert store.get_book("b1", ben.id) is None  # not yours
    assert store.count_active(ann.id) == 1 and store.count_active() == 2
    claimed = store.claim_next("w1", lease_s=30)
    assert claimed.id == job.id and claimed.status == "running" and claimed.attempts == 1
    assert claimed.lease_owner == "w1"
    b2 = store.claim_next("w2", lease_s=30)  # the other book's job; b1's is leased
    assert b2.book_id == "b2" and store.claim_next("w2", lease_s=30) is None
    assert store.finish_job(job.id, "done", owner="w1")
    assert store.count_active(ann.id) == 0
    edit = store.add_job("b1", ann.id, "redraw", {"page": 2})
    assert store.get_book("b1").status == "queued" and store.active_job("b1").params == {"page": 2}
    assert store.claim_next("w1", lease_s=30).id == edit.id
    assert store.get_job(edit.id).status == "running"
    store.cancel_jobs("b1")
    assert store.get_job(edit.id).status == "cancelled"
    assert [b.id for b in store.list_books(ann.id)] == ["b1"]
    store.delete_book("b1")
    assert store.get_book("b1") is None and store.get_share("s1") is None


def test_shares(store):
    _, ann = store.create_token("ann")
    store.add_book("b1", ann.id, pages=1, share_id="s1")
    store.add_share("b1", "s2")
    assert store.first_share("b1").id == "s1"
    assert store.revoke_share("b1", "s1") and not store.revoke_share("b1", "s1")
    assert not store.revoke_share("other-book", "s2")
    assert store.get_share("s1").revoked and store.first_share("b1").id == "s2"
    assert [s.id for s in store.shares("b1")] == ["s1", "s2"]


def test_one_claim_wins_under_contention(store):
    _, ann = store.create_token("ann")
    job = store.add_book("b1", ann.id, pages=1)
    wins = []

    def claim(i):
        got = store.claim_next(f"w{i}", lease_s=30)
        if got is not None:
            wins.append(got.id)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins == [job.id]


def test_leases_run_out_are_renewed_and_lost(store):
    """A job is taken from its owner only when the lease ran out; a renewed lease keeps it; an owner
    that lost its job (taken over, or cancelled) cannot finish it."""
    _, ann = store.create_token("ann")
    job = store.add_book("b1", ann.id, pages=1)
    assert store.claim_next("a", lease_s=0.5).id == job.id
    assert store.renew_leases("a", [job.id], lease_s=30) == {job.id}
    time.sleep(0.6)
    assert store.claim_next("b", lease_s=30) is None  # renewed: still a's
    store.expire_leases(["a"])  # a is known dead
    taken = store.claim_next("b", lease_s=30)
    assert taken.id == job.id and taken.attempts == 2 and taken.lease_owner == "b"
    assert store.renew_leases("a", [job.id], lease_s=30) == set()  # a has lost it
    assert not store.finish_job(job.id, "done", owner="a")
    store.add_job("b1", ann.id, "redraw", {"page": 1})  # a second job of a book under a live lease waits
    assert store.claim_next("c", lease_s=30) is None
    store.cancel_jobs("b1")
    assert store.renew_leases("b", [job.id], lease_s=30) == set()
    assert store.get_job(job.id).status == "cancelled"


def test_database_from_before_leases_gets_the_columns(tmp_path):
    import sqlite3

    db = tmp_path / "taleloom.db"
    with sqlite3.connect(db) as conn:  # the jobs table as an older version made it
        conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, book_id VARCHAR(64), user_id VARCHAR(32), "
                     "kind VARCHAR(16), params JSON, status VARCHAR(16), attempts INTEGER, error JSON, "
                     "created VARCHAR(40), started VARCHAR(40), finished VARCHAR(40))")
        conn.execute("INSERT INTO jobs VALUES (1, 'b1', 'u', 'make', '{}', 'queued', 0, NULL, 'x', NULL, NULL)")
    store = Store(database_url(None, tmp_path))
    try:
        assert store.claim_next("w", lease_s=30).id == 1
    finally:
        store.close()


def test_server_on_postgresql_makes_a_book(postgres, tmp_path):
    srv = Server(tmp_path, env={"TALELOOM_DATABASE_URL": postgres.new_database()}).start()
    try:
        client = srv.client(srv.token("pg-user"))
        book = make_book(client, pages=2)
        read_events(client, book["id"])
        body = wait_status(client, book["id"])
        assert body["status"] == "done" and len(body["pages"]) == 2
        assert client.get(body["links"]["pdf"]).status_code == 200
        assert not (tmp_path / "taleloom.db").exists()  # the store really is PostgreSQL
    finally:
        srv.stop()
