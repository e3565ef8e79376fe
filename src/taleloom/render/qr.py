"""QR code of a book's URL (segno), as PNG bytes or a data URI for the HTML pages."""

from __future__ import annotations

import base64
import io

import segno


def qr_png(url: str, scale: int = 10, border: int = 4) -> bytes:
    """PNG of a QR code for `url`; error correction M, a quiet zone of `border` modules."""
    buf = io.BytesIO()
    segno.make(url, error="m", micro=False).save(buf, kind="png", scale=scale, border=border)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
