"""Picture links for response_format=url: only well-formed, live tokens find a file."""

from __future__ import annotations

import os
import time

from taleloom.server import image_links


def test_links_are_found_until_they_expire_and_then_swept(tmp_path):
    name = image_links.save(tmp_path, b"png bytes", "png", ttl=60)
    found = image_links.find(tmp_path, name, ttl=60)
    assert found is not None and found[0].read_bytes() == b"png bytes" and 0 < found[1] <= 60
    for bad in ("../" + name, name.replace(".png", ".exe"), name[:-10] + ".png", "x" * 43 + ".png"):
        assert image_links.find(tmp_path, bad, ttl=60) is None
    old = time.time() - 61
    os.utime(image_links.folder(tmp_path) / name, (old, old))
    assert image_links.find(tmp_path, name, ttl=60) is None
    fresh = image_links.save(tmp_path, b"new", "webp", ttl=60)  # writing sweeps what expired
    assert [p.name for p in image_links.folder(tmp_path).iterdir()] == [fresh]
