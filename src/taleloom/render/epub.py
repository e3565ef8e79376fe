"""Book → EPUB 3, fixed layout, with Media Overlays: a reading system shows each page (picture above,
text below), plays the page's narration and highlights the word being read, from the word timings in
the manifest (one SMIL `<par>` per word with clipBegin/clipEnd). Audio is MP3 (an EPUB core media type;
encoded from the narration's WAV with ffmpeg); without ffmpeg the EPUB has pictures and text only.

The package is checked by EPUBCheck in the tests (tests/render/test_epub.py).
"""

from __future__ import annotations

import io
import shutil
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from taleloom.book import Storybook, WordTiming
from taleloom.render.labels import labels
from taleloom.render.pdf import RTL
from taleloom.render.qr import qr_png
from taleloom.render.readalong import word_segments

WIDTH, HEIGHT = 1000, 1400  # page viewport in CSS pixels (fixed layout)
PICTURE_H = 900
ACTIVE = "-epub-media-overlay-active"
CSS = f"""html, body {{ margin: 0; padding: 0; }}
body {{ width: {WIDTH}px; height: {HEIGHT}px; overflow: hidden; background: #fffdf7; color: #222;
       font-family: "Noto Serif", serif; }}
.picture {{ display: block; width: {WIDTH}px; height: {PICTURE_H}px; object-fit: contain; background: #f3efe4; }}
.text {{ box-sizing: border-box; width: {WIDTH}px; height: {HEIGHT - PICTURE_H}px; padding: 40px 60px;
        line-height: 1.4; margin: 0; overflow: hidden; }}
.cover h1 {{ box-sizing: border-box; width: {WIDTH}px; padding: 40px 60px; margin: 0; font-size: 64px;
            text-align: center; }}
.back {{ box-sizing: border-box; padding: 120px 80px; text-align: center; font-size: 40px; }}
.back img {{ width: 400px; height: 400px; }}
.{ACTIVE} {{ background: #ffe27a; border-radius: 6px; }}
"""


@dataclass
class _Item:
    id: str
    href: str
    media_type: str
    data: bytes
    properties: str = ""
    overlay: str = ""


@dataclass
class _Package:
    items: list[_Item] = field(default_factory=list)
    spine: list[str] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)  # overlay id → seconds

    def add(self, item: _Item, in_spine: bool = False) -> None:
        self.items.append(item)
        if in_spine:
            self.spine.append(item.id)


def build_epub(book: Storybook, book_dir: Path, editions: list[dict] | None = None,
               modified: datetime | None = None) -> bytes:
    """The EPUB file's bytes for `book` (its text, title and language as they stand: pass an edition's
    view of the book for another language); files are read from `book_dir`."""
    book_dir = Path(book_dir)
    lang = book.text_lang
    title = book.title_translated or book.title or "A story"
    can_encode = shutil.which("ffmpeg") is not None
    pkg = _Package()
    pkg.add(_Item("css", "style.css", "text/css", CSS.encode()))
    cover_src = next((p.image or p.image_lowres for p in book.pages if p.image or p.image_lowres), None)
    if cover_src:
        pkg.add(_Item("cover-image", "images/cover.png", "image/png", (book_dir / cover_src).read_bytes(),
                      properties="cover-image"))
    pkg.add(_Item("cover", "cover.xhtml", "application/xhtml+xml",
                  _page(lang, title, f'<div class="cover">{_img("images/cover.png", title) if cover_src else ""}'
                        f"<h1>{escape(title)}</h1></div>").encode()), in_spine=True)
    for p in book.pages:
        text = p.text_translated or p.text
        name = f"page{p.index}"
        body = []
        if p.image or p.image_lowres:
            rel = p.image or p.image_lowres
            pkg.add(_Item(f"img{p.index}", f"images/{p.index}.png", "image/png", (book_dir / rel).read_bytes()))
            body.append(_img(f"images/{p.index}.png", p.scene))
        words = p.words if (p.audio and p.words and can_encode) else None
        body.append(f'<p class="text" id="{name}text" style="font-size: {_font_px(text)}px">{_spans(text, words, name)}</p>')
        overlay = ""
        if words:
            audio = _mp3((book_dir / p.audio).read_bytes())
            pkg.add(_Item(f"audio{p.index}", f"audio/{p.index}.mp3", "audio/mpeg", audio))
            overlay = f"smil{p.index}"
            pkg.add(_Item(overlay, f"{name}.smil", "application/smil+xml",
                          _smil(f"{name}.xhtml", f"audio/{p.index}.mp3", words, name).encode()))
            pkg.durations[overlay] = max(p.audio_seconds or 0.0, words[-1].end)
        pkg.add(_Item(name, f"{name}.xhtml", "application/xhtml+xml",
                      _page(lang, f"{title} — {p.index}", "".join(body)).encode(), overlay=overlay), in_spine=True)
    back = _back_page(book, lang, title, editions or [])
    if back is not None:
        qr, html = back
        if qr:
            pkg.add(_Item("qr", "images/qr.png", "image/png", qr))
        pkg.add(_Item("back", "back.xhtml", "application/xhtml+xml", html.encode()), in_spine=True)
    pkg.add(_Item("nav", "nav.xhtml", "application/xhtml+xml", _nav(book, lang, title).encode(), properties="nav"))
    return _zip(book, lang, title, pkg, modified or datetime.now(UTC))


