"""Word timings: the aligner finds words on the pauses of real audio; eSpeak NG's narration says when
each printed word is spoken; the narrate stage hands them on for the manifest."""

from __future__ import annotations

import io
import math
import shutil
import wave

import pytest

from taleloom.backends.speech.timing import align, pause_class, phoneme_weight, split_words
from taleloom.stages.narrate import narrate, wav_seconds


def wav_of(segments: list[tuple[float, bool]], rate: int = 16000) -> bytes:
    """A WAV of (seconds, sounding) pieces: a 300 Hz tone where sounding, silence elsewhere."""
    frames = bytearray()
    for seconds, loud in segments:
        for i in range(int(rate * seconds)):
            v = int(9000 * math.sin(2 * math.pi * 300 * i / rate)) if loud else 0
            frames += v.to_bytes(2, "little", signed=True)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return buf.getvalue()


def test_words_as_the_reader_sees_them():
    assert split_words("Mina smiled, and sailed away!") == ["Mina", "smiled,", "and", "sailed", "away!"]
    assert split_words("Oui ! dit-il.") == ["Oui !", "dit-il."]  # a lone mark belongs to the word before it
    assert split_words("小猫笑了。") == ["小", "猫", "笑", "了。"]
    assert [pause_class(w) for w in ("away!", "smiled,", "and", 'said."')] == [2, 1, 0, 2]


def test_phoneme_weight_grows_with_the_word():
    assert phoneme_weight("a#") < phoneme_weight("b'oUt") < phoneme_weight("s'eIld") < phoneme_weight("Int@r'Esti\u014b")


def test_aligner_puts_boundaries_on_the_pauses():
    # three words, the middle one long, then a sentence pause and a fourth word; the words also carry a
    # short closure inside ("stop consonants") that must not be taken for a word gap
    wav = wav_of([(0.1, False), (0.25, True), (0.05, False), (0.3, True), (0.02, False), (0.3, True),
                  (0.05, False), (0.2, True), (0.4, False), (0.3, True), (0.2, False)])
    words = ["One", "longer", "word.", "Then"]
    got = align(words, wav, [3, 7, 3, 3])
    want = [(0.1, 0.35), (0.4, 1.02), (1.07, 1.27), (1.67, 1.97)]
    for w, (start, end) in zip(got, want, strict=True):
        assert abs(w.start - start) <= 0.02 and abs(w.end - end) <= 0.02, (w, start, end)


def test_aligner_without_pauses_still_orders_every_word():
    wav = wav_of([(1.0, True)])
    got = align(["a", "b", "c", "d"], wav)
    assert [w.text for w in got] == ["a", "b", "c", "d"]
    assert all(w.end > w.start for w in got) and all(a.end <= b.start for a, b in zip(got, got[1:], strict=False))
    assert got[-1].end <= 1.0 + 1e-6


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_espeak_says_when_each_word_is_spoken():
    from taleloom.backends import registry

    espeak = registry.create("narrator", "espeak")
    text = "Mina found a small red boat. She smiled, and sailed away!"
    result = narrate([text, "Le renard et le hibou étaient amis."], "en", espeak)
    words = result.words[0]
    assert [w.text for w in words] == text.split()
    assert result.words_source == "espeak-ng phonemes + pauses"
    seconds = wav_seconds(result.audio[0])
    assert all(0 <= w.start < w.end <= seconds for w in words)
    assert all(a.end <= b.start for a, b in zip(words, words[1:], strict=False))
    gaps = {a.text: b.start - a.end for a, b in zip(words, words[1:], strict=False)}
    assert gaps["boat."] > 0.2 and gaps["boat."] > 3 * max(gaps["found"], gaps["a"])  # the full stop is a pause
    assert words[2].end - words[2].start < words[3].end - words[3].start  # "a" is said faster than "small"
