"""LlavaGGUFCaptioner: finding model + projector files, what it hands llama-cpp-python in process, and the
supervised child process it runs in by default (issue 10). No vision GGUF small enough ships in a package,
so fakes stand in for llama.cpp's vision model: in process a fake `Llama`; as a child, a real process on
loopback (fake_vision_child.py) in place of llama_cpp.server, behind the real supervisor and HTTP path —
and the real llama_cpp.server is started once with the projector option to show it is handed over."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

llama_cpp = pytest.importorskip("llama_cpp")

from taleloom.backends.llm.llama_process import ModelCrashedError  # noqa: E402
from taleloom.backends.registry import create  # noqa: E402
from taleloom.errors import BackendError, ModelNotFoundError  # noqa: E402

FAKE_CHILD = Path(__file__).with_name("fake_vision_child.py")


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

    from taleloom.backends.llm import grammar_sampling

    grammar_sampling.install()  # patches the real Llama class once per process, before the fake replaces it
    monkeypatch.setattr(llama_cpp, "Llama", FakeLlama)
    monkeypatch.setattr(llama_chat_format, "Llava15ChatHandler", FakeHandler)
    monkeypatch.setattr(llama_chat_format, "MoondreamChatHandler", FakeHandler)
    FakeLlama.calls = []


def test_folder_with_model_and_projector(tmp_path, fake_llama):
    (tmp_path / "llava-v1.5-7b-Q4_K.gguf").write_bytes(b"GGUF")
    (tmp_path / "llava-v1.5-7b-mmproj-f16.gguf").write_bytes(b"GGUF")
    captioner = create("captioner", f"llava-gguf:{tmp_path}", n_ctx=2048, process="inline")
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
    captioner = create("captioner", f"llava-gguf:{model}", mmproj=str(projector), handler="moondream",
                       process="inline")
    assert captioner.mmproj_path == projector and "m.gguf" in captioner.model_id
    child = create("captioner", f"llava-gguf:{model}", mmproj=str(projector), handler="moondream")
    command = child.child.process.command  # the child's llama_cpp.server: model, projector, handler
    assert command[command.index("--model") + 1] == str(model)
    assert command[command.index("--clip-model") + 1] == str(projector)
    assert command[command.index("--chat-format") + 1] == "moondream"


def test_missing_files_are_named(tmp_path, fake_llama):
    with pytest.raises(ModelNotFoundError, match="hf download"):
        create("captioner", f"llava-gguf:{tmp_path / 'nothing'}")
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelNotFoundError, match="mmproj"):
        create("captioner", f"llava-gguf:{tmp_path}")
    (tmp_path / "other.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelNotFoundError, match="2 model GGUF files"):
        create("captioner", f"llava-gguf:{tmp_path}")


@pytest.fixture
def child_captioner(tmp_path):
    """The default (process="child") captioner, its child replaced by fake_vision_child.py."""
    (tmp_path / "llava-v1.5-7b-Q4_K.gguf").write_bytes(b"GGUF")
    (tmp_path / "llava-v1.5-7b-mmproj-f16.gguf").write_bytes(b"GGUF")
    captioner = create("captioner", f"llava-gguf:{tmp_path}", seed=5)
    requests = tmp_path / "requests.jsonl"
    process = captioner.child.process
    process.command = [sys.executable, str(FAKE_CHILD), "--requests", str(requests)] + process.command[3:]
    yield captioner, requests
    captioner.close()


def test_the_model_runs_in_a_child_process_asked_over_openai_http(child_captioner):
    captioner, requests = child_captioner
    assert captioner.llm is None  # nothing of llama.cpp in this process
    caption = captioner.caption(Image.new("RGB", (1200, 900), "orange"), hint="our cat Tom")
    assert caption.text == "A ginger cat sleeps on a blue sofa." and caption.concepts == ["cat", "sofa"]
    process = captioner.child.process
    assert process.alive() and process.pid is not None and process.starts == 1
    sent = [json.loads(line) for line in requests.read_text().splitlines()]
    assert len(sent) == 1
    parts = sent[0]["messages"][1]["content"]
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,") and "our cat Tom" in parts[0]["text"]
    assert sent[0]["response_format"]["type"] == "json_object" and "concepts" in json.dumps(
        sent[0]["response_format"]["schema"])
    assert sent[0]["seed"] == 5 and sent[0]["max_tokens"] == 300


def test_a_photo_that_crashes_the_model_fails_its_caption_only(child_captioner):
    captioner, requests = child_captioner
    photo = Image.new("RGB", (64, 64), "teal")
    with pytest.raises(ModelCrashedError, match="died twice on this request .*SIGSEGV"):
        captioner.caption(photo, hint="crash me")
    assert captioner.child.process.starts == 2  # one retry on a fresh process, then no restart loop
    caption = captioner.caption(photo)  # the next caption starts a new process and works
    assert caption.concepts == ["cat", "sofa"] and captioner.child.process.starts == 3


def test_the_real_model_server_is_handed_the_projector(tmp_path):
    """llama_cpp.server itself, started with a real (text) GGUF and a broken projector: the model loads, the
    first caption makes the server open the projector, and the error names that file (there is no vision
    GGUF small enough to load for real, see the module docstring)."""
    from taleloom.backends.model_files import FAST_PRESET, resolve_gguf

    (tmp_path / "model.gguf").symlink_to(resolve_gguf(FAST_PRESET))
    (tmp_path / "broken-mmproj.gguf").write_bytes(b"GGUF but not a projector")
    captioner = create("captioner", f"llava-gguf:{tmp_path}", n_gpu_layers=0, n_threads=1)
    try:
        with pytest.raises(BackendError, match="broken-mmproj.gguf"):
            captioner.caption(Image.new("RGB", (64, 64), "teal"))
        assert captioner.child.process.alive()  # a bad projector fails the call, not the process
    finally:
        captioner.close()
