"""A guard for llama.cpp's native code on CPUs with AMX.

On CPUs that report Intel AMX (Sapphire Rapids and later Xeons, like this project's build VM), ggml picks
its AMX matrix kernels for the weights, and under llama-cpp-python 0.3.36 the first batch of more than one
token dies in `ggml_backend_amx_mul_mat` with SIGSEGV: every chat prompt crashed the process that ran it
(found with gdb, 2026-12-06). Loading the model without llama.cpp's "extra buffer types" (what llama.cpp's
`--no-repack` does) keeps the weights on the ordinary AVX-512/AVX2 kernels, which work. llama-cpp-python
does not expose the flag, so `Llama(...)` is built inside `plain_weight_buffers()`, which hands it default
model parameters with `use_extra_bufts` off.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

_patch_lock = threading.Lock()


@cache
def cpu_has_amx() -> bool:
    """Does this CPU report AMX (Linux /proc/cpuinfo flags)?"""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_int8" in text or " amx_tile" in text


@contextmanager
def plain_weight_buffers(enabled: bool | None = None) -> Iterator[None]:
    """While active, a new `llama_cpp.Llama` loads its weights without extra buffer types (AMX, repack).

    `enabled` None: only on CPUs with AMX, where the extra buffers crash."""
    if not (cpu_has_amx() if enabled is None else enabled):
        yield
        return
    import llama_cpp.llama as llama_module

    bindings = llama_module.llama_cpp
    with _patch_lock:
        original = bindings.llama_model_default_params

        def defaults():
            params = original()
            params.use_extra_bufts = False
            return params

        bindings.llama_model_default_params = defaults
        try:
            yield
        finally:
            bindings.llama_model_default_params = original