def _font_px(text: str) -> int:
    """A font size at which the page's text fits its box (0.7 em² per character, 80 % of the box filled)."""
    area = (WIDTH - 120) * (HEIGHT - PICTURE_H - 80) * 0.8
    return int(max(22, min(44, (area / (0.7 * max(len(text), 1))) ** 0.5 / 1.4)))


def _img(src: str, alt: str | None) -> str:
    return f'<img class="picture" src="{src}" alt={quoteattr(alt or "")} />'


def _spans(text: str, words: list[WordTiming] | None, page: str) -> str:
    """The page text with each timed word in its own `<span id>` (the SMIL points at these)."""
    if not words:
        return escape(text)
    out = []
    for piece, n in word_segments(text, words):
        out.append(escape(piece) if n is None else f'<span id="{page}w{n + 1}">{escape(piece)}</span>')
    return "".join(out)


def _page(lang: str, title: str, body: str) -> str:
    direction = "rtl" if lang.split("-")[0] in RTL else "ltr"
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
            f'<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" '
            f'xml:lang="{lang}" lang="{lang}" dir="{direction}">\n<head><meta charset="UTF-8" />'
            f'<meta name="viewport" content="width={WIDTH}, height={HEIGHT}" />'
            f'<title>{escape(title)}</title><link rel="stylesheet" type="text/css" href="style.css" /></head>\n'
            f"<body>{body}</body>\n</html>\n")


def _clock(seconds: float) -> str:
    """SMIL clock value with millisecond precision (h:mm:ss.fff)."""
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    return f"{h}:{m:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def _smil(page_href: str, audio_href: str, words: list[WordTiming], page: str) -> str:
    pars = []
    for n, w in enumerate(words):
        end = max(w.end, w.start + 0.001)
        pars.append(f'<par id="{page}p{n + 1}"><text src="{page_href}#{page}w{n + 1}"/>'
                    f'<audio src="{audio_href}" clipBegin="{_clock(w.start)}" clipEnd="{_clock(end)}"/></par>')
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<smil xmlns="http://www.w3.org/ns/SMIL" xmlns:epub="http://www.idpf.org/2007/ops" version="3.0">\n'
            f'<body><seq id="{page}seq" epub:textref="{page_href}#{page}text" epub:type="bodymatter">\n'
            + "\n".join(pars) + "\n</seq></body>\n</smil>\n")


def _nav(book: Storybook, lang: str, title: str) -> str:
    items = ['<li><a href="cover.xhtml">' + escape(title) + "</a></li>"]
    items += [f'<li><a href="page{p.index}.xhtml">{p.index}</a></li>' for p in book.pages]
    pages = [f'<li><a href="page{p.index}.xhtml">{p.index}</a></li>' for p in book.pages]
    body = (f'<nav epub:type="toc" id="toc"><h1>{escape(title)}</h1><ol>{"".join(items)}</ol></nav>'
            f'<nav epub:type="page-list" hidden=""><ol>{"".join(pages)}</ol></nav>')
    return _page(lang, title, body)


