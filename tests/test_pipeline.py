"""The stage table is the one list of stages: its rows are sound, and a stage may only call the backends
its row declares (so the table stays true as runners change)."""

from __future__ import annotations

import pytest

from book_doubles import FAKE_TEXT, CountingLLM
from taleloom.backends.roles import ROLES
from taleloom.book import Brief, Storybook
from taleloom.bookrun import Backends, Run
from taleloom.orchestrator import _AFTER_PICTURE, _AFTER_TEXT
from taleloom.pipeline import STAGE, STAGE_TABLE, STAGES


def test_the_table_is_sound_and_the_rest_derives_from_it():
    assert len(set(STAGES)) == len(STAGES) and STAGES[0] == "see" and STAGES[-1] == "bind"
    for stage in STAGE_TABLE:
        assert set(stage.roles) <= set(ROLES), stage.name
        assert all(STAGES.index(later) > STAGES.index(stage.name) for later in stage.invalidates), stage.name
    assert _AFTER_TEXT == STAGE["write"].invalidates and _AFTER_PICTURE == STAGE["stage"].invalidates
    for stage in STAGE_TABLE:  # a stage runs only after what it reads; redoing what it reads redoes it
        assert all(STAGES.index(r) < STAGES.index(stage.name) for r in stage.reads), stage.name
        assert all(stage.name in _redone_after(r) for r in stage.reads), stage.name
    assert _redone_after("see") == set(STAGES) - {"see"}  # a new caption redoes the whole book


def _redone_after(name: str) -> set[str]:
    """Every stage an edit of `name`'s output redoes, directly or through the stages it redoes."""
    out: set[str] = set()
    todo = list(STAGE[name].invalidates)
    while todo:
        if (n := todo.pop()) not in out:
            out.add(n)
            todo.extend(STAGE[n].invalidates)
    return out


def test_the_clock_counts_stages_that_ran_at_once_once():
    from taleloom.book import StageRecord

    def rec(name, start, seconds):
        return StageRecord(name=name, status="done", started=f"2026-12-06T08:00:{start:06.3f}+00:00", seconds=seconds)

    book = Storybook(id="t", brief=Brief(), stages={"write": rec("write", 0, 10.0), "translate": rec("translate", 10, 8.0),
                                                     "illustrate": rec("illustrate", 10.5, 3.0),
                                                     "bind": rec("bind", 20, 1.0)})
    assert book.wall_seconds == pytest.approx(10 + 8 + 1)  # illustrate ran inside translate's span


def test_a_stage_may_call_only_the_backends_its_row_declares(tmp_path):
    run = Run(tmp_path, Storybook(id="t", brief=Brief()), Backends(functions=FAKE_TEXT, llm=CountingLLM()), None)
    run.stage, run.roles = "translate", STAGE["translate"].roles
    assert run.backend("llm").chat([]) == "{}"
    with pytest.raises(RuntimeError, match="'translate' asked for the narrator backend"):
        run.backend("narrator")
    run.roles = None  # an edit outside the stage loop (rewrite, extend) may use any
    assert run.backend("narrator") is run.backends.narrator
