"""Bind: the PDF has a cover, one spread per page and a back page whose QR code decodes to the book's URL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from taleloom.book import Brief, CastMember, Page, Storybook
from taleloom.files import atomic_save_image
from taleloom.stages.bind import bind

needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")


def pdf_text(pdf: Path) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(pdf).pages)


def decode_qr(png: Path) -> list[str]:
    from pyzbar.pyzbar import decode

    return [d.data.decode() for d in decode(Image.open(png))]


def make_book(tmp_path: Path, lang: str, texts: list[str], title: str) -> tuple[Storybook, Path]:
    atomic_save_image(tmp_path / "photo.png", Image.new("RGB", (300, 200), (200, 150, 90)))
    pages = []
    for i, text in enumerate(texts, 1):
        atomic_save_image(tmp_path / f"pages/{i}.png", Image.new("RGB", (256, 256), (40 * i, 120, 200)))
        pages.append(Page(index=i, text=f"English {i}", text_translated=text, scene="a cat", image=f"pages/{i}.png"))
    book = Storybook(id="abc123", brief=Brief(pages=len(texts), lang=lang), photo="photo.png", title="The Title",
                     title_translated=title, cast=[CastMember(name="Mina", look="a tabby cat")], pages=pages,
                     url="http://books.example.test/books/abc123", models={"illustrator": "test"})
    return book, tmp_path


def write(out, tmp_path: Path) -> Path:
    (tmp_path / "book.pdf").write_bytes(out.pdf)
    return tmp_path / "book.pdf"


@needs_poppler
def test_pdf_pages_text_and_qr(tmp_path):
    book, d = make_book(tmp_path, "en", ["Mina finds a red ball.", "Mina goes home happy."], "Mina and the Ball")
    out = bind(book, d)
    pdf = write(out, d)
    from pypdf import PdfReader

    assert len(PdfReader(pdf).pages) == 4  # cover, two spreads, back page
    text = pdf_text(pdf)
    assert "Mina and the Ball" in text and "Mina finds a red ball." in text and "Mina goes home happy." in text
    subprocess.run(["pdftoppm", "-png", "-r", "110", "-f", "4", "-l", "4", str(pdf), str(d / "back")], check=True)
    back = next(d.glob("back*.png"))
    assert decode_qr(back) == [book.url]
    assert "Mina and the Ball" in out.html and 'src="pages/1.png"' in out.html
    assert decode_qr_png(out.qr_png) == [book.url]


def decode_qr_png(data: bytes) -> list[str]:
    import io

    from pyzbar.pyzbar import decode

    return [d.data.decode() for d in decode(Image.open(io.BytesIO(data)))]


@needs_poppler
def test_korean_text_uses_a_cjk_font(tmp_path):
    book, d = make_book(tmp_path, "ko", ["미나는 빨간 공을 찾았어요."], "미나와 공")
    pdf = write(bind(book, d), d)
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True).stdout
    assert "CJK-KR" in fonts
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    assert "미나와 공" in text and "빨간 공을" in text
    assert "사진" in text and "온라인으로 읽고" in text  # the cover and back page speak the book's language too


def test_a_book_left_in_english_keeps_english_labels(tmp_path):
    from taleloom.render.labels import LABELS, labels
    from taleloom.stages.translate import LANGUAGES

    assert set(LABELS) == set(LANGUAGES)  # every language a book can be in has its labels
    book, _ = make_book(tmp_path, "fr", ["Mina trouve une balle."], "Mina")
    assert labels(book)["photo"] == "la photo"
    untranslated = book.model_copy(update={"pages": [p.model_copy(update={"text_translated": p.text})
                                                      for p in book.pages]})
    assert labels(untranslated)["photo"] == "the photo"


def test_a_book_not_really_translated_says_so_in_the_readers_language(tmp_path):
    from taleloom.book import TranslationRecord
    from taleloom.render.labels import NOT_TRANSLATED
    from taleloom.stages.translate import LANGUAGES

    assert set(NOT_TRANSLATED) == set(LANGUAGES)
    book, folder = make_book(tmp_path, "fr", ["English 1"], "The Title")
    book.translation = TranslationRecord(lang="fr", status="not_translated",
                                         kept_english=["title", "cover", "page 1"], checked_by="py3langid")
    bound = bind(book, folder)
    (folder / "book.pdf").write_bytes(bound.pdf)
    notice = "pas pu être entièrement traduit en français"
    assert notice in bound.html and notice in " ".join(pdf_text(folder / "book.pdf").split())
    book.translation = TranslationRecord(lang="fr", status="translated", checked_by="py3langid")
    assert notice not in bind(book, folder).html
    book.translation = TranslationRecord(lang="fr", status="translated", checked_by="py3langid",
                                         kept_words={"title": "Home"})  # "Le Home chaud de Mina"
    assert notice in bind(book, folder).html


def test_a_long_title_and_the_notice_stay_on_the_cover(tmp_path):
    """A German title of 98 characters (a page's sentence, since refused by the translation checks) pushed the
    cover's notice onto a PDF page of its own: a long title is set smaller."""
    from pypdf import PdfReader

    from taleloom.book import TranslationRecord

    title = "Nora macht einen Kekse als eine Überraschung für Theo, der nicht erwarten sollte, dass er es bekommt."
    book, folder = make_book(tmp_path, "de", ["Nora backt."], title)
    atomic_save_image(folder / "photo.png", Image.new("RGB", (512, 512), (200, 150, 90)))  # square, as a photo's
    book.cast[0].look_translated = "Ein Mensch, eine Orangekleidung, weiche braune Haare, einen Gesicht mit schwarmer Makup"
    book.translation = TranslationRecord(lang="de", status="translated", checked_by="py3langid",
                                         kept_words={"page 1": "Porche"})
    pdf = write(bind(book, folder), folder)
    assert len(PdfReader(pdf).pages) == 3  # cover, one spread, back page
    assert "übersetzt" in " ".join(PdfReader(pdf).pages[0].extract_text().split())


def test_the_cover_prints_the_heros_look_in_the_books_language(tmp_path):
    book, folder = make_book(tmp_path, "fr", ["Mina trouve une balle."], "Mina et la balle")
    book.cast[0].look_translated = "une chatte tigrée"
    html = bind(book, folder).html
    assert "Mina — une chatte tigrée" in html and "a tabby cat" not in html


def test_a_book_left_in_english_is_printed_as_english(tmp_path):
    """The book's language is decided once (Storybook.text_lang): an Arabic brief whose translation failed
    prints English pages left to right, in every format, not English text marked Arabic and right to left."""
    from taleloom.render.pdf import context

    book, _ = make_book(tmp_path, "ar", ["English 1", "English 2"], "The Title")
    assert book.text_lang == "en"
    ctx = context(book, None)
    assert (ctx["lang"], ctx["dir"]) == ("en", "ltr")
    book.pages[0].text_translated = "مينا تجد كرة"
    assert book.text_lang == "ar" and (context(book, None)["lang"], context(book, None)["dir"]) == ("ar", "rtl")
