"""Hostile and careless inputs (issue 10, rows 6, 12, 13): every image a route
takes (a book's photo, a picture to edit, an inpaint mask, a photo to caption) gets the same limits and
the same 413/422 messages; a 500 tells nothing of the server's insides; a share link's errors name
nothing of the owner; a wrong body type or a NaN gets a message that says what to do."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image
from serverkit import any_server, error_body, make_book, photo_bytes, wait_status

LIMITS = {"TALELOOM_MAX_PIXELS": "2000000"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = any_server(tmp_path_factory.mktemp("inputs"), LIMITS).start()
    yield srv
    srv.stop()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width×height with a tiny body: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def noisy_png(size=(200, 160)) -> bytes:
    return png(Image.effect_noise(size, 64).convert("RGB"))


OK = photo_bytes((256, 256), fmt="PNG")
MASK = png(Image.new("RGBA", (256, 256), (0, 0, 0, 0)))


def send(client, route: str, data: bytes):
    """POST `data` as the image a route takes; for edits, as the picture and then as the mask."""
    if route == "books":
        return [client.post("/v1/books", data={"pages": "1"}, files={"photo": ("p.png", data, "image/png")})]
    if route == "captions":
        return [client.post("/v1/captions", files={"image": ("p.png", data, "image/png")})]
    form = {"prompt": "a red kite", "size": "64x64"}
    return [client.post("/v1/images/edits", data=form, files={"image": ("p.png", data, "image/png")}),
            client.post("/v1/images/edits", data=form, files={"image": ("p.png", OK, "image/png"),
                                                              "mask": ("m.png", data, "image/png")})]


def assert_error(r, status: int, *words: str) -> dict:
    assert r.status_code == status, r.text
    body = error_body(r)  # the OpenAI routes answer in OpenAI's shape
    assert set(body) == {"error", "message", "hint"} and body["hint"], body
    text = (body["message"] + " " + body["hint"]).lower()
    for w in words:
        assert w.lower() in text, (w, body)
    return body


ROUTES = ("books", "captions", "edits")


@pytest.mark.parametrize("route", ROUTES)
def test_every_image_input_has_the_same_limits(server, route):
    client = server.client(server.token())
    bomb = png_header_only(30000, 30000)  # 900 million pixels declared in 70 bytes
    for r in send(client, route, bomb):
        assert_error(r, 413, "30000×30000", "900 million pixels", "limit is 2 million")
    big = png(Image.new("RGB", (2000, 1500), (9, 9, 9)))  # 3 million real pixels, a small file
    for r in send(client, route, big):
        assert_error(r, 413, "2000×1500", "limit is 2 million", "resize")
    whole = noisy_png()
    for r in send(client, route, whole[: len(whole) // 2]):
        assert_error(r, 422, "truncated", "again")
    for r in send(client, route, b"<svg xmlns='http://www.w3.org/2000/svg'/>"):
        assert_error(r, 422, "not an image")
    for r in send(client, route, b""):
        assert_error(r, 422, "empty")


def test_good_mask_still_inpaints(server):
    client = server.client(server.token())
    r = client.post("/v1/images/edits", data={"prompt": "a red kite", "size": "64x64"},
                    files={"image": ("p.png", OK, "image/png"), "mask": ("m.png", MASK, "image/png")})
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 1


def test_500_names_no_internals_and_its_request_id_is_in_the_log(server):
    client = server.client(server.token())
    r = client.post("/v1/captions", data={"hint": "crash-internally"},
                    files={"image": ("p.png", OK, "image/png")})
    assert r.status_code == 500
    body = error_body(r)  # /v1/captions is an OpenAI route: OpenAI's error shape
    assert body["error"] == "InternalError" and "internal error" in body["message"]
    assert "/srv" not in r.text and "Permission" not in r.text and "b0123456789" not in r.text
    rid = r.headers["x-request-id"]
    assert rid in body["message"]
    log = server.log.read_text()
    assert rid in log and "/srv/taleloom-secret" in log  # the operator can find what happened


def test_share_link_errors_name_nothing_of_the_owner(server):
    owner = server.client(server.token())
    book = make_book(owner, pages=1)
    wait_status(owner, book["id"])
    share = book["share_url"].rsplit("/", 1)[1]
    reader = server.client()
    for name in ("pages/99.png", "audio/99.wav", "book.pdf?lang=zz", "book.epub?lang=zz"):
        r = reader.get(f"/v1/shared/{share}/{name}")
        assert r.status_code == 404
        assert book["id"] not in r.text and str(server.data_dir) not in r.text, r.text
    r = reader.get(f"/v1/shared/{share}")
    assert r.status_code == 200 and book["id"] not in r.text


def test_json_body_to_books_says_multipart(server):
    client = server.client(server.token())
    r = client.post("/v1/books", json={"pages": 1, "idea": "a cat"})
    assert_error(r, 415, "multipart/form-data", "application/json", "photo")


def test_nan_is_not_a_number(server):
    client = server.client(server.token())
    r = client.post("/v1/images/generations", content=b'{"prompt": "a kite", "guidance": NaN}',
                    headers={"Content-Type": "application/json"})
    assert_error(r, 422, "guidance", "finite number")
    r = client.post("/v1/images/edits", data={"prompt": "a kite", "guidance": "nan", "size": "64x64"},
                    files={"image": ("p.png", OK, "image/png")})
    assert_error(r, 422, "guidance", "finite number")
