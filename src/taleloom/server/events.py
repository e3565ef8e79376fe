"""Fan-out of pipeline events to server-sent-event streams.

Job workers (threads) publish; each SSE connection (a coroutine on the event loop) owns one
bounded asyncio queue. Publishing never blocks a worker: a stream that falls far behind loses
progress events, never the stage boundaries, because the reader re-reads the book's state.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from dataclasses import dataclass

QUEUE_SIZE = 1000


@dataclass(frozen=True)
class Message:
    id: int  # increasing over the server's life; sent as the SSE `id:` field
    kind: str  # SSE `event:` — started|progress|finished|failed|done (pipeline), snapshot|status (service)
    data: dict

    def encode(self) -> bytes:
        return f"id: {self.id}\nevent: {self.kind}\ndata: {json.dumps(self.data, ensure_ascii=False)}\n\n".encode()


class EventHub:
    def __init__(self) -> None:
        self._subs: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

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

    def message(self, kind: str, data: dict) -> Message:
        return Message(next(self._ids), kind, data)

    def publish(self, book_id: str, kind: str, data: dict) -> None:
        """Thread-safe; returns at once."""
        msg = self.message(kind, data)
        with self._lock:
            subs = list(self._subs.get(book_id, ()))
        for loop, queue in subs:
            try:
                loop.call_soon_threadsafe(_offer, queue, msg)
            except RuntimeError:  # that loop has closed (server shutting down)
                pass


def _offer(queue: asyncio.Queue, msg: Message) -> None:
    try:
        queue.put_nowait(msg)
    except asyncio.QueueFull:
        pass
