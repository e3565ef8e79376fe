"""Book workers: threads that claim book jobs from the store under a lease, run them through the
orchestrator, and renew the lease while they work. They run inside `taleloom serve` (its default) or
in `taleloom worker` processes beside API processes started with `taleloom serve --workers 0`.

A job is a row in the store (`make`, `redraw`, `rewrite`, `extend`). Its progress is the book's
manifest, which the orchestrator saves atomically after every stage, so a job cut off by a crash or
`kill -9` is simply run again: `run_book` skips the stages already done. Nothing about jobs lives
only in this process: any server on the same data folder (SQLite) or database (PostgreSQL) may take
a job whose lease ran out, and none takes a job while its lease is live — so two servers never run
one book at once. A lease whose owner is a dead process on this machine ends at once when a server
starts (and whenever a worker looks, every third of a lease), so a killed process's books resume
without waiting. A job that kept dying (`max_attempts` claims) is marked failed instead of taking the
server down with it again. A process that stops on purpose hands its jobs back at once.

Workers hear through the event hub (PostgreSQL `LISTEN/NOTIFY` when the store is PostgreSQL) of a
job queued by any API process, so they start it at once rather than at their next poll, and of a
book deleted anywhere, so they stop working on it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taleloom import orchestrator
from taleloom.errors import TaleloomError
from taleloom.server.events import EventHub
from taleloom.server.store import Job, Store
from taleloom.storage import BookStorage, LocalFolder

log = logging.getLogger("taleloom.jobs")
MAX_ATTEMPTS = 3
LEASE_S = 30.0
POLL_S = 1.0  # how often an idle worker looks for jobs submitted elsewhere or leases that ran out
SHARED_POLL_S = 5.0  # the same when events are shared (PostgreSQL): a new job wakes the workers at once, so
# polling only finds leases that ran out on other machines (they last 30 s) — 5x fewer idle queries


class JobCancelled(Exception):
    """Raised from the event callback when the book was deleted, the lease lost or the worker stopped while
    its job ran. Its text is what the book's manifest records for the stage it cut: nothing internal."""

    def __init__(self) -> None:
        super().__init__("interrupted: the worker stopped; the stage runs again when the book resumes")


@dataclass
class _Running:
    book_id: str
    stop: threading.Event = field(default_factory=threading.Event)


