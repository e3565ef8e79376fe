"""The service's backends: the one backend pool (taleloom.backends.pool), shared by every job worker
and single-step route, with each role's concurrency limit from the role table, overridable by
TALELOOM_CONCURRENCY / settings.concurrency ("llm=1,narrator=4"). A local model that is not
thread-safe (llama.cpp) or that already uses every core (torch) runs one call at a time, while a
remote HTTP backend may take several; the illustrator's limit is its batcher's dispatcher threads."""

from __future__ import annotations

import os
from typing import Any

from taleloom.backends.pool import Pool
from taleloom.backends.roles import DEFAULT_CONCURRENCY
from taleloom.bookrun import Backends
from taleloom.errors import BadInputError

BATCH_WAIT = 0.05  # seconds the oldest picture request waits for other books' requests to fill its batch


def concurrency_from_env(text: str | None = None) -> dict[str, int]:
    text = os.environ.get("TALELOOM_CONCURRENCY", "") if text is None else text
    limits = dict(DEFAULT_CONCURRENCY)
    for part in filter(None, (p.strip() for p in text.split(","))):
        role, _, n = part.partition("=")
        if role.strip() not in limits or not n.strip().isdigit() or int(n) < 1:
            raise BadInputError(f"TALELOOM_CONCURRENCY has a bad entry {part!r}",
                                f"write role=N pairs separated by commas; roles: {', '.join(limits)}")
        limits[role.strip()] = int(n)
    return limits


def service_backends(settings: Any, limits: dict[str, int] | None = None) -> Backends:
    """The pool as the service shares it: models created from `settings` once, on first use."""
    return Backends(settings, limits=limits, batch_wait=BATCH_WAIT)


def loaded(backends: Pool) -> dict[str, bool]:
    """role → whether its model is loaded yet."""
    return {role: backends.loaded(role) for role in backends.ROLES}


def warm(backends: Pool) -> dict[str, str]:
    """Load every model now instead of on the first book; returns role → 'ok' or the error."""
    return backends.warm()
