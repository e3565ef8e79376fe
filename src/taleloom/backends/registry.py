"""Backend registry filled by `register` calls. Built-ins register exactly like plugins: through
the entry-point group ``taleloom.backends`` (see pyproject.toml), whose targets are called with
the `register` function.

A spec string picks a backend: ``name[:location][#model]`` —
``smollm2``, ``openai:http://127.0.0.1:8000/v1#qwen2.5-7b``, ``diffusers-sdxl:/models/sdxl``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

from taleloom.errors import choice_error

ROLES = ("captioner", "llm", "illustrator", "upscaler", "narrator")


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
    factory: Callable  # factory(location=..., model=..., **options) -> Backend
    description: str = ""


_REGISTRY: dict[tuple[str, str], Entry] = {}
_loaded = False


def register(role: str, name: str, factory: Callable, description: str = "") -> None:
    """Add a backend. `factory` is usually the class; it is only called when the backend is used."""
    if role not in ROLES:
        raise choice_error("backend role", role, ROLES)
    _REGISTRY[(role, name)] = Entry(role, name, factory, description)


def _load_plugins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in entry_points(group="taleloom.backends"):
        ep.load()(register)


def available(role: str | None = None) -> list[Entry]:
    _load_plugins()
    return [e for (r, _), e in sorted(_REGISTRY.items()) if role is None or r == role]


def create(role: str, spec: str, **options):
    """Build the backend named by `spec` for `role`; unknown names list the known ones."""
    _load_plugins()
    s = Spec.parse(spec)
    entry = _REGISTRY.get((role, s.name))
    if entry is None:
        raise choice_error(f"{role} backend", s.name, [n for (r, n) in _REGISTRY if r == role])
    return entry.factory(location=s.location, model=s.model, **options)
