"""Narrate with the real espeak-ng: audio that plays, language aliases, and a clear skip for unknown languages."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from taleloom.backends import registry
from taleloom.errors import BadInputError
from taleloom.stages.narrate import narrate, wav_seconds

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


@pytest.fixture(scope="module")
def espeak():
    return registry.create("narrator", "espeak")


def test_pages_are_read_into_playable_wavs(espeak, tmp_path):
    result = narrate(["Mina found a red ball.", "Then she went home."], "en", espeak)
    assert not result.skipped and len(result.audio) == 2
    for data, seconds in zip(result.audio, result.seconds, strict=True):
        assert data[:4] == b"RIFF" and seconds > 0.5 and abs(wav_seconds(data) - seconds) < 0.01
    path = tmp_path / "a.wav"
    path.write_bytes(result.audio[0])
    if shutil.which("soxi"):
        assert float(subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True).stdout) > 0.5


def test_korean_and_chinese_voices(espeak):
    assert espeak.voice_for("zh") == "cmn" and espeak.voice_for("ko") == "ko" and espeak.voice_for("fr") == "fr-fr"
    assert {"en", "ko", "zh", "fr"} <= espeak.languages()
    assert narrate(["미나는 고양이예요."], "ko", espeak).seconds[0] > 0.3


def test_unknown_language_is_skipped_with_a_message(espeak):
    result = narrate(["hello"], "tlh", espeak)
    assert result.skipped and result.audio == [None] and "tlh" in result.message and "ko" in result.message
    with pytest.raises(BadInputError, match="no voice"):
        espeak.voice_for("tlh")
