"""Parsed book manifests, kept in memory while their file is unchanged.

A book's status is polled several times a second while it is made and whenever its page is open, and
every poll used to read its manifest.json and validate it into a `Storybook` again, on the event loop.
The manifest only changes when a stage or an edit saves it, always by writing a temporary file and
renaming it over the old one (`files.atomic_write_json`): a new inode, size or mtime. So one `stat`
tells whether the parsed book is still the one on disk.

The books handed out are shared between requests: read them, never change them (change a copy made
with `model_copy`, as `editions.view` does).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

from taleloom.book import Storybook
from taleloom.orchestrator import MANIFEST, load_book

CACHED_BOOKS = 256  # books whose parsed manifest is kept; the least recently read go first


class ManifestCache:
    """`get(folder)` → the book saved in `folder`, parsed again only when its manifest file changed."""

    def __init__(self, size: int = CACHED_BOOKS):
        self.size = size
        self._books: OrderedDict[str, tuple[tuple[int, int, int], Storybook]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, folder: Path) -> Storybook | None:
        """The book, or None when its manifest is not there (not written yet, deleted) or unreadable."""
        path = os.path.join(folder, MANIFEST)
        try:
            st = os.stat(path)
        except OSError:
            self._drop(path)
            return None
        # stat before reading: a file replaced in between is read newer than its key says, and the next
        # request, seeing another key, reads it again; never the other way round
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            hit = self._books.get(path)
            if hit is not None and hit[0] == key:
                self._books.move_to_end(path)
                return hit[1]
        try:
            book = load_book(Path(folder))
        except Exception:  # half-made folder, deleted meanwhile, or a manifest from another version
            self._drop(path)
            return None
        with self._lock:
            self._books[path] = (key, book)
            self._books.move_to_end(path)
            while len(self._books) > self.size:
                self._books.popitem(last=False)
        return book

    def _drop(self, path: str) -> None:
        with self._lock:
            self._books.pop(path, None)

    def __len__(self) -> int:
        return len(self._books)