def _back_page(book: Storybook, lang: str, title: str, editions: list[dict]) -> tuple[bytes | None, str] | None:
    """The QR code of the book's online reader and the other languages it is in."""
    if not book.url and not editions:
        return None
    qr = qr_png(book.url) if book.url else None
    parts = ['<div class="back">']
    if qr:
        parts.append(f'<p>{escape(labels(book)["online"])}</p>{_img("images/qr.png", book.url)}'
                     f"<p>{escape(book.url or '')}</p>")
    if editions:
        listed = "".join(f'<li lang="{e["lang"]}" xml:lang="{e["lang"]}">{escape(e["name"])}: {escape(e["title"])}'
                         + (" (machine-translated)" if e.get("machine_translated") else "") + "</li>"
                         for e in editions)
        parts.append(f"<ul>{listed}</ul>")
    parts.append("</div>")
    return qr, _page(lang, title, "".join(parts))


def _mp3(wav: bytes) -> bytes:
    from taleloom.audio_formats import encode

    return encode(wav, "mp3")  # the one ffmpeg encoder the speech API uses too


def _zip(book: Storybook, lang: str, title: str, pkg: _Package, modified: datetime) -> bytes:
    ident = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'taleloom:{book.id}:{lang}')}"
    meta = [f'<dc:identifier id="uid">{ident}</dc:identifier>', f"<dc:title>{escape(title)}</dc:title>",
            f"<dc:language>{lang}</dc:language>", "<dc:creator>Taleloom</dc:creator>",
            f'<meta property="dcterms:modified">{modified.strftime("%Y-%m-%dT%H:%M:%SZ")}</meta>',
            '<meta property="rendition:layout">pre-paginated</meta>',
            '<meta property="rendition:orientation">portrait</meta>',
            '<meta property="rendition:spread">none</meta>']
    if pkg.durations:
        meta.append(f'<meta property="media:active-class">{ACTIVE}</meta>')
        meta.append(f'<meta property="media:duration">{_clock(sum(pkg.durations.values()))}</meta>')
        meta += [f'<meta property="media:duration" refines="#{oid}">{_clock(s)}</meta>'
                 for oid, s in pkg.durations.items()]
    manifest = []
    for it in pkg.items:
        attrs = f' properties="{it.properties}"' if it.properties else ""
        attrs += f' media-overlay="{it.overlay}"' if it.overlay else ""
        manifest.append(f'<item id="{it.id}" href="{it.href}" media-type="{it.media_type}"{attrs}/>')
    spine = "".join(f'<itemref idref="{i}"/>' for i in pkg.spine)
    opf = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           f'<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid" xml:lang="{lang}">\n'
           '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">\n' + "\n".join(meta) + "\n</metadata>\n"
           "<manifest>\n" + "\n".join(manifest) + f"\n</manifest>\n<spine>{spine}</spine>\n</package>\n")
    container = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                 '<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
                 '<rootfiles><rootfile full-path="OEBPS/package.opf" media-type="application/oebps-package+xml"/>'
                 "</rootfiles></container>\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr("META-INF/container.xml", container, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("OEBPS/package.opf", opf, compress_type=zipfile.ZIP_DEFLATED)
        for it in pkg.items:
            kind = zipfile.ZIP_STORED if it.media_type in ("image/png", "audio/mpeg") else zipfile.ZIP_DEFLATED
            z.writestr(f"OEBPS/{it.href}", it.data, compress_type=kind)
    return buf.getvalue()


def write_epub(book_dir: Path, book: Storybook, name: str = "book.epub", editions: list[dict] | None = None) -> Path:
    """`book_dir/epub/<name>`, made again only when the manifest changed after it was last made (the
    file is written atomically, so a reader never gets half an EPUB)."""
    from taleloom.files import atomic_write_bytes

    path = Path(book_dir) / "epub" / name
    manifest = Path(book_dir) / "manifest.json"
    if path.is_file() and manifest.is_file() and path.stat().st_mtime >= manifest.stat().st_mtime:
        return path
    return atomic_write_bytes(path, build_epub(book, book_dir, editions))
