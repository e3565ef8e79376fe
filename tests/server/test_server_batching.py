"""The picture batcher and the pool's per-backend limits, in-process (no server needed)."""

from __future__ import annotations

import threading
import time

import pytest
from testbackends import SolidIllustrator, StoryLLM

from taleloom.backends.batching import Batcher
from taleloom.backends.pool import PooledTextModel
from taleloom.book import ImageRequest
from taleloom.errors import BadInputError
from taleloom.server.limits import concurrency_from_env


class SlowIllustrator(SolidIllustrator):
    """Takes 0.2 s a call, whatever the batch size (as a GPU roughly does)."""

    def generate(self, requests):
        time.sleep(0.2)
        return super().generate(requests)


def requests(tag: str, n: int, size: int = 64) -> list[ImageRequest]:
    return [ImageRequest(prompt=f"{tag} {i}", seed=i, width=size, height=size) for i in range(n)]


def run_books(batcher, books: dict[str, list[ImageRequest]]) -> dict[str, list]:
    out: dict[str, list] = {}

    def book(name):
        out[name] = batcher.generate(books[name])

    threads = [threading.Thread(target=book, args=(name,)) for name in books]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out


def test_requests_from_different_books_share_calls():
    inner = SlowIllustrator()
    batcher = Batcher(lambda: inner, max_batch=4, max_wait=0.1)
    books = {f"book{i}": requests(f"book{i}", 2) for i in range(4)}
    out = run_books(batcher, books)
    assert sum(inner.batches) == 8
    assert len(inner.batches) <= 3 and max(inner.batches) == 4  # 4 books x 2 pictures in 2-3 calls, not 4
    for name, reqs in books.items():  # each book gets its own pictures back, in order
        assert [img.getpixel((0, 0)) for img in out[name]] == [inner._draw(r).getpixel((0, 0)) for r in reqs]
    stats = batcher.stats()
    assert stats["images"] == 8 and stats["mean_batch"] >= 8 / 3


def test_only_matching_requests_are_batched():
    inner = SolidIllustrator()
    batcher = Batcher(lambda: inner, max_wait=0.05)
    out = run_books(batcher, {"small": requests("a", 2, 64), "large": requests("b", 2, 96)})
    assert [im.size for im in out["small"]] == [(64, 64)] * 2 and [im.size for im in out["large"]] == [(96, 96)] * 2
    assert len(inner.batches) == 2


def test_a_failed_call_reaches_every_waiting_book():
    class Broken(SolidIllustrator):
        def generate(self, requests):
            raise RuntimeError("out of memory")

    batcher = Batcher(lambda: Broken(), max_wait=0.05)
    with pytest.raises(RuntimeError, match="out of memory"):
        batcher.generate(requests("x", 3))
    assert batcher.generate([]) == []


def test_one_bad_request_fails_only_its_own_book():
    class Picky(SolidIllustrator):
        calls: list[int] = []

        def generate(self, requests):
            self.calls.append(len(requests))
            if any(r.prompt.startswith("bad") for r in requests):
                raise BadInputError("this prompt cannot be drawn", "change it")
            return super().generate(requests)

    inner = Picky()
    batcher = Batcher(lambda: inner, max_batch=8, max_wait=0.2)
    out: dict[str, object] = {}

    def book(name, reqs):
        try:
            out[name] = batcher.generate(reqs)
        except BadInputError as e:
            out[name] = e

    threads = [threading.Thread(target=book, args=("good", requests("good", 2))),
               threading.Thread(target=book, args=("bad", requests("bad", 1)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert inner.calls[0] == 3  # the three requests met in one call, which failed
    assert isinstance(out["bad"], BadInputError)
    assert [im.size for im in out["good"]] == [(64, 64)] * 2  # drawn one by one after the shared call failed


def test_limited_backend_runs_one_call_at_a_time():
    active, peak = [0], [0]

    class Watched(StoryLLM):
        def chat(self, messages, sampling=None, schema=None):
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            time.sleep(0.05)
            active[0] -= 1
            return "ok"

    llm = PooledTextModel("llm", lambda: Watched(), limit=1)
    threads = [threading.Thread(target=llm.chat, args=([{"role": "user", "content": "hi"}],)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1 and llm.model_id == "test-llm" and llm.supports_schema


def test_concurrency_setting():
    assert concurrency_from_env("llm=2, narrator=4")["narrator"] == 4
    with pytest.raises(BadInputError, match="roles"):
        concurrency_from_env("gpu=2")


def test_an_idle_dispatcher_ends_and_a_later_call_starts_another(monkeypatch):
    import taleloom.backends.batching as batching

    monkeypatch.setattr(batching, "IDLE_S", 0.05)
    batcher = Batcher(lambda: SolidIllustrator(), max_wait=0.0)
    assert len(batcher.generate(requests("a", 1))) == 1
    for _ in range(200):  # the dispatcher leaves once it has waited IDLE_S with nothing to do
        if not batcher._threads:
            break
        time.sleep(0.01)
    assert batcher._threads == []
    assert len(batcher.generate(requests("b", 2))) == 2  # a new one is started for the next call
