"""Book API (the app in this process, or a real server: conftest.py): make a book, follow its events,
download every file, edit it, share it, delete it."""

from __future__ import annotations

import io
import json
import wave
import zipfile

import pytest
from PIL import Image
from pypdf import PdfReader
from serverkit import make_book, photo_bytes, read_events, wait_status

from taleloom.orchestrator import LANES
from taleloom.pipeline import STAGE, STAGES

SERVER_ENV = {"TALELOOM_TEST_DELAY": "0.02"}  # slow enough to see stages start live


@pytest.fixture(scope="module")
def owner(server):
    return server.client(server.token("alice"))


@pytest.fixture(scope="module")
def done_book(owner):
    book = make_book(owner, pages=3, hero="Mina")
    events = read_events(owner, book["id"])
    return book, events


def test_create_returns_id_status_and_links(done_book):
    book, _ = done_book
    assert len(book["id"]) >= 22  # 128 random bits
    assert book["status"] == "queued"
    assert book["links"]["events"] == f"/v1/books/{book['id']}/events"
    assert book["share_url"].split("/books/")[1] != book["id"]  # the public link is not the book id


def test_events_report_every_stage_then_done(done_book):
    _, events = done_book
    kinds = [k for k, _ in events]
    assert kinds[0] == "snapshot"  # the state when the stream opened, then live events
    assert kinds[-1] == "status" and events[-1][1]["status"] == "done"
    done_before = [s["name"] for s in events[0][1]["stages"] if s["status"] in ("done", "skipped")]
    started = [d["stage"] for k, d in events if k == "started"]
    finished = [d["stage"] for k, d in events if k == "finished"]
    order = done_before + finished
    assert sorted(order) == sorted(STAGES), kinds  # every stage once (translate may finish beside the pictures)
    for name in finished:  # each after the stages it reads
        assert all(order.index(r) < order.index(name) for r in STAGE[name].reads), (name, order)
    assert set(started) <= set(finished) and len(started) >= len(finished) - LANES  # those may have begun before
    assert any(k == "progress" for k in kinds)
    assert [d["kind"] for k, d in events if k == "done"] == ["done"]


