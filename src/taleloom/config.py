"""One settings object. Precedence: defaults < taleloom.toml < TALELOOM_* environment < CLI flags.

The toml file is read from `TALELOOM_CONFIG` if set, else `./taleloom.toml` when present.
Backend specs follow the registry's syntax: ``name[:location][#model]``, e.g.
``llm = "openai:http://127.0.0.1:8000/v1#qwen2.5-7b"`` or ``illustrator = "diffusers-sdxl:/models/sdxl"``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from taleloom.backends.roles import ROLE_TABLE


def _toml_path() -> Path:
    return Path(os.environ.get("TALELOOM_CONFIG", "taleloom.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TALELOOM_", extra="forbid")

    # where books, the job database and caches live
    data_dir: Path = Field(default=Path("taleloom-data"))
    # public base URL of the service, as readers reach it (behind a proxy: the proxy's URL); share links and
    # the QR code of each served book point below it (share_url). A book made by `taleloom tell` has no share
    # link on any server: its QR code points at `--link URL`, or the book has none.
    base_url: str = "http://127.0.0.1:8000"
    # backend specs (see taleloom.backends.registry); defaults from the role table (backends/roles.py)
    captioner: str = ROLE_TABLE["captioner"].default
    llm: str = ROLE_TABLE["llm"].default  # Qwen2.5-Coder-1.5B from PyPI wheels; "embedded:smollm2" is the fast preset
    illustrator: str = ROLE_TABLE["illustrator"].default
    upscaler: str = ROLE_TABLE["upscaler"].default
    narrator: str = ROLE_TABLE["narrator"].default
    # torch device for local models: "cpu", "cuda", "auto"
    device: str = "auto"
    # per-role backend Options, e.g. toml `[backend_options.illustrator]` refiner = "/models/refiner";
    # unknown fields are refused by the backend's own Options model
    backend_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # SQLAlchemy URL; default is SQLite inside data_dir
    database_url: str | None = None
    # service limits
    max_upload_bytes: int = 15 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_pages: int = 12
    max_queue_per_user: int = 4
    max_queue_total: int = 64
    # single-step calls (/v1/images/*, chat, speech, captions) one user may have running at once
    max_steps_per_user: int = 2
    # how long a picture link from /v1/images/* (response_format "url") stays valid, in seconds
    image_url_seconds: int = Field(default=3600, ge=10)
    # deadlines of single-step calls in seconds (0 = none): past it the call answers 504 and its model work
    # stops (between tokens / steps); a call also stops when its client disconnects
    chat_deadline_s: float = Field(default=300.0, ge=0)  # /v1/chat/completions, streamed or not
    image_deadline_s: float = Field(default=600.0, ge=0)  # /v1/images/generations and /v1/images/edits
    speech_deadline_s: float = Field(default=120.0, ge=0)  # /v1/audio/speech
    caption_deadline_s: float = Field(default=180.0, ge=0)  # /v1/captions
    # messages one chat request may carry
    chat_max_messages: int = Field(default=200, ge=1)
    workers: int = 2
    # seconds a client may take to send a request's headers, and then its body (slow clients get a 408)
    header_timeout: float = Field(default=10.0, gt=0)
    body_timeout: float = Field(default=120.0, gt=0)
    # seconds a job worker's lease lasts without renewal; another server takes the job only after it runs out
    job_lease_seconds: float = Field(default=30.0, ge=3)
    # calls at once per backend role, "llm=1,narrator=2" (roles not named keep the role table's)
    concurrency: str = ""
    # extra backends registered at start-up: "package.module:function[,other:function]"
    plugins: str = ""
    # load every backend in the background when the server starts (False: on the first request)
    warm: bool = True
    # pages that check themselves: a picture whose hero or setting the aligned encoder cannot find, or that
    # does not look like the hero on the other pages, is drawn again with a new seed up to this many times
    # (0 = no audit; only for illustrators that draw the encoder's concepts, i.e. the embedded one)
    page_audit_retries: int = Field(default=2, ge=0, le=8)
    # PyTorch CPU threads for local models; 0 = OMP_NUM_THREADS if set, else half the cores (at least 1)
    torch_threads: int = Field(default=0, ge=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # first wins: CLI flags (init kwargs) > environment > toml > defaults
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=_toml_path()))


def get_settings(**overrides) -> Settings:
    """Settings with CLI overrides applied (None values are ignored).

    A bad value or an unknown name, in taleloom.toml or a TALELOOM_* variable, becomes one
    `BadInputError` that names the setting and where settings come from, not a pydantic trace.
    """
    import tomllib

    from pydantic import ValidationError

    from taleloom.errors import BadInputError

    where = f"{_toml_path()}, TALELOOM_* environment variables or flags"
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'settings'}: {err['msg']}" for err in e.errors())
        known = ", ".join(Settings.model_fields)
        raise BadInputError(f"bad setting(s) in {where}: {problems}",
                            f"fix or remove them; the settings are {known}") from None
    except tomllib.TOMLDecodeError as e:
        raise BadInputError(f"{_toml_path()} is not valid TOML ({e})", "fix the file or point TALELOOM_CONFIG elsewhere") from None


def share_url(base_url: str, share_id: str) -> str:
    """The reader's link for a share id: the page `/books/{share_id}` below the public base URL. The one
    place this link is built (API answers, share listings, the QR code of a served book)."""
    return f"{base_url.rstrip('/')}/books/{share_id}"


def cpu_threads(requested: int = 0) -> int:
    """Threads for one model on the CPU: `requested`, else OMP_NUM_THREADS, else half the cores.

    Why half: PyTorch and llama.cpp worker threads spin while they wait for each other, so a model
    that takes every core beside anything else busy (the LLM, the web server, another book) runs
    several times slower — on a 2-core machine a book took 169 s with 2 torch threads next to a busy
    core and 30 s with 1 (benchmarks/book_latency.py). The models we run on a CPU are small and gain
    little from more threads.
    """
    return _asked_threads(requested) or max(1, usable_cores() // 2)


# a container's CPU time quota: cgroup v2's "cpu.max" ("quota period", or "max"), else v1's cfs quota and period
CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CFS_QUOTA, CFS_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def usable_cores() -> int:
    """Cores this process may use: those it may run on, fewer where a container's CPU quota allows less time.
    Why: `docker run --cpus 1` on an 8-core host leaves os.cpu_count() at 8 and one core's time, and threads
    beyond it are throttled, which llama.cpp's spinning threads pay for many times over."""
    cores = len(own_cores())
    quota = cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def own_cores() -> set[int]:
    """The cores this process may run on (its CPU affinity; every core where the OS does not say)."""
    return set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))


