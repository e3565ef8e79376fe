"""Grammar-constrained sampling that checks the grammar on one token, not on the whole vocabulary.

llama-cpp-python puts the JSON grammar in the sampler chain before top-k, so for every generated token
llama.cpp matches all ~150,000 vocabulary entries of Qwen2.5 against the grammar: measured on this
2-core machine, about a fifth of the time of each token. llama.cpp's own server (common/sampling.cpp)
does it the other way round, and so does `GrammarLastSampler`: sample from the chain without the
grammar, ask the grammar about that one token, and only when it is refused apply the grammar to the
whole vocabulary and sample again. The answer still always fits the grammar.

`install()` makes `llama_cpp.Llama` use it for every call with a grammar (in this process: the inline
backend and the model child both call it before loading a model).
"""

from __future__ import annotations

import ctypes
import functools
import math
from typing import Any

import numpy as np


class GrammarLastSampler:
    """The sampler object `Llama.sample` expects (`sample(ctx, idx) -> token`), built from a chain
    without the grammar (penalties, top-k, top-p, temperature, dist) and a separate grammar sampler."""

    def __init__(self, chain: Any, model: Any, grammar: Any):
        import llama_cpp

        self._c = llama_cpp
        self.chain = chain  # LlamaSampler (llama-cpp-python's wrapper; frees itself)
        self.grammar = llama_cpp.llama_sampler_init_grammar(
            model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8"))
        if not self.grammar:
            raise ValueError("llama.cpp could not compile the grammar")
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(model.vocab)
        self._data = (llama_cpp.llama_token_data * self.n_vocab)()
        self._view = np.ctypeslib.as_array(  # (n_vocab,) records of (id, logit, p), shared with _data
            ctypes.cast(self._data, ctypes.POINTER(ctypes.c_uint8)), (self.n_vocab * ctypes.sizeof(
                llama_cpp.llama_token_data),)).view(np.dtype([("id", np.int32), ("logit", np.float32),
                                                              ("p", np.float32)], align=True))
        self._ids = np.arange(self.n_vocab, dtype=np.int32)
        self._one = (llama_cpp.llama_token_data * 1)()
        self.rejected = 0  # tokens the grammar refused (then sampled again from the allowed ones)

    def _array(self, ctx: Any, idx: int) -> Any:
        logits = self._c.llama_get_logits_ith(ctx, idx)
        self._view["id"] = self._ids
        self._view["logit"] = np.ctypeslib.as_array(logits, (self.n_vocab,))
        self._view["p"] = 0.0
        return self._c.llama_token_data_array(data=self._data, size=self.n_vocab, selected=-1, sorted=False)

    def _allowed(self, token: int) -> bool:
        self._one[0].id, self._one[0].logit, self._one[0].p = token, 1.0, 0.0
        one = self._c.llama_token_data_array(data=self._one, size=1, selected=-1, sorted=False)
        self._c.llama_sampler_apply(self.grammar, ctypes.byref(one))
        return not math.isinf(self._one[0].logit)

    def sample(self, ctx: Any, idx: int = -1) -> int:
        """One token: the chain's choice if the grammar allows it, else a choice among allowed tokens."""
        raw = ctx.ctx if hasattr(ctx, "ctx") else ctx
        cur = self._array(raw, idx)
        self._c.llama_sampler_apply(self.chain.sampler, ctypes.byref(cur))
        token = int(cur.data[cur.selected].id)
        if not self._allowed(token):
            self.rejected += 1
            cur = self._array(raw, idx)
            self._c.llama_sampler_apply(self.grammar, ctypes.byref(cur))
            allowed = self._view[np.isfinite(self._view["logit"])]  # a copy; the chain sees only these
            if not len(allowed):
                raise ValueError("the grammar allows no token here")
            self._view[:len(allowed)] = allowed
            cur.size = len(allowed)
            self._c.llama_sampler_apply(self.chain.sampler, ctypes.byref(cur))
            token = int(cur.data[cur.selected].id)
        self._c.llama_sampler_accept(self.grammar, token)
        self._c.llama_sampler_accept(self.chain.sampler, token)
        return token

    def accept(self, token: int) -> None:
        self._c.llama_sampler_accept(self.grammar, token)
        self._c.llama_sampler_accept(self.chain.sampler, token)

    def close(self) -> None:
        if self.grammar:
            self._c.llama_sampler_free(self.grammar)
            self.grammar = None
        self.chain.close()

    def __del__(self) -> None:
        self.close()


@functools.cache
def install() -> None:
    """Make `Llama` sample with the grammar last (once per process)."""
    import llama_cpp

    original = llama_cpp.Llama._init_sampler

    @functools.wraps(original)
    def _init_sampler(self: Any, *args: Any, grammar: Any = None, **kwargs: Any) -> Any:
        chain = original(self, *args, grammar=None, **kwargs)
        if grammar is None or kwargs.get("mirostat_mode"):
            return original(self, *args, grammar=grammar, **kwargs) if grammar is not None else chain
        return GrammarLastSampler(chain, self._model, grammar)

    llama_cpp.Llama._init_sampler = _init_sampler
