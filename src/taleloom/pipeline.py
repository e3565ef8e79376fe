"""The stage table: every stage of a book once, in order, with its runner, the backend roles it calls,
the earlier stages whose output it reads, and the later stages its output feeds (run again when an edit
changes that output). The orchestrator's loop (which runs a stage beside another once what it reads is
done and their roles differ: translation beside the pictures), the records a new book starts with, the
edits' invalidation and the CLI's progress rows are all derived from it; docs/extending.md shows a stage
added in five files."""

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
    reads: tuple[str, ...] = ()  # earlier stages whose output it needs done first (it may run beside others)


STAGE_TABLE: tuple[Stage, ...] = (
    Stage("see", run_see, ("captioner",), ("write",)),
    Stage("write", run_write, ("llm",), ("translate", "stage", "illustrate", "upscale", "narrate", "bind"),
          reads=("see",)),
    Stage("translate", run_translate, ("llm",), ("narrate", "bind"), reads=("write",)),
    Stage("stage", run_stage, ("illustrator",), ("illustrate", "upscale", "bind"), reads=("write",)),
    Stage("illustrate", run_illustrate, ("illustrator",), ("upscale", "bind"), reads=("stage",)),
    Stage("upscale", run_upscale, ("upscaler",), ("bind",), reads=("illustrate",)),
    Stage("narrate", run_narrate, ("narrator",), ("bind",), reads=("translate",)),
    Stage("bind", run_bind, (), (), reads=("see", "write", "translate", "stage", "illustrate", "upscale", "narrate")),
)
STAGE: dict[str, Stage] = {s.name: s for s in STAGE_TABLE}
STAGES: tuple[str, ...] = tuple(STAGE)

for _s in STAGE_TABLE:  # a stage feeds and reads only stages after and before it; what it feeds reads it
    assert all(STAGES.index(later) > STAGES.index(_s.name) for later in _s.invalidates), _s.name
    assert all(STAGES.index(earlier) < STAGES.index(_s.name) for earlier in _s.reads), _s.name
