"""EPUB 3 export: a narrated book passes EPUBCheck (the W3C validator, Debian package `epubcheck`), its
Media Overlays follow the manifest's word timings, and its fixed-layout pages render in Chromium with
the picture shown and the text inside the page."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner
from PIL import Image

from taleloom.backends import registry
from taleloom.book import Brief, CastMember, Page, StageRecord, Storybook
from taleloom.files import atomic_save_image, atomic_write_bytes
from taleloom.orchestrator import save_book
from taleloom.pipeline import STAGES
from taleloom.render.epub import HEIGHT, WIDTH, build_epub

EPUBCHECK = Path("/usr/share/java/epubcheck.jar")
TEXTS = ["Mina found a small red boat by the river. She smiled, climbed in, and sailed away!",
         "At night the stars came out, and Mina counted every one of them before she fell asleep.",
         "The river was wide and slow, and the little red boat drifted past fields of yellow flowers, old stone "
         "bridges, sleepy cows and a heron standing on one leg. Mina waved at everyone she saw: the farmer on his "
         "tractor, the children fishing from the bank, the baker carrying bread, and even a grumpy goose who "
         "honked back at her. When the sun went down behind the hills, the water turned orange and pink, and Mina "
         "knew it was time to paddle home for supper, with a head full of stories to tell her grandmother."]
needs_tools = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("ffmpeg") is None,
                                 reason="espeak-ng and ffmpeg are needed for a narrated EPUB")
pytestmark = needs_tools


@pytest.fixture(scope="module")
def narrated(tmp_path_factory) -> tuple[Storybook, Path, bytes]:
    """A finished two-page book read by eSpeak NG, and its EPUB."""
    from taleloom.stages.narrate import narrate

    d = tmp_path_factory.mktemp("book")
    spoken = narrate(TEXTS, "en", registry.create("narrator", "espeak"))
    pages = []
    for i, text in enumerate(TEXTS, 1):
        atomic_save_image(d / f"pages/{i}.png", Image.new("RGB", (256, 256), (60 * i, 120, 200)))
        atomic_write_bytes(d / f"audio/{i}.wav", spoken.audio[i - 1])
        pages.append(Page(index=i, text=text, scene="a girl in a red boat", image=f"pages/{i}.png",
                          audio=f"audio/{i}.wav", audio_seconds=spoken.seconds[i - 1], words=spoken.words[i - 1],
                          words_source=spoken.words_source))
    book = Storybook(id="epub1", brief=Brief(pages=3), title="Mina's Boat", cast=[CastMember(name="Mina", look="a girl")],
                     pages=pages, url="http://books.example.test/books/epub1",
                     stages={n: StageRecord(name=n, status="done") for n in STAGES})
    save_book(d, book)
    return book, d, build_epub(book, d)


@pytest.mark.skipif(not EPUBCHECK.is_file() or shutil.which("java") is None,
                    reason="EPUBCheck is not installed (Debian package epubcheck)")
def test_epub_passes_epubcheck(narrated, tmp_path):
    _, _, data = narrated
    path = tmp_path / "book.epub"
    path.write_bytes(data)
    proc = subprocess.run(["java", "-jar", str(EPUBCHECK), str(path)], capture_output=True, text=True, timeout=300)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert "0 fatals / 0 errors / 0 warnings" in report, report


def test_overlays_follow_the_word_timings(narrated):
    book, _, data = narrated
    z = zipfile.ZipFile(__import__("io").BytesIO(data))
    assert z.infolist()[0].filename == "mimetype" and z.infolist()[0].compress_type == zipfile.ZIP_STORED
    opf = z.read("OEBPS/package.opf").decode()
    assert "<dc:language>en</dc:language>" in opf and "pre-paginated" in opf and 'properties="cover-image"' in opf
    assert 'media-overlay="smil1"' in opf and "-epub-media-overlay-active" in opf
    for page in book.pages:
        xhtml = ElementTree.fromstring(z.read(f"OEBPS/page{page.index}.xhtml"))
        spans = {s.get("id"): s.text for s in xhtml.iter("{http://www.w3.org/1999/xhtml}span")}
        smil = ElementTree.fromstring(z.read(f"OEBPS/page{page.index}.smil"))
        pars = list(smil.iter("{http://www.w3.org/ns/SMIL}par"))
        assert len(pars) == len(page.words) == len(page.text.split())
        for par, word in zip(pars, page.words, strict=True):
            text = par.find("{http://www.w3.org/ns/SMIL}text").get("src").split("#")[1]
            audio = par.find("{http://www.w3.org/ns/SMIL}audio")
            assert spans[text] == word.text  # the highlighted span is the word being read...
            begin, end = (_seconds(audio.get(k)) for k in ("clipBegin", "clipEnd"))
            assert abs(begin - word.start) < 0.0011 and abs(end - word.end) < 0.0011  # ...while it is read
        assert z.read(f"OEBPS/audio/{page.index}.mp3")[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")
    nav = z.read("OEBPS/nav.xhtml").decode()
    assert 'epub:type="toc"' in nav and "page2.xhtml" in nav
    assert "books.example.test/books/epub1" in z.read("OEBPS/back.xhtml").decode()  # the back page links online


def _seconds(clock: str) -> float:
    h, m, s = clock.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_pages_render_in_chromium(narrated, tmp_path):
    """Each fixed-layout page in a real browser engine at its own viewport: the picture loads, every
    word is visible inside the page, and the reading system's highlight class is styled."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("/usr/bin/chromium is missing (Debian package 'chromium')")
    _, _, data = narrated
    zipfile.ZipFile(__import__("io").BytesIO(data)).extractall(tmp_path)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        for n in (1, 2, 3):  # page 3 has five times the text of page 1 and must fit too
            page.goto((tmp_path / f"OEBPS/page{n}.xhtml").as_uri())
            page.wait_for_function("document.querySelector('img.picture').complete")
            assert page.evaluate("document.querySelector('img.picture').naturalWidth") == 256
            box = page.evaluate("(() => { const t = document.querySelector('.text');"
                                " const r = t.getBoundingClientRect();"
                                " return [r.bottom, t.scrollHeight, t.clientHeight]; })()")
            assert box[0] <= HEIGHT and box[1] <= box[2], f"page {n}: the text overflows its box {box}"
            last = page.evaluate("(() => { const s = document.querySelectorAll('.text span');"
                                 " return s[s.length - 1].getBoundingClientRect().bottom; })()")
            assert last <= HEIGHT
            page.evaluate(f"document.getElementById('page{n}w2').classList.add('-epub-media-overlay-active')")
            colour = page.evaluate(f"getComputedStyle(document.getElementById('page{n}w2')).backgroundColor")
            assert colour not in ("rgba(0, 0, 0, 0)", "transparent")
        browser.close()


def test_cli_export(narrated, tmp_path):
    from taleloom.cli import cli

    _, d, _ = narrated
    out = tmp_path / "mina.epub"
    result = CliRunner().invoke(cli, ["book", "export", str(d), "--epub", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert re.search(r'"read_along_pages": 3', result.output) and zipfile.is_zipfile(out)
    assert (d / "epub/book.epub").is_file()
    unfinished = tmp_path / "unfinished"
    book = Storybook(id="x", brief=Brief(pages=1), pages=[Page(index=1, text="Hi.", scene="cat")])
    save_book(unfinished, book)
    result = CliRunner().invoke(cli, ["book", "export", str(unfinished), "--epub"])
    assert result.exit_code != 0 and "not finished" in str(result.exception or result.output)
