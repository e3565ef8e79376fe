"""The model process's thread count follows the other processes' CPU use (spare_cores.py), and a count never
changes what the model writes."""

from __future__ import annotations

import numpy as np
import pytest

from taleloom.backends import registry
from taleloom.backends.base import Sampling
from taleloom.backends.llm import spare_cores
from taleloom.backends.llm.spare_cores import Governor, busy_seconds

STAT = """cpu  500 0 300 9000 100 0 0 0 0 0
cpu0 {a} 0 100 4500 50 0 0 0 0 0
cpu1 {b} 0 100 4500 50 0 0 0 0 0
cpu2 1000 0 100 4500 50 0 0 0 0 0
intr 12345
procs_running 3
"""


def stat(a: int, b: int) -> str:
    return STAT.format(a=a, b=b)


def test_busy_seconds_counts_only_this_process_cores_and_not_idle_or_iowait():
    assert busy_seconds({0, 1}, stat(200, 300), 100) == pytest.approx((200 + 100 + 300 + 100) / 100)
    assert busy_seconds({2}, stat(200, 300), 100) == pytest.approx(11.0)


class Machine:
    """A fake clock, /proc/stat and own CPU time: `tick` moves time on with given busy seconds."""

    def __init__(self):
        self.t, self.busy, self.own = 0.0, 0.0, 0.0

    def tick(self, seconds: float, busy: float, own: float) -> None:
        self.t += seconds
        self.busy += busy
        self.own += own

    def governor(self) -> Governor:
        g = Governor(1, 2, read=lambda: stat(round(self.busy * 100), 0), own_cpu=lambda: self.own, clock=lambda: self.t)
        g.cores, g._hz = {0, 1}, 100
        return g


def run(machine: Machine, governor: Governor, seconds: float, others: float, own: float) -> None:
    for _ in range(round(seconds / spare_cores.LOOK_S)):
        machine.tick(spare_cores.LOOK_S, (others + own) * spare_cores.LOOK_S, own * spare_cores.LOOK_S)
        governor.look()


def test_idle_cores_are_taken_and_given_back_when_another_process_wants_them():
    m = Machine()
    g = m.governor()
    assert g.threads() == 1  # nothing looked at yet: the base count
    run(m, g, 1.0, others=0.0, own=1.0)
    assert g.others() == pytest.approx(0.0, abs=0.05) and g.threads() == 2
    run(m, g, 1.0, others=0.7, own=1.3)  # a busy process shares the cores with our two threads
    assert g.others() == pytest.approx(0.7, abs=0.05) and g.threads() == 1
    run(m, g, 1.0, others=0.05, own=1.0)  # it has stopped; a little background work remains
    assert g.threads() == 2


def test_a_decision_waits_for_a_whole_window():
    m = Machine()
    g = m.governor()
    run(m, g, spare_cores.WINDOW_S / 2, others=0.0, own=1.0)
    assert g.others() is None and g.threads() == 1


@pytest.fixture(scope="module")
def smol_inline():
    return registry.create("llm", "smollm2", process="inline", n_threads=1)


def test_logits_are_bit_identical_at_one_and_two_threads(smol_inline):
    """Why the count may change between any two decodes: the logits do not depend on it."""
    import llama_cpp

    llama = smol_inline._load()
    tokens = llama.tokenize(b"Once upon a time a small grey cat sat on a warm windowsill and watched the rain.")
    seen = []
    for threads in (1, 2, 1):
        llama_cpp.llama_set_n_threads(llama.ctx, threads, threads)
        llama.reset()
        llama._ctx.kv_cache_clear()
        llama.eval(tokens)
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llama.ctx), shape=(llama.n_vocab(),)).copy()
        seen.append(logits)
    assert np.array_equal(seen[0], seen[1]) and np.array_equal(seen[0], seen[2])


@pytest.mark.skipif(not spare_cores.available(), reason="needs /proc/stat")
def test_the_model_process_that_takes_idle_cores_writes_what_a_fixed_one_writes():
    ask = [{"role": "user", "content": "Write one sentence about a cat who finds a red ball in the garden."}]
    fixed = registry.create("llm", "smollm2", n_threads=1)
    spare = registry.create("llm", "smollm2")
    try:
        a = fixed.answer(ask, Sampling(seed=5, max_tokens=40, temperature=0.8)).text
        b = spare.answer(ask, Sampling(seed=5, max_tokens=40, temperature=0.8)).text
    finally:
        for llm in (fixed, spare):
            if llm._process is not None:
                llm._process.close()
    assert a and a == b
