"""`taleloom write` through click's CliRunner (a scripted LLM; the real one is tested in tests/stages)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from taleloom.backends.base import TextModel
from taleloom.cli import cli
from taleloom.orchestrator import Backends


class StoryLLM(TextModel):
    """Answers the write stage's one request (plan, then pages) with valid JSON; keeps the sampling it was given."""

    name = "story"
    model_id = "story-llm"
    supports_schema = True

    def __init__(self):
        self.samplings = []

    def chat(self, messages, sampling=None, schema=None):
        self.samplings.append(sampling)
        props = schema["properties"]
        plan = {}
        if "outline" in props:
            n = props["outline"]["minItems"]
            plan = {"title": "Milo and the Ball", "hero": {"name": "Milo", "kind": "a grey cat", "look": "a white tail"},
                    "friend": {"name": "Ada", "kind": "a duck", "look": "yellow feathers"},
                    "outline": [f"Milo plays, part {i + 1}." for i in range(n)]}
        texts = ["Once upon a time, there was a grey cat named Milo. Milo found a red ball.",
                 "The ball rolled into the garden. Ada the duck found it, and Milo and Ada played."]
        n = props["pages"]["minItems"]
        return json.dumps(plan | {"pages": [{"text": texts[i % 2], "scene": f"a grey cat with a red ball, view {i}"}
                                            for i in range(n)]})


@pytest.fixture
def llm(monkeypatch):
    model = StoryLLM()
    monkeypatch.setattr(Backends, "from_settings", classmethod(lambda cls, settings: cls(settings, llm=model)))
    return model


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


def test_write_json_prints_the_draft(llm):
    result = invoke("write", "--idea", "a cat who finds a red ball in the garden", "--pages", 2, "--age", 5,
                    "--hero", "Milo", "--seed", 2, "--temperature", 0.5, "--top-k", 30, "--top-p", 0.8, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["title"] == "Milo and the Ball" and [c["name"] for c in data["cast"]] == ["Milo", "Ada"]
    assert len(data["pages"]) == 2 and all(p["text"] and p["scene"] for p in data["pages"])
    assert data["model_id"] == "story-llm" and data["seed"] == 2 and data["lang"] == "en"
    story, = llm.samplings  # one answer for the book, with the flags as given
    assert (story.temperature, story.top_k, story.top_p) == (0.5, 30, 0.8) and story.seed == 2


def test_write_prints_title_cast_pages_and_scenes(llm):
    result = invoke("write", "--caption", "a grey cat and a red ball", "--pages", 2)
    assert result.exit_code == 0, result.output
    assert "Milo and the Ball" in result.stdout and "hero: Milo — a grey cat, a white tail" in result.stdout
    assert "1. Once upon a time" in result.stdout and "scene: Milo the grey cat" in result.stdout  # named by kind


def test_write_needs_a_caption_or_an_idea():
    result = invoke("write", "--pages", 2)
    assert result.exit_code != 0 and "nothing to write about" in str(result.exception)


def test_write_refuses_bad_options_before_loading_a_model():
    result = invoke("write", "--idea", "x", "--lang", "xx")
    assert "unknown language 'xx'" in str(result.exception) and "ko (Korean)" in str(result.exception)
    result = invoke("write", "--idea", "x", "--top-p", 3)
    assert "--top-p 3.0" in str(result.exception)
    result = invoke("write", "--idea", "x", "--pages", 0)
    assert "--pages 0" in str(result.exception)
