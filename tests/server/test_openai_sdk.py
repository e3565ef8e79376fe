"""Conformance: the official `openai` Python package, pointed at a real `taleloom serve` on loopback,
as any OpenAI-compatible tool would use it. Checks what the SDK hands the user (types and values:
picture sizes, usage arithmetic, finish reasons, audio that really decodes), not only status codes.

The fast test backends serve most calls; one server runs the real embedded SmolLM2 for chat."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import subprocess
import time
import wave

import httpx
import openai
import pytest
from PIL import Image
from serverkit import Server, photo_bytes

REAL_SERVER = True  # the openai package speaks HTTP (it takes no ASGI transport)

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
USER = [{"role": "user", "content": "Tell me about the park."}]


@pytest.fixture(scope="module")
def sdk(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.token("sdk"), max_retries=0, timeout=60)


def png(b64: str) -> Image.Image:
    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    img.load()
    return img


def words(text: str) -> int:
    return len(text.split())  # the test LLM counts one token per word


# ----------------------------------------------------------------------------------------------- models
def test_models_list_and_retrieve(sdk):
    models = {m.id: m for m in sdk.models.list()}
    assert set(models) == {"captioner/test", "llm/test", "illustrator/test", "upscaler/test", "narrator/test"}
    llm = models["llm/test"]
    assert isinstance(llm, openai.types.Model) and llm.object == "model" and llm.owned_by == "taleloom"
    assert llm.model_extra["endpoints"] == ["/v1/chat/completions"] and isinstance(llm.created, int)
    assert "/v1/images/generations" in models["illustrator/test"].model_extra["endpoints"]
    assert {"alloy", "en", "fr"} <= set(models["narrator/test"].model_extra["voices"])
    assert sdk.models.retrieve("narrator/test").id == "narrator/test"
    with pytest.raises(openai.NotFoundError) as e:
        sdk.models.retrieve("gpt-5")
    assert "'gpt-5' is not served here" in e.value.message and "llm/test" in e.value.message


# ------------------------------------------------------------------------------------------------- chat
def test_chat_usage_and_length(sdk):
    full = sdk.chat.completions.create(model="any", messages=USER, seed=3)
    assert isinstance(full, openai.types.chat.ChatCompletion) and full.object == "chat.completion"
    choice = full.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant" and words(choice.message.content) > 5
    u = full.usage
    assert u.completion_tokens == words(choice.message.content) and u.prompt_tokens == words(USER[0]["content"])
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    cut = sdk.chat.completions.create(model="any", messages=USER, seed=3, max_tokens=5)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 5
    assert cut.choices[0].message.content == " ".join(choice.message.content.split()[:5])  # same seed, same start
    newer = sdk.chat.completions.create(model="any", messages=USER, seed=3, max_completion_tokens=4)
    assert newer.choices[0].finish_reason == "length" and newer.usage.completion_tokens == 4


def test_chat_n_seed_and_stop(sdk):
    three = sdk.chat.completions.create(model="any", messages=USER, n=3, seed=11)
    assert [c.index for c in three.choices] == [0, 1, 2]
    texts = [c.message.content for c in three.choices]
    assert len(set(texts)) == 3  # choice i uses seed + i
    assert three.usage.completion_tokens == sum(map(words, texts))  # the prompt counts once
    again = sdk.chat.completions.create(model="any", messages=USER, n=3, seed=11)
    assert [c.message.content for c in again.choices] == texts
    word = texts[0].split()[3]
    stopped = sdk.chat.completions.create(model="any", messages=USER, seed=11, stop=[word, "zzz"])
    assert stopped.choices[0].message.content == texts[0][:texts[0].index(word)] and word not in \
        stopped.choices[0].message.content.split()
    assert stopped.usage.completion_tokens == words(stopped.choices[0].message.content)


def test_chat_json_schema(sdk):
    schema = {"type": "object", "properties": {"title": {"type": "string"}, "pages": {"type": "integer"}},
              "required": ["title", "pages"]}
    r = sdk.chat.completions.create(model="any", messages=[{"role": "user", "content": "a title"}],
                                    response_format={"type": "json_schema", "json_schema": {"name": "t",
                                                                                            "schema": schema}})
    answer = json.loads(r.choices[0].message.content)
    assert isinstance(answer["title"], str) and isinstance(answer["pages"], int)


def test_chat_stream_with_usage(sdk):
    whole = sdk.chat.completions.create(model="any", messages=USER, seed=5, max_tokens=4)
    chunks = list(sdk.chat.completions.create(model="any", messages=USER, seed=5, max_tokens=4, stream=True,
                                              stream_options={"include_usage": True}))
    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    *body, last = chunks
    assert last.choices == [] and last.usage.total_tokens == whole.usage.total_tokens
    assert last.usage.completion_tokens == 4 and all(c.usage is None for c in body)
    assert "".join(c.choices[0].delta.content or "" for c in body) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in body if c.choices[0].finish_reason] == ["length"]
    plain = list(sdk.chat.completions.create(model="any", messages=USER, stream=True))
    assert plain[-1].choices[0].finish_reason == "stop" and all(c.usage is None for c in plain)


def test_chat_refuses_what_it_cannot_do(sdk):
    with pytest.raises(openai.UnprocessableEntityError) as e:
        sdk.chat.completions.create(model="any", messages=USER, logprobs=True, top_logprobs=2)
    assert "log-probabilities" in e.value.message and e.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.UnprocessableEntityError, match="tool calls"):
        sdk.chat.completions.create(model="any", messages=USER, tools=[{"type": "function", "function": {
            "name": "f", "parameters": {"type": "object"}}}])
    with pytest.raises(openai.UnprocessableEntityError) as e:
        sdk.chat.completions.create(model="any", messages=USER, temperature=9)
    assert e.value.body["param"] == "temperature"


def test_model_failures_and_bugs_are_sdk_exceptions(sdk):
    with pytest.raises(openai.InternalServerError) as e:  # the model failed: 502, our message
        sdk.chat.completions.create(model="any", messages=[{"role": "user", "content": "unwritable"}])
    assert e.value.status_code == 502 and "cannot write about" in e.value.message
    with pytest.raises(openai.InternalServerError) as e:  # a bug: 500 in OpenAI's shape, no internals
        sdk.chat.completions.create(model="any", messages=[{"role": "user", "content": "explode"}])
    assert e.value.status_code == 500 and e.value.body["type"] == "server_error"
    assert "secret-llm" not in json.dumps(e.value.body) and e.value.response.headers["x-request-id"]


def test_auth_errors_are_sdk_exceptions(server):
    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-a-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.models.list()
    assert "unknown or revoked" in e.value.message and e.value.body["type"] == "authentication_error"


# ----------------------------------------------------------------------------------------------- images
def test_images_b64_sizes_and_n(sdk):
    r = sdk.images.generate(model="any", prompt="a red kite", size="256x256", n=2, response_format="b64_json",
                            extra_body={"seed": 9})
    assert isinstance(r, openai.types.ImagesResponse) and abs(r.created - time.time()) < 120
    pictures = [png(d.b64_json) for d in r.data]
    assert [p.size for p in pictures] == [(256, 256)] * 2 and pictures[0].format == "PNG"
    assert pictures[0].tobytes() != pictures[1].tobytes()  # picture i uses seed + i
    assert all(d.revised_prompt is None for d in r.data)  # this illustrator reads the prompt as given
    wide = sdk.images.generate(prompt="a red kite", size="1536x1024", output_format="jpeg")
    assert png(wide.data[0].b64_json).size == (1536, 1024) and png(wide.data[0].b64_json).format == "JPEG"


def test_images_url_links_expire(sdk, server):
    r = sdk.images.generate(prompt="a boat", size="128x96", response_format="url")
    url = r.data[0].url
    assert url.startswith(f"{server.url}/v1/images/files/") and r.data[0].b64_json is None
    got = httpx.get(url)  # no bearer token: the link itself is the key
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(got.content)).size == (128, 96)
    name = url.rsplit("/", 1)[1]
    forged = httpx.get(url.replace(name[:8], "A" * 8))
    assert forged.status_code == 404 and forged.json()["error"]["type"] == "not_found_error"
    old = time.time() - 3601  # older than image_url_seconds (3600): expired
    os.utime(server.data_dir / "links" / name, (old, old))
    assert httpx.get(url).status_code == 404


def test_images_quality_and_style(sdk):
    for quality, style in (("low", "vivid"), ("hd", "natural"), ("auto", "crayon")):
        r = sdk.images.generate(prompt="a cat", size="64x64", quality=quality, style=style)
        assert png(r.data[0].b64_json).size == (64, 64)
    with pytest.raises(openai.UnprocessableEntityError) as e:
        sdk.images.generate(prompt="a cat", style="baroque")
    assert "vivid" in e.value.message and "storybook" in e.value.message
    with pytest.raises(openai.UnprocessableEntityError, match="quality"):
        sdk.images.generate(prompt="a cat", quality="ultra")
    with pytest.raises(openai.UnprocessableEntityError, match="size"):
        sdk.images.generate(prompt="a cat", size="4096x4096")
    with pytest.raises(openai.UnprocessableEntityError, match="background"):
        sdk.images.generate(prompt="a cat", background="transparent")
    with pytest.raises(openai.UnprocessableEntityError, match="partial pictures"):
        sdk.images.generate(prompt="a cat", stream=True)


def test_images_edit(sdk):
    r = sdk.images.edit(image=("in.png", photo_bytes((100, 80), fmt="PNG"), "image/png"), prompt="make it blue",
                        size="128x128", response_format="b64_json")
    assert png(r.data[0].b64_json).size == (128, 128)


def test_fixed_size_illustrator_is_upscaled_and_its_prompt_revised(tmp_path):
    """An illustrator that draws 32x32 pictures of known concepts (like the embedded model): the
    service upscales (x4) and fits to the exact size, and says what was drawn in revised_prompt."""
    srv = Server(tmp_path, env={"TALELOOM_ILLUSTRATOR": "test-concepts"}).start()
    try:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key=srv.token(), max_retries=0)
        r = client.images.generate(prompt="a red kite over the park", size="256x256", n=2)
        assert [png(d.b64_json).size for d in r.data] == [(256, 256)] * 2
        assert [d.revised_prompt for d in r.data] == ["kite", "kite"]
        assert png(client.images.generate(prompt="a cat", size="96x64").data[0].b64_json).size == (96, 64)
    finally:
        srv.stop()


# ----------------------------------------------------------------------------------------------- speech
def probe(data: bytes, tmp_path, name: str) -> dict:
    """ffprobe's view of the file (container and codec), plus `seconds`: its length once really decoded."""
    path = tmp_path / name
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", "8000", "-"],
                         capture_output=True, timeout=60)
    assert pcm.returncode == 0 and pcm.stdout, pcm.stderr
    return json.loads(out.stdout) | {"seconds": len(pcm.stdout) / 2 / 8000}


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffmpeg (Makefile APT_PACKAGES) is not installed")
def test_speech_formats_decode(sdk, tmp_path):
    text = "Once upon a time, a kite flew over the park."
    wav = sdk.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="wav").content
    with wave.open(io.BytesIO(wav)) as w:
        seconds = w.getnframes() / w.getframerate()
    expected = {"mp3": ("mp3", "mp3"), "opus": ("ogg", "opus"), "aac": ("aac", "aac"), "flac": ("flac", "flac")}
    for fmt, (container, codec) in expected.items():
        data = sdk.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format=fmt).content
        info = probe(data, tmp_path, f"speech.{fmt}")
        assert info["format"]["format_name"] == container and info["streams"][0]["codec_name"] == codec
        # lossy codecs pad a frame or two (mp3 at 8 kHz: 1152 samples = 0.14 s), never lose audio
        assert seconds - 0.01 <= info["seconds"] < seconds + 0.3, (fmt, info["seconds"], seconds)
    pcm = sdk.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="pcm").content
    assert len(pcm) % 2 == 0 and abs(len(pcm) / 2 / 24000 - seconds) < 0.05  # raw 24 kHz 16-bit mono
    default = sdk.audio.speech.create(model="tts-1", voice="alloy", input=text).content  # OpenAI's default: mp3
    assert probe(default, tmp_path, "default")["format"]["format_name"] == "mp3"


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffmpeg (Makefile APT_PACKAGES) is not installed")
def test_speech_speed_and_voices(sdk, tmp_path):
    text = "The sun was warm and the grass was soft. " * 20  # 2 s of the test narrator's tone
    durations = {}
    for speed in (0.5, 1.0, 2.0):
        data = sdk.audio.speech.create(model="tts-1", voice="fr", input=text, response_format="flac",
                                       speed=speed).content
        durations[speed] = probe(data, tmp_path, f"s{speed}.flac")["seconds"]
    assert abs(durations[0.5] / durations[1.0] - 2) < 0.1 and abs(durations[1.0] / durations[2.0] - 2) < 0.1
    with pytest.raises(openai.UnprocessableEntityError) as e:
        sdk.audio.speech.create(model="tts-1", voice="klingon", input=text)
    assert "alloy" in e.value.message and "fr" in e.value.message
    with pytest.raises(openai.UnprocessableEntityError, match="speed"):
        sdk.audio.speech.create(model="tts-1", voice="alloy", input=text, speed=5)


