"""Settings: taleloom.toml < TALELOOM_* environment < flags, and every service knob settable in all three."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from taleloom.config import Settings, get_settings
from taleloom.server.limits import concurrency_from_env


@pytest.fixture
def toml(tmp_path, monkeypatch):
    path = tmp_path / "taleloom.toml"
    monkeypatch.setenv("TALELOOM_CONFIG", str(path))
    for name in ("TALELOOM_WORKERS", "TALELOOM_CONCURRENCY", "TALELOOM_WARM", "TALELOOM_PLUGINS", "TALELOOM_LLM"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_toml_then_environment_then_flags(toml, monkeypatch):
    toml.write_text('llm = "openai:http://127.0.0.1:9/v1"\nworkers = 3\nconcurrency = "llm=2"\nwarm = false\n'
                    'plugins = "mypkg.backends:register"\n')
    s = Settings()
    assert (s.llm, s.workers, s.warm, s.plugins) == ("openai:http://127.0.0.1:9/v1", 3, False, "mypkg.backends:register")
    assert concurrency_from_env(s.concurrency)["llm"] == 2
    monkeypatch.setenv("TALELOOM_WORKERS", "5")
    monkeypatch.setenv("TALELOOM_WARM", "1")
    assert Settings().workers == 5 and Settings().warm is True
    assert get_settings(workers=7, llm=None).workers == 7  # a flag wins; an unset flag changes nothing


def test_unknown_or_bad_settings_are_refused(toml):
    toml.write_text("wrokers = 3\n")
    with pytest.raises(ValidationError, match="wrokers"):
        Settings()
    toml.write_text('workers = "many"\n')
    with pytest.raises(ValidationError, match="workers"):
        Settings()


def test_cli_names_a_bad_setting_instead_of_a_trace(toml):
    taleloom = [str(Path(sys.executable).parent / "taleloom"), "models"]
    toml.write_text("wrokers = 3\n")
    result = subprocess.run(taleloom, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "wrokers" in result.stderr and str(toml) in result.stderr
    toml.write_text("workers = [\n")
    result = subprocess.run(taleloom, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "not valid TOML" in result.stderr and "Traceback" not in result.stderr


def test_cpu_threads_leave_room_for_the_rest(monkeypatch, tmp_path):
    from taleloom import config
    from taleloom.config import cpu_threads, most_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(config, "CPU_MAX", tmp_path / "none")
    monkeypatch.setattr(config, "CFS_QUOTA", tmp_path / "none")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    assert cpu_threads() == 4 and cpu_threads(3) == 3 and most_threads() == 8 and most_threads(3) == 3
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    assert cpu_threads() == 1 and most_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cpu_threads() == 2 and cpu_threads(5) == 5 and most_threads() == 2  # a count asked for is fixed


def test_a_containers_cpu_quota_bounds_the_threads(monkeypatch, tmp_path):
    """`docker run --cpus 1.5` on an 8-core host: 8 cores to run on, 1.5 cores of time (cgroup v2, then v1)."""
    from taleloom import config

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(config, "CPU_MAX", tmp_path / "cpu.max")
    monkeypatch.setattr(config, "CFS_QUOTA", tmp_path / "quota")
    monkeypatch.setattr(config, "CFS_PERIOD", tmp_path / "period")
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert config.cpu_quota() == 1.5 and config.usable_cores() == 2 and config.cpu_threads() == 1
    assert config.most_threads() == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")  # no quota
    assert config.cpu_quota() is None and config.usable_cores() == 8
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "quota").write_text("300000\n")
    (tmp_path / "period").write_text("100000\n")
    assert config.usable_cores() == 3 and config.cpu_threads() == 1
    (tmp_path / "quota").write_text("-1\n")  # v1's "no quota"
    assert config.usable_cores() == 8


def test_local_torch_models_get_the_configured_threads(toml):
    import torch

    from taleloom.orchestrator import Backends

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert Backends(Settings(torch_threads=1)).get("illustrator").inner  # created on first use
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
