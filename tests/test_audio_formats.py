"""Speech formats: ffmpeg's atempo takes 0.5-2 per stage, so other speeds are chains."""

from __future__ import annotations

import pytest

from taleloom.audio_formats import encode, tempo_filter


@pytest.mark.parametrize("speed, chain", [(1.0, "atempo=1"), (0.25, "atempo=0.5,atempo=0.5"),
                                          (4.0, "atempo=2,atempo=2"), (3.0, "atempo=2,atempo=1.5"),
                                          (0.3, "atempo=0.5,atempo=0.6")])
def test_tempo_chain_multiplies_to_the_speed(speed, chain):
    assert tempo_filter(speed) == chain


def test_wav_at_speed_one_is_passed_through_and_unknown_formats_refused():
    assert encode(b"RIFF....WAVE", "wav") == b"RIFF....WAVE"  # no ffmpeg needed
    with pytest.raises(ValueError, match="mp3"):
        encode(b"RIFF", "ogg")