# ------------------------------------------------------------------------------------------------ async
def test_async_client_streams_chat_and_draws(server):
    async def run() -> tuple[str, list, Image.Image]:
        client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=server.token(), max_retries=0)
        async with client:
            stream = await client.chat.completions.create(model="any", messages=USER, seed=2, stream=True,
                                                          stream_options={"include_usage": True})
            chunks = [c async for c in stream]
            picture = await client.images.generate(prompt="a tree", size="96x96")
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return text, chunks, png(picture.data[0].b64_json)

    text, chunks, picture = asyncio.run(run())
    assert words(text) == chunks[-1].usage.completion_tokens > 0 and picture.size == (96, 96)


# ---------------------------------------------------------------------------------------- real SmolLM2
def test_real_smollm2_reports_length_and_usage(tmp_path):
    """The shipped SmolLM2 GGUF: its own token counts, and "length" when max_tokens cuts it."""
    srv = Server(tmp_path, env={"TALELOOM_LLM": "smollm2", "OMP_NUM_THREADS": "1"}).start()
    try:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key=srv.token(), max_retries=0, timeout=300)
        ask = [{"role": "user", "content": "Write a long story about a cat who sails a boat."}]
        cut = client.chat.completions.create(model="smollm2", messages=ask, max_tokens=6, seed=1, temperature=0)
        assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 6
        assert cut.usage.prompt_tokens > 10 and cut.usage.total_tokens == cut.usage.prompt_tokens + 6
        chunks = list(client.chat.completions.create(model="smollm2", messages=ask, max_tokens=6, seed=1,
                                                     temperature=0, stream=True,
                                                     stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == cut.choices[0].message.content
        assert chunks[-1].usage.prompt_tokens == cut.usage.prompt_tokens
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    finally:
        srv.stop()
