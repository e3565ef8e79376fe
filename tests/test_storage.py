"""Book storage: the local folder resolves only files inside a book, and never acts on a bad book id."""

from __future__ import annotations

import pytest

from taleloom.storage import LocalFolder


def test_local_folder_serves_only_the_books_own_files(tmp_path):
    storage = LocalFolder(tmp_path / "books")
    folder = storage.folder("abc_DEF-123")
    assert folder == tmp_path / "books" / "abc_DEF-123" and not storage.exists("abc_DEF-123")
    (folder / "pages").mkdir(parents=True)
    (folder / "pages" / "1.png").write_bytes(b"png")
    (tmp_path / "books" / "other").mkdir()
    (tmp_path / "books" / "other" / "secret.txt").write_text("not yours")
    (tmp_path / "outside.txt").write_text("not a book file")

    assert storage.file("abc_DEF-123", "pages/1.png").read_bytes() == b"png"
    assert storage.file("abc_DEF-123", "pages/2.png") is None  # not there
    assert storage.file("abc_DEF-123", "pages") is None  # a folder is not a file
    for escape in ("../other/secret.txt", "../../outside.txt", str(tmp_path / "outside.txt"), "pages/../../other/secret.txt"):
        assert storage.file("abc_DEF-123", escape) is None, escape
    (folder / "link.png").symlink_to(tmp_path / "outside.txt")
    assert storage.file("abc_DEF-123", "link.png") is None  # a link out of the book is refused too

    storage.delete("abc_DEF-123")
    assert not storage.exists("abc_DEF-123") and storage.exists("other")
    storage.delete("abc_DEF-123")  # nothing left: no error


@pytest.mark.parametrize("bad", ["", "..", "../other", "a/b", "a b", "x" * 65, "/etc"])
def test_a_bad_book_id_never_reaches_the_disk(tmp_path, bad):
    storage = LocalFolder(tmp_path)
    with pytest.raises(ValueError, match="not a book id"):
        storage.folder(bad)
    with pytest.raises(ValueError):
        storage.delete(bad)
