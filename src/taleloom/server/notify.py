"""Events between the processes of the service through PostgreSQL `LISTEN/NOTIFY`.

Every process (API or worker) keeps two connections of its own: one that sends (`pg_notify`, from a
thread fed by a bounded queue, so a job worker never waits on the database to publish) and one that
listens and hands each event to the local hub. A process skips the events it sent itself (the hub
delivered them already). Notifications are not stored: a process that was away misses them, which is
why an events stream also re-reads the book's state from the store at every keep-alive. A payload is
at most 8,000 bytes (PostgreSQL's limit); a larger event is sent with only its small fields.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable

log = logging.getLogger("taleloom.notify")
CHANNEL = "taleloom_events"
MAX_PAYLOAD = 7900  # bytes; PostgreSQL refuses a NOTIFY payload of 8,000 or more
SEND_QUEUE = 10_000  # events waiting to be sent; past it progress events are dropped (never status ones)
RETRY_S = 1.0  # wait before reconnecting after the database went away


def libpq_url(url: str) -> str:
    """psycopg's own URL from a SQLAlchemy one (postgresql+psycopg://… → postgresql://…)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def encode(origin: str, book_id: str, kind: str, data: dict) -> str:
    """The NOTIFY payload: the whole event, or its small fields when the whole is over the limit."""
    payload = json.dumps({"o": origin, "b": book_id, "k": kind, "d": data}, ensure_ascii=False)
    if len(payload.encode()) <= MAX_PAYLOAD:
        return payload
    small = {k: v for k, v in data.items() if isinstance(v, (int, float, bool)) or
             (isinstance(v, str) and len(v) <= 200) or v is None}
    return json.dumps({"o": origin, "b": book_id, "k": kind, "d": small}, ensure_ascii=False)


class PgBus:
    """Sends this process's events to every process on the same database and delivers theirs here."""

    def __init__(self, url: str):
        self.url = libpq_url(url)
        self.origin = secrets.token_hex(8)
        self.deliver: Callable[[str, str, dict], None] = lambda book_id, kind, data: None  # set by the hub
        self._out: queue.Queue = queue.Queue(SEND_QUEUE)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.listening = threading.Event()  # set while the LISTEN connection is up
        self.connects = 0  # LISTEN connections opened so far (more than one: the database went away and came back)

    def start(self) -> None:
        for target, name in ((self._send_loop, "notify-send"), (self._listen_loop, "notify-listen")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 2.0) -> None:
        """Send what is queued (for up to `timeout`), then close both connections."""
        self._stop.set()
        try:
            self._out.put_nowait(None)
        except queue.Full:
            pass
        for t in self._threads:
            t.join(timeout)

    def send(self, book_id: str, kind: str, data: dict) -> None:
        """Returns at once unless the queue is full (the database is away): then a progress event is
        dropped, and a status or stage event waits up to 5 s for room."""
        item = (book_id, kind, data)
        try:
            self._out.put_nowait(item)
        except queue.Full:
            try:
                if kind in ("status", "started", "finished", "failed", "done"):
                    self._out.put(item, timeout=5.0)
                    return
            except queue.Full:
                pass
            log.warning("event queue full (database away?): dropped a %s event of book %s", kind, book_id)

    # threads ----------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        import psycopg

        conn = None
        item = None
        while True:
            if item is None:
                try:
                    item = self._out.get(timeout=0.5)
                except queue.Empty:
                    if self._stop.is_set():
                        break
                    continue
                if item is None:  # stop() asked: send what is left, then close
                    if self._out.empty():
                        break
                    continue
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.url, autocommit=True, application_name="taleloom-notify")
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, encode(self.origin, *item)))
                item = None
            except Exception as e:  # the database is away: keep the event, retry after a pause
                log.warning("could not send an event (%s); retrying", e)
                if conn is not None:
                    conn.close()
                conn = None
                if self._stop.wait(RETRY_S):
                    break
        if conn is not None:
            conn.close()

    def _listen_loop(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, application_name="taleloom-listen") as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connects += 1
                    self.listening.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._receive(note.payload)
            except Exception as e:
                self.listening.clear()
                if self._stop.is_set():
                    break
                log.warning("lost the events connection (%s); reconnecting", e)
                time.sleep(RETRY_S)
        self.listening.clear()

    def _receive(self, payload: str) -> None:
        try:
            msg = json.loads(payload)
        except ValueError:
            return
        if msg.get("o") == self.origin:  # ours: delivered locally when it was published
            return
        self.deliver(msg.get("b", ""), msg.get("k", "progress"), msg.get("d") or {})
