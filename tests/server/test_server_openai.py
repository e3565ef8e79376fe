"""Single-step endpoints in the OpenAI shapes: images (generations, edits as img2img and inpaint),
chat completions (plain, JSON schema, streaming), speech, plus captions."""

from __future__ import annotations

import base64
import io
import json
import wave

import pytest
from PIL import Image
from serverkit import photo_bytes


@pytest.fixture(scope="module")
def client(server):
    return server.client(server.token("steps"))


def decode(item: dict) -> Image.Image:
    img = Image.open(io.BytesIO(base64.b64decode(item["b64_json"])))
    img.load()
    return img


def test_images_generations(client):
    r = client.post("/v1/images/generations", json={"prompt": "a red kite", "n": 2, "size": "128x96", "seed": 7,
                                                     "model": "ignored", "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert len(data) == 2 and [decode(d).size for d in data] == [(128, 96)] * 2
    again = client.post("/v1/images/generations", json={"prompt": "a red kite", "size": "128x96", "seed": 7}).json()
    assert again["data"][0]["b64_json"] == data[0]["b64_json"]  # same seed, same picture
    bad = client.post("/v1/images/generations", json={"prompt": "x", "size": "huge"})
    assert bad.status_code == 422 and "512x512" in bad.json()["error"]["message"]


def test_images_edits_img2img_and_inpaint(client):
    src = photo_bytes((128, 128), colour=(250, 250, 250), fmt="PNG")
    r = client.post("/v1/images/edits", data={"prompt": "make it blue", "strength": "0.5", "seed": "1"},
                    files={"image": ("in.png", src, "image/png")})
    assert r.status_code == 200, r.text
    assert decode(r.json()["data"][0]).size == (128, 128)
    mask = Image.new("RGBA", (128, 128), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 64, 128))  # transparent left half = redraw
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    r = client.post("/v1/images/edits", data={"prompt": "a kite", "seed": "1"},
                    files={"image": ("in.png", src, "image/png"), "mask": ("mask.png", buf.getvalue(), "image/png")})
    assert r.status_code == 200, r.text
    out = decode(r.json()["data"][0]).convert("RGB")
    original = Image.open(io.BytesIO(src)).convert("RGB")
    assert out.getpixel((100, 5)) == original.getpixel((100, 5))  # kept where the mask is opaque
    assert out.getpixel((5, 5)) != original.getpixel((5, 5))  # redrawn where it is transparent


def test_chat_completions(client):
    r = client.post("/v1/chat/completions", json={"model": "x", "messages": [{"role": "user", "content": "hello"}],
                                                  "temperature": 0.2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]
    schema = {"type": "object", "properties": {"title": {"type": "string"}, "pages": {"type": "integer"}},
              "required": ["title", "pages"]}
    r = client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": [{"type": "text", "text": "a title please"}]}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}}})
    answer = json.loads(r.json()["choices"][0]["message"]["content"])
    assert isinstance(answer["title"], str) and isinstance(answer["pages"], int)


def test_chat_completions_stream(client):
    with client.stream("POST", "/v1/chat/completions",
                       json={"messages": [{"role": "user", "content": "tell me"}], "stream": True}) as r:
        assert r.status_code == 200
        lines = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(x) for x in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text.strip() and chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_audio_speech(client):
    r = client.post("/v1/audio/speech", json={"model": "tts-1", "input": "Once upon a time.", "voice": "alloy",
                                              "response_format": "wav"})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(r.content)) as w:
        assert w.getnframes() > 0
    assert client.post("/v1/audio/speech", json={"input": "x", "response_format": "ogg"}).status_code == 422


def test_captions(client):
    r = client.post("/v1/captions", data={"hint": "my dog"}, files={"image": ("p.jpg", photo_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "my dog" in body["text"] and body["model_id"] == "test-captioner"
    bad = client.post("/v1/captions", files={"image": ("p.jpg", b"nope", "image/jpeg")})
    assert bad.status_code == 422 and bad.json()["error"]["hint"]
