"""The `openai:URL#model` illustrator, editor and upscaler against a real Taleloom server on loopback (the
"GPU box"), and a whole book made by a second server that draws every picture on the first one."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from PIL import Image
from serverkit import Server, free_port, make_book, wait_status
from testbackends import _colour

from taleloom.backends.image.openai_images import OpenAIImageIllustrator, png
from taleloom.backends.openai_http import ServerUnreachableError
from taleloom.backends.registry import create
from taleloom.book import ImageRequest
from taleloom.errors import BackendError

REAL_SERVER = True  # the openai: backend under test speaks HTTP to it


@pytest.fixture(scope="module")
def token(server):
    return server.token("draws")


def spec(server) -> str:
    return f"openai:{server.url}/v1#taleloom"


def test_generate_draws_each_request_on_the_server_with_its_seed(server, token):
    illustrator = create("illustrator", spec(server), api_key=token)
    requests = [ImageRequest(prompt="a red kite", seed=s, width=96, height=64) for s in (3, 4, 5)]
    images = illustrator.generate(requests)
    assert [im.size for im in images] == [(96, 64)] * 3
    # the server's test illustrator paints colour(prompt|seed): the seed went through, picture by picture
    assert [im.getpixel((2, 2)) for im in images] == [_colour(f"a red kite|{s}") for s in (3, 4, 5)]
    assert illustrator.model_id == f"openai:taleloom@{server.url}/v1"
    assert illustrator.ready()[0]


def test_img2img_inpaint_and_upscale(server, token):
    illustrator = create("illustrator", spec(server), api_key=token)
    photo = Image.new("RGB", (64, 64), (250, 250, 250))
    edited = illustrator.img2img(ImageRequest(prompt="make it blue", seed=1), photo, 0.5)
    assert edited.size == (64, 64) and edited.getpixel((5, 5)) != (250, 250, 250)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # left half = redraw
    painted = illustrator.inpaint(ImageRequest(prompt="a kite", seed=1), photo, mask)
    assert painted.getpixel((60, 5)) == (250, 250, 250)  # kept
    assert painted.getpixel((5, 5)) != (250, 250, 250)  # redrawn

    upscaler = create("upscaler", spec(server), api_key=token)
    small = Image.new("RGB", (16, 16), (10, 20, 30))
    small.paste((200, 100, 0), (0, 0, 8, 8))
    big = upscaler.upscale_batch([small, small], 4)
    # the server's own upscaler (nearest neighbour), not a redraw
    assert [b.tobytes() for b in big] == [small.resize((64, 64), Image.Resampling.NEAREST).tobytes()] * 2


def test_a_front_end_draws_its_book_on_another_taleloom(server, token, tmp_path):
    front = Server(tmp_path / "front", env={"TALELOOM_ILLUSTRATOR": spec(server), "TALELOOM_UPSCALER": spec(server),
                                           "TALELOOM_OPENAI_API_KEY": token}).start()
    try:
        with front.client(front.token()) as client:
            book = make_book(client, pages=2)
            done = wait_status(client, book["id"])
            assert done["status"] == "done", json.dumps(done)[:600]
            page = client.get(f"/v1/books/{book['id']}/pages/1.png")
            assert page.status_code == 200 and page.content[:4] == b"\x89PNG"
            manifest = client.get(f"/v1/books/{book['id']}/manifest.json").json()
        assert f"@{server.url}/v1" in json.dumps(manifest)  # the pictures name the server that drew them
    finally:
        front.stop()


def test_a_server_that_is_down_is_named():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    illustrator = create("illustrator", f"openai:{dead}", max_retries=0, connect_timeout=2)
    with pytest.raises(ServerUnreachableError) as e:
        illustrator.generate([ImageRequest(prompt="a kite")])
    assert dead in e.value.message and "could not be reached" in e.value.message


@pytest.mark.parametrize("answer, words", [
    (b"<html>hello</html>", "malformed JSON"),
    (json.dumps({"data": []}).encode(), "without 1 picture"),
    (json.dumps({"data": [{"b64_json": base64.b64encode(b"not a png").decode()}]}).encode(), "not a picture"),
    (json.dumps({"data": [{"b64_json": "%%%"}]}).encode(), "not a picture"),
    (json.dumps({"data": [{"revised_prompt": "x"}]}).encode(), "not a picture"),
])
def test_garbage_answers_are_clear_errors(answer, words):
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=answer))
    illustrator = OpenAIImageIllustrator("http://127.0.0.1:1/v1", transport=transport)
    with pytest.raises(BackendError) as e:
        illustrator.generate([ImageRequest(prompt="a kite")])
    assert words in e.value.message and e.value.hint


def test_standard_fields_only_for_api_openai_com():
    sent = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={"data": [{"b64_json": base64.b64encode(png(Image.new("RGB", (8, 8)))).decode()}]})

    OpenAIImageIllustrator("https://api.openai.com/v1", "gpt-image-1", transport=httpx.MockTransport(answer),
                           api_key="k").generate([ImageRequest(prompt="a kite", seed=3)])
    assert set(sent[0]) == {"model", "prompt", "n", "response_format"}
