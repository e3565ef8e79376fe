"""The local LLM in a supervised child process (issue 10): a kill -9 of the child costs one retry, a request
that kills it twice fails with a message saying so and no restart loop, an abandoned call stops the model,
and the child does not outlive its parent. Real SmolLM2 on llama.cpp; the kills are real SIGKILLs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from taleloom.backends import registry
from taleloom.backends.base import Sampling
from taleloom.backends.llm.llama_process import ModelCrashedError
from taleloom.deadline import Cancelled, Scope

ASK = [{"role": "user", "content": "Describe a cat in detail."}]
LONG = {"type": "object", "properties": {"text": {"type": "string", "minLength": 400, "maxLength": 420}},
        "required": ["text"]}  # at least 400 characters: an answer that takes a few seconds on a CPU


@pytest.fixture()
def smol():
    model = registry.create("llm", "smollm2")
    model.chat([{"role": "user", "content": "hi"}], Sampling(seed=1, max_tokens=2))  # start the child
    yield model
    model._child().close()


def up(process) -> bool:
    """The child listens (a TCP connect, not an HTTP call: llama_cpp.server answers even GET /v1/models only
    between completions)."""
    try:
        socket.create_connection(("127.0.0.1", process.port), timeout=1).close()
        return True
    except OSError:
        return False


def kill_when_running(model, starts: int, after: float = 0.7) -> threading.Thread:
    """Kill -9 the child `after` s after its `starts`-th start is up (a call is in flight by then)."""
    process = model._child().process

    def kill() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (process.starts >= starts and process.alive() and up(process)):
            time.sleep(0.05)
        time.sleep(after)
        if process.alive():
            os.kill(process.pid, signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_a_child_killed_mid_call_costs_one_retry(smol):
    killer = kill_when_running(smol, starts=1)
    answer = json.loads(smol.chat(ASK, Sampling(seed=4, max_tokens=700), LONG), strict=False)
    killer.join()
    assert len(answer["text"]) >= 400
    assert smol._child().process.starts == 2 and smol._child().process.last_exit == "killed by SIGKILL"


def test_a_request_that_kills_the_child_twice_fails_with_a_message_and_no_loop(smol):
    killers = [kill_when_running(smol, starts=1), kill_when_running(smol, starts=2)]
    with pytest.raises(ModelCrashedError) as err:
        smol.chat(ASK, Sampling(seed=4, max_tokens=700), LONG)
    for k in killers:
        k.join()
    assert "died twice on this request" in err.value.message and "SIGKILL" in err.value.message
    assert smol._child().process.starts == 2  # nothing restarted it in the background
    assert smol.chat([{"role": "user", "content": "hi"}], Sampling(seed=1, max_tokens=2)) is not None
    assert smol._child().process.starts == 3  # the next call got a fresh child


def test_a_stream_whose_child_dies_midway_ends_with_an_error(smol):
    pieces = smol.answer_stream(ASK, Sampling(seed=2, max_tokens=400))
    first = next(pieces)
    assert first.text
    os.kill(smol._child().process.pid, signal.SIGKILL)
    with pytest.raises(ModelCrashedError, match="in the middle of this answer"):
        for _ in pieces:
            pass
    assert smol.chat([{"role": "user", "content": "hi"}], Sampling(seed=1, max_tokens=2)) is not None


def test_an_abandoned_call_stops_and_frees_the_model(smol):
    scope = Scope(None, "the test call")
    threading.Timer(1.0, scope.cancel).start()
    with pytest.raises(Cancelled):
        scope.run(smol.chat, ASK, Sampling(seed=4, max_tokens=3000), LONG | {"properties": {
            "text": {"type": "string", "minLength": 4000}}})
    assert smol.chat([{"role": "user", "content": "hi"}], Sampling(seed=1, max_tokens=2)) is not None
    assert smol._child().process.starts == 1  # stopped by closing the stream, not by a kill


def test_child_and_inline_give_the_same_answer():
    child, inline = registry.create("llm", "smollm2"), registry.create("llm", "smollm2", process="inline")
    s = Sampling(seed=11, max_tokens=24, temperature=1.0)
    try:
        assert child.chat(ASK, s) == inline.chat(ASK, s)
        assert child.chat(ASK, s, LONG | {"properties": {"text": {"type": "string", "maxLength": 30}}}) == \
            inline.chat(ASK, s, LONG | {"properties": {"text": {"type": "string", "maxLength": 30}}})
    finally:
        child._child().close()


PARENT = """
import sys
from taleloom.backends import registry
from taleloom.backends.base import Sampling
m = registry.create("llm", "smollm2")
m.chat([{"role": "user", "content": "hi"}], Sampling(seed=1, max_tokens=2))
print(m._child().process.pid, flush=True)
sys.stdin.read()
"""


def test_the_child_exits_when_its_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=os.environ)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and os.path.exists(f"/proc/{child}") and _state(child) != "Z":
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{child}") or _state(child) == "Z", "the model child outlived its parent"


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
