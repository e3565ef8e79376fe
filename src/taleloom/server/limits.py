"""Per-backend concurrency limits for the service.

Every job worker shares one set of backends (models are loaded once). Each role gets a semaphore:
a local model that is not thread-safe (llama.cpp) or that already uses every core (torch) runs one
call at a time, while a remote HTTP backend may take several. The illustrator is wrapped by
`BatchingIllustrator` instead, whose dispatcher threads are its limit.

Wrappers subclass the backend interfaces, so stages see ordinary backends; the inner backend is
created on first use, exactly like the orchestrator's `Backends` does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from PIL import Image

from taleloom.backends.base import Answer, Captioner, Narrator, Piece, Sampling, TextModel, Upscaler
from taleloom.book import Caption
from taleloom.errors import BadInputError

# calls at once per role; TALELOOM_CONCURRENCY="llm=1,narrator=4" overrides
DEFAULT_CONCURRENCY = {"captioner": 1, "llm": 1, "illustrator": 1, "upscaler": 1, "narrator": 2}


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


class Lazy:
    """Holds a backend factory; builds the backend once, on first use, under a lock."""

    def __init__(self, factory: Callable[[], Any]):
        self._factory = factory
        self._inner: Any = None
        self._build_lock = threading.Lock()

    @property
    def inner(self) -> Any:
        if self._inner is None:
            with self._build_lock:
                if self._inner is None:
                    self._inner = self._factory()
        return self._inner

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    # the attributes stages and the manifest read from a backend
    @property
    def model_id(self) -> str:  # type: ignore[override]
        return self.inner.model_id

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    def ready(self) -> tuple[bool, str]:
        return self.inner.ready()

    def __getattr__(self, attr: str) -> Any:  # anything else a backend offers (languages(), options...)
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self.inner, attr)


class Limited(Lazy):
    def __init__(self, factory: Callable[[], Any], limit: int):
        super().__init__(factory)
        self.limit = limit
        self.slots = threading.BoundedSemaphore(limit)


class LimitedTextModel(Limited, TextModel):
    @property
    def can_stream(self) -> bool:  # type: ignore[override]
        return self.inner.can_stream

    @property
    def supports_schema(self) -> bool:  # type: ignore[override]
        return self.inner.supports_schema

    @property
    def writes_plans(self) -> bool:  # type: ignore[override]
        return self.inner.writes_plans

    def chat(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
             schema: dict[str, Any] | None = None) -> str:
        with self.slots:
            return self.inner.chat(messages, sampling, schema)

    def stream(self, messages: list[dict[str, str]], sampling: Sampling | None = None) -> Iterator[str]:
        with self.slots:
            yield from self.inner.stream(messages, sampling)

    def answer(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
               schema: dict[str, Any] | None = None) -> Answer:
        with self.slots:
            return self.inner.answer(messages, sampling, schema)

    def answer_stream(self, messages: list[dict[str, str]], sampling: Sampling | None = None) -> Iterator[Piece]:
        with self.slots:
            yield from self.inner.answer_stream(messages, sampling)


class LimitedCaptioner(Limited, Captioner):
    def caption(self, image: Image.Image, hint: str | None = None) -> Caption:
        with self.slots:
            return self.inner.caption(image, hint)


class LimitedUpscaler(Limited, Upscaler):
    def upscale(self, image: Image.Image, factor: int = 4, prompt: str = "", seed: int = 0) -> Image.Image:
        with self.slots:
            return self.inner.upscale(image, factor, prompt, seed)

    def upscale_batch(self, images: list[Image.Image], factor: int = 4, prompts: list[str] | None = None,
                      seeds: list[int] | None = None) -> list[Image.Image]:
        with self.slots:
            return self.inner.upscale_batch(images, factor, prompts, seeds)

    @property
    def max_batch(self) -> int:  # type: ignore[override]
        return self.inner.max_batch


class LimitedNarrator(Limited, Narrator):
    def speak(self, text: str, language: str) -> bytes:
        with self.slots:
            return self.inner.speak(text, language)

    def languages(self) -> set[str]:
        return self.inner.languages()


WRAPPERS = {"captioner": LimitedCaptioner, "llm": LimitedTextModel, "upscaler": LimitedUpscaler,
            "narrator": LimitedNarrator}


def service_backends(settings: Any, limits: dict[str, int] | None = None):
    """The orchestrator's `Backends` as the job workers and single-step routes share them: each role
    behind its concurrency limit, the illustrator behind the cross-book batcher. Models are created
    from `settings` once, on first use. A backend that words its output with the LLM (the embedded
    captioner) is handed the limited LLM, so every LLM call in the server counts against one limit."""
    from taleloom.orchestrator import Backends
    from taleloom.server.batching import BatchingIllustrator

    limits = limits or dict(DEFAULT_CONCURRENCY)
    raw = Backends.from_settings(settings)
    llm = LimitedTextModel(lambda: raw.get("llm"), limits["llm"])

    def made(role: str) -> Callable[[], Any]:
        def make() -> Any:
            backend = raw.get(role)
            if hasattr(backend, "use_llm"):
                backend.use_llm(lambda: llm)
            return backend

        return make

    return Backends(settings, llm=llm,
                    captioner=LimitedCaptioner(made("captioner"), limits["captioner"]),
                    illustrator=BatchingIllustrator(made("illustrator"), workers=limits["illustrator"]),
                    upscaler=LimitedUpscaler(made("upscaler"), limits["upscaler"]),
                    narrator=LimitedNarrator(made("narrator"), limits["narrator"]))


def loaded(backends: Any) -> dict[str, bool]:
    """role → whether its model is loaded yet."""
    return {role: backends.get(role).loaded for role in backends.ROLES}


def warm(backends: Any) -> dict[str, str]:
    """Load every model now instead of on the first book; returns role → 'ok' or the error."""
    report = {}
    for role in backends.ROLES:
        try:
            _ = backends.get(role).inner
            report[role] = "ok"
        except Exception as e:  # shown by /healthz; the job that needs the backend fails with the same error
            report[role] = f"{type(e).__name__}: {e}"
    return report
