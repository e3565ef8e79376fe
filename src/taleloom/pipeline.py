"""The stage table: every stage of a book once, in order, with its runner, the backend roles it calls
and the later stages its output feeds (run again when an edit changes that output). The orchestrator's
loop, the records a new book starts with, the edits' invalidation and the CLI's progress rows are all
derived from it; docs/extending.md shows a stage added in five files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from taleloom.bookrun import Run
from taleloom.runners import (
    run_bind,
    run_illustrate,
    run_narrate,
    run_see,
    run_stage,
    run_translate,
    run_upscale,
    run_write,
)


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Run], str | None]  # reads what it needs from the book, calls its stage function, saves files
    roles: tuple[str, ...]  # the backends it may call (run.backend refuses others)
    invalidates: tuple[str, ...]  # later stages to redo when an edit changes this stage's output


STAGE_TABLE: tuple[Stage, ...] = (
    Stage("see", run_see, ("captioner",), ("write",)),
    Stage("write", run_write, ("llm",), ("translate", "stage", "illustrate", "upscale", "narrate", "bind")),
    Stage("translate", run_translate, ("llm",), ("narrate", "bind")),
    Stage("stage", run_stage, ("illustrator",), ("illustrate", "upscale", "bind")),
    Stage("illustrate", run_illustrate, ("illustrator",), ("upscale", "bind")),
    Stage("upscale", run_upscale, ("upscaler",), ("bind",)),
    Stage("narrate", run_narrate, ("narrator",), ("bind",)),
    Stage("bind", run_bind, (), ()),
)
STAGE: dict[str, Stage] = {s.name: s for s in STAGE_TABLE}
STAGES: tuple[str, ...] = tuple(STAGE)

for _s in STAGE_TABLE:  # a stage feeds only stages after it: the loop runs them in table order
    assert all(STAGES.index(later) > STAGES.index(_s.name) for later in _s.invalidates), _s.name
