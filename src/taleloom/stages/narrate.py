"""Narrate: read each page aloud in the book's language. An unsupported language is no failure:
the book is made without audio and the reason is recorded."""

from __future__ import annotations

import io
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from taleloom.backends.base import Narrator
from taleloom.book import WordTiming
from taleloom.errors import BadInputError


@dataclass
class Narration:
    audio: list[bytes | None]  # one WAV per text, None where nothing was read
    seconds: list[float | None]
    message: str | None = None  # why there is no audio, when there is none
    skipped: bool = False
    words: list[list[WordTiming] | None] = field(default_factory=list)  # when each word is spoken, per text
    words_source: str | None = None  # how the narrator found the timings


def wav_seconds(data: bytes) -> float:
    """Duration of a WAV file's bytes."""
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / float(w.getframerate() or 1)


def narrate(texts: Sequence[str], lang: str, narrator: Narrator,
            on_progress: Callable[[int, int], None] | None = None) -> Narration:
    """One WAV per text and when each of its words is spoken; when the narrator has no voice for `lang`, nothing is read and `message` says why."""
    try:
        narrator.voice_for(lang)
    except BadInputError as e:
        return Narration([None] * len(texts), [None] * len(texts), message=f"no narration: {e}", skipped=True)
    result = Narration([], [])
    for i, text in enumerate(texts):
        speech = narrator.speak_words(text, lang)
        result.audio.append(speech.audio)
        result.seconds.append(round(wav_seconds(speech.audio), 3))
        result.words.append(speech.words or None)
        result.words_source = speech.source or result.words_source
        if on_progress:
            on_progress(i + 1, len(texts))
    return result
