"""Limits: upload bytes and pixels (413), pages and unknown names (422), queue length per user and in
total (429) — each a JSON {error, message, hint} that says what to change."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image
from serverkit import any_server, error_body, photo_bytes

LIMITS = {"TALELOOM_MAX_UPLOAD_BYTES": "300000", "TALELOOM_MAX_PIXELS": "2000000", "TALELOOM_MAX_PAGES": "3",
          "TALELOOM_MAX_QUEUE_PER_USER": "2", "TALELOOM_MAX_QUEUE_TOTAL": "3", "TALELOOM_WORKERS": "1",
          "TALELOOM_TEST_DELAY": "0.3"}  # slow backends, so books wait in the queue


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = any_server(tmp_path_factory.mktemp("limits"), LIMITS).start()
    yield srv
    srv.stop()


def noise_png(side: int) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def post(client, photo: bytes, **fields):
    return client.post("/v1/books", data={"pages": "1", **fields}, files={"photo": ("p.png", photo, "image/png")})


def assert_error(r, status: int, *words: str) -> dict:
    assert r.status_code == status, r.text
    body = error_body(r)  # the OpenAI routes answer in OpenAI's shape
    assert set(body) == {"error", "message", "hint"} and body["hint"], body
    text = (body["message"] + " " + body["hint"]).lower()
    for w in words:
        assert w.lower() in text, (w, body)
    return body


def test_upload_bytes_413(server):
    client = server.client(server.token())
    big = noise_png(400)  # ~480 kB, under the pixel limit
    assert len(big) > 300_000
    assert_error(post(client, big), 413, "0.3 MB", "re-compress")
    huge = noise_png(800)  # over the limit plus form slack: refused from Content-Length before reading
    assert_error(post(client, huge), 413, "MB")


def test_upload_without_length_is_cut_off_413(server):
    client = server.client(server.token())
    boundary = "xyzzy"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"p.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode()

    def chunks():  # chunked transfer: no Content-Length to check up front
        yield head
        for _ in range(40):
            yield b"\0" * 65536

    r = client.post("/v1/books", content=chunks(),
                    headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert_error(r, 413, "MB")


def test_pixels_413(server):
    client = server.client(server.token())
    flat = photo_bytes((2000, 1500), fmt="PNG")  # 3 million pixels in a small file
    assert len(flat) < 300_000
    assert_error(post(client, flat), 413, "million pixels", "resize")


def test_pages_and_names_422(server):
    client = server.client(server.token())
    assert_error(post(client, photo_bytes(), pages="5"), 422, "at most 3", "3 pages or fewer")
    assert_error(post(client, photo_bytes(), pages="0"), 422, "pages")
    assert_error(post(client, photo_bytes(), style="cubist"), 422, "style", "storybook")
    assert_error(post(client, photo_bytes(), pages="many"), 422, "pages")


def test_queue_per_user_and_total_429(server):
    alice, bob, carol = (server.client(server.token(n)) for n in ("alice", "bob", "carol"))
    for _ in range(2):
        assert post(alice, photo_bytes()).status_code == 202
    r = post(alice, photo_bytes())
    assert_error(r, 429, "2 jobs", "limit is 2", "wait")
    assert r.headers["retry-after"]
    assert post(bob, photo_bytes()).status_code == 202  # total is now 3
    r = post(carol, photo_bytes())
    body = assert_error(r, 429, "limit is 3", "try again")
    assert body["error"] == "ServerBusy"


def test_single_step_calls_per_user_429(server):
    """Pictures drawn in the request (not queued) are capped per user; another user is not held up."""
    mine, other = server.client(server.token()), server.client(server.token())
    body = {"prompt": "a red apple", "n": 1, "size": "64x64"}
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(
        mine.post("/v1/images/generations", json=body).status_code)) for _ in range(2)]
    for t in threads:  # the limit (2 per user) is taken by these two: each draws for 1.5-1.8 s (test delay)
        t.start()
    time.sleep(0.6)
    refused = mine.post("/v1/images/generations", json=body)  # an OpenAI route: OpenAI's error shape
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limit_error"
    assert all(w in refused.json()["error"]["message"] for w in ("single-step", "limit is 2", "wait"))
    assert other.post("/v1/images/generations", json=body).status_code == 200
    for t in threads:
        t.join(30)
    assert results == [200, 200]
    assert mine.post("/v1/images/generations", json=body).status_code == 200  # the slots came back
