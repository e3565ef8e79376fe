"""The job pool in-process: resuming an edit that a crash cut off applies it once, not twice; a stopping
worker hands its book back at once; a worker that lost its lease stops before its next stage."""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest
from serverkit import photo_bytes
from sqlalchemy import update
from testbackends import NearestUpscaler, SolidCaptioner, SolidIllustrator, StoryLLM, ToneNarrator

from taleloom import orchestrator
from taleloom.book import Brief, now
from taleloom.config import Settings
from taleloom.server.events import EventHub
from taleloom.server.jobs import JobManager
from taleloom.server.store import Job, Store, database_url


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


class GatedIllustrator(SolidIllustrator):
    """Draws only once the test opens the gate, so a job is held mid-stage for as long as the test needs."""

    def __init__(self):
        super().__init__()
        self.entered, self.gate = threading.Event(), threading.Event()

    def generate(self, requests):
        self.entered.set()
        assert self.gate.wait(30)
        return super().generate(requests)


def gated(tmp_path, store, user, book_id: str):
    illustrator = GatedIllustrator()
    backends = orchestrator.Backends(Settings(data_dir=tmp_path), captioner=SolidCaptioner(), llm=StoryLLM(),
                                     illustrator=illustrator, upscaler=NearestUpscaler(), narrator=ToneNarrator())
    orchestrator.create_book(tmp_path / "books" / book_id, Brief(pages=1), photo_bytes(), "http://x")
    store.add_book(book_id, user.id, pages=1)
    return backends, illustrator


def test_a_stopping_worker_hands_its_book_back_at_once(setup, tmp_path):
    store, _, books, user = setup
    backends, illustrator = gated(tmp_path, store, user, "b2")
    first = JobManager(store, backends, EventHub(), books, workers=1, lease_s=600)
    first.start()
    assert illustrator.entered.wait(30)  # mid-book, in illustrate
    stopping = threading.Thread(target=first.stop, kwargs={"timeout": 30})
    stopping.start()
    illustrator.gate.set()  # the stage ends; the job stops at its next event
    stopping.join(30)
    job = store.active_job("b2")
    assert job.status == "running" and job.lease_until == 0.0 and job.attempts == 0, job  # handed back, not counted

    second = JobManager(store, backends, EventHub(), books, workers=1, lease_s=600)
    second.start()  # takes it at once, though the first lease had 600 s to run
    wait_idle(store)
    second.stop()
    assert store.get_book("b2").status == "done"
    assert store.get_job(job.id).attempts == 1 and store.get_job(job.id).lease_owner == second.owner


def test_a_worker_that_lost_its_lease_writes_no_further_stage(setup, tmp_path):
    store, _, books, user = setup
    backends, illustrator = gated(tmp_path, store, user, "b3")
    jobs = JobManager(store, backends, EventHub(), books, workers=1, lease_s=600)
    jobs.start()
    assert illustrator.entered.wait(30)
    job = store.active_job("b3")
    with store.session.begin() as s:  # as if this process stalled past its lease and another worker took the job
        s.execute(update(Job).where(Job.id == job.id).values(lease_owner="elsewhere:1:x"))
    lost_at = now()  # a stage starting later finds the lease gone
    illustrator.gate.set()
    deadline = time.monotonic() + 30
    while jobs._running and time.monotonic() < deadline:
        time.sleep(0.05)
    jobs.stop()
    book = orchestrator.load_book(books / "b3")
    # the stage it was in when the lease went ends (done, or cut at its next event once the other lane found
    # the lease gone); no stage starts after (narration may have run beside it before)
    assert book.stages["illustrate"].status in ("done", "failed"), book.stages["illustrate"]
    assert all(r.started is None or r.started < lost_at for r in book.stages.values()), book.stages
    assert book.stages["upscale"].status == "pending" and book.stages["bind"].status == "pending"
    assert store.get_job(job.id).lease_owner == "elsewhere:1:x" and store.get_job(job.id).status == "running"
