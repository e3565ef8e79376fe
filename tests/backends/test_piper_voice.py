"""The Piper neural voice run by our own code (eSpeak NG phonemes → the voice's ids → onnxruntime):
speech of a sensible length and loudness, word timings in order, clause punctuation kept, a checked
weight file, and eSpeak NG for a language without a neural voice."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from taleloom.backends import registry
from taleloom.backends.speech import piper
from taleloom.backends.speech.piper import JOE, PiperNarrator, phoneme_ids, word_spans, words_from_durations
from taleloom.backends.speech.timing import read_wav
from taleloom.errors import BadInputError, ModelNotFoundError
from taleloom.stages.narrate import narrate

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
TEXT = "Mina the cat looked out of the window. Was it raining? No, it was sunny, and the birds were singing!"


@pytest.fixture(scope="module")
def voice() -> PiperNarrator:
    return registry.create("narrator", "piper")


def test_phoneme_ids_follow_piper_layout():
    id_map = {"^": [1], "$": [2], "_": [0], "a": [14], "b": [15], ".": [10], " ": [3]}
    assert phoneme_ids("ab.", id_map) == [1, 0, 14, 0, 15, 0, 10, 0, 2]
    assert phoneme_ids("a?b", id_map) == [1, 0, 14, 0, 15, 0, 2]  # unknown symbols are skipped


def test_sentences_keep_clause_punctuation(voice):
    said = voice.sentences("Hello there, little cat. How are you today?", "en-us")
    assert len(said) == 2 and said[0].endswith(".") and said[1].endswith("?")
    assert ", " in said[0] and "k" in said[0]  # the comma stays for the pause; IPA for "cat"


def test_english_speech_is_real_speech(voice):
    speech = voice.speak_words(TEXT, "en")
    samples, rate = read_wav(speech.audio)
    seconds, words = len(samples) / rate, len(TEXT.split())
    assert rate == 22050
    assert 0.15 <= seconds / words <= 0.8, seconds  # a child's book is read at 75-400 words a minute
    rms = float(np.sqrt(np.mean(samples ** 2)))
    assert 0.03 < rms < 0.5 and np.max(np.abs(samples)) <= 0.91  # audible, not clipped
    frames = samples[: len(samples) // 441 * 441].reshape(-1, 441)  # 20 ms frames
    loud = np.sqrt((frames ** 2).mean(axis=1)) > 0.1 * rms
    assert 0.5 < loud.mean() < 0.97  # speech with pauses, not noise or silence
    assert [w.text for w in speech.words] == TEXT.split()
    starts = [w.start for w in speech.words]
    assert starts == sorted(starts) and speech.words[-1].end <= seconds + 0.01
    assert speech.source == "piper phoneme durations"
    assert all(w.end > w.start for w in speech.words)
    # the 0.3 s between sentences falls between "window." and "Was", not inside a word
    window, was = speech.words[7], speech.words[8]
    assert window.text == "window." and was.start - window.end >= 0.3


def test_word_spans_from_phoneme_durations():
    symbols = ["^", "_", "a", "_", "b", "_", " ", "_", "c", "_", ",", "_", " ", "_", "d", "_", ".", "_", "$"]
    seconds = np.full(len(symbols), 0.1)
    spans = word_spans(symbols, seconds, start=1.0)
    assert [[[round(a, 2), round(b, 2)] for a, b in c] for c in spans] == [[[1.2, 1.5], [1.8, 1.9]], [[2.4, 2.5]]]
    timed = words_from_durations(["Ab", "c,", "d."], spans)
    assert [(w.text, w.start, w.end) for w in timed] == [("Ab", 1.2, 1.5), ("c,", 1.8, 1.9), ("d.", 2.4, 2.5)]
    merged = words_from_durations(["out", "of", "it,", "d."], [[[0.0, 0.9]], [[1.0, 1.2]]])  # "out of it" as one
    assert [w.text for w in merged] == ["out", "of", "it,", "d."] and merged[0].start == 0.0
    assert merged[2].end == 0.9 and merged[0].end < merged[1].end < merged[2].end
    assert words_from_durations(["a,", "b."], [[[0.0, 1.0]]]) is None  # clauses do not match: the caller aligns


def test_questions_and_commas_make_pauses(voice):
    samples, rate = read_wav(voice.speak("Look, a cat. Look, a dog.", "en"))
    frames = samples[: len(samples) // 220 * 220].reshape(-1, 220)  # 10 ms frames
    quiet = np.sqrt((frames ** 2).mean(axis=1)) < 0.01
    runs, n = [], 0
    for q in quiet:
        n = n + 1 if q else (runs.append(n) or 0)
    assert sum(r >= 15 for r in runs) >= 2  # at least two pauses of 150 ms inside the audio


def test_a_language_without_a_neural_voice_is_read_by_espeak(voice):
    assert voice.voice_for("en-GB") == "piper:en_US-joe-medium"
    assert voice.voice_for("fr") == "fr-fr"
    speech = voice.speak_words("Le chat dort au soleil.", "fr")
    assert speech.source.startswith("espeak-ng") and len(read_wav(speech.audio)[0]) > 0
    with pytest.raises(BadInputError):
        voice.voice_for("tlh")
    result = narrate(["Bonjour le chat.", "Hello cat."], "fr", voice)
    assert not result.skipped and all(s and s > 0.3 for s in result.seconds)


def test_damaged_voice_is_refused():
    bad = dataclasses.replace(JOE, model_sha256="0" * 64)
    with pytest.raises(ModelNotFoundError, match="sha256"):
        piper._session(bad, 1)
