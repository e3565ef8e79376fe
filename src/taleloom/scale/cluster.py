"""Start, find and stop the Ray cluster the model deployments run on.

`start_head` runs ``ray start --head --block`` on loopback as our own child, in its own process group, and
records its pid in the data folder, so `stop_head` ends exactly the processes it started (never every Ray
process on the machine, as ``ray stop`` would). Other machines join with ``ray start --address HEAD:PORT``
(see docs/scale-out.md).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from taleloom.errors import BadInputError, ModelNotFoundError

DEFAULT_PORT = 6379
INSTALL_HINT = "install the extra: pip install 'taleloom[ray]' (ray[serve]==2.60.0)"
_lock = threading.Lock()


def require_ray() -> None:
    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError as e:
        raise ModelNotFoundError(f"Ray Serve is not installed ({e})", INSTALL_HINT) from None


def ray_executable() -> str:
    found = Path(sys.executable).parent / "ray"
    return str(found) if found.exists() else (shutil.which("ray") or "ray")


def _state_file(data_dir: Path) -> Path:
    return Path(data_dir) / "ray-head.json"


def start_head(data_dir: Path, port: int = DEFAULT_PORT, num_cpus: int | None = None, num_gpus: int | None = None,
               timeout: float = 120.0) -> str:
    """Start a head node on 127.0.0.1:`port` (logs under data_dir/ray); returns its address."""
    require_ray()
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    address = f"127.0.0.1:{port}"
    cmd = [ray_executable(), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
           "--include-dashboard", "false", "--disable-usage-stats", "--num-cpus", str(num_cpus or os.cpu_count() or 1)]
    if num_gpus is not None:
        cmd += ["--num-gpus", str(num_gpus)]
    log = data_dir / "ray-head.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    _state_file(data_dir).write_text(json.dumps({"pid": proc.pid, "address": address}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BadInputError(f"`ray start` exited with {proc.returncode}: {log.read_text()[-1500:]}",
                                f"is port {port} taken (another Ray head)? pass --port, or --address to join it")
        if "Ray runtime started" in log.read_text(errors="replace"):
            return address
        time.sleep(0.2)
    stop_head(data_dir)
    raise BadInputError(f"the Ray head did not start in {timeout:.0f} s; see {log}", "look at the log")


def stop_head(data_dir: Path, timeout: float = 10.0) -> bool:
    """End the head `start_head` started (its whole process group); False when none was recorded."""
    state = _state_file(data_dir)
    if not state.exists():
        return False
    pid = json.loads(state.read_text())["pid"]
    try:
        os.killpg(pid, signal.SIGTERM)  # --block: `ray start` stops what it started on SIGTERM
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(pid)
            os.killpg(pid, 0)
            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)
    state.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    """Collect the exit of a head this process started itself (else it lingers as a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def recorded_address(data_dir: Path) -> str | None:
    state = _state_file(data_dir)
    return json.loads(state.read_text())["address"] if state.exists() else None


def connect(address: str | None) -> None:
    """Join the cluster at `address` as a driver (once per process); `auto`/None: RAY_ADDRESS or the local one."""
    require_ray()
    import ray

    with _lock:
        if ray.is_initialized():
            return
        target = None if address in (None, "", "auto") else address
        try:
            ray.init(address=target or "auto", namespace="taleloom", log_to_driver=False,
                     logging_level="WARNING", configure_logging=False)
        except (ConnectionError, RuntimeError) as e:
            raise ModelNotFoundError(f"no Ray cluster answers at {target or 'auto (RAY_ADDRESS or local)'} ({e})",
                                     "start one with `taleloom ray up`, or give its address: ray:HOST:6379") from None
