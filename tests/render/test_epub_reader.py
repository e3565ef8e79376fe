"""The EPUB opens in a real EPUB reading system: epub.js (npm `epubjs`, pinned in tests/js/package.json,
installed by `make install`) running in headless Chromium parses the container, package and spine,
shows the cover and the pages with their text and pictures, and finds the Media Overlays in the manifest."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from test_epub import TEXTS, narrated  # noqa: F401  (the module-scoped narrated book)

JS = Path(__file__).resolve().parents[1] / "js" / "node_modules"
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
pytestmark = [
    pytest.mark.skipif(not (JS / "epubjs/dist/epub.min.js").is_file(),
                       reason="epub.js is not installed (cd tests/js && npm install)"),
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian package 'chromium' is missing"),
]

OPEN = """async (b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const book = ePub(bytes.buffer);
  await book.ready;
  const rendition = book.renderTo("viewer", { width: 500, height: 700, spread: "none" });
  window.rendition = rendition;
  await rendition.display();
  const overlays = Object.values(book.packaging.manifest).filter((m) => m.type === "application/smil+xml").length;
  return { title: book.packaging.metadata.title, language: book.packaging.metadata.language,
           layout: book.packaging.metadata.layout, spine: book.spine.length, overlays,
           toc: book.navigation.toc.map((t) => t.href) };
}"""
SHOWN = """() => {
  const doc = window.rendition.getContents()[0].document;
  const img = doc.querySelector("img");
  return { text: doc.body.textContent.replace(/\\s+/g, " ").trim(), img: img ? img.naturalWidth : 0,
           spans: doc.querySelectorAll("span[id]").length };
}"""


def test_epub_opens_in_epubjs(narrated):  # noqa: F811
    book, _, data = narrated
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_content("<!doctype html><html><body><div id='viewer'></div></body></html>")
        page.add_script_tag(path=str(JS / "jszip/dist/jszip.min.js"))
        page.add_script_tag(path=str(JS / "epubjs/dist/epub.min.js"))
        info = page.evaluate(OPEN, base64.b64encode(data).decode())
        assert info["title"] == book.title and info["language"] == "en" and info["layout"] == "pre-paginated"
        assert info["spine"] == len(book.pages) + 2 and info["overlays"] == len(book.pages)  # cover, pages, back
        assert len(info["toc"]) == len(book.pages) + 1, json.dumps(info)
        cover = page.evaluate(SHOWN)
        assert book.title in cover["text"]
        for n, text in enumerate(TEXTS, 1):
            page.evaluate("window.rendition.next()")
            page.wait_for_function(f"window.rendition.location && window.rendition.location.start.href === 'page{n}.xhtml'")
            page.wait_for_function("(() => { const d = window.rendition.getContents()[0].document;"
                                   " const i = d.querySelector('img'); return i && i.complete; })()")
            shown = page.evaluate(SHOWN)
            assert shown["text"] == text and shown["img"] == 256  # the page's words and its picture
            assert shown["spans"] == len(text.split())  # every word can be highlighted by the overlay
        assert not errors, errors
        browser.close()
