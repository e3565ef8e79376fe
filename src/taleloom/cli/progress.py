"""Live per-stage progress for the book commands (rich), and the timing summary printed after."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table

from taleloom.book import Storybook, count
from taleloom.bookrun import BOOK, Event
from taleloom.pipeline import STAGES

_ICONS = {"done": "[green]✓[/]", "skipped": "[yellow]–[/]", "failed": "[red]✗[/]", "pending": "[dim]·[/]"}


class StageBoard:
    """What the live display shows: one row per stage, updated from orchestrator events."""

    def __init__(self, stages: tuple[str, ...] = STAGES):
        self.rows: dict[str, dict[str, Any]] = {s: {"status": "pending", "progress": None, "message": "",
                                                    "t0": None, "seconds": None} for s in stages}

    def __call__(self, event: Event) -> None:
        if event.stage == BOOK:
            return
        row = self.rows.setdefault(event.stage, {"status": "pending", "progress": None, "message": "",
                                                 "t0": None, "seconds": None})
        if event.kind == "started":
            row.update(status="running", t0=time.perf_counter(), progress=0.0, message=event.message)
        elif event.kind == "progress":
            row.update(progress=event.progress, message=event.message)
        elif event.kind in ("finished", "failed"):
            row["seconds"] = time.perf_counter() - row["t0"] if row["t0"] else None
            row.update(status="done" if event.kind == "finished" else "failed", progress=1.0, message=event.message)

    def mark(self, book: Storybook) -> None:
        """Show stages a resumed book already finished."""
        for name, rec in book.stages.items():
            if rec.status in ("done", "skipped") and name in self.rows:
                self.rows[name].update(status=rec.status, seconds=None, message="(done before)")

    def __rich__(self) -> Table:
        table = Table(box=None, padding=(0, 1), show_header=False)
        for name, row in self.rows.items():
            running = row["status"] == "running"
            icon = Spinner("dots", style="cyan") if running else _ICONS.get(row["status"], "·")
            secs = (time.perf_counter() - row["t0"]) if running and row["t0"] else row["seconds"]
            bar = ProgressBar(total=1.0, completed=row["progress"] or 0.0, width=16) if running else ""
            table.add_row(icon, f"[bold]{name}[/]" if running else name, bar,
                          f"{secs:5.1f} s" if secs is not None else "", _short(row["message"]))
        return table


def _short(text: str, width: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


@contextmanager
def live_progress(enabled: bool, book: Storybook | None = None) -> Iterator[Callable[[Event], None] | None]:
    """Yield an on_event callback drawing a live board on stderr (None when disabled, e.g. --json)."""
    if not enabled:
        yield None
        return
    board = StageBoard()
    if book is not None:
        board.mark(book)
    console = Console(stderr=True)
    try:
        with Live(board, console=console, refresh_per_second=8, transient=False):
            yield board
    finally:
        if not console.is_terminal:  # Live leaves its last frame without a newline outside a terminal
            console.line()


def timing_table(book: Storybook) -> Table:
    table = Table(title="Timing", title_justify="left")
    for col, justify in (("stage", "left"), ("status", "left"), ("seconds", "right"), ("in models", "right"),
                         ("model", "left")):
        table.add_column(col, justify=justify)
    total = models = 0.0
    for name in STAGES:
        rec = book.stages.get(name)
        if rec is None:
            continue
        total += rec.seconds or 0.0
        models += rec.model_seconds or 0.0
        table.add_row(name, rec.status, _num(rec.seconds), _num(rec.model_seconds), rec.model_id or "")
    wall = book.wall_seconds
    table.add_row("[bold]total[/]", "", f"[bold]{wall:.1f}[/]", f"{models:.1f}",
                  f"stages at once saved {total - wall:.1f} s" if total - wall >= 0.05 else "", end_section=True)
    return table


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}"


def summary(book: Storybook, book_dir: Path) -> dict[str, Any]:
    """What `--json` prints about a book."""
    return {
        "id": book.id, "dir": str(book_dir), "title": book.title, "title_translated": book.title_translated,
        "url": book.url, "pages": len(book.pages), "complete": book.complete,
        "files": {k: str(Path(book_dir) / v) for k, v in book.files.items()},
        "stages": {n: {"status": r.status, "seconds": r.seconds, "model_seconds": r.model_seconds,
                       "message": r.message} for n, r in book.stages.items()},
        "total_seconds": round(book.wall_seconds, 3),  # on the clock: stages that ran at once count once
        "stage_seconds": round(sum(r.seconds or 0 for r in book.stages.values()), 3),
        "notes": book.notes,
        "editions": {lang: {"title": e.title, "translated": e.translated, "machine_translated": e.machine_translated,
                            "pages_kept_english": [p.index for p in e.pages if p.kept_english], "notes": e.notes,
                            "files": {k: str(Path(book_dir) / v) for k, v in e.files.items()}}
                     for lang, e in book.editions.items()},
    }


def report(book: Storybook, book_dir: Path, as_json: bool) -> None:
    """Print the finished book: JSON, or the timing table and where the files are."""
    if as_json:
        click.echo(json.dumps(summary(book, book_dir), indent=2, ensure_ascii=False))
        return
    console = Console()
    console.print(timing_table(book))
    for note in book.notes:
        console.print(f"[dim]note: {note}[/]")
    skipped = [f"{n}: {r.message}" for n, r in book.stages.items() if r.status == "skipped" and r.message]
    for line in skipped:
        console.print(f"[yellow]{line}[/]")
    title = book.title_translated or book.title
    console.print(f"[bold]“{title}”[/] — {count(len(book.pages), 'page')}")
    for key in ("pdf", "html"):
        if key in book.files:
            console.print(f"  {key}: {Path(book_dir) / book.files[key]}")
    if book.url:
        console.print(f"  link (QR code): {book.url}")
    else:
        console.print("  [dim]no link or QR code: this book is on no server; give --link URL with the address "
                      "where you publish it[/]")
