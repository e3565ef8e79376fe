"""The `ray:` backends' call logic without a cluster (the real cluster test is tests/server/test_ray_serve.py,
slow): a request whose replica died is sent again, and only it; the backend's own errors come back as
themselves; a replica lost every time is a clear error. Ray's exceptions are the real ones."""

from __future__ import annotations

import pytest

rex = pytest.importorskip("ray.exceptions", reason="Ray is not installed: pip install 'taleloom[ray]'")

from taleloom.errors import BackendError, BadInputError  # noqa: E402
from taleloom.scale.ray_backends import RayOptions, RayRole  # noqa: E402


class Response:
    def __init__(self, value=None, error: Exception | None = None):
        self.value, self.error = value, error

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value


def role() -> RayRole:
    """A RayRole on no cluster: each test passes its own `send`, which stands for the deployment handle."""
    r = RayRole("illustrator", "127.0.0.1:1", None, RayOptions(retries=2, backoff=0))
    r._handle = object()  # never used: `send` below answers
    return r


def test_only_the_lost_requests_are_sent_again():
    sent: list[str] = []

    def send(_handle, item):
        sent.append(item)
        if item == "b" and sent.count("b") == 1:
            return Response(error=rex.ActorDiedError())
        return Response(f"picture {item}")

    r = role()
    assert r.call_many(send, ["a", "b", "c"]) == ["picture a", "picture b", "picture c"]
    assert sent == ["a", "b", "c", "b"] and r.retried == 1


def test_the_backends_own_error_comes_back_as_itself():
    r = role()
    cause = BadInputError("size 9x9 is too small", "ask for 64x64 or more")
    with pytest.raises(BadInputError) as e:
        r.call_many(lambda h, i: Response(error=rex.RayTaskError("generate_one", "tb", cause)), ["a"])
    assert e.value.hint == "ask for 64x64 or more"


def test_a_replica_lost_every_time_is_a_clear_error():
    r = role()
    with pytest.raises(BackendError) as e:
        r.call_many(lambda h, i: Response(error=rex.ActorDiedError()), ["a"])
    assert "lost its replica 3 times" in e.value.message and "taleloom ray status" in e.value.hint
