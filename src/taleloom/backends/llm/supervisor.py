"""Supervises one model child process that serves HTTP on a loopback port: starts it on first use, tells
whether it is alive, restarts it after it died, stops it with the parent.

The child is told our pid and exits by itself when we are gone (a kill -9 of the API leaves no orphan),
and `atexit` stops it on a normal exit. Its output goes to a log file whose last lines are quoted when
it fails to start or dies, so the error says why.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path

import httpx

from taleloom.errors import BackendError, ModelNotFoundError

log = logging.getLogger("taleloom.models")
_children: weakref.WeakSet[ModelProcess] = weakref.WeakSet()


class ProcessDiedError(BackendError):
    """The child was killed by a signal before it was up."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def describe_exit(code: int | None) -> str:
    """'killed by SIGSEGV', 'exit status 1', 'still running'."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class ModelProcess:
    """`command` (a list; ``{port}`` is filled in) run as a child that answers GET `ready_path` when up."""

    def __init__(self, name: str, command: list[str], ready_path: str = "/v1/models", start_timeout: float = 180.0):
        self.name, self.command, self.ready_path, self.start_timeout = name, command, ready_path, start_timeout
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.starts = 0  # how many times a child was started (restarts = starts - 1)
        self.last_exit: str | None = None
        self._lock = threading.Lock()
        self._log_dir = Path(tempfile.mkdtemp(prefix="taleloom-model-"))
        self.log_path = self._log_dir / f"{name}.log"
        self._box: list[subprocess.Popen | None] = [None]  # the finalizer's handle (it must not hold self)
        weakref.finalize(self, _kill, self._box, self._log_dir)  # a dropped model takes its process along
        _children.add(self)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure(self) -> str:
        """The child's base URL, starting (or restarting) it first when it is not running."""
        with self._lock:
            if self.alive():
                return self.url
            if self.proc is not None:
                self.last_exit = describe_exit(self.proc.returncode)
                log.warning("%s (pid %s) had stopped (%s); starting a new one", self.name, self.proc.pid,
                            self.last_exit)
            self._start()
            return self.url

    def died(self, wait: float = 2.0) -> str | None:
        """After a failed call: how the child ended ('killed by SIGSEGV'), or None when it is still running.
        Waits up to `wait` s, since a crashing process closes its sockets a moment before it is reaped."""
        if self.proc is None:
            return None
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            return None
        return describe_exit(self.proc.returncode)

    def stop(self) -> None:
        with self._lock:
            if self.alive():
                assert self.proc is not None
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:].strip()
        except OSError:
            return ""

    def _start(self) -> None:
        self.port = free_port()
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
        self._box[0] = self.proc
        self.starts += 1
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                how = describe_exit(self.proc.returncode)
                if self.proc.returncode < 0:  # killed from outside (or crashed) while loading: may be retried
                    raise ProcessDiedError(f"the {self.name} process was {how} while starting",
                                           "try again; the server log has details")
                raise ModelNotFoundError(f"the {self.name} process exited while starting ({how}): "
                                         f"{self.log_tail(800)}", "check the model file and its options")
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    log.info("%s started (pid %s, port %s)", self.name, self.proc.pid, self.port)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.proc.kill()
        raise BackendError(f"the {self.name} process did not answer within {self.start_timeout:.0f} s",
                           f"a big model loads slowly: raise start_timeout; its log: {self.log_path}")


def _kill(box: list[subprocess.Popen | None], log_dir: Path) -> None:
    proc = box[0]
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(5)
    shutil.rmtree(log_dir, ignore_errors=True)


@atexit.register
def _stop_all() -> None:
    for child in list(_children):
        try:
            child.stop()
        except Exception:  # exiting anyway
            pass
