"""The worker pool inside the server: runs book jobs through the orchestrator, one job per book at a
time, and resumes every unfinished job when the server starts again.

A job is a row in the store (`make`, `redraw`, `rewrite`, `extend`). Its progress is the book's
manifest, which the orchestrator saves atomically after every stage, so a job cut off by a crash or
`kill -9` is simply run again: `run_book` skips the stages already done. A job that kept dying
(`max_attempts` starts) is marked failed instead of taking the server down with it again.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
from pathlib import Path
from typing import Any

from taleloom import orchestrator
from taleloom.errors import TaleloomError
from taleloom.server.events import EventHub
from taleloom.server.store import Job, Store

log = logging.getLogger("taleloom.jobs")
MAX_ATTEMPTS = 3


class JobCancelled(Exception):
    """Raised from the event callback when the book was deleted while its job ran."""


class JobManager:
    def __init__(self, store: Store, backends: Any, hub: EventHub, books_dir: Path, workers: int = 2,
                 max_attempts: int = MAX_ATTEMPTS):
        self.store = store
        self.backends = backends
        self.hub = hub
        self.books_dir = books_dir
        self.workers = max(1, workers)
        self.max_attempts = max_attempts
        self.current: dict[str, dict] = {}  # book id → last pipeline event (stage, progress) while it runs
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._cancelled: set[str] = set()
        self._running: dict[str, int] = {}  # book id → job id being worked on
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # lifecycle --------------------------------------------------------------------------------
    def start(self) -> int:
        """Requeue what a previous run left unfinished, then start the workers. Returns how many."""
        unfinished = self.store.requeue_unfinished()
        for job in unfinished:
            self.store.update_book(job.book_id, status="queued")
            self._queue.put(job.id)
        if unfinished:
            log.info("resuming %d unfinished job(s)", len(unfinished))
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"book-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return len(unfinished)

    def stop(self, timeout: float = 2.0) -> None:
        """Ask workers to stop after their current job. A job still running stays 'running' in the
        store and is resumed on the next start."""
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout / max(1, len(self._threads)))

    # requests from the routes -----------------------------------------------------------------
    def submit(self, job: Job) -> None:
        self.hub.publish(job.book_id, "status", {"book_id": job.book_id, "status": "queued", "job": job.kind})
        self._queue.put(job.id)

    def cancel(self, book_id: str) -> bool:
        """Stop work on a deleted book. True when a worker is on it now (it removes the folder)."""
        with self._lock:
            self._cancelled.add(book_id)
            busy = book_id in self._running
        self.store.cancel_jobs(book_id)
        return busy

    def queued(self) -> int:
        return self._queue.qsize()

    # worker -----------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self._run(job_id)
            except Exception:  # never let one job kill a worker thread
                log.exception("job %s crashed the worker loop", job_id)

    def _run(self, job_id: int) -> None:
        job = self.store.claim_job(job_id)
        if job is None:  # cancelled, or already done
            return
        book_id = job.book_id
        with self._lock:
            self._running[book_id] = job.id
        try:
            self._set_status(job, "running")
            if job.attempts > self.max_attempts:
                raise TaleloomError(f"gave up after {job.attempts - 1} starts: the server stopped during each",
                                    "look at the server log for what stopped it, then make the book again")
            self._call(job)
        except JobCancelled:
            pass
        except TaleloomError as e:
            self._fail(job, e.to_dict())
        except Exception as e:
            log.exception("job %s (%s of book %s) failed", job.id, job.kind, book_id)
            self._fail(job, {"error": type(e).__name__, "message": str(e) or type(e).__name__,
                             "hint": "this looks like a bug or a backend failure; the server log has details"})
        else:
            if book_id not in self._cancelled:
                self._finish(job)
        finally:
            with self._lock:
                self._running.pop(book_id, None)
                deleted = book_id in self._cancelled
            self.current.pop(book_id, None)
            if deleted:
                shutil.rmtree(self.books_dir / book_id, ignore_errors=True)

    def _call(self, job: Job) -> None:
        book_dir = self.books_dir / job.book_id

        def on_event(ev: Any) -> None:
            if job.book_id in self._cancelled:
                raise JobCancelled(job.book_id)
            data = ev.to_dict()
            self.current[job.book_id] = data
            self.hub.publish(job.book_id, data.get("kind", "progress"), data)

        p = job.params
        # an edit cut off by a restart after it was recorded only needs the book finished, not applied twice
        recorded = job.kind != "make" and len(orchestrator.load_book(book_dir).history) > p.get("history", 1 << 30)
        if job.kind == "make" or recorded:
            orchestrator.run_book(book_dir, self.backends, on_event=on_event)
        elif job.kind == "redraw":
            orchestrator.redraw_page(book_dir, self.backends, p["page"], seed=p.get("seed"), style=p.get("style"),
                                     on_event=on_event)
        elif job.kind == "rewrite":
            orchestrator.rewrite_page(book_dir, self.backends, p["page"], p["instruction"], on_event=on_event)
        elif job.kind == "extend":
            orchestrator.extend_book(book_dir, self.backends, p["pages"], on_event=on_event)
        else:
            raise TaleloomError(f"unknown job kind {job.kind!r}", "this is a bug")

    def _set_status(self, job: Job, status: str, **values: Any) -> None:
        self.store.update_book(job.book_id, status=status, **values)
        data = {"book_id": job.book_id, "status": status, "job": job.kind}
        if values.get("error"):
            data["error"] = values["error"]
        self.hub.publish(job.book_id, "status", data)

    def _finish(self, job: Job) -> None:
        book = orchestrator.load_book(self.books_dir / job.book_id)
        self.store.finish_job(job.id, "done")
        self._set_status(job, "done", title=book.title_translated or book.title, pages=len(book.pages),
                         error=None)

    def _fail(self, job: Job, error: dict) -> None:
        self.store.finish_job(job.id, "failed", error)
        self._set_status(job, "failed", error=error)
