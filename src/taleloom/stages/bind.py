"""Bind: the finished book as PDF (cover, one spread per page, back page with a QR code of the
book's URL) and as an HTML reading page. Returns bytes; the orchestrator writes them atomically."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taleloom.book import Storybook
from taleloom.render.pdf import html_to_pdf, render_html
from taleloom.render.qr import qr_png


@dataclass
class Bound:
    pdf: bytes
    html: str
    qr_png: bytes | None


def bind(book: Storybook, book_dir: Path, editions: list[dict] | None = None) -> Bound:
    """Render `book`; its relative paths (photo, pages/N.png) are read from `book_dir`. `editions` lists the
    languages the book is in (editions.listing) for the back page."""
    qr = qr_png(book.url) if book.url else None
    pdf = html_to_pdf(render_html(book, "pdf.html", qr, editions), Path(book_dir))
    return Bound(pdf=pdf, html=render_html(book, "book.html", qr, editions), qr_png=qr)
