"""A real book through the service on the embedded defaults (our captioner and illustrator, SmolLM2,
espeak-ng): the product as `taleloom serve` ships it, on CPU. Slow: run with `pytest -m slow`."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from pypdf import PdfReader
from serverkit import Server, photo_bytes, read_events, wait_status

from taleloom.backends import registry
from taleloom.config import Settings

pytestmark = pytest.mark.slow


def _defaults_ready() -> str | None:
    """Why the embedded defaults cannot run here, or None."""
    settings = Settings()
    for role in registry.ROLES:
        try:
            ok, why = registry.create(role, getattr(settings, role)).ready()
        except Exception as e:
            return f"{role} backend {getattr(settings, role)!r}: {e}"
        if not ok:
            return f"{role} backend {getattr(settings, role)!r}: {why}"
    return None


def test_book_on_embedded_defaults(tmp_path):
    reason = _defaults_ready()
    if reason:
        pytest.skip(f"the embedded defaults are not usable here: {reason}")
    srv = Server(tmp_path, env={"TALELOOM_WARM": "1"}, test_backends=False).start(timeout=120)
    try:
        client = srv.client(srv.token("embedded"), timeout=600)
        r = client.post("/v1/books", data={"pages": "2", "hero": "Mina"},
                        files={"photo": ("picnic.jpg", photo_bytes((512, 384)), "image/jpeg")})
        assert r.status_code == 202, r.text
        book_id = r.json()["id"]
        events = read_events(client, book_id, timeout=1500)
        body = wait_status(client, book_id, timeout=60)
        assert body["status"] == "done", (body.get("error"), events[-3:])
        models = client.get(f"/v1/books/{book_id}/manifest.json").json()["models"]
        assert not any(m.startswith("test-") for m in models.values()), models
        pdf = client.get(body["links"]["pdf"])
        assert len(PdfReader(io.BytesIO(pdf.content)).pages) >= 2
        for page in body["pages"]:
            Image.open(io.BytesIO(client.get(page["image"]).content)).load()
            assert client.get(page["audio"]).status_code == 200
    finally:
        srv.stop()
