"""What every process of the service opens: the store, the backends, the event hub and the book
workers — one home for `taleloom serve` (API, with workers inside by default) and `taleloom worker`
(workers only).

Which processes may share a store: with PostgreSQL, any number of API and worker processes, on any
machines that see the same book storage (events and jobs go through the database). With SQLite, one
process: a second one on the same data folder still never runs a book twice (the job leases are in
the database file), but it hears no events of the first one's books, so this module says so loudly.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taleloom.config import Settings
from taleloom.errors import BadInputError

log = logging.getLogger("taleloom.server")
LOCK_NAME = "taleloom.lock"  # in the data folder: held by the process that uses the SQLite database
_held: dict[Path, Any] = {}  # data folder → its open lock file, kept for the life of the process

SQLITE_ONE_PROCESS = ("with SQLite (the default) the service is one process: `taleloom serve` with its workers "
                      "inside. For separate API and worker processes, give all of them the same PostgreSQL: "
                      "TALELOOM_DATABASE_URL=postgresql://USER@HOST/DB")


def uses_postgres(settings: Settings) -> bool:
    url = settings.database_url or ""
    return url.startswith(("postgresql", "postgres:"))


def require_postgres(settings: Settings, what: str) -> None:
    """A clear refusal for a split deployment on SQLite (there is no channel between its processes)."""
    if not uses_postgres(settings):
        raise BadInputError(f"{what} needs PostgreSQL", SQLITE_ONE_PROCESS)


def open_store(settings: Settings):
    """The store, or a clear error when its database cannot be reached (no stack trace for a wrong URL)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    from taleloom.server.store import Store

    try:
        return Store.from_settings(settings)
    except OperationalError as e:
        where = make_url(settings.database_url).render_as_string(hide_password=True) if settings.database_url \
            else settings.data_dir
        raise BadInputError(f"cannot open the database {where}: {str(e.orig).strip().splitlines()[0]}",
                            "check TALELOOM_DATABASE_URL and that the database server is running") from None


def other_sqlite_process(data_dir: Path) -> int | None:
    """Hold this data folder's lock for the life of the process; the pid of another process that holds
    it already (None when this one is alone, or where file locks are not available)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return None
    key = data_dir.resolve()
    if key in _held:  # this process holds it already (another app in the same process, as in tests)
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    f = open(data_dir / LOCK_NAME, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        text = f.read().strip()
        f.close()
        return int(text) if text.isdigit() else -1
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    _held[key] = f
    return None


def load_plugins(spec: str | None = None) -> list[str]:
    """Call every `module:function` in TALELOOM_PLUGINS with the registry's `register`."""
    from taleloom.backends.registry import register

    spec = os.environ.get("TALELOOM_PLUGINS", "") if spec is None else spec
    loaded = []
    for target in filter(None, (t.strip() for t in spec.split(","))):
        module, _, func = target.partition(":")
        try:
            getattr(importlib.import_module(module), func or "register")(register)
        except (ImportError, AttributeError) as e:
            raise BadInputError(f"TALELOOM_PLUGINS entry {target!r} could not be loaded ({e})",
                                "write module:function, with the module importable (PYTHONPATH)") from None
        loaded.append(target)
    return loaded


@dataclass
class Service:
    store: Any
    backends: Any
    hub: Any
    jobs: Any
    plugins: list[str]

    def close(self, timeout: float = 2.0) -> None:
        self.jobs.stop(timeout)
        self.hub.stop()
        self.store.close()


def open_service(settings: Settings, workers: int | None = None) -> Service:
    """Store, backends (lazy), hub and `workers` book workers (settings.workers by default), started."""
    from taleloom.server.deps import book_storage
    from taleloom.server.events import EventHub
    from taleloom.server.jobs import JobManager
    from taleloom.server.limits import concurrency_from_env, service_backends
    plugins = load_plugins(settings.plugins)
    store = open_store(settings)
    if not store.postgres:
        other = other_sqlite_process(Path(settings.data_dir))
        if other is not None:
            log.warning("another Taleloom process (pid %s) uses the SQLite database in %s. Books still run once "
                        "each, but each process streams only the events of the books its own workers make. %s",
                        other if other > 0 else "unknown", settings.data_dir, SQLITE_ONE_PROCESS)
    backends = service_backends(settings, concurrency_from_env(settings.concurrency))
    hub = EventHub.for_store(store)
    hub.start()
    jobs = JobManager(store, backends, hub, book_storage(settings), settings.workers if workers is None else workers,
                      lease_s=settings.job_lease_seconds)
    resumed = jobs.start()
    log.info("%d book worker(s), %d job(s) waiting, events %s, data in %s", jobs.workers, resumed,
             "shared through PostgreSQL" if hub.shared else "in this process only", settings.data_dir)
    return Service(store, backends, hub, jobs, plugins)
