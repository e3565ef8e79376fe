"""Prompt-prefix reuse in the model process, exact: a prompt that starts like an earlier one does not
evaluate that start again, and its answer is the one a fresh evaluation gives, token for token.

Why exact: the same seed must give the same book whatever the model was asked before (the write stage,
retries and tests rely on it). llama.cpp's own reuse (`Llama.generate` keeps the longest common prefix
with its cache) is not: the reused part may have been evaluated in a different batch split, or one token
at a time as an answer, and floating-point sums in another order change the logits' last bits, then
sometimes a sampled token. So here:

- every prompt is evaluated in batches of ALIGN tokens counted from its first token (the model process
  sets ``n_batch = n_ubatch = ALIGN``);
- only whole batches of an earlier *prompt* are reused: a reused prefix is a multiple of ALIGN tokens
  that were computed exactly as a fresh evaluation computes them (same tokens, same batches, same
  positions), and the rest of the prompt continues at the same batch boundaries.

After each call the context keeps its prompt's whole batches only (the answer's tokens are dropped) and
that state is saved, so a later prompt can restart from any of the last few prompts, not just the last
one: the write stage's long instructions are evaluated while the photo is looked at (`TextModel.preload`)
and survive the caption's own call. Saved states are bounded in bytes (MAX_BYTES) and dropped oldest
first.
"""

from __future__ import annotations

import ctypes
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

ALIGN = 32  # tokens per evaluation batch: prompt evaluation is as fast as with 512 on a CPU (measured: 68.9 vs
# 68.3 tokens/s); small, so that little of a shared start is left over (the book's instructions: 224 of 234 tokens)
MAX_BYTES = 256 * 1024 * 1024  # saved KV states in all (~29 KB a token for Qwen2.5-1.5B: ~9,000 tokens)


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class PrefixStates:
    """The KV states of recent prompts' whole batches, keyed by their tokens (least recently used first)."""

    def __init__(self, max_bytes: int = MAX_BYTES):
        self.max_bytes = max_bytes
        self.states: OrderedDict[tuple[int, ...], bytes] = OrderedDict()
        self.live: tuple[int, ...] = ()  # what the context holds now, when it is one of the saved keys
        self.reused = 0  # tokens of the last prompt that were not evaluated again (for tests and logs)
        self._lock = threading.Lock()

    def restore(self, llama: Any, tokens: Sequence[int]) -> int:
        """Put the longest reusable prefix of `tokens` in `llama`'s context (at least one token is left to
        evaluate, so the answer's first logits are fresh); returns its length, 0 for a fresh start."""
        with self._lock:
            best, length = (), 0
            for key in self.states:
                n = min(_common(key, tokens), len(tokens) - 1) // ALIGN * ALIGN
                if n > length:
                    best, length = key, n
            self.reused = length
            if length == 0:
                llama.n_tokens = 0  # generate() then resets the context
                return 0
            self.states.move_to_end(best)
            if best != self.live:
                state = self.states[best]
                buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
                if _llama_cpp().llama_state_set_data(llama._ctx.ctx, buffer, len(state)) != len(state):
                    self.states.pop(best)
                    self.live, self.reused, llama.n_tokens = (), 0, 0
                    return 0
                llama.input_ids[:len(best)] = best
                self.live = best
            llama.n_tokens = length  # generate() keeps these and drops the KV cells after them
            return length

    def remember(self, llama: Any, tokens: Sequence[int]) -> None:
        """After a call on `tokens` (the prompt): keep its whole batches in the context and save them."""
        keep = len(tokens) // ALIGN * ALIGN
        with self._lock:
            self.live = ()
            if keep == 0 or llama.n_tokens < keep or list(llama.input_ids[:keep]) != list(tokens[:keep]):
                return  # nothing whole to keep, or the call stopped before its prompt was evaluated
            llama._ctx.kv_cache_seq_rm(-1, keep, -1)
            llama.n_tokens = keep
            key = tuple(int(t) for t in tokens[:keep])
            if key not in self.states:
                llama_cpp = _llama_cpp()
                size = llama_cpp.llama_state_get_size(llama._ctx.ctx)
                if size > self.max_bytes:
                    return
                buffer = (ctypes.c_uint8 * size)()
                n = llama_cpp.llama_state_get_data(llama._ctx.ctx, buffer, size)
                self.states[key] = bytes(buffer[:n])
                while sum(len(s) for s in self.states.values()) > self.max_bytes:
                    self.states.popitem(last=False)
            self.states.move_to_end(key)
            self.live = key


def _llama_cpp():
    import llama_cpp

    return llama_cpp


def install(store: PrefixStates, report: Callable[[str], None] | None = None) -> Callable[[], None]:
    """Route every `Llama.generate` of this process through `store` (the model process holds one model);
    `report` gets one line per prompt that reused a prefix (the model process's log). Returns the undo."""
    from llama_cpp import Llama

    original = Llama.generate

    def generate(self, tokens, *args, **kwargs):
        tokens = list(tokens)
        if not kwargs.get("reset", True):  # a continuation: llama-cpp-python's own business
            yield from original(self, tokens, *args, **kwargs)
            return
        reused = store.restore(self, tokens)
        if reused and report is not None:
            report(f"prompt of {len(tokens)} tokens: the first {reused} reused")
        try:
            yield from original(self, tokens, *args, **kwargs)
        finally:
            store.remember(self, tokens)

    Llama.generate = generate

    def undo() -> None:
        Llama.generate = original

    return undo
