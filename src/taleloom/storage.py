"""Where the service keeps each book's files: one small interface, and a local folder behind it.

Every process of the service (API or worker) reaches book files only through a `BookStorage`: the
routes resolve the files they serve with `file`, create and delete books with `folder` and `delete`,
and the workers run the orchestrator in `folder(book_id)`, which saves each file atomically (temp
file + rename), so a process killed mid-write never leaves a half file under its final name.

`LocalFolder` (the default: `TALELOOM_DATA_DIR/books`) is the only implementation. Processes on
several machines share it as a network folder (NFS or similar) mounted at the same path; an object
store would implement the same four methods, with `folder` a local cache that it uploads from.
"""

from __future__ import annotations

import re
import shutil
from abc import ABC, abstractmethod
from pathlib import Path

BOOK_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what new_book_id makes; anything else never touches the disk


class BookStorage(ABC):
    """The files of every book, by book id and by name inside the book (as the manifest records it)."""

    @abstractmethod
    def folder(self, book_id: str) -> Path:
        """The book's working folder, where the orchestrator reads and writes it (created on first write)."""

    @abstractmethod
    def file(self, book_id: str, name: str) -> Path | None:
        """The book's file `name` (e.g. "pages/1.png") to serve, or None when it is not there, or when
        the name would lead outside the book."""

    @abstractmethod
    def exists(self, book_id: str) -> bool:
        """True while the book has any file."""

    @abstractmethod
    def delete(self, book_id: str) -> None:
        """Remove every file of the book; nothing happens when there is none."""


class LocalFolder(BookStorage):
    """One folder per book under `root`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def folder(self, book_id: str) -> Path:
        if not BOOK_ID.fullmatch(book_id or ""):
            raise ValueError(f"not a book id: {book_id!r}")
        return self.root / book_id

    def file(self, book_id: str, name: str) -> Path | None:
        folder = self.folder(book_id).resolve()
        path = (folder / name).resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            return None
        return path

    def exists(self, book_id: str) -> bool:
        return self.folder(book_id).is_dir()

    def delete(self, book_id: str) -> None:
        shutil.rmtree(self.folder(book_id), ignore_errors=True)

    def __repr__(self) -> str:
        return f"LocalFolder({str(self.root)!r})"
