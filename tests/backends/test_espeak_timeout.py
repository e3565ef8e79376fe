"""A narration that takes too long is a BackendError that says so (issue 10, row 13), never an unhandled
subprocess.TimeoutExpired (a 500 in the service, a stack trace in the CLI)."""

from __future__ import annotations

import pytest

from taleloom.backends.speech import espeak
from taleloom.errors import BackendError


def test_espeak_timeout_is_a_clear_error(tmp_path, monkeypatch):
    slow = tmp_path / "espeak-ng"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    monkeypatch.setattr(espeak, "SPEAK_TIMEOUT_S", 0.2)
    narrator = espeak.EspeakNarrator(location=str(slow))
    with pytest.raises(BackendError, match="did not finish reading 11 characters within 0.2 s"):
        narrator._synthesise("hello world", "en-us")
