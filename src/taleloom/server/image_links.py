"""Short-lived links to drawn pictures, for `response_format: "url"` on /v1/images/*.

A picture is written to ``<data_dir>/links/<token>.<ext>``; the link carries the token, 256 random
bits, which is the only credential (as OpenAI's picture URLs are signed links anyone holding them can
open), so a client can hand the link to a browser or another service. A link expires
`image_url_seconds` after it was made (file time), and expired files are swept when new ones are
written. Files, not process memory, so any API process sharing the data folder serves any link.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from taleloom.files import atomic_write_bytes

LINK_DIR = "links"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def folder(data_dir: str | Path) -> Path:
    return Path(data_dir) / LINK_DIR


def save(data_dir: str | Path, data: bytes, ext: str, ttl: float) -> str:
    """Keep one picture; returns the file name (``<token>.<ext>``) its link ends in."""
    sweep(data_dir, ttl)
    name = f"{secrets.token_urlsafe(32)}.{ext}"
    atomic_write_bytes(folder(data_dir) / name, data)
    return name


def find(data_dir: str | Path, name: str, ttl: float) -> tuple[Path, float] | None:
    """(the file, seconds it has left) for a live link; None for an unknown, malformed or expired one."""
    token, _, ext = name.partition(".")
    if not TOKEN.match(token) or ext not in MEDIA_TYPES:
        return None
    path = folder(data_dir) / name
    try:
        left = path.stat().st_mtime + ttl - time.time()
    except FileNotFoundError:
        return None
    return (path, left) if left > 0 else None


def sweep(data_dir: str | Path, ttl: float) -> int:
    """Delete expired pictures; returns how many."""
    gone, now = 0, time.time()
    for path in folder(data_dir).glob("*.*"):
        try:
            if path.stat().st_mtime + ttl <= now:
                path.unlink()
                gone += 1
        except FileNotFoundError:  # another process swept it first
            pass
    return gone
