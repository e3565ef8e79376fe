"""Backend registry filled by `register` calls. Built-ins register exactly like plugins: through
the entry-point group ``taleloom.backends`` (see pyproject.toml), whose targets are called with
the `register` function (TALELOOM_PLUGINS names more such functions).

    register(role, name, factory, description="")

`factory` is a Backend class, or a ``"package.module:Class"`` string imported only when the backend
is first created (so `taleloom --help` stays fast and a missing optional dependency only matters to
the backend that needs it), or any callable ``factory(location=, model=, **options) -> Backend``.
Every backend whose `Options` has a ``device`` field (or a callable with a ``device`` parameter) is
given the configured torch device, plugins included.

A spec string picks a backend: ``name[:location][#model]`` —
``smollm2``, ``openai:http://127.0.0.1:8000/v1#qwen2.5-7b``, ``diffusers-sdxl:/models/sdxl``.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from taleloom.backends.roles import ROLES
from taleloom.errors import choice_error

__all__ = ["ROLES", "Entry", "Spec", "available", "create", "register"]


@dataclass(frozen=True)
class Spec:
    name: str
    location: str | None = None
    model: str | None = None

    @classmethod
    def parse(cls, text: str) -> Spec:
        rest, _, model = text.partition("#")
        name, sep, location = rest.partition(":")
        return cls(name.strip(), location.strip() if sep else None, model.strip() or None)


@dataclass(frozen=True)
class Entry:
    role: str
    name: str
    factory: Callable | str  # a class, "module:Class", or factory(location=..., model=..., **options) -> Backend
    description: str = ""

    @property
    def target(self) -> str | None:
        """'module:Class' of a lazily imported backend, else None."""
        return self.factory if isinstance(self.factory, str) else None

    def load(self) -> Callable:
        """The class or callable that builds the backend (imports its module the first time)."""
        if isinstance(self.factory, str):
            module, _, cls = self.factory.partition(":")
            return getattr(importlib.import_module(module), cls)
        return self.factory

    def takes_device(self, factory: Callable | None = None) -> bool:
        """Whether the backend accepts a torch `device` (its Options declare one, or the callable takes one)."""
        factory = factory or self.load()
        options = getattr(factory, "Options", None)
        if isinstance(factory, type) and options is not None:
            return "device" in getattr(options, "model_fields", {})
        try:
            return "device" in inspect.signature(factory).parameters
        except (TypeError, ValueError):
            return False


_REGISTRY: dict[tuple[str, str], Entry] = {}
_loaded = False
_loading = threading.Lock()
_loader: int | None = None  # the thread registering the entry points (a plugin's own lookups return at once)


def register(role: str, name: str, factory: Callable | str, description: str = "") -> None:
    """Add a backend (see the module docstring); it is only built when a spec names it."""
    if role not in ROLES:
        raise choice_error("backend role", role, ROLES)
    _REGISTRY[(role, name)] = Entry(role, name, factory, description)


def _load_plugins() -> None:
    """Register the entry points' backends (the built-ins among them) once. Two threads may ask at once (the
    orchestrator loads the LLM on a thread while the see stage builds the captioner): the second waits, and
    `_loaded` is set only when every entry point has registered, so nobody sees a half-filled registry."""
    global _loaded, _loader
    if _loaded or _loader == threading.get_ident():
        return
    with _loading:
        if _loaded:
            return
        _loader = threading.get_ident()
        try:
            for ep in entry_points(group="taleloom.backends"):
                ep.load()(register)
        finally:
            _loaded, _loader = True, None


def available(role: str | None = None) -> list[Entry]:
    _load_plugins()
    return [e for (r, _), e in sorted(_REGISTRY.items()) if role is None or r == role]


def entry(role: str, spec: str) -> Entry:
    """The registered backend a spec names; unknown names list the known ones."""
    _load_plugins()
    name = Spec.parse(spec).name
    found = _REGISTRY.get((role, name))
    if found is None:
        raise choice_error(f"{role} backend", name, [n for (r, n) in _REGISTRY if r == role])
    return found


def create(role: str, spec: str, *, default_device: str | None = None, **options: Any):
    """Build the backend named by `spec` for `role`. `default_device` goes to every backend that takes a
    device, unless `options` name one (then the backend's Options judge it); unknown names list the known ones."""
    found = entry(role, spec)
    s = Spec.parse(spec)
    factory = found.load()
    if default_device is not None and "device" not in options and found.takes_device(factory):
        options["device"] = default_device
    return factory(location=s.location, model=s.model, **options)
