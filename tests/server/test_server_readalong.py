"""Read-along in a real browser (Playwright + Debian's Chromium against a real server): while a page's
narration plays the highlight moves word by word, a click on a word plays from there, the page turns
when its narration ends, and the shared reader does the same without a token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from serverkit import make_book, wait_status

REAL_SERVER = True  # Chromium connects to it over HTTP

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required", "--mute-audio"]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (Debian package 'chromium')", allow_module_level=True)

# every word that gets the highlight, in order, with the audio's clock when it did
RECORD = """(() => {
  window.readLog = [];
  new MutationObserver((changes) => {
    for (const c of changes) {
      if (c.target.classList && c.target.classList.contains('reading'))
        window.readLog.push([Number(c.target.dataset.n), document.getElementById('page-no').textContent,
                             document.getElementById('page-audio').currentTime]);
    }
  }).observe(document.getElementById('page-text'), {attributes: true, subtree: true, attributeFilter: ['class']});
})()"""


@pytest.fixture(scope="module")
def finished(server):
    token = server.token("readalong")
    with server.client(token) as c:
        book = make_book(c, pages=2, hero="Mina")
        body = wait_status(c, book["id"])
        assert body["status"] == "done"
        share = c.get(f"/v1/books/{book['id']}/shares").json()[0]["url"]
    return token, body, share


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_reader(browser, url: str, token: str | None):
    ctx = browser.new_context(viewport={"width": 1000, "height": 900})
    if token:
        ctx.add_init_script(f"localStorage.setItem('taleloom.token', {json.dumps(token)})")
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("#book-panel:not([hidden])")
    page.wait_for_selector("#page-text .word")
    page.wait_for_function("!!document.getElementById('page-audio').src")
    return ctx, page, errors


def test_highlight_follows_the_narration_and_pages_turn(server, browser, finished):
    token, body, _ = finished
    words = [[w["text"] for w in p["words"]] for p in body["pages"]]
    ctx, page, errors = open_reader(browser, f"{server.url}/#book={body['id']}", token)
    spans = page.eval_on_selector_all("#page-text .word", "s => s.map(e => e.textContent)")
    assert spans == words[0]  # every timed word is its own span, in order
    assert page.get_attribute("#page-text", "aria-live") == "off"  # the moving highlight is not announced
    assert page.get_attribute("#read-along", "aria-pressed") == "false"
    page.evaluate(RECORD)
    page.focus("#read-along")
    page.keyboard.press("Enter")  # the keyboard starts it as a tap does
    page.wait_for_function("document.getElementById('page-no').textContent.startsWith('2 /')", timeout=30_000)
    page.wait_for_function("new Set(window.readLog.filter(([n, p]) => p.startsWith('2 /')).map(([n]) => n)).size >= 3",
                           timeout=30_000)  # and page 2 is read on its own
    log = page.evaluate("window.readLog")
    first = [n for n, p, _ in log if p.startswith("1 /")]
    assert len(set(first)) >= min(3, len(words[0])), log  # the highlight moved across page 1...
    assert first == sorted(first) and first[-1] == len(words[0]) - 1, log  # ...in reading order, to its last word
    times = [t for _, p, t in log if p.startswith("1 /")]
    assert times == sorted(times) and times[-1] > times[0], log  # while the audio played
    page.wait_for_function("document.getElementById('read-along').getAttribute('aria-pressed') === 'false'",
                           timeout=30_000)  # the last page ends the reading
    assert not errors, errors
    ctx.close()


def test_a_click_on_a_word_reads_from_there_on_the_shared_page(browser, finished):
    _, body, share = finished
    ctx, page, errors = open_reader(browser, share, None)  # the QR code's reader: no token
    last = len(body["pages"][0]["words"]) - 1
    start = body["pages"][0]["words"][last]["start"]
    page.evaluate(RECORD)
    page.click(f"#page-text .word[data-n='{last}']")
    page.wait_for_function(f"window.readLog.some(([n]) => n === {last})", timeout=30_000)
    n, _, at = page.evaluate("window.readLog")[0]
    assert n == last and at >= start - 0.05  # it started at the clicked word, not at the beginning
    epub = page.request.get(page.evaluate("document.getElementById('epub-link').href"))  # the EPUB is offered to readers too
    assert page.is_visible("#epub-link") and epub.status == 200
    assert epub.headers["content-type"] == "application/epub+zip" and epub.body()[:2] == b"PK"
    assert not errors, errors
    ctx.close()


def test_add_a_language_from_the_page(server, browser, finished):
    token, body, _ = finished
    ctx, page, errors = open_reader(browser, f"{server.url}/#book={body['id']}", token)
    page.click(".edit summary")
    page.wait_for_function("document.querySelectorAll('#translate-lang option').length > 1")
    page.select_option("#translate-lang", "de")
    page.click("#translate-form button[type=submit]")
    page.wait_for_selector("#editions-panel:not([hidden])", timeout=60_000)
    item = page.inner_text("#editions li")
    assert item.startswith("German") and ("machine-translated" in item or "could not translate" in item)
    page.wait_for_selector("#editions a", timeout=60_000)  # the edition is listed once saved, its PDF once bound
    pdf = page.request.get(page.evaluate("document.querySelector('#editions a').href"),
                           headers={"Authorization": f"Bearer {token}"})
    assert pdf.status == 200 and pdf.body()[:5] == b"%PDF-"
    page.wait_for_selector("#read-lang-row:not([hidden])")  # the reader can switch to the new edition
    page.select_option("#read-lang", "de")
    page.wait_for_function("state.book.pages[0].audio.includes('lang=de')")
    page.wait_for_selector("#page-text .word")
    page.evaluate(RECORD)
    page.click("#page-text .word[data-n='1']")  # its own narration reads along too
    page.wait_for_function("window.readLog.some(([n]) => n >= 1)", timeout=30_000)
    page.select_option("#read-lang", "en")
    page.wait_for_function("!state.book.pages[0].audio.includes('lang=')")
    assert not errors, errors
    ctx.close()
