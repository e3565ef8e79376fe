"""Runs the stages of a book in order, reports progress events, and saves manifest.json atomically
after every stage (and after every batch of pictures), so calling `run_book` again resumes a book
that was interrupted. Used by the CLI and by the HTTP service; see .notes/PIPELINE_API.md.

Stages work page by page on what is missing (no translation, no request, no picture, no audio), so
resuming, extending and redrawing all reuse the same loop: an edit clears what it invalidates, marks
the later stages pending, and runs the book again.
"""

from __future__ import annotations

import secrets
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from taleloom.backends.pool import metered
from taleloom.book import SEED_MAX, Brief, Change, Page, StageRecord, Storybook, count, now
from taleloom.bookrun import (
    BOOK,
    MANIFEST,
    Backends,
    Event,
    OnEvent,
    Run,
    StageFunctions,
    load_book,
    save_book,
)
from taleloom.errors import BadInputError, TaleloomError
from taleloom.files import atomic_save_image, remove_stale_temps
from taleloom.imageio import load_photo
from taleloom.pipeline import STAGE, STAGES
from taleloom.stages.stage import concept_mapper_for, get_style, page_seed, stage_page
from taleloom.stages.write import book_prefix

PHOTO = "photo.png"
_Run = Run  # the name editions.py and older callers use
__all__ = ["BOOK", "MANIFEST", "Backends", "Event", "StageFunctions", "OnEvent", "create_book", "extend_book", "load_book", "redraw_page",
           "reseed", "rewrite_page", "run_book", "save_book", "validate_brief"]


# ---------------------------------------------------------------- book folder

def create_book(book_dir: Path, brief: Brief, photo: bytes | Path | None, url: str | None,
                book_id: str | None = None, photo_limits: dict[str, int] | None = None) -> Storybook:
    """Validate the brief and photo, write photo.png + manifest.json; nothing is generated yet.

    `url` is the link readers open, printed and in the QR code (the service passes its share link,
    `config.share_url`); None: the book has no link. The book's id is `book_id`, else the folder's name.
    `photo_limits` (max_bytes, max_pixels) are the server's, passed on to `load_photo`.
    """
    book_dir = Path(book_dir)
    validate_brief(brief)
    if photo is None and not (brief.idea and brief.idea.strip()):
        raise BadInputError("a book needs a photo, an idea, or both", 'give a photo, or --idea "a cat who flies"')
    if (book_dir / MANIFEST).exists():
        raise BadInputError(f"{book_dir} already holds a book", "resume it, or choose another folder")
    loaded = load_photo(photo, **(photo_limits or {})) if photo is not None else None
    book_id = book_id or book_dir.name
    book = Storybook(id=book_id, brief=brief, url=url,
                     stages={name: StageRecord(name=name) for name in STAGES})
    if loaded is not None:
        atomic_save_image(book_dir / PHOTO, loaded.image)
        book.photo = PHOTO
        book.notes.extend(loaded.notes)
    save_book(book_dir, book)
    return book


def validate_brief(brief: Brief) -> None:
    """Style and language must be known before anything runs (the pydantic model checks the numbers)."""
    get_style(brief.style)
    try:
        from taleloom.stages.translate import LANGUAGES
    except ImportError:
        return
    if brief.lang not in LANGUAGES:
        from taleloom.errors import choice_error

        raise choice_error("language", brief.lang, list(LANGUAGES))


# ---------------------------------------------------------------- running

_locks: dict[Path, tuple[threading.RLock, int]] = {}  # book folder → (lock, holders and waiters)
_locks_guard = threading.Lock()


@contextmanager
def _book_lock(book_dir: Path):
    """One run at a time per book folder within this process (the service's job leases keep other
    processes off it). The entry goes when nobody holds or waits for it, so the table does not grow
    by one per book for the life of the server."""
    key = Path(book_dir).resolve()
    with _locks_guard:
        lock, users = _locks.get(key, (None, 0))
        lock = lock or threading.RLock()
        _locks[key] = (lock, users + 1)
    try:
        with lock:
            yield
    finally:
        with _locks_guard:
            lock, users = _locks[key]
            if users <= 1:
                del _locks[key]
            else:
                _locks[key] = (lock, users - 1)


