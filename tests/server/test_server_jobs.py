"""The job pool in-process: resuming an edit that a crash cut off applies it once, not twice."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
from serverkit import photo_bytes
from testbackends import NearestUpscaler, SolidCaptioner, SolidIllustrator, StoryLLM, ToneNarrator

from taleloom import orchestrator
from taleloom.book import Brief
from taleloom.config import Settings
from taleloom.server.events import EventHub
from taleloom.server.jobs import JobManager
from taleloom.server.store import Store, database_url


class Crash(Exception):
    pass


@pytest.fixture
def setup(tmp_path):
    backends = orchestrator.Backends(Settings(data_dir=tmp_path), captioner=SolidCaptioner(), llm=StoryLLM(),
                                     illustrator=SolidIllustrator(), upscaler=NearestUpscaler(),
                                     narrator=ToneNarrator())
    store = Store(database_url(None, tmp_path))
    _, user = store.create_token("ann")
    books = tmp_path / "books"
    orchestrator.create_book(books / "b1", Brief(pages=2, hero="Mina"), photo_bytes(), "http://x")
    orchestrator.run_book(books / "b1", backends)
    store.add_book("b1", user.id, pages=2)
    store.finish_job(store.active_job("b1").id, "done")
    store.update_book("b1", status="done")
    yield store, backends, books, user
    store.close()


def dead_pid() -> int:
    """The id of a process that has exited."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def wait_idle(store: Store, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while store.count_active() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.count_active() == 0


@pytest.mark.parametrize("kind, params, check", [
    ("extend", {"pages": 2}, lambda book: len(book.pages) == 4),
    ("redraw", {"page": 1, "seed": 5}, lambda book: [c.action for c in book.history] == ["redraw"]),
])
def test_resumed_edit_is_applied_once(setup, kind, params, check):
    store, backends, books, user = setup
    job = store.add_job("b1", user.id, kind, {**params, "history": 0})
    dead = f"{socket.gethostname()}:{dead_pid()}:x"
    assert store.claim_next(dead, lease_s=600).id == job.id  # a worker took it...

    def crash_at_bind(ev):
        if ev.stage == "bind" and ev.kind == "started":
            raise Crash  # ...and the server died after the edit was recorded, before the book was bound

    call = {"extend": lambda: orchestrator.extend_book(books / "b1", backends, 2, on_event=crash_at_bind),
            "redraw": lambda: orchestrator.redraw_page(books / "b1", backends, 1, seed=5, on_event=crash_at_bind)}
    with pytest.raises(Crash):
        call[kind]()
    assert not orchestrator.load_book(books / "b1").complete

    jobs = JobManager(store, backends, EventHub(), books, workers=1)  # the restarted server
    assert jobs.start() == 1  # ends the dead worker's lease at once instead of waiting 600 s
    wait_idle(store)
    jobs.stop()
    book = orchestrator.load_book(books / "b1")
    assert book.complete and check(book), (len(book.pages), [c.action for c in book.history])
    assert store.get_book("b1").status == "done"
    # nothing stays behind per book: no lock table entry, no running or cancelled record
    assert orchestrator._locks == {} and jobs._running == {} and jobs.current == {}
