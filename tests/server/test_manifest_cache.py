"""The status route's manifest cache (server/manifests.py): a parsed book is reused while its file is
unchanged, and every save (a stage, an edit) is seen at the very next read."""

from __future__ import annotations

import shutil

from taleloom.book import Brief
from taleloom.orchestrator import MANIFEST, create_book, save_book
from taleloom.server.manifests import ManifestCache


def _book(folder, idea="a cat who flies"):
    return create_book(folder, Brief(idea=idea, pages=2), None, "http://127.0.0.1:8000")


def test_unchanged_manifest_is_parsed_once_and_every_save_is_seen(tmp_path):
    folder = tmp_path / "b1"
    book = _book(folder)
    cache = ManifestCache()
    first = cache.get(folder)
    assert first is not None and first.brief.idea == "a cat who flies"
    assert cache.get(folder) is first  # same file: the same parsed book, no second parse

    for n in range(3):  # saves in quick succession (same second, even same size) are all seen
        book.title = f"Title {n}"
        save_book(folder, book)
        assert cache.get(folder).title == f"Title {n}"


def test_a_missing_or_broken_manifest_is_none_and_not_kept(tmp_path):
    cache = ManifestCache()
    assert cache.get(tmp_path / "nothing") is None
    folder = tmp_path / "b2"
    _book(folder)
    assert cache.get(folder) is not None
    (folder / MANIFEST).write_text("{ not json")
    assert cache.get(folder) is None
    shutil.rmtree(folder)
    assert cache.get(folder) is None and len(cache) == 0


def test_the_cache_is_bounded(tmp_path):
    cache = ManifestCache(size=3)
    folders = [tmp_path / f"b{i}" for i in range(5)]
    for f in folders:
        _book(f)
        assert cache.get(f) is not None
    assert len(cache) == 3
    assert cache.get(folders[-1]) is cache.get(folders[-1])  # the newest are still there
