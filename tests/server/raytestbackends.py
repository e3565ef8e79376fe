"""A test illustrator for the Ray Serve kill test: the first replica to draw while the file named by
TALELOOM_TEST_DIE_ONCE exists takes the file (an atomic rename: exactly one replica wins), writes its pid into
it and kills itself with SIGKILL in the middle of the call — a `kill -9` that lands mid-call every time."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from testbackends import SolidIllustrator

from taleloom.book import ImageRequest


class DiesOnceIllustrator(SolidIllustrator):
    name = "test-dies-once"

    def generate(self, requests: list[ImageRequest]):
        marker = Path(os.environ.get("TALELOOM_TEST_DIE_ONCE", "/nonexistent"))
        taken = marker.with_suffix(".taken")
        try:
            marker.rename(taken)
        except OSError:  # no marker, or another replica took it
            return super().generate(requests)
        taken.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")  # pragma: no cover


def register(register_backend) -> None:
    register_backend("illustrator", "test-dies-once", DiesOnceIllustrator, "dies by SIGKILL once (Ray kill test)")
