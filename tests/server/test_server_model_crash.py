"""Issue 10, rows 1-3: a crash of the model process is not a crash of the service. The real server runs the real
SmolLM2 in its supervised child process; the test kills that child with SIGKILL while a book is being written,
with a neighbour book queued beside it: both books finish, and the server never went down."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
from serverkit import make_book, wait_status

REAL_SERVER = True  # kills of the model process, seen from a server process
SERVER_ENV = {"TALELOOM_LLM": "smollm2"}


def listening(pid: int) -> bool:
    """The child with this pid accepts connections on the port in its command line (its model is loaded)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        port = int(args[args.index(b"--port") + 1])
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except (OSError, ValueError):
        return False


def model_children(server_pid: int) -> list[int]:
    """Pids of the LLM child processes the server started (from /proc: parent pid and command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == server_pid and "llama_child" in cmdline:
            found.append(int(entry.name))
    return found


def wait_for(predicate, timeout: float = 180.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout} s")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the model child through /proc (Linux)")
def test_kill_9_of_the_llm_child_mid_book_the_book_finishes_and_its_neighbour_too(server):
    with server.client(server.token("crash"), timeout=60) as client:
        first = make_book(client, pages=1, idea="a cat who learns to fly", seed=1)
        second = make_book(client, pages=1, idea="a dog who finds a boat", seed=2)

        def writing() -> bool:
            body = client.get(f"/v1/books/{first['id']}").json()
            children = model_children(server.proc.pid)
            return (body.get("current") or {}).get("stage") == "write" and children and all(map(listening, children))

        wait_for(writing, what="the first book writing with its model child up and listening")
        time.sleep(0.5)  # a call is in flight
        children = model_children(server.proc.pid)
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        done = [wait_status(client, book["id"], timeout=600) for book in (first, second)]
        assert [d["status"] for d in done] == ["done", "done"], [d.get("error") for d in done]
        assert server.proc.poll() is None and client.get("/healthz").json()["ok"] is True
        assert model_children(server.proc.pid) and model_children(server.proc.pid) != children  # a fresh child