def run_book(book_dir: Path, backends: Backends, on_event: OnEvent | None = None) -> Storybook:
    """Run every unfinished stage, saving after each; calling it again resumes."""
    book_dir = Path(book_dir)
    with _book_lock(book_dir):
        remove_stale_temps(book_dir)  # litter from a run killed mid-write; we hold the lock, so no writer is active
        book = load_book(book_dir)
        run = _Run(book_dir, book, backends, on_event)
        todo = [name for name in STAGES if not book.stage_done(name)]
        if not book.stage_done("bind"):
            _warm_renderer()
        _preload_llm(backends, todo, book.brief)
        t0 = time.perf_counter()
        _run_stages(run, todo)
        run.emit("done", 1.0, f"book ready in {time.perf_counter() - t0:.1f} s", stage=BOOK)
        return book


LANES = 2  # stages at once: the LLM's one thread and the pictures' one thread on a 2-core machine


class _Lanes:
    """Which unfinished stages may start: a stage starts once the stages it reads (pipeline.py) are done
    and no running stage shares a backend role with it, so the translation (LLM) runs beside the
    pictures (illustrator, upscaler). The main thread is one lane and runs in table order when nothing
    else is ready; a second thread is the other. Books come out as they would one stage at a time."""

    def __init__(self, book: Storybook, todo: list[str]):
        self.book, self.todo, self.running = book, list(todo), set[str]()
        self.done = {name for name in book.stages if book.stage_done(name) and name not in todo}
        self.cond = threading.Condition()
        self.error: BaseException | None = None

    def _ready(self, name: str) -> bool:
        spec = STAGE[name]
        return (all(r in self.done for r in spec.reads)  # finished, saved and announced: not just marked done
                and all(not set(spec.roles) & set(STAGE[r].roles) for r in self.running))

    def take(self) -> str | None:
        """The next stage for this lane (waits while none is ready), or None when the lane is done."""
        with self.cond:
            while True:
                if self.error is not None or not self.todo:
                    return None
                name = next((n for n in self.todo if self._ready(n)), None)
                if name is not None and len(self.running) < LANES:
                    self.todo.remove(name)
                    self.running.add(name)
                    return name
                if not self.running:  # cannot happen while every stage reads only earlier ones (pipeline.py)
                    raise RuntimeError(f"no stage of {self.todo} can start: the stage table's reads are circular")
                self.cond.wait()

    def finish(self, name: str, error: BaseException | None = None) -> None:
        with self.cond:
            self.running.discard(name)
            if self.book.stage_done(name):
                self.done.add(name)
            if error is not None and self.error is None:
                self.error = error
            if error is not None and not self.book.stage_done(name):
                self.todo.clear()  # a failed stage stops the book: no lane starts another
            self.cond.notify_all()


def _run_stages(run: _Run, todo: list[str]) -> None:
    """Run the stages in `todo` on up to LANES lanes (see _Lanes); the first failure is raised once the
    other lane's running stage has finished and been saved (a Ctrl-C does not wait for it)."""
    lanes = _Lanes(run.book, todo)

    def lane() -> None:
        while (name := lanes.take()) is not None:
            try:
                _run_stage(run.for_stage(name), name)
            except BaseException as e:  # handed to the main thread, which raises it
                lanes.finish(name, e)
                return
            lanes.finish(name)

    helper = None
    if LANES > 1 and len(todo) > 1:
        helper = threading.Thread(target=lane, name=f"stages-{run.book.id}", daemon=True)
        helper.start()
    try:
        lane()
    except BaseException as e:  # a Ctrl-C while this lane waited for the other
        lanes.finish("", e)
    if isinstance(lanes.error, KeyboardInterrupt):
        _interrupt_running(run, lanes)
        raise lanes.error
    if helper is not None:
        helper.join()
    if lanes.error is not None:
        raise lanes.error


