"""The web page in a real browser: Playwright drives Debian's Chromium headless against a real
server — enter the token, upload a photo, watch the book being made, read every page, download the
PDF, open the share link read-only; screenshots at desktop and phone width.

Screenshots go to the test's tmp folder, and also to $TALELOOM_SCREENSHOT_DIR when set."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from pypdf import PdfReader
from serverkit import photo_bytes

REAL_SERVER = True  # Chromium connects to it over HTTP

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (Debian package 'chromium')", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def shoot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("TALELOOM_SCREENSHOT_DIR"):
        out = Path(os.environ["TALELOOM_SCREENSHOT_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, out / path.name)


def read_every_page(page, count: int) -> None:
    for n in range(1, count + 1):
        page.wait_for_function(f"document.getElementById('page-no').textContent === '{n} / {count}'")
        page.wait_for_function("(() => { const i = document.getElementById('page-img');"
                               " return i.complete && i.naturalWidth > 0; })()")
        assert page.inner_text("#page-text").strip()
        assert page.get_attribute("#page-img", "alt").startswith(f"Picture for page {n}")
        page.wait_for_function("(() => { const a = document.getElementById('page-audio');"
                               " return !!a.src && !a.hidden; })()")
        if n < count:
            page.click("#next")


def test_make_read_download_share(server, browser, tmp_path):
    token = server.token("browser")
    photo = tmp_path / "picnic.jpg"
    photo.write_bytes(photo_bytes((640, 480)))
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")

    page.wait_for_selector("#token-panel:not([hidden])")  # asked once for a token...
    page.fill("#token-input", token)
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#token-panel", state="hidden")
    assert page.evaluate("localStorage.getItem('taleloom.token')") == token  # ...and it is kept

    page.wait_for_function("document.querySelectorAll('#style option').length > 1")
    page.set_input_files("#photo", str(photo))
    page.wait_for_selector("#preview:not([hidden])")
    page.fill("#hero", "Mina")
    page.fill("#pages", "3")
    page.select_option("#style", "watercolor")
    shoot(page, tmp_path, "web-desktop-form")
    page.click("#make-button")

    page.wait_for_selector("#progress-panel:not([hidden])")
    page.wait_for_selector("#book-panel:not([hidden])", timeout=60_000)
    page.wait_for_selector("#progress-panel", state="hidden", timeout=60_000)
    read_every_page(page, 3)
    assert page.inner_text("#book-title").strip()
    page.wait_for_function("document.getElementById('qr').naturalWidth > 0")
    shoot(page, tmp_path, "web-desktop-book")

    with page.expect_download() as download:
        page.click("#pdf-link")
    pdf = Path(download.value.path())
    assert pdf.read_bytes()[:5] == b"%PDF-" and len(PdfReader(str(pdf)).pages) >= 3
    for styled in ("#pdf-link", "figure.qr"):  # the page hides these by `hidden`; their CSS display must not win
        page.evaluate(f"document.querySelector({json.dumps(styled)}).hidden = true")
        assert page.is_hidden(styled), styled
        page.evaluate(f"document.querySelector({json.dumps(styled)}).hidden = false")
    share_url = page.get_attribute("#share-link", "href")
    book_id = page.evaluate("location.hash").split("=")[1]

    # change a page from the page: redraw the picture of page 3, then rewrite its text
    old_text = page.inner_text("#page-text")
    old_src = page.get_attribute("#page-img", "src")
    page.click(".edit summary")
    page.click("#redraw")
    page.wait_for_function(f"document.getElementById('page-img').src !== {json.dumps(old_src)}"
                           " && document.getElementById('page-img').naturalWidth > 0", timeout=60_000)
    page.wait_for_selector("#progress-panel", state="hidden", timeout=60_000)
    assert page.inner_text("#page-no") == "3 / 3"  # still on the page that was changed
    page.fill("#rewrite-text", "make it funnier")
    page.click("#rewrite-form button[type=submit]")
    page.wait_for_function(f"document.getElementById('page-text').textContent !== {json.dumps(old_text)}",
                           timeout=60_000)
    assert not page.inner_text("#edit-error").strip() and page.inner_text("#page-no") == "3 / 3"
    shoot(page, tmp_path, "web-desktop-edited")

    page.reload()  # the token is remembered and the open book comes back
    page.wait_for_selector("#book-panel:not([hidden])")
    assert page.is_hidden("#token-panel")
    assert not errors, errors
    ctx.close()

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                device_scale_factor=1)
    phone.add_init_script(f"localStorage.setItem('taleloom.token', {json.dumps(token)})")
    mobile = phone.new_page()
    mobile.goto(server.url + "/")
    mobile.wait_for_function("document.querySelectorAll('#lang option').length > 0")
    assert mobile.get_attribute("#photo", "capture") == "environment"  # the camera opens on a phone
    shoot(mobile, tmp_path, "web-phone-form")
    mobile.goto(f"{server.url}/#book={book_id}")
    mobile.wait_for_selector("#book-panel:not([hidden])")
    read_every_page(mobile, 3)
    width = mobile.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px phone"
    shoot(mobile, tmp_path, "web-phone-book")

    reader = phone.new_page()  # the share link (QR code): read-only, no token needed
    reader.add_init_script("localStorage.clear()")
    reader.goto(share_url)
    reader.wait_for_selector("#book-panel:not([hidden])")
    read_every_page(reader, 3)
    assert reader.is_hidden("#make-panel") and reader.is_hidden(".edit") and reader.is_hidden("#token-panel")
    shoot(reader, tmp_path, "web-phone-shared")
    phone.close()
