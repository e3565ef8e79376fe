"""Atomic file writes: write to a temp file in the same folder, fsync, rename.

A reader (or a crashed process) never sees a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def atomic_save_image(path: str | os.PathLike, image, format: str = "PNG") -> Path:
    """Save a PIL image atomically (PNG by default)."""
    import io

    buf = io.BytesIO()
    image.save(buf, format=format)
    return atomic_write_bytes(path, buf.getvalue())


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete temp files that `atomic_write_bytes` left behind when its process was killed mid-write.

    Call it only when no writer can be active in `folder` (e.g. when a crashed book is resumed):
    the final files are intact by construction, the temps are just litter.
    """
    removed = []
    for tmp in Path(folder).rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
