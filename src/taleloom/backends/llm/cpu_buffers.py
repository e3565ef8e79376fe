"""Which of llama.cpp's "extra" CPU buffer types a model's weights may be loaded into.

llama.cpp can keep weights in repacked layouts that its CPU kernels read faster. On an x86 CPU it offers
two, in this order: AMX (Intel tile instructions) and CPU_REPACK (interleaved Q4_K/Q4_0 rows for
AVX2/AVX-512). The AMX kernels of the llama-cpp-python build we pin crash this machine's CPU (a general
protection fault in ggml_backend_amx_mul_mat on the first decode), so until now both were switched off.
CPU_REPACK alone works and generates tokens faster (benchmarks/book_latency.py records the figure).

`only_repack()` hides every buffer type but CPU_REPACK from llama.cpp for the length of one model load:
the list is llama.cpp's own (a static array returned by the CPU backend's
``ggml_backend_dev_get_extra_bufts``), edited in place and put back afterwards. Where the list or the
functions cannot be found (another build), it yields False and the caller loads without extra buffers.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)
SAFE = (b"CPU_REPACK",)  # extra buffer types known to work here
_CPU_DEVICE = 0  # GGML_BACKEND_DEVICE_TYPE_CPU


def _extra_bufts() -> tuple[ctypes.Array | None, object]:
    """(llama.cpp's NULL-terminated array of extra CPU buffer types, the buffer-type name function)."""
    import llama_cpp

    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    ggml = ctypes.CDLL(os.path.join(libdir, "libggml.so"))
    base = ctypes.CDLL(os.path.join(libdir, "libggml-base.so"))
    ggml.ggml_backend_dev_by_type.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
    ggml.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    ggml.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    base.ggml_backend_buft_name.restype = ctypes.c_char_p
    base.ggml_backend_buft_name.argtypes = [ctypes.c_void_p]
    dev = ggml.ggml_backend_dev_by_type(_CPU_DEVICE)
    fn = ggml.ggml_backend_reg_get_proc_address(ggml.ggml_backend_dev_backend_reg(dev),
                                                b"ggml_backend_dev_get_extra_bufts") if dev else None
    if not fn:
        return None, None
    get = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)(fn)
    return get(dev), base.ggml_backend_buft_name


def names() -> list[str]:
    """The extra CPU buffer types this build of llama.cpp offers, in its order ('AMX', 'CPU_REPACK')."""
    array, name = _extra_bufts()
    out: list[str] = []
    i = 0
    while array is not None and array[i]:
        out.append(name(array[i]).decode())
        i += 1
    return out


@contextmanager
def only_repack() -> Iterator[bool]:
    """While inside, llama.cpp sees only the SAFE extra buffer types. Yields whether any is left (load with
    ``use_extra_bufts`` only then)."""
    try:
        array, name = _extra_bufts()
    except (OSError, AttributeError) as e:
        log.info("llama.cpp's extra buffer types are not reachable (%s): loading without them", e)
        array, name = None, None
    if array is None:
        yield False
        return
    original: list[int] = []
    while array[len(original)]:
        original.append(array[len(original)])
    kept = [b for b in original if name(b) in SAFE]
    for i, b in enumerate(kept):
        array[i] = b
    array[len(kept)] = None  # the array is NULL-terminated: a shorter list ends early
    try:
        yield bool(kept)
    finally:
        for i, b in enumerate(original):
            array[i] = b
