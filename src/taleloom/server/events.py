"""Fan-out of pipeline events to server-sent-event streams, in this process and, through the store,
in every other process of the service.

Job workers (threads) publish; each SSE connection (a coroutine on the event loop) owns one
bounded asyncio queue. Publishing never blocks a worker: a stream that falls far behind loses
progress events, never the stage boundaries, because the reader re-reads the book's state.

With PostgreSQL the hub also sends every event through the database (`LISTEN/NOTIFY`, see
notify.py), so an API process streams the events of a book that a worker in another process (or
on another machine) makes, and workers hear at once of a new job or a deleted book. With SQLite
there is no such channel: the service is one process (`taleloom serve` with its workers inside).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

QUEUE_SIZE = 1000
ENDED = ("done", "failed", "deleted", "cancelled")  # book statuses after which no pipeline event follows
Watcher = Callable[[str, str, dict], None]  # (book id, kind, data), called on the publishing or listening thread

log = logging.getLogger("taleloom.events")


@dataclass(frozen=True)
class Message:
    id: int  # increasing over this process's life; sent as the SSE `id:` field
    kind: str  # SSE `event:` — started|progress|finished|failed|done (pipeline), snapshot|status (service)
    data: dict

    def encode(self) -> bytes:
        return f"id: {self.id}\nevent: {self.kind}\ndata: {json.dumps(self.data, ensure_ascii=False)}\n\n".encode()


class EventHub:
    """Subscriptions of this process's streams, the last pipeline event of each running book (for the
    status route), and watchers (the job workers, which act on new jobs and deletions)."""

    def __init__(self, bus: Any = None) -> None:
        self._subs: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._watchers: list[Watcher] = []
        self.current: dict[str, dict] = {}  # book id → last pipeline event (stage, progress) while it runs
        self.bus = bus  # notify.PgBus, or None: events stay in this process
        if bus is not None:
            bus.deliver = self._deliver

    @classmethod
    def for_store(cls, store: Any) -> EventHub:
        """A hub that reaches every process on `store`'s PostgreSQL, or this process only on SQLite."""
        if getattr(store, "postgres", False):
            from taleloom.server.notify import PgBus

            return cls(PgBus(store.url))
        return cls()

    @property
    def shared(self) -> bool:
        """True when events reach the other processes of the service."""
        return self.bus is not None

    def start(self) -> None:
        if self.bus is not None:
            self.bus.start()

    def stop(self) -> None:
        if self.bus is not None:
            self.bus.stop()

    def subscribe(self, book_id: str) -> asyncio.Queue:
        """Call on the event loop; pair with `unsubscribe` in a finally."""
        queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        with self._lock:
            self._subs.setdefault(book_id, set()).add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, book_id: str, queue: asyncio.Queue) -> None:
        with self._lock:
            subs = self._subs.get(book_id, set())
            subs.discard(next((s for s in subs if s[1] is queue), None))  # type: ignore[arg-type]
            if not subs:
                self._subs.pop(book_id, None)

    def watch(self, watcher: Watcher) -> None:
        """Call `watcher(book_id, kind, data)` for every event, from this process or another one."""
        self._watchers.append(watcher)

    def message(self, kind: str, data: dict) -> Message:
        return Message(next(self._ids), kind, data)

    def publish(self, book_id: str, kind: str, data: dict) -> None:
        """Thread-safe; returns at once. Delivered here now, and to the other processes by the bus."""
        self._deliver(book_id, kind, data)
        if self.bus is not None:
            self.bus.send(book_id, kind, data)

    def _deliver(self, book_id: str, kind: str, data: dict) -> None:
        if kind == "status":
            if data.get("status") in ENDED or data.get("status") == "queued":
                self.current.pop(book_id, None)
        elif kind != "snapshot":
            self.current[book_id] = data
        msg = self.message(kind, data)
        with self._lock:
            subs = list(self._subs.get(book_id, ()))
        for loop, queue in subs:
            try:
                loop.call_soon_threadsafe(_offer, queue, msg)
            except RuntimeError:  # that loop has closed (server shutting down)
                pass
        for watcher in self._watchers:
            try:
                watcher(book_id, kind, data)
            except Exception:  # a watcher's bug must not stop the events of every book
                log.exception("event watcher failed on %s %s", kind, book_id)


def _offer(queue: asyncio.Queue, msg: Message) -> None:
    try:
        queue.put_nowait(msg)
    except asyncio.QueueFull:
        pass
