"""Editions: a finished book gets more languages — same pictures, translated text, its own narration with
word timings, one PDF and EPUB per language, back pages that list them — and an honest record when the
LLM could not translate. Stand-in writer/translator, real eSpeak NG, WeasyPrint and EPUB builder."""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import replace

import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from book_doubles import FAKE_TEXT
from taleloom.editions import epub_path, listing, translate_book, view
from taleloom.errors import BadInputError
from taleloom.orchestrator import load_book, rewrite_page, run_book
from test_orchestrator import backends, make

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def pdf_text(path) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(path).pages)


def test_a_book_in_three_languages(tmp_path):
    d = make(tmp_path, pages=2)
    be = backends()
    run_book(d, be)
    book = translate_book(d, be, ["fr", "ko"])
    assert set(book.editions) == {"fr", "ko"} and book.history[-1].action == "translate"
    fr = book.editions["fr"]
    assert fr.machine_translated and fr.translated and fr.title.startswith("[fr] ")
    for page, ed_page in zip(book.pages, fr.pages, strict=True):
        assert ed_page.text == f"[fr] {page.text}" and not ed_page.kept_english
        assert (d / ed_page.audio).is_file() and ed_page.audio != page.audio  # its own narration...
        assert [w.text for w in ed_page.words] == ed_page.text.split()  # ...with its own word timings
    shown = view(book, "fr")
    assert shown.brief.lang == "fr" and [p.image for p in shown.pages] == [p.image for p in book.pages]  # same pictures
    assert shown.pages[0].text_translated.startswith("[fr] ")
    for lang in ("fr", "ko"):  # one PDF per language, and each back page lists every language
        text = pdf_text(d / book.editions[lang].files["pdf"])
        assert book.editions[lang].title in text and "French" in text and "Korean" in text and "English" in text
    assert "French" in pdf_text(d / "book.pdf") and "machine-translated" in pdf_text(d / "book.pdf")
    with zipfile.ZipFile(epub_path(d, book, "fr")) as z:
        opf = z.read("OEBPS/package.opf").decode()
        assert "<dc:language>fr</dc:language>" in opf and "[fr] " in z.read("OEBPS/page1.xhtml").decode()
        assert "Korean" in z.read("OEBPS/back.xhtml").decode()
    assert load_book(d) == book


def test_stale_editions_after_a_rewrite_and_an_llm_that_cannot_translate(tmp_path):
    d = make(tmp_path, pages=2)
    be = backends()
    run_book(d, be)
    translate_book(d, be, ["fr"])
    book = rewrite_page(d, be, 1, "make it funnier")
    assert [r["lang"] for r in listing(book)] == []  # the French text is older than the new page: not listed
    with pytest.raises(BadInputError, match="older than the book's text"):
        view(book, "fr")
    with pytest.raises(BadInputError, match="does not exist"):
        view(book, "ko")

    # an LLM that gives the English back: the edition says so instead of pretending
    english = backends(replace(FAKE_TEXT, translate=lambda texts, lang, llm, names=(), kinds=(): list(texts)))
    book = translate_book(d, english, ["fr", "ko"])
    for lang in ("fr", "ko"):
        ed = book.editions[lang]
        assert not ed.translated and all(p.kept_english for p in ed.pages)
        assert ed.pages[0].text == book.pages[0].text and ed.pages[0].words  # read in English, timings too
    assert "not translated" in pdf_text(d / book.editions["ko"].files["pdf"])


def test_cli_translate(tmp_path):
    from taleloom.cli import cli
    d = make(tmp_path, pages=1)
    run_book(d, backends())
    runner = CliRunner()
    env = {"TALELOOM_CONFIG": str(tmp_path / "none.toml")}
    bad = runner.invoke(cli, ["book", "translate", str(d), "--lang", "fr,zz"], env=env)
    assert bad.exit_code != 0 and "zz" in str(bad.exception)
    same = runner.invoke(cli, ["book", "translate", str(d), "--lang", "en"], env=env)
    assert same.exit_code != 0 and "already in English" in str(same.exception)
    import taleloom.cli.book as cli_book

    fixed = backends()
    original = cli_book.Backends.from_settings
    cli_book.Backends.from_settings = classmethod(lambda cls, s: fixed)
    try:
        ok = runner.invoke(cli, ["book", "translate", str(d), "--lang", "fr", "--json"], env=env)
    finally:
        cli_book.Backends.from_settings = original
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.output[ok.output.index("{"):])
    assert data["editions"]["fr"]["translated"] and data["editions"]["fr"]["files"]["pdf"].endswith("editions/fr/book.pdf")
    exported = runner.invoke(cli, ["book", "export", str(d), "--epub", "--lang", "fr", "-o", str(tmp_path / "fr.epub")])
    assert exported.exit_code == 0, exported.output
    assert b"<dc:language>fr</dc:language>" in zipfile.ZipFile(tmp_path / "fr.epub").read("OEBPS/package.opf")
