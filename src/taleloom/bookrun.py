"""A book being run: its folder, its record, the backends and stage functions it runs with, and its
progress events. This is what a stage's runner (runners.py) is handed, and how the orchestrator and
editions read and save a book folder's manifest.json; it sits below both so neither imports the other."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from taleloom.backends.pool import Pool
from taleloom.book import Storybook, now
from taleloom.errors import BadInputError
from taleloom.files import atomic_write_json
from taleloom.stages import bind as _bind
from taleloom.stages import illustrate as _illustrate
from taleloom.stages import narrate as _narrate
from taleloom.stages import see as _see
from taleloom.stages import stage as _stage
from taleloom.stages import translate as _translate
from taleloom.stages import write as _write

MANIFEST = "manifest.json"
EventKind = Literal["started", "progress", "finished", "failed", "done"]
BOOK = "book"  # the stage name of the final "done" event


@dataclass
class Event:
    book_id: str
    stage: str
    kind: EventKind
    progress: float | None = None
    message: str = ""
    at: str = field(default_factory=now)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


OnEvent = Callable[[Event], None]


# ---------------------------------------------------------------- what a run is given


@dataclass(frozen=True)
class StageFunctions:
    """The plain stage functions the runners call. They are passed in with the backends, so a test gives
    stand-ins (`dataclasses.replace(StageFunctions(), translate=fake)`) instead of swapping modules."""

    see: Callable = _see.see
    write_story: Callable = _write.write_story
    story_sampling: Callable = _write.story_sampling
    rewrite_page: Callable = _write.rewrite_page
    extend_story: Callable = _write.extend_story
    translate: Callable = _translate.translate
    stage: Callable = _stage.stage
    illustrate: Callable = _illustrate.illustrate
    upscale: Callable = _illustrate.upscale
    narrate: Callable = _narrate.narrate
    bind: Callable = _bind.bind


class Backends(Pool):
    """The backend pool (lazy creation, timing, limits: backends/pool.py) with the stage functions the
    runners call: everything a run needs besides the book. Keywords as Pool's, plus `functions`."""

    def __init__(self, settings: Any = None, *, functions: StageFunctions | None = None, **kwargs: Any):
        super().__init__(settings, **kwargs)
        self.functions = functions or StageFunctions()


# ---------------------------------------------------------------- book folder

def load_book(book_dir: Path) -> Storybook:
    """The book saved in `book_dir` (its manifest.json)."""
    path = Path(book_dir) / MANIFEST
    if not path.is_file():
        raise BadInputError(f"{book_dir} holds no book (no {MANIFEST})", "give the folder of a book made by Taleloom")
    try:
        return Storybook.model_validate_json(path.read_bytes(), context={"stored": True})
    except ValidationError as e:
        raise BadInputError(f"{path} is not a valid book manifest: {e.errors()[0]['msg']}",
                            "the file was edited or comes from another version; make the book again") from None


def save_book(book_dir: Path, book: Storybook) -> None:
    atomic_write_json(Path(book_dir) / MANIFEST, book.model_dump(mode="json"))


class Run:
    """What a stage function sees: the book, its folder, the backend pool, progress, and saving."""

    def __init__(self, book_dir: Path, book: Storybook, backends: Backends, on_event: OnEvent | None):
        self.dir, self.book, self.backends, self.on_event = Path(book_dir), book, backends, on_event
        self.fns = backends.functions
        self.roles: tuple[str, ...] | None = None  # the running stage's declared roles (None: any)
        self.stage = ""
        self._lock = threading.RLock()  # two stages may run at once (orchestrator._Lanes): one save, one event at a time

    def for_stage(self, name: str) -> Run:
        """A view of this run for one stage on its own thread: the same book, folder, backends and lock,
        its own stage name and roles."""
        view = copy.copy(self)
        view.stage, view.roles = name, None
        return view

    def emit(self, kind: EventKind, progress: float | None = None, message: str = "", stage: str | None = None):
        if self.on_event:
            with self._lock:
                self.on_event(Event(self.book.id, stage or self.stage, kind, progress, message))

    def progress(self, done: int, total: int, what: str = "") -> None:
        self.emit("progress", done / total if total else 1.0, f"{done}/{total} {what}".strip())

    def backend(self, role: str):
        """The pooled backend for `role`: created on first use; time inside it counts as the stage's model time.
        A stage may ask only for the roles the stage table declares for it."""
        if self.roles is not None and role not in self.roles:
            raise RuntimeError(f"stage {self.stage!r} asked for the {role} backend; the stage table declares "
                               f"{self.roles or 'none'} (taleloom/pipeline.py)")
        return self.backends.get(role)

    def record_models(self, used: dict[str, Any]) -> str | None:
        """Model ids of the backends this stage used (read after the calls: lazy backends name
        their weights only once loaded)."""
        ids = []
        for role, backend in used.items():
            model_id = backend.model_id or backend.name
            self.book.models[role] = model_id
            ids.append(model_id)
        return ", ".join(dict.fromkeys(ids)) or None

    def save(self) -> None:
        with self._lock:  # the snapshot and its file together, so the last save holds every lane's work
            save_book(self.dir, self.book)


