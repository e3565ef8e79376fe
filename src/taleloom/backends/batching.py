"""The one place picture requests are grouped and batched: `batch_key` says which requests can share a
model call, `batches` splits one caller's list that way, and `Batcher` batches requests from different
books (and single-step calls) together. The pool puts every illustrator behind a `Batcher`.

Each book's illustrate stage calls `generate(requests)` from its own job thread. The requests go
into one pending pool, grouped by what must match inside one model call (size, steps, sampler,
guidance); dispatcher threads — as many as the illustrator's concurrency limit — take the oldest
group, wait up to `max_wait` seconds for it to fill to the backend's `max_batch`, and run it as one
call. While the model is busy with one batch the next one fills, so under load batches are full
and every book's pictures still come back in its own order.

A request from a single-step call carries its deadline scope: once its client has gone it is dropped
before it runs, and a batch whose every request was abandoned stops between denoising steps.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from taleloom.backends.base import Illustrator
from taleloom.book import ImageRequest
from taleloom.deadline import Cancelled, Scope, Shared, current


@dataclass
class _Item:
    request: ImageRequest
    future: Future = field(default_factory=Future)
    at: float = field(default_factory=time.monotonic)
    scope: Scope | None = field(default_factory=current)  # None: a book's picture

    def abandoned(self) -> bool:
        return self.scope is not None and (self.scope.cancelled or self.scope.expired())


IDLE_S = 30.0  # seconds a dispatcher thread waits for work before it ends (a later call starts another)


def batch_key(r: ImageRequest) -> tuple:
    """Requests with equal keys can share one model call."""
    return (r.width, r.height, r.steps, r.sampler, r.guidance)


def batches(requests: Sequence[ImageRequest], max_batch: int,
            key: Callable[[ImageRequest], Hashable] = batch_key) -> list[list[int]]:
    """Indices of `requests` in model calls of at most `max_batch` requests with equal keys (`batch_key`,
    or a backend's own finer one), in order of each group's first request."""
    groups: dict[Hashable, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault(key(r), []).append(i)
    size = max(1, max_batch)
    return [idx[s:s + size] for idx in groups.values() for s in range(0, len(idx), size)]


class Batcher:
    """Batches `generate` calls from many threads into model calls of the illustrator `get()` returns.

    `slots` bounds the model calls at once (dispatcher threads; img2img/inpaint share it); `max_wait`
    is how long the oldest request waits for its batch to fill (0: run what is there)."""

    def __init__(self, get: Callable[[], Illustrator], workers: int = 1, max_batch: int | None = None,
                 max_wait: float = 0.05, slots: threading.BoundedSemaphore | None = None):
        self._get = get
        self.workers = workers  # model calls at once: the illustrator's concurrency limit
        self._max_batch = max_batch
        self.max_wait = max_wait
        self.slots = slots or threading.BoundedSemaphore(workers)  # shared with img2img / inpaint
        self._pending: dict[tuple, deque[_Item]] = {}
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._batch_sizes: Counter[int] = Counter()

    @property
    def inner(self) -> Illustrator:
        return self._get()

    @property
    def max_batch(self) -> int:
        return self._max_batch or max(1, int(self.inner.max_batch))

    def generate(self, requests: list[ImageRequest]) -> list[Image.Image]:
        if not requests:
            return []
        items = [_Item(r) for r in requests]
        with self._cond:
            self._start()
            for it in items:
                self._pending.setdefault(batch_key(it.request), deque()).append(it)
            self._cond.notify_all()
        return [it.future.result() for it in items]

    def stats(self) -> dict[str, Any]:
        sizes = dict(sorted(self._batch_sizes.items()))
        calls = sum(sizes.values())
        images = sum(k * v for k, v in sizes.items())
        return {"calls": calls, "images": images, "mean_batch": round(images / calls, 3) if calls else None,
                "batch_sizes": sizes, "max_batch": self._max_batch or None}

    # dispatcher -------------------------------------------------------------------------------
    def _start(self) -> None:
        """Dispatchers up to `workers` (called under the lock; an idle one has left, see IDLE_S)."""
        while len(self._threads) < self.workers:
            t = threading.Thread(target=self._dispatch, name=f"illustrator-batch-{len(self._threads)}", daemon=True)
            self._threads.append(t)
            t.start()

    def _next_batch(self) -> list[_Item] | None:
        """The next batch to draw; [] when another dispatcher took it; None when idle for IDLE_S (then this
        dispatcher has left the list, so a pool that is no longer used keeps no thread)."""
        with self._cond:
            while not self._pending:
                if not self._cond.wait(IDLE_S) and not self._pending:
                    self._threads.remove(threading.current_thread())
                    return None
            key = min(self._pending, key=lambda k: self._pending[k][0].at)  # oldest waiting request first
            limit = self.max_batch
            deadline = self._pending[key][0].at + self.max_wait
            while key in self._pending and len(self._pending[key]) < limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            queue = self._pending.get(key)
            if not queue:  # another dispatcher took it meanwhile
                return []
            batch = [queue.popleft() for _ in range(min(limit, len(queue)))]
            if not queue:
                del self._pending[key]
        for it in [it for it in batch if it.abandoned()]:  # nobody waits for these any more
            it.future.set_exception(Cancelled("the picture request was abandoned before it ran"))
            batch.remove(it)
        return batch

    def _dispatch(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if not batch:
                continue
            try:
                images = self._generate(batch)
            except BaseException as e:
                if len(batch) == 1:
                    batch[0].future.set_exception(e)
                    continue
                # One bad request must not fail the other books' pictures: each is tried on its own,
                # and only the requests that fail alone hear of a failure.
                for it in batch:
                    try:
                        it.future.set_result(self._generate([it])[0])
                    except BaseException as one:
                        it.future.set_exception(one)
                continue
            self._batch_sizes[len(batch)] += 1
            for it, img in zip(batch, images, strict=True):
                it.future.set_result(img)

    def _generate(self, batch: list[_Item]) -> list[Image.Image]:
        scope = Shared([it.scope for it in batch], "the batch of pictures")
        with self.slots:
            images = scope.run(self.inner.generate, [it.request for it in batch])
        if len(images) != len(batch):
            raise RuntimeError(f"illustrator returned {len(images)} pictures for {len(batch)} requests")
        return images
