"""The backend pool: the one place a backend call passes through between a stage (or a route) and the
model. `Pool(settings).get(role)` gives a wrapper that implements the role's interface and does three
things, once, for every caller (CLI, job workers, single-step routes):

- lazy creation: the backend is built from Settings on first use (thread-safe) and then kept; the
  backend gets the configured `device` when it takes one (plugins too) and its role's `backend_options`;
- timing: time inside the model (loading included) is added to the `Meter` of the stage that called it;
- concurrency: at most `limits[role]` calls at once; the illustrator's calls go through the `Batcher`,
  which batches requests from every book together.

    stage ─► Pooled<Role>.method ─► backend.method        (illustrator: ─► Batcher ─► backend.generate)

Capabilities a caller needs are declared on the interfaces (base.py) and read through the wrapper;
anything else a backend offers is reached with `pool.get(role).inner`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from taleloom.backends import registry
from taleloom.backends.base import (
    Answer,
    Backend,
    Captioner,
    Illustrator,
    Narrator,
    Piece,
    Sampling,
    TextModel,
    Upscaler,
)
from taleloom.backends.batching import Batcher
from taleloom.backends.roles import DEFAULT_CONCURRENCY, ROLES
from taleloom.book import Caption, ImageRequest

# ---------------------------------------------------------------- timing


@dataclass
class Meter:
    """Model time and the roles one stage used (read by the orchestrator after the stage)."""

    seconds: float = 0.0
    used: dict[str, Pooled] = field(default_factory=dict)  # role → wrapper, in order of first use


_meter: ContextVar[Meter | None] = ContextVar("taleloom_meter", default=None)


@contextmanager
def metered() -> Iterator[Meter]:
    """Count the model time of every pooled call made in this context (thread) into a fresh Meter."""
    meter = Meter()
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        _meter.reset(token)


# ---------------------------------------------------------------- the wrapper


class Pooled:
    """Lazy creation, timing and a concurrency limit around one role's backend. Subclasses below add
    the role's interface, each method one `_call`."""

    role: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every capability the role's interface declares (a bool or int class attribute in base.py, e.g.
        `can_stream`, `max_batch`, `draws_concepts`) reads the backend's own value: a new capability is
        declared in base.py alone."""
        super().__init_subclass__(**kwargs)
        for base in cls.__mro__:
            if not issubclass(base, Backend) or base is Backend or issubclass(base, Pooled):
                continue
            for name, value in vars(base).items():
                if isinstance(value, bool | int) and not name.startswith("_") and name not in vars(cls):
                    setattr(cls, name, property(lambda self, n=name: getattr(self.inner, n)))

    def __init__(self, role: str, make: Callable[[], Backend], limit: int = 1,
                 on_made: Callable[[Backend], None] | None = None):
        self.role, self._make, self.limit = role, make, limit
        self.slots = threading.BoundedSemaphore(limit)
        self._inner: Backend | None = None
        self._on_made = on_made
        self._build = threading.Lock()
        self.load_seconds: float | None = None

    @property
    def inner(self) -> Any:
        """The backend itself, created on first use."""
        meter = _meter.get()
        if self._inner is None:
            with self._build:
                if self._inner is None:
                    t0 = time.perf_counter()
                    backend = self._make()
                    if self._on_made:
                        self._on_made(backend)
                    self.load_seconds = time.perf_counter() - t0
                    self._inner = backend
                    if meter is not None:  # loading weights is model time too
                        meter.seconds += self.load_seconds
        if meter is not None:
            meter.used.setdefault(self.role, self)
        return self._inner

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        fn = getattr(self.inner, method)
        t0 = time.perf_counter()
        try:
            with self.slots:
                return fn(*args, **kwargs)
        finally:
            _count(t0)

    def _stream(self, method: str, *args: Any) -> Iterator[Any]:
        fn = getattr(self.inner, method)
        t0 = time.perf_counter()
        try:
            with self.slots:
                yield from fn(*args)
        finally:
            _count(t0)

    # what stages, routes and the manifest read from any backend
    model_id = property(lambda self: self.inner.model_id)  # type: ignore[assignment]
    name = property(lambda self: getattr(self.inner, "name", self.role))  # type: ignore[assignment]

    def ready(self) -> tuple[bool, str]:
        return self.inner.ready()

    def __repr__(self) -> str:
        return f"<pooled {self.role}: {self._inner!r}>" if self._inner is not None else f"<pooled {self.role}: not loaded>"


def _count(t0: float) -> None:
    meter = _meter.get()
    if meter is not None:
        meter.seconds += time.perf_counter() - t0


class PooledTextModel(Pooled, TextModel):
    def preload(self, prefixes: Sequence[list[dict[str, str]]] = ()) -> None:
        self.inner.preload(prefixes)  # not a call: no slot taken, no model time counted (see Pooled.inner)

    def chat(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
             schema: dict[str, Any] | None = None) -> str:
        return self._call("chat", messages, sampling, schema)

    def answer(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
               schema: dict[str, Any] | None = None) -> Answer:
        return self._call("answer", messages, sampling, schema)

    def stream(self, messages: list[dict[str, str]], sampling: Sampling | None = None) -> Iterator[str]:
        return self._stream("stream", messages, sampling)

    def answer_stream(self, messages: list[dict[str, str]], sampling: Sampling | None = None) -> Iterator[Piece]:
        return self._stream("answer_stream", messages, sampling)


class PooledCaptioner(Pooled, Captioner):
    def caption(self, image: Image.Image, hint: str | None = None) -> Caption:
        return self._call("caption", image, hint)


class PooledIllustrator(Pooled, Illustrator):
    """Every `generate` goes through the Batcher (its dispatcher threads are this role's limit)."""

    def __init__(self, role: str, make: Callable[[], Backend], limit: int = 1,
                 on_made: Callable[[Backend], None] | None = None, max_wait: float = 0.0):
        super().__init__(role, make, limit, on_made)
        self.batcher = Batcher(lambda: self.inner, workers=limit, max_wait=max_wait, slots=self.slots)

    aligned = property(lambda self: self.inner.aligned)  # type: ignore[assignment]

    def generate(self, requests: list[ImageRequest]) -> list[Image.Image]:
        self.inner  # noqa: B018 — created (and metered) in the caller's context, not a dispatcher thread's
        t0 = time.perf_counter()
        try:
            return self.batcher.generate(requests)
        finally:
            _count(t0)

    def img2img(self, request: ImageRequest, image: Image.Image, strength: float = 0.6) -> Image.Image:
        return self._call("img2img", request, image, strength)

    def inpaint(self, request: ImageRequest, image: Image.Image, mask: Image.Image) -> Image.Image:
        return self._call("inpaint", request, image, mask)

    def nearest_concepts(self, text: str, k: int = 5) -> list[str]:
        t0 = time.perf_counter()  # text-embedding lookups: timed, but not behind the drawing slots
        try:
            return self.inner.nearest_concepts(text, k)
        finally:
            _count(t0)

    def concept_vocabulary(self) -> list[str]:
        return self.inner.concept_vocabulary()

    def stats(self) -> dict[str, Any]:
        return self.batcher.stats()


class PooledUpscaler(Pooled, Upscaler):
    def upscale(self, image: Image.Image, factor: int = 4, prompt: str = "", seed: int = 0) -> Image.Image:
        return self._call("upscale", image, factor, prompt, seed)

    def upscale_batch(self, images: list[Image.Image], factor: int = 4, prompts: list[str] | None = None,
                      seeds: list[int] | None = None) -> list[Image.Image]:
        return self._call("upscale_batch", images, factor, prompts, seeds)


class PooledNarrator(Pooled, Narrator):
    def speak(self, text: str, language: str) -> bytes:
        return self._call("speak", text, language)

    def speak_words(self, text: str, language: str):
        return self._call("speak_words", text, language)

    def languages(self) -> set[str]:
        return self.inner.languages()

    def voice_for(self, language: str) -> str:
        return self.inner.voice_for(language)


WRAPPERS: dict[str, type[Pooled]] = {"captioner": PooledCaptioner, "llm": PooledTextModel,
                                     "illustrator": PooledIllustrator, "upscaler": PooledUpscaler,
                                     "narrator": PooledNarrator}
assert tuple(WRAPPERS) == ROLES, "every role in the role table needs its wrapper here"


# ---------------------------------------------------------------- the pool


class Pool:
    """Every role's wrapped backend, built from `settings` on first use. Ready-made backends given as
    keywords (tests, benchmarks) are wrapped the same way. `limits`: calls at once per role (default:
    the role table's); `batch_wait`: seconds the illustrator's batcher waits for more books' requests
    (the service: 0.05; one book at a time: 0)."""

    ROLES = ROLES

    def __init__(self, settings: Any = None, *, limits: dict[str, int] | None = None, batch_wait: float = 0.0,
                 **given: Backend | None):
        unknown = set(given) - set(ROLES)
        if unknown:
            raise TypeError(f"unknown backend roles {sorted(unknown)}; known: {ROLES}")
        if settings is None:
            from taleloom.config import get_settings

            settings = get_settings()
        self.settings = settings
        self.limits = DEFAULT_CONCURRENCY | (limits or {})
        self._torch_threads_set = False
        self._pooled: dict[str, Pooled] = {}
        for role in ROLES:
            ready = given.get(role)
            make = (lambda b=ready: b) if ready is not None else (lambda r=role: self._create(r))
            extra = {"max_wait": batch_wait} if role == "illustrator" else {}
            self._pooled[role] = WRAPPERS[role](role, make, self.limits[role], on_made=self._wire, **extra)

    @classmethod
    def from_settings(cls, settings: Any) -> Pool:
        return cls(settings)

    def get(self, role: str) -> Any:
        try:
            return self._pooled[role]
        except KeyError:
            from taleloom.errors import choice_error

            raise choice_error("backend role", role, ROLES) from None

    def loaded(self, role: str) -> bool:
        return self._pooled[role].loaded

    @property
    def load_seconds(self) -> dict[str, float]:
        return {r: p.load_seconds for r, p in self._pooled.items() if p.load_seconds is not None}

    def warm(self) -> dict[str, str]:
        """Load every model now instead of on the first book; returns role → 'ok' or the error."""
        report = {}
        for role, pooled in self._pooled.items():
            try:
                pooled.inner  # noqa: B018
                report[role] = "ok"
            except Exception as e:  # shown by /healthz; the job that needs the backend fails with the same error
                report[role] = f"{type(e).__name__}: {e}"
        return report

    # creation -------------------------------------------------------------------------------------
    def _create(self, role: str) -> Backend:
        options = dict(getattr(self.settings, "backend_options", {}).get(role, {}))
        backend = registry.create(role, getattr(self.settings, role), default_device=self.settings.device, **options)
        self._limit_torch_threads()
        return backend

    def _wire(self, backend: Backend) -> None:
        """A captioner that words its captions with the LLM gets the pooled LLM (one limit for every LLM call)."""
        if isinstance(backend, Captioner) and backend.uses_llm:
            backend.use_llm(self._pooled["llm"])

    def _limit_torch_threads(self) -> None:
        """Once a backend has brought in PyTorch, give it `cpu_threads()` threads (see there why)."""
        if not self._torch_threads_set and "torch" in sys.modules:
            import torch

            from taleloom.config import cpu_threads

            torch.set_num_threads(cpu_threads(getattr(self.settings, "torch_threads", 0)))
            self._torch_threads_set = True

    captioner = property(lambda self: self._pooled["captioner"])
    llm = property(lambda self: self._pooled["llm"])
    illustrator = property(lambda self: self._pooled["illustrator"])
    upscaler = property(lambda self: self._pooled["upscaler"])
    narrator = property(lambda self: self._pooled["narrator"])