def owner_id() -> str:
    """Who holds a lease: host, process id (to tell a dead local owner) and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_is_dead(owner: str | None) -> bool:
    """True only when the owner is a process on this machine that no longer exists."""
    host, _, rest = (owner or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


class JobManager:
    """`workers` threads that make books (0: this process only takes requests, as an API process)."""

    def __init__(self, store: Store, backends: Any, hub: EventHub, storage: BookStorage | Path, workers: int = 2,
                 max_attempts: int = MAX_ATTEMPTS, lease_s: float = LEASE_S, poll_s: float = POLL_S):
        self.store = store
        self.backends = backends
        self.hub = hub
        self.storage = storage if isinstance(storage, BookStorage) else LocalFolder(storage)  # a Path: its books
        self.workers = max(0, workers)
        self.max_attempts = max_attempts
        self.lease_s = lease_s
        self.poll_s = max(poll_s, SHARED_POLL_S) if hub.shared else poll_s
        self.owner = owner_id()
        self._running: dict[int, _Running] = {}  # job id → its book and stop flag, while a worker here runs it
        self._lock = threading.Lock()
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def current(self) -> dict[str, dict]:
        """Book id → last pipeline event (stage, progress) of each running book, from any worker that
        this process hears (all of them on PostgreSQL)."""
        return self.hub.current

    # lifecycle --------------------------------------------------------------------------------
    def start(self) -> int:
        """End the leases of dead local owners, then start the workers and the lease renewer (none in
        an API-only process). Returns how many unfinished jobs are waiting to be (re)started."""
        if not self.workers:
            return self.store.count_queued()
        released = self._expire_dead()
        waiting = released + self.store.count_queued()
        if waiting:
            log.info("%d unfinished job(s) to resume (%d from a stopped server)", waiting, released)
        self.hub.watch(self._heard)
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"book-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._renew, name="lease-renewer", daemon=True)
        t.start()
        self._threads.append(t)
        return waiting

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the workers: each running job stops at its next event (its stage is done again on
        resume), and the jobs are handed back so any worker takes them now. A job whose stage does not
        end within `timeout` keeps its lease until that runs out."""
        self._stopping.set()
        with self._lock:
            for run in self._running.values():
                run.stop.set()
        with self._wake:
            self._wake.notify_all()
        for t in self._threads:
            t.join(timeout / max(1, len(self._threads)))
        if self._threads and not any(t.is_alive() for t in self._threads if t.name.startswith("book-worker")):
            try:
                handed = self.store.release_leases(self.owner)
            except Exception:
                log.exception("could not hand back the jobs of this process; their leases will run out")
            else:
                for job in handed:  # workers elsewhere take them now, not at their next poll
                    self.hub.publish(job.book_id, "status", {"book_id": job.book_id, "status": "queued",
                                                             "job": job.kind})
                if handed:
                    log.info("handed back %d unfinished job(s)", len(handed))

    def _expire_dead(self) -> int:
        """End the leases of owners that were processes on this machine and are gone (kill -9)."""
        dead = sorted({o for _, o in self.store.leases() if owner_is_dead(o)})
        return self.store.expire_leases(dead)

    def _heard(self, book_id: str, kind: str, data: dict) -> None:
        """Hub watcher: a job queued anywhere wakes a worker; a book deleted anywhere stops its run here."""
        if kind != "status":
            return
        if data.get("status") == "queued":
            with self._wake:
                self._wake.notify()
        elif data.get("status") == "deleted":
            with self._lock:
                for run in self._running.values():
                    if run.book_id == book_id:
                        run.stop.set()

    # requests from the routes -----------------------------------------------------------------
    def submit(self, job: Job) -> None:
        self.hub.publish(job.book_id, "status", {"book_id": job.book_id, "status": "queued", "job": job.kind})
        with self._wake:
            self._wake.notify()

    def cancel(self, book_id: str) -> bool:
        """Stop work on a deleted book. True when a worker here is on it now (it removes the folder);
        a worker in another process sees the cancellation when it next renews its lease."""
        self.store.cancel_jobs(book_id)
        busy = False
        with self._lock:
            for run in self._running.values():
                if run.book_id == book_id:
                    run.stop.set()
                    busy = True
        return busy

    def queued(self) -> int:
        return self.store.count_queued()

    # worker -----------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self.store.claim_next(self.owner, self.lease_s)
            except Exception:  # the database is away for a moment: try again later, never die
                log.exception("could not claim a job")
                job = None
            if job is None:
                with self._wake:
                    self._wake.wait(self.poll_s)
                continue
            try:
                self._run(job)
            except Exception:  # never let one job kill a worker thread
                log.exception("job %s crashed the worker loop", job.id)

    def _renew(self) -> None:
        """Renew this process's leases every third of a lease; a job whose lease was lost (cancelled,
        or taken over after this process stalled) is told to stop. The leases of processes on this
        machine that died are ended, so their books resume now rather than when the lease runs out."""
        while not self._stopping.wait(self.lease_s / 3):
            with self._lock:
                ids = list(self._running)
            try:
                held = self.store.renew_leases(self.owner, ids, self.lease_s)
                if self._expire_dead():
                    with self._wake:
                        self._wake.notify_all()
            except Exception:
                log.exception("could not renew job leases")
                continue
            with self._lock:
                for job_id in set(ids) - held:
                    run = self._running.get(job_id)
                    if run is not None and not run.stop.is_set():
                        log.warning("job %s of book %s lost its lease: stopping it", job_id, run.book_id)
                        run.stop.set()

    def _run(self, job: Job) -> None:
        book_id = job.book_id
        run = _Running(book_id)
        with self._lock:
            self._running[job.id] = run
        try:
            self._set_status(job, "running")
            if job.attempts > self.max_attempts:
                raise TaleloomError(f"gave up after {job.attempts - 1} starts: the server stopped during each",
                                    "look at the server log for what stopped it, then make the book again")
            self._call(job, run.stop)
        except JobCancelled:
            pass
        except TaleloomError as e:
            self._fail(job, e.to_dict())
        except Exception:
            from taleloom.server.app import internal_error_body, new_request_id

            rid = new_request_id()  # the book's error names no path or exception text, only where the log has it
            log.exception("job %s (%s of book %s) failed, request id %s", job.id, job.kind, book_id, rid)
            self._fail(job, internal_error_body(rid))
        else:
            if not run.stop.is_set():
                self._finish(job)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
            self.hub.current.pop(book_id, None)
            if run.stop.is_set() and self.store.get_book(book_id) is None:  # deleted while it ran
                self.storage.delete(book_id)

    def _call(self, job: Job, stop: threading.Event) -> None:
        book_dir = self.storage.folder(job.book_id)

        def on_event(ev: Any) -> None:
            if stop.is_set():
                raise JobCancelled
            if ev.kind == "started" and job.id not in self.store.renew_leases(self.owner, [job.id], self.lease_s):
                # before a stage writes anything: this process stalled past its lease and another worker
                # has the book now (or it was cancelled); stop here rather than write beside it
                log.warning("job %s of book %s lost its lease: stopping before stage %s", job.id, job.book_id,
                            ev.stage)
                stop.set()
                raise JobCancelled
            data = ev.to_dict()
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
        elif job.kind == "translate":
            from taleloom.editions import translate_book

            translate_book(book_dir, self.backends, p["langs"], on_event=on_event)
        else:
            raise TaleloomError(f"unknown job kind {job.kind!r}", "this is a bug")

    def _set_status(self, job: Job, status: str, **values: Any) -> None:
        self.store.update_book(job.book_id, status=status, **values)
        data = {"book_id": job.book_id, "status": status, "job": job.kind}
        if values.get("error"):
            data["error"] = values["error"]
        self.hub.publish(job.book_id, "status", data)

    def _finish(self, job: Job) -> None:
        book = orchestrator.load_book(self.storage.folder(job.book_id))
        if self.store.finish_job(job.id, "done", owner=self.owner):  # not if the lease was lost meanwhile
            self._set_status(job, "done", title=book.title_translated or book.title, pages=len(book.pages),
                             error=None)

    def _fail(self, job: Job, error: dict) -> None:
        if self.store.finish_job(job.id, "failed", error, owner=self.owner):
            self._set_status(job, "failed", error=error)
