"""`taleloom worker`: a process that makes books, beside API processes (`taleloom serve --workers 0`)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import click

from taleloom.config import get_settings


@click.command()
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="books this process makes at once [TALELOOM_WORKERS; default 2]")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="book storage, the same folder as the API processes' [TALELOOM_DATA_DIR]")
@click.option("--stop-timeout", type=float, default=10.0, show_default=True,
              help="seconds to wait on SIGTERM/Ctrl-C for running stages to reach a checkpoint before the "
                   "process hands its books back")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def worker(threads: int | None, data_dir: Path | None, stop_timeout: float, log_level: str) -> None:
    """Make books: claim queued jobs from the database and run them until stopped.

    A worker holds no state of its own. It claims a job with a lease in PostgreSQL (FOR UPDATE SKIP
    LOCKED) that it renews while it works, saves the book after every stage, and sends its progress
    through the database (LISTEN/NOTIFY), so any API process streams it. Kill it at any time: its
    books resume on another worker (at once on this machine, else when the lease runs out,
    TALELOOM_JOB_LEASE_SECONDS) from their last finished stage, and no book is ever made by two
    workers at once. SIGTERM or Ctrl-C hands its books back at once.

    Every process needs the same TALELOOM_DATABASE_URL (PostgreSQL), the same book storage
    (TALELOOM_DATA_DIR: a local folder, shared, e.g. over NFS, between machines) and the same backend
    settings. With SQLite (the default) run `taleloom serve` alone instead: its workers are inside it.

    \b
    N workers against one PostgreSQL, API processes beside them:
      export TALELOOM_DATABASE_URL=postgresql://taleloom@127.0.0.1:5432/taleloom
      export TALELOOM_DATA_DIR=/srv/taleloom
      taleloom token create --name ann
      taleloom serve --workers 0 --port 8000 &
      for i in $(seq 4); do taleloom worker --threads 1 & done
    """
    from taleloom.server.service import open_service, open_store, require_postgres

    settings = get_settings(data_dir=data_dir, workers=threads)
    require_postgres(settings, "taleloom worker")
    open_store(settings).close()  # a database that cannot be reached is one clear line, before anything starts
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service = open_service(settings)
    if settings.warm:  # load the models now, beside the first book, rather than inside it
        from taleloom.server.limits import warm

        threading.Thread(target=warm, args=(service.backends,), name="warm-up", daemon=True).start()
    click.echo(f"taleloom worker pid {os.getpid()}: {service.jobs.workers} book(s) at once, "
               f"data {settings.data_dir}; stop with Ctrl-C or SIGTERM", err=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        click.echo("stopping: handing running books back", err=True)
        service.close(timeout=stop_timeout)
