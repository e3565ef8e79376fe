"""Deadlines and cancellation for one call, visible to the backend code that runs it.

A single-step HTTP call (chat, stream, images, speech, captions) runs in a worker thread while the
event loop watches its client. The route opens a `Scope` (a deadline from settings plus a cancel flag)
and runs the work inside it; backends that loop (the LLM token by token, the diffusion sampler step by
step) call `check()` between steps, which raises once the client has gone or the deadline has passed.
So abandoned work stops within one token or one step instead of running for minutes (issue 10, row 5)
and frees its model for the next caller. Code that runs outside any scope (a book's stages, the CLI)
is never interrupted: `check()` is then a no-op.

The scope travels in a ContextVar; `Scope.run` enters it in the worker thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from taleloom.errors import TaleloomError

T = TypeVar("T")


class Cancelled(TaleloomError):
    """The client went away: nobody reads the answer, so the work stops."""

    status_code = 499  # nginx's "client closed request"; only ever logged, the client is gone


class DeadlineExceeded(TaleloomError):
    status_code = 504


class Scope:
    """The deadline (seconds from now, None = none) and cancel flag of one call named `what`."""

    def __init__(self, limit_s: float | None, what: str, setting: str | None = None):
        self.limit_s, self.what, self.setting = limit_s, what, setting
        self.deadline = time.monotonic() + limit_s if limit_s else None
        self._cancelled = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "the client disconnected") -> None:
        if not self._cancelled.is_set():
            self.reason = reason
            self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def check(self) -> None:
        """Raise Cancelled / DeadlineExceeded when the call should stop now."""
        if self._cancelled.is_set():
            raise Cancelled(f"{self.what} stopped: {self.reason}")
        if self.expired():
            raise self.timeout_error()

    def timeout_error(self) -> DeadlineExceeded:
        setting = f" (setting {self.setting})" if self.setting else ""
        return DeadlineExceeded(f"{self.what} took longer than its deadline of {self.limit_s:g} s{setting}",
                                "ask for less (fewer tokens, steps or pictures) or raise the deadline")

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call `fn` with this scope current (in whatever thread runs this)."""
        token = _current.set(self)
        try:
            self.check()
            return fn(*args, **kwargs)
        finally:
            _current.reset(token)


class Shared(Scope):
    """The scope of work done for several callers at once (a batch of pictures from several requests): it
    stops only when every caller has a scope and all of them were cancelled or ran out of time."""

    def __init__(self, scopes: list[Scope | None], what: str):
        super().__init__(None, what)
        self.scopes = scopes

    def check(self) -> None:
        if self.scopes and all(s is not None and (s.cancelled or s.expired()) for s in self.scopes):
            raise Cancelled(f"{self.what} stopped: every request waiting for it has gone or timed out")


_current: ContextVar[Scope | None] = ContextVar("taleloom_scope", default=None)


def current() -> Scope | None:
    return _current.get()


def check() -> None:
    """Stop here if the current call was cancelled or ran out of time; a no-op outside any scope."""
    scope = _current.get()
    if scope is not None:
        scope.check()


def remaining() -> float | None:
    """Seconds left to the current call (None: no deadline) — for timeouts on blocking I/O."""
    scope = _current.get()
    return scope.remaining() if scope is not None else None