def _interrupt_running(run: _Run, lanes: _Lanes) -> None:
    """On Ctrl-C the other lane's stage is left to die with the process: record it as interrupted, so the
    manifest never says "running" for a stage nothing runs (resuming redoes it either way)."""
    with lanes.cond:
        names = list(lanes.running)
    for name in names:
        rec = run.book.stages.get(name)
        if rec is not None and rec.status == "running":
            rec.status, rec.finished, rec.message = "failed", now(), "interrupted"
    run.save()


def _preload_llm(backends: Backends, todo: list[str], brief: Brief) -> None:
    """When a later stage needs the LLM, load it in the background while the first stage works (a local
    GGUF loads in its child process on the other core: seconds off the see stage), and evaluate the start
    of the write stage's request there too: its instructions and the brief's lines (book_prefix; the
    request then starts from them). A failure here is left for the stage that needs the LLM to raise."""
    if not todo or "llm" in STAGE[todo[0]].roles or not any("llm" in STAGE[n].roles for n in todo):
        return
    llm = backends.get("llm")
    prefixes = [book_prefix(brief)] if "write" in todo else []

    def preload() -> None:
        try:
            llm.preload(prefixes)
        except Exception:  # the stage that asks the LLM reports the same error, with its context
            pass

    threading.Thread(target=preload, name="preload-llm", daemon=True).start()


def _warm_renderer() -> None:
    """Import WeasyPrint (~0.6 s) in the background while the models work, not on the bind stage's clock."""

    if "weasyprint" not in sys.modules:
        threading.Thread(target=__import__, args=("weasyprint",), name="warm-weasyprint", daemon=True).start()


def _run_stage(run: _Run, name: str) -> None:
    book, runner = run.book, STAGE[name].run
    rec = book.stages.setdefault(name, StageRecord(name=name))
    run.stage, run.roles = name, STAGE[name].roles
    # The service's job may refuse the stage here (its lease is lost): then it never ran, and the record is
    # left untouched. It is stamped only after: stamped before, another lane's save could write a start that
    # never happened.
    run.emit("started", 0.0)
    rec.status, rec.started, rec.finished, rec.message = "running", now(), None, None
    t0 = time.perf_counter()
    try:
        with metered() as meter:
            outcome = runner(run)
    except BaseException as e:  # KeyboardInterrupt too: record it, then let it go on
        rec.status, rec.finished = "failed", now()
        rec.seconds = round(time.perf_counter() - t0, 3)
        rec.message = "interrupted" if isinstance(e, KeyboardInterrupt) else _describe(e)
        run.save()
        run.emit("failed", None, rec.message)
        raise
    rec.seconds = round(time.perf_counter() - t0, 3)
    rec.model_seconds = round(meter.seconds, 3)
    rec.model_id = run.record_models(meter.used)
    rec.finished = now()
    rec.status = "skipped" if outcome and outcome.startswith("skipped:") else "done"
    rec.message = outcome.removeprefix("skipped:").strip() if outcome else None
    run.save()
    run.emit("finished", 1.0, rec.message or f"{rec.seconds:.1f} s")


def _describe(e: BaseException) -> str:
    if isinstance(e, TaleloomError):
        return e.message + (f" ({e.hint})" if e.hint else "")
    return f"{type(e).__name__}: {e}"


# ---------------------------------------------------------------- edits

_AFTER_TEXT = STAGE["write"].invalidates  # a page's text changed
_AFTER_PICTURE = STAGE["stage"].invalidates  # a page's picture request changed


def _reopen(book: Storybook, stages: tuple[str, ...]) -> None:
    for name in stages:
        book.stages[name] = StageRecord(name=name)


def _finish_first(book_dir: Path, backends: Backends, on_event: OnEvent | None) -> Storybook:
    book = load_book(book_dir)
    return book if book.complete else run_book(book_dir, backends, on_event)


