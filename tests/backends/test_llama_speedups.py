"""The two llama.cpp speed-ups of the local LLM: CPU_REPACK weights without AMX (cpu_buffers.py), and the
grammar checked on the sampled token first (grammar_sampling.py) — on the real SmolLM2-135M, in process."""

from __future__ import annotations

import json

import pytest

from taleloom.backends import registry
from taleloom.backends.base import Sampling
from taleloom.backends.llm import cpu_buffers, grammar_sampling


def test_only_repack_hides_every_other_extra_buffer_type_while_loading_and_restores_them():
    before = cpu_buffers.names()
    if "CPU_REPACK" not in before:
        pytest.skip(f"this llama.cpp build offers {before}, not CPU_REPACK")
    with cpu_buffers.only_repack() as usable:
        assert usable
        assert cpu_buffers.names() == ["CPU_REPACK"]
    assert cpu_buffers.names() == before


@pytest.fixture(scope="module")
def smol():
    return registry.create("llm", "smollm2", process="inline")


def test_a_value_the_model_would_never_write_is_forced_by_the_grammar(smol):
    """The model's own choice is refused at almost every token here, so the second pass (grammar over the
    whole vocabulary) is what writes the answer: it must still be exactly what the schema allows."""
    schema = {"type": "object", "properties": {"code": {"type": "string", "enum": ["qzx-vvk-7"]},
                                               "n": {"type": "integer"}}, "required": ["code", "n"]}
    ask = [{"role": "user", "content": "Write a poem about the sea."}]
    for seed in range(4):
        data = json.loads(smol.chat(ask, Sampling(seed=seed, max_tokens=40, temperature=1.0), schema))
        assert data["code"] == "qzx-vvk-7" and isinstance(data["n"], int)


def test_loading_a_model_installs_grammar_last_sampling(smol):
    import llama_cpp

    smol._load()
    assert llama_cpp.Llama._init_sampler.__wrapped__ is not None  # functools.wraps of the original
    sampler = smol._llama._init_sampler(grammar=smol._grammar({"type": "object", "properties": {
        "a": {"type": "string", "enum": ["x"]}}, "required": ["a"]}), temp=0.7)
    assert isinstance(sampler, grammar_sampling.GrammarLastSampler)
    sampler.close()
