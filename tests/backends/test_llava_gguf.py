"""LlavaGGUFCaptioner: finding model + projector files, and what it hands llama-cpp-python (fakes stand in
for llama.cpp: no vision GGUF small enough ships in a package)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

llama_cpp = pytest.importorskip("llama_cpp")

from taleloom.backends.registry import create  # noqa: E402
from taleloom.errors import ModelNotFoundError  # noqa: E402


class FakeHandler:
    def __init__(self, clip_model_path, verbose=True):
        self.clip_model_path = clip_model_path


class FakeLlama:
    calls: list[dict] = []

    def __init__(self, model_path, chat_handler, **kwargs):
        self.model_path, self.chat_handler, self.kwargs = model_path, chat_handler, kwargs

    def create_chat_completion(self, **kwargs):
        FakeLlama.calls.append(kwargs)
        content = json.dumps({"text": "A cat on a sofa.", "concepts": ["cat", "sofa"]})
        return {"choices": [{"message": {"role": "assistant", "content": content}}]}


@pytest.fixture
def fake_llama(monkeypatch):
    from llama_cpp import llama_chat_format

    monkeypatch.setattr(llama_cpp, "Llama", FakeLlama)
    monkeypatch.setattr(llama_chat_format, "Llava15ChatHandler", FakeHandler)
    monkeypatch.setattr(llama_chat_format, "MoondreamChatHandler", FakeHandler)
    FakeLlama.calls = []


def test_folder_with_model_and_projector(tmp_path, fake_llama):
    (tmp_path / "llava-v1.5-7b-Q4_K.gguf").write_bytes(b"GGUF")
    (tmp_path / "llava-v1.5-7b-mmproj-f16.gguf").write_bytes(b"GGUF")
    captioner = create("captioner", f"llava-gguf:{tmp_path}", n_ctx=2048)
    assert captioner.llm.model_path.endswith("Q4_K.gguf")
    assert captioner.llm.chat_handler.clip_model_path.endswith("mmproj-f16.gguf")
    assert captioner.llm.kwargs["n_ctx"] == 2048
    caption = captioner.caption(Image.new("RGB", (1200, 900), "orange"), hint="our cat Tom")
    assert caption.text == "A cat on a sofa." and caption.concepts == ["cat", "sofa"]
    call = FakeLlama.calls[0]
    assert call["response_format"]["type"] == "json_object" and "schema" in call["response_format"]
    parts = call["messages"][1]["content"]
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,") and "our cat Tom" in parts[0]["text"]


def test_file_with_mmproj_option_and_handler(tmp_path, fake_llama):
    model, projector = tmp_path / "m.gguf", tmp_path / "elsewhere.bin"
    model.write_bytes(b"GGUF")
    projector.write_bytes(b"GGUF")
    captioner = create("captioner", f"llava-gguf:{model}", mmproj=str(projector), handler="moondream")
    assert captioner.mmproj_path == projector and "m.gguf" in captioner.model_id


def test_missing_files_are_named(tmp_path, fake_llama):
    with pytest.raises(ModelNotFoundError, match="hf download"):
        create("captioner", f"llava-gguf:{tmp_path / 'nothing'}")
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelNotFoundError, match="mmproj"):
        create("captioner", f"llava-gguf:{tmp_path}")
    (tmp_path / "other.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelNotFoundError, match="2 model GGUF files"):
        create("captioner", f"llava-gguf:{tmp_path}")