def extend_book(book_dir: Path, backends: Backends, pages: int, on_event: OnEvent | None = None) -> Storybook:
    """Add `pages` pages that continue the story, draw and narrate them, and bind the book again."""
    book_dir = Path(book_dir)
    with _book_lock(book_dir):
        book = _finish_first(book_dir, backends, on_event)
        total = len(book.pages) + pages
        limit = Brief.model_fields["pages"].metadata
        top = next((m.le for m in limit if hasattr(m, "le")), 24)
        if pages < 1 or total > top:
            raise BadInputError(f"cannot add {pages} pages to a book of {len(book.pages)}",
                                f"add between 1 and {top - len(book.pages)} pages (a book has at most {top})")
        run = _Run(book_dir, book, backends, on_event)
        run.stage = "write"
        run.emit("started", 0.0, f"writing {pages} more pages")
        drafts = run.fns.extend_story(book, pages, run.backend("llm"))
        start = len(book.pages)
        book.pages.extend(Page(index=start + i + 1, text=d.text, scene=d.scene, outline=d.outline)
                          for i, d in enumerate(drafts))
        book.brief = book.brief.model_copy(update={"pages": len(book.pages)})
        book.history.append(Change(action="extend", params={"pages": pages, "from": start + 1}))
        _reopen(book, _AFTER_TEXT)
        save_book(book_dir, book)
        run.emit("finished", 1.0, f"{count(len(drafts), 'page')} written")
        return run_book(book_dir, backends, on_event)


def rewrite_page(book_dir: Path, backends: Backends, n: int, instruction: str,
                 on_event: OnEvent | None = None) -> Storybook:
    """Rewrite page `n` following `instruction`; its picture and narration are made again."""
    book_dir = Path(book_dir)
    if not instruction or not instruction.strip():
        raise BadInputError("a rewrite needs an instruction", 'e.g. --instruction "make it funnier"')
    with _book_lock(book_dir):
        book = _finish_first(book_dir, backends, on_event)
        old = book.page(n)
        run = _Run(book_dir, book, backends, on_event)
        run.stage = "write"
        run.emit("started", 0.0, f"rewriting page {n}")
        draft = run.fns.rewrite_page(book, n, instruction, book.brief, run.backend("llm"))  # the book carries the cast sheet
        book.pages[n - 1] = Page(index=n, text=draft.text, scene=draft.scene, outline=old.outline)
        book.history.append(Change(action="rewrite", page=n,
                                   params={"instruction": instruction, "old_text": old.text}))
        _reopen(book, _AFTER_TEXT)
        save_book(book_dir, book)
        run.emit("finished", 1.0, f"page {n} rewritten")
        return run_book(book_dir, backends, on_event)


def reseed(book_dir: Path, seed: int | None = None) -> int:
    """Before a failed book is retried: the stages still to run take `seed`, else a fresh random one (the
    same seed would fail the same way); finished stages keep what they made. Returns the seed."""
    book_dir = Path(book_dir)
    with _book_lock(book_dir):
        book = load_book(book_dir)
        if seed is None:
            seed = secrets.randbelow(SEED_MAX + 1)
        book.history.append(Change(action="retry", params={"seed": seed, "old_seed": book.brief.seed}))
        book.brief = book.brief.model_copy(update={"seed": seed})
        save_book(book_dir, book)
        return seed


def redraw_page(book_dir: Path, backends: Backends, n: int, seed: int | None = None, style: str | None = None,
                on_event: OnEvent | None = None) -> Storybook:
    """Draw page `n` again with a new seed and/or style. No seed: with a new style, the page's own seed (the
    same picture in another style); without, the next seed after the page's current one (reproducible:
    a redraw of a copy of the book draws the same picture)."""
    book_dir = Path(book_dir)
    if style is not None:
        get_style(style)
    with _book_lock(book_dir):
        book = _finish_first(book_dir, backends, on_event)
        page = book.page(n)
        if seed is None:
            current = page.request.seed if page.request else page_seed(book.brief.seed, n)
            seed = current if style is not None else (current + 1) % (SEED_MAX + 1)
        mapper = concept_mapper_for(backends.illustrator)
        page.request = stage_page(book, page, mapper, seed=seed, style=style or book.brief.style)
        page.image = page.image_lowres = None
        book.history.append(Change(action="redraw", page=n, params={"seed": seed, "style": page.request.style}))
        _reopen(book, _AFTER_PICTURE)
        save_book(book_dir, book)
        return run_book(book_dir, backends, on_event)

