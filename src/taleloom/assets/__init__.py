"""Shipped model assets (the embedded illustrator, upscaler and aligned encoder), found with
importlib.resources and verified against `manifest.json` (sha256 of every file) before use.

A file that is missing or differs from its recorded hash raises ModelNotFoundError naming it:
a truncated wheel or a hand-edited weight file never loads silently.
"""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files
from pathlib import Path

from taleloom.errors import ModelNotFoundError

MANIFEST = "manifest.json"
MODEL_FOLDERS = ("illustrator", "illustrator-v2", "upscaler", "aligned")  # what the manifest covers (plus MODEL_CARD.md)
_HINT = "reinstall taleloom (`make install`), or pass a checkpoint folder of your own as the backend's location"
_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) → sha256 already checked


def assets_root() -> Path:
    """The installed `taleloom/assets` folder."""
    return Path(str(files("taleloom") / "assets"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(root: Path | None = None) -> dict:
    path = (root or assets_root()) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ModelNotFoundError(f"the shipped asset manifest {path} is missing", _HINT) from e
    except json.JSONDecodeError as e:
        raise ModelNotFoundError(f"the shipped asset manifest {path} is corrupted ({e})", _HINT) from e


def verified_dir(name: str, root: Path | None = None) -> Path:
    """The shipped folder `name` (e.g. "illustrator") after checking every file in it against the manifest."""
    root = root or assets_root()
    entries = {rel: sha for rel, sha in read_manifest(root)["files"].items() if rel.startswith(f"{name}/")}
    if not entries:
        raise ModelNotFoundError(f"no shipped model {name!r} in {root / MANIFEST}", _HINT)
    for rel, expected in sorted(entries.items()):
        path = root / rel
        if not path.is_file():
            raise ModelNotFoundError(f"shipped asset file {rel} is missing (looked in {root})", _HINT)
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if _verified.get(key) != expected:
            actual = sha256_file(path)
            if actual != expected:
                raise ModelNotFoundError(
                    f"shipped asset file {rel} does not match its sha256 in {MANIFEST} "
                    f"(expected {expected[:12]}…, found {actual[:12]}…)", _HINT)
            _verified[key] = expected
    return root / name


def write_manifest(root: Path | None = None) -> dict:
    """Record the sha256 of every file of the model folders and the model card (used by scripts/export_assets.py)."""
    root = root or assets_root()
    rels = [p.relative_to(root).as_posix() for folder in MODEL_FOLDERS if (root / folder).is_dir()
            for p in sorted((root / folder).rglob("*")) if p.is_file()]
    if (root / "MODEL_CARD.md").is_file():
        rels.append("MODEL_CARD.md")
    manifest = {"format_version": 1, "files": {rel: sha256_file(root / rel) for rel in rels},
                "bytes": sum((root / rel).stat().st_size for rel in rels)}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
