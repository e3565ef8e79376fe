"""Events between processes through PostgreSQL LISTEN/NOTIFY (server/notify.py), on a real server on
loopback: every hub on the database hears every event once, an event over NOTIFY's size limit still
arrives (its small fields), and a hub whose connection the database dropped reconnects and hears again.
Also the store's cross-process mutex (an advisory lock) that keeps the queue limits whole."""

from __future__ import annotations

import threading
import time

import psycopg

from taleloom.server.events import EventHub
from taleloom.server.notify import PgBus
from taleloom.server.store import Store, database_url


class Heard:
    """A hub watcher that records what it hears and lets a test wait for it."""

    def __init__(self):
        self.events: list[tuple[str, str, dict]] = []
        self.cond = threading.Condition()

    def __call__(self, book_id: str, kind: str, data: dict) -> None:
        with self.cond:
            self.events.append((book_id, kind, data))
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 30.0) -> list:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.events) >= n, timeout), self.events
            return list(self.events)


def hub(url: str) -> tuple[EventHub, Heard]:
    h = EventHub(PgBus(database_url(url, None)))
    heard = Heard()
    h.watch(heard)
    h.start()
    assert h.bus.listening.wait(30)
    return h, heard


def test_every_process_hears_every_event_once(postgres):
    url = postgres.new_database()
    (a, heard_a), (b, heard_b) = hub(url), hub(url)
    try:
        a.publish("book1", "started", {"stage": "see", "kind": "started"})
        b.publish("book2", "status", {"book_id": "book2", "status": "queued"})
        a.publish("book1", "progress", {"stage": "illustrate", "kind": "progress", "message": "x" * 20_000})
        got_b = heard_b.wait(3)
        got_a = heard_a.wait(3)
        time.sleep(0.5)  # anything delivered twice would show up now
        want = sorted([("book1", "started"), ("book2", "status"), ("book1", "progress")])
        assert sorted(e[:2] for e in heard_a.events) == want and sorted(e[:2] for e in heard_b.events) == want
        assert len(heard_a.events) == 3 and len(heard_b.events) == 3
        big = next(d for book, kind, d in got_b if kind == "progress")
        assert big == {"stage": "illustrate", "kind": "progress"}  # over the 8,000-byte limit: the small fields
        assert next(d for book, kind, d in got_a if kind == "progress")["message"] == "x" * 20_000  # local: whole
        assert b.current["book1"]["stage"] == "illustrate"  # the status route of process b knows the stage
    finally:
        a.stop()
        b.stop()


def test_a_dropped_connection_is_reopened(postgres):
    url = postgres.new_database()
    (a, _), (b, heard_b) = hub(url), hub(url)
    try:
        with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name IN ('taleloom-listen', 'taleloom-notify')")
        deadline = time.monotonic() + 30
        while b.bus.connects < 2 and time.monotonic() < deadline:  # b notices its connection went, opens another
            time.sleep(0.05)
        assert b.bus.connects == 2 and b.bus.listening.is_set()
        a.publish("book3", "status", {"book_id": "book3", "status": "done"})  # a's sender reconnects too
        assert heard_b.wait(1)[-1][:2] == ("book3", "status")
    finally:
        a.stop()
        b.stop()


def test_exclusive_admits_one_holder_across_processes(postgres):
    """The queue-limit check and the insert it allows are one step for every API process on the database."""
    url = database_url(postgres.new_database(), None)
    one, two = Store(url), Store(url)  # two processes' stores: separate engines and connections
    order: list[str] = []
    holding, entered = threading.Event(), threading.Event()

    def first():
        with one.exclusive("submit"):
            order.append("one in")
            holding.set()
            time.sleep(0.5)  # the other store tries meanwhile
            order.append("one out")

    def second():
        holding.wait(30)
        with two.exclusive("submit"):
            order.append("two in")
            entered.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert order == ["one in", "one out", "two in"]
    with two.exclusive("other"), one.exclusive("submit"):  # another name, and a released one: no waiting
        pass
    one.close()
    two.close()
