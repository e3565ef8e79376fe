"""Idle cores put to work while they are idle: the model process's llama.cpp thread count, chosen before each
decode from how much CPU the machine's other processes use.

Why: llama.cpp's threads spin while they wait for each other, so a fixed count is a bad bet either way on a
small machine. One thread (half of 2 cores, config.cpu_threads) leaves a quiet machine's second core idle:
Qwen2.5-Coder-1.5B evaluates a prompt 1.9× and writes 1.6× faster on both (benchmarks/llm_threads.py). Two
threads beside one busy process were 2× slower at prompts and 20× at writing than one. The count can
change between any two decodes without changing a book: each output of llama.cpp's matrix products is summed
by one thread in one order, so the logits are bit-identical at any count (tests/test_spare_cores.py), and
prompt_prefixes.py's exactness holds.

The rule, over the last WINDOW_S seconds (a sampler thread looks every LOOK_S): the others' use = the busy
time of this process's cores (/proc/stat) minus this process's own CPU time. Under OTHERS_MAX cores → `most`
threads, else `base`. A look is never older than the window, so the first decode of a request after an idle
gap is decided on what the machine did just before it. Linux only; elsewhere `base` stays.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taleloom.config import own_cores

LOOK_S = 0.1  # how often the sampler looks: /proc/stat counts in 10 ms ticks, so a look alone is too coarse
WINDOW_S = 0.5  # a decision's span: tick rounding is then under 0.1 core on 2 cores
OTHERS_MAX = 0.25  # the others' use, in cores, under which the idle cores are taken
PROC_STAT = Path("/proc/stat")


def busy_seconds(cores: set[int], text: str, hz: int) -> float:
    """Seconds `cores` spent busy since boot, from the text of /proc/stat (idle and iowait are not busy)."""
    total = 0
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cores:
            continue
        fields = [int(x) for x in rest.split()]
        total += sum(fields[:8]) - fields[3] - fields[4]  # user nice system idle iowait irq softirq steal
    return total / hz


class Governor:
    """Threads for the next decode: `most` while the others leave the cores idle, else `base`."""

    def __init__(self, base: int, most: int, read: Callable[[], str] = PROC_STAT.read_text,
                 own_cpu: Callable[[], float] = time.process_time, clock: Callable[[], float] = time.monotonic):
        self.base, self.most = base, most
        self.cores = own_cores()
        self._read, self._own, self._clock = read, own_cpu, clock
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._looks: deque[tuple[float, float, float]] = deque(maxlen=int(4 * WINDOW_S / LOOK_S))
        self._lock = threading.Lock()

    def look(self) -> None:
        """Record (time, the cores' busy seconds, this process's CPU seconds) now."""
        sample = (self._clock(), busy_seconds(self.cores, self._read(), self._hz), self._own())
        with self._lock:
            self._looks.append(sample)

    def others(self) -> float | None:
        """Cores the other processes used over the last WINDOW_S (None: not yet looked that long)."""
        with self._lock:
            if len(self._looks) < 2:
                return None
            end = self._looks[-1]
            start = next((s for s in reversed(self._looks) if end[0] - s[0] >= WINDOW_S), None)
        if start is None:
            return None
        return max(0.0, ((end[1] - start[1]) - (end[2] - start[2])) / (end[0] - start[0]))

    def threads(self) -> int:
        """The count for the next decode."""
        used = self.others()
        return self.most if used is not None and used < OTHERS_MAX else self.base

    def run(self, stop: threading.Event) -> None:
        """The sampler: a look every LOOK_S until `stop`."""
        while not stop.is_set():
            self.look()
            stop.wait(LOOK_S)


def available() -> bool:
    return PROC_STAT.is_file()


def install(base: int, most: int) -> Callable[[], None]:
    """Choose the thread count of every llama.cpp decode of this process (the model process holds one model)
    with a Governor(base, most); a no-op where /proc/stat is missing. Returns the undo."""
    if most <= base or not available():
        return lambda: None
    import llama_cpp
    from llama_cpp._internals import LlamaContext

    governor, stop = Governor(base, most), threading.Event()
    threading.Thread(target=governor.run, args=(stop,), name="spare-cores", daemon=True).start()
    original = LlamaContext.decode

    def decode(self, batch: Any) -> None:
        n = governor.threads()
        if getattr(self, "_spare_threads", None) != n:  # the context's count now
            llama_cpp.llama_set_n_threads(self.ctx, n, n)
            self._spare_threads = n
        return original(self, batch)

    LlamaContext.decode = decode

    def undo() -> None:
        stop.set()
        LlamaContext.decode = original

    return undo