def cpu_quota() -> float | None:
    """The container's CPU quota in cores (1.5 for `--cpus 1.5`), None when there is none or it cannot be read."""
    try:
        quota, period = CPU_MAX.read_text().split()[:2]
        return int(quota) / int(period) if quota != "max" and int(period) > 0 else None
    except (OSError, ValueError):
        pass
    try:
        quota_us, period_us = int(CFS_QUOTA.read_text()), int(CFS_PERIOD.read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def _asked_threads(requested: int) -> int:
    """The count asked for: `requested`, else OMP_NUM_THREADS; 0 when neither says one."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    return requested if requested > 0 else int(env) if env.isdigit() and int(env) > 0 else 0


def most_threads(requested: int = 0) -> int:
    """Threads a model process may take while the machine's other cores are idle (backends/llm/spare_cores.py):
    every core this process may run on, unless a count was asked for (`requested`, OMP_NUM_THREADS): then
    that count, fixed."""
    return cpu_threads(requested) if _asked_threads(requested) else usable_cores()


def resolve_device(name: str = "auto") -> str:
    """'auto' → 'cuda' when available, else 'cpu'. A device this machine does not have is a BadInputError
    now, not a torch assertion after the weights have loaded."""
    import torch

    from taleloom.errors import BadInputError

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    hint = "use device = 'cpu' or 'auto' (TALELOOM_DEVICE, --device)"
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise BadInputError(f"device {name!r} is not a torch device", hint) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInputError(f"device {name!r} requested but CUDA is not available here", hint)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BadInputError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)",
                                "use cuda:0 .. cuda:N-1, or 'auto'")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise BadInputError(f"device {name!r} requested but MPS is not available here", hint)
    return name
