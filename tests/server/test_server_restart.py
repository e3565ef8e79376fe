"""Restart: submit books, `kill -9` the server mid-job, start it again on the same data folder —
every book completes from its last finished stage, and no file is lost or corrupted."""

from __future__ import annotations

import io
import time
import wave

from PIL import Image
from pypdf import PdfReader
from serverkit import Server, make_book, photo_bytes, wait_status

from taleloom.orchestrator import load_book
from taleloom.server.store import Store, database_url

ENV = {"TALELOOM_TEST_DELAY": "0.25", "TALELOOM_WORKERS": "2"}


def finished_stages(folder) -> dict[str, str]:
    try:
        book = load_book(folder)
    except Exception:
        return {}
    return {name: rec.finished for name, rec in book.stages.items() if rec.status == "done"}


def check_book_files(folder, pages: int) -> None:
    book = load_book(folder)  # manifest.json parses and validates
    assert book.complete and all(r.status in ("done", "skipped") for r in book.stages.values()), book.stages
    assert len(book.pages) == pages
    for p in book.pages:
        with Image.open(folder / p.image) as img:
            img.load()  # the whole PNG decodes
        with Image.open(folder / p.image_lowres) as img:
            img.load()
        with wave.open(str(folder / p.audio)) as w:
            assert w.getnframes() > 0
    pdf = PdfReader(io.BytesIO((folder / book.files["pdf"]).read_bytes()))
    assert len(pdf.pages) >= pages
    assert (folder / book.files["qr"]).stat().st_size > 0
    leftovers = [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


def test_kill_9_mid_job_then_every_book_completes(tmp_path):
    srv = Server(tmp_path / "data", env=ENV).start()
    try:
        clients = [srv.client(srv.token(n)) for n in ("ann", "ben")]
        books = [make_book(clients[i % 2], pages=2, photo=photo_bytes(colour=(40 * i, 90, 160)), seed=i)
                 for i in range(5)]
        # wait until work is under way: some stage finished somewhere, and not everything done
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            progress = [finished_stages(srv.data_dir / "books" / b["id"]) for b in books]
            if sum(len(p) for p in progress) >= 6:
                break
            time.sleep(0.05)
        srv.kill9()
    finally:
        srv.stop()
    before = {b["id"]: finished_stages(srv.data_dir / "books" / b["id"]) for b in books}
    assert any(0 < len(done) < 8 for done in before.values()), f"no book was cut off mid-way: {before}"
    store = Store(database_url(None, srv.data_dir))
    assert store.count_active() > 0  # the database still says those jobs are unfinished
    store.close()

    again = Server(srv.data_dir, env=ENV, port=srv.port).start()
    try:
        for i, b in enumerate(books):
            body = wait_status(clients[i % 2], b["id"], timeout=90)
            assert body["status"] == "done", body
        for b in books:
            folder = again.data_dir / "books" / b["id"]
            check_book_files(folder, pages=2)
            after = finished_stages(folder)
            for stage, finished in before[b["id"]].items():  # resumed, not redone
                assert after[stage] == finished, (b["id"], stage)
        health = again.client().get("/healthz").json()
        assert health["active_jobs"] == 0
    finally:
        again.stop()