def test_status_and_downloads(owner, done_book):
    book, _ = done_book
    body = wait_status(owner, book["id"])
    assert body["status"] == "done" and body["title"]
    assert [s["status"] for s in body["stages"]] == ["done"] * 8
    assert len(body["pages"]) == 3
    pdf = owner.get(body["links"]["pdf"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert len(PdfReader(io.BytesIO(pdf.content)).pages) >= 3
    manifest = owner.get(f"/v1/books/{book['id']}/manifest.json").json()
    assert manifest["id"] == book["id"] and len(manifest["pages"]) == 3
    for page in body["pages"]:
        img = owner.get(page["image"])
        assert img.status_code == 200 and img.headers["content-type"] == "image/png"
        Image.open(io.BytesIO(img.content)).load()
        audio = owner.get(page["audio"])
        assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
        with wave.open(io.BytesIO(audio.content)) as w:
            assert w.getnframes() > 0
    assert owner.get(f"/v1/books/{book['id']}/pages/9.png").status_code == 404
    assert owner.get(f"/v1/books/{book['id']}/qr.png").status_code == 200
    assert all(p["words"] and p["words"][-1]["end"] <= p["audio_seconds"] for p in body["pages"])  # read-along
    epub = owner.get(body["links"]["epub"])
    assert epub.status_code == 200 and epub.headers["content-type"] == "application/epub+zip"
    with zipfile.ZipFile(io.BytesIO(epub.content)) as z:
        assert z.namelist()[0] == "mimetype" and z.read("mimetype") == b"application/epub+zip"
        assert {f"OEBPS/page{n}.xhtml" for n in (1, 2, 3)} <= set(z.namelist())


def test_list_books(owner, done_book):
    book, _ = done_book
    assert book["id"] in [b["id"] for b in owner.get("/v1/books").json()]


def test_redraw_rewrite_extend(owner, done_book):
    book, _ = done_book
    bid = book["id"]
    before = owner.get(f"/v1/books/{bid}/pages/2.png").content
    r = owner.post(f"/v1/books/{bid}/pages/2:redraw", json={"seed": 12345})
    assert r.status_code == 202, r.text
    assert owner.post(f"/v1/books/{bid}/pages/1:redraw", json={}).status_code == 409  # one change at a time
    read_events(owner, bid)
    body = wait_status(owner, bid)
    assert body["status"] == "done"
    assert owner.get(f"/v1/books/{bid}/pages/2.png").content != before

    r = owner.post(f"/v1/books/{bid}/pages/1:rewrite", json={"instruction": "make it funnier"})
    assert r.status_code == 202, r.text
    wait_status(owner, bid)

    r = owner.post(f"/v1/books/{bid}:extend", json={"pages": 1})
    assert r.status_code == 202, r.text
    body = wait_status(owner, bid)
    assert body["status"] == "done" and len(body["pages"]) == 4
    history = [c["action"] for c in owner.get(f"/v1/books/{bid}/manifest.json").json()["history"]]
    assert history == ["redraw", "rewrite", "extend"]

    assert owner.post(f"/v1/books/{bid}/pages/99:redraw", json={}).status_code == 404
    bad = owner.post(f"/v1/books/{bid}/pages/1:redraw", json={"style": "nope"})
    assert bad.status_code == 422 and "storybook" in bad.json()["hint"]


def test_translate_adds_an_edition_with_its_own_files(server, owner):
    book = make_book(owner, pages=1, hero="Mina")
    bid = book["id"]
    assert wait_status(owner, bid)["status"] == "done"
    bad = owner.post(f"/v1/books/{bid}:translate", json={"langs": ["zz"]})
    assert bad.status_code == 422 and "de" in bad.json()["hint"]
    assert owner.post(f"/v1/books/{bid}:translate", json={"langs": ["en"]}).status_code == 422  # its own language
    assert owner.get(f"/v1/books/{bid}/book.pdf?lang=fr").status_code == 404  # not made yet
    r = owner.post(f"/v1/books/{bid}:translate", json={"langs": ["fr"]})
    assert r.status_code == 202, r.text
    body = wait_status(owner, bid)
    assert body["status"] == "done", body
    (ed,) = body["editions"]
    assert ed["lang"] == "fr" and ed["machine_translated"] and ed["current"]
    if not ed["translated"]:  # the test LLM is no translator: the edition must say so, page by page
        assert ed["pages_kept_english"] == [1] and ed["notes"]
    pdf = owner.get(ed["pdf"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    epub = owner.get(ed["epub"])
    assert epub.status_code == 200
    with zipfile.ZipFile(io.BytesIO(epub.content)) as z:
        assert b"<dc:language>" in z.read("OEBPS/package.opf")
    manifest = owner.get(f"/v1/books/{bid}/manifest.json").json()
    assert manifest["editions"]["fr"]["pages"][0]["audio"] and manifest["history"][-1]["action"] == "translate"
    shown = owner.get(f"/v1/books/{bid}?lang=fr").json()  # the reader's view of the edition
    assert shown["title"] == ed["title"] and shown["pages"][0]["text"] == manifest["editions"]["fr"]["pages"][0]["text"]
    assert "lang=fr" in shown["pages"][0]["audio"] and shown["pages"][0]["words"]
    fr_audio = owner.get(shown["pages"][0]["audio"])  # its own narration file
    assert fr_audio.status_code == 200 and fr_audio.content[:4] == b"RIFF"
    assert manifest["editions"]["fr"]["pages"][0]["audio"].startswith("editions/fr/")
    assert owner.get(f"/v1/books/{bid}?lang=ko").status_code == 404


def test_share_link_read_only_and_revocable(server, owner, done_book):
    book, _ = done_book
    share_id = book["share_url"].rsplit("/", 1)[1]
    anon = server.client()
    shared = anon.get(f"/v1/shared/{share_id}")
    assert shared.status_code == 200 and shared.json()["status"] == "done"
    assert anon.get(shared.json()["pages"][0]["image"]).status_code == 200
    assert anon.get(f"/v1/shared/{share_id}/book.pdf").status_code == 200
    assert anon.get(f"/v1/shared/{share_id}/manifest.json").status_code == 404  # prompts stay private
    page = anon.get(f"/books/{share_id}")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    # the QR code in the PDF and the HTML points at the share link
    assert owner.get(f"/v1/books/{book['id']}/manifest.json").json()["url"] == book["share_url"]

    second = owner.post(f"/v1/books/{book['id']}/shares")
    assert second.status_code == 201
    assert owner.delete(f"/v1/books/{book['id']}/shares/{share_id}").status_code == 204
    gone = anon.get(f"/v1/shared/{share_id}")
    assert gone.status_code == 410 and gone.json()["hint"]
    assert anon.get(f"/books/{share_id}").status_code == 410
    assert anon.get(f"/v1/shared/{second.json()['id']}").status_code == 200
    shares = owner.get(f"/v1/books/{book['id']}/shares").json()
    assert [s["revoked"] is not None for s in shares] == [True, False]


def test_book_from_an_idea_without_photo(owner):
    r = owner.post("/v1/books", data={"pages": "1", "idea": "a cat who flies", "lang": "fr"})
    assert r.status_code == 202, r.text
    body = wait_status(owner, r.json()["id"])
    assert body["status"] == "done"
    assert body["stages"][0]["status"] == "skipped"


def test_bad_photo_is_422_with_hint(owner):
    r = owner.post("/v1/books", data={"pages": "1"}, files={"photo": ("x.jpg", b"not an image", "image/jpeg")})
    assert r.status_code == 422
    assert set(r.json()) == {"error", "message", "hint"} and r.json()["hint"]


def test_delete_removes_book_and_files(server, owner):
    book = make_book(owner, pages=1, photo=photo_bytes(colour=(10, 200, 10)))
    wait_status(owner, book["id"])
    folder = server.data_dir / "books" / book["id"]
    assert folder.is_dir()
    assert owner.delete(f"/v1/books/{book['id']}").status_code == 204
    assert owner.get(f"/v1/books/{book['id']}").status_code == 404
    assert not folder.exists()
    share_id = book["share_url"].rsplit("/", 1)[1]
    assert server.client().get(f"/v1/shared/{share_id}").status_code == 404


def test_docs_health_and_options(server):
    anon = server.client()
    assert anon.get("/docs").status_code == 200
    spec = anon.get("/openapi.json").json()
    assert "/v1/books/{book_id}/events" in spec["paths"]
    health = anon.get("/healthz").json()
    assert health["ok"] and health["plugins"] == ["testbackends:register"]
    options = anon.get("/v1/options").json()
    assert "storybook" in options["styles"] and options["max_pages"] >= 1
    page = anon.get("/")
    assert page.status_code == 200 and "Make a storybook" in page.text
    assert anon.get("/static/app.js").status_code == 200
    assert json.loads(anon.get("/nope").text)["error"] == "NotFound"


def test_a_failed_book_tells_its_owner_why_and_a_reader_only_that_it_failed(server, owner):
    book = make_book(owner, pages=1, idea="an unwritable tale")
    body = wait_status(owner, book["id"])
    assert body["status"] == "failed" and "unwritable" in body["error"]["message"]
    assert owner.post(f"/v1/books/{book['id']}/pages/1:redraw", json={}).status_code == 409  # its state, not "no page 1"
    share_id = book["share_url"].rsplit("/", 1)[1]
    shared = server.client().get(f"/v1/shared/{share_id}").json()
    assert shared["status"] == "failed" and shared["error"]["message"] == "this book could not be finished"
    assert "secret-llm" not in json.dumps(shared)


def test_retry_of_a_failed_book_uses_a_new_seed_unless_one_is_given(owner):
    book = make_book(owner, pages=1, idea="an unwritable tale", seed=7)
    assert wait_status(owner, book["id"])["status"] == "failed"
    assert owner.post(f"/v1/books/{book['id']}:retry").status_code == 202
    wait_status(owner, book["id"])
    manifest = owner.get(f"/v1/books/{book['id']}/manifest.json").json()
    first = manifest["history"][-1]
    assert first["action"] == "retry" and first["params"]["old_seed"] == 7
    assert manifest["brief"]["seed"] == first["params"]["seed"] != 7  # the same seed would fail the same way
    assert owner.post(f"/v1/books/{book['id']}:retry", json={"seed": 12}).status_code == 202
    wait_status(owner, book["id"])
    assert owner.get(f"/v1/books/{book['id']}/manifest.json").json()["brief"]["seed"] == 12
    assert owner.post(f"/v1/books/{book['id']}:retry", json={"seed": -1}).status_code == 422
