"""Running a single-step call so that it ends when its client leaves or its deadline passes.

`run_step` runs blocking backend work in the thread pool inside a `deadline.Scope` and watches the
client meanwhile: a disconnect cancels the scope (the backend stops at its next token or step), the
deadline answers 504 at once. `stream_in_thread` does the same for a streamed answer, and fixes how
streams held the LLM: the backend's generator is created, iterated and closed in ONE dedicated
thread. Before, `iterate_in_threadpool` resumed it on whatever pool thread was free, so the
llama.cpp lock (an RLock, owned by a thread) and the slot semaphore were released from the wrong
thread ("cannot release un-acquired lock") or never, when the client left and nothing closed the
generator — every later book then hung at write (issue 10, row 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from taleloom.deadline import Cancelled, Scope

T = TypeVar("T")
POLL_S = 0.2  # how often a waiting call looks at its client


async def run_step(request: Request, scope: Scope, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in the thread pool under `scope`; cancelled when the client disconnects, 504 at the deadline."""
    task = asyncio.ensure_future(run_in_threadpool(scope.run, fn, *args))
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                scope.cancel()
                raise Cancelled(f"{scope.what} stopped: the client disconnected")
            if scope.expired():
                scope.cancel(f"its deadline of {scope.limit_s:g} s passed")
                raise scope.timeout_error()
    finally:
        if not task.done():
            scope.cancel()
            task.add_done_callback(_swallow)  # the thread stops at its next check; nobody reads its result


def _swallow(task: asyncio.Future) -> None:
    with contextlib.suppress(BaseException):
        task.result()


_END = object()


async def stream_in_thread(request: Request, scope: Scope, make: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Items of the iterator `make()` returns, produced by one thread that owns it from start to close.

    The thread stops (and closes the iterator, releasing whatever it holds) as soon as this async
    generator ends any way — read to the end, closed because the client left, or failed — or the
    deadline passes; it checks between items.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()

    def post(kind: Any, value: Any = None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    def produce() -> None:
        iterator = None
        try:
            iterator = scope.run(make)
            while True:
                item = scope.run(next, iterator, _END)  # a backend's check() inside sees the scope
                if item is _END:
                    break
                scope.check()
                post("item", item)
        except BaseException as e:  # delivered to the reader (unless it has gone)
            post("error", e)
        finally:
            if iterator is not None and hasattr(iterator, "close"):
                with contextlib.suppress(Exception):
                    iterator.close()  # runs the generator's finally blocks here: lock and slot freed now
            post(_END)

    thread = threading.Thread(target=produce, name="chat-stream", daemon=True)
    thread.start()
    try:
        while True:
            try:
                kind, value = await asyncio.wait_for(queue.get(), timeout=POLL_S)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                if scope.expired():
                    raise scope.timeout_error() from None
                continue
            if kind is _END:
                return
            if kind == "error":
                raise value
            yield value
    finally:
        scope.cancel("the stream ended")
