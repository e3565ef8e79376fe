"""How close the narrator's word timings are to when eSpeak NG really says each word.

    python benchmarks/word_timing.py

Reference: eSpeak NG's own word events (espeakEVENT_WORD, the audio position at which the synthesiser
starts each word), read here, in this measuring script only, through the system library
libespeak-ng.so.1 with ctypes; the product never loads that GPL library into its process — it runs the
espeak-ng program and finds the timings from the audio (backends/speech/timing.py). Both are given the
very same audio: the library's, so the only difference measured is the timing method.

Compared: our aligner with eSpeak NG phoneme weights (what the product uses), the aligner with letter
weights (what any narrator gets by default), and plain proportional timing by letters over the speech.
Figures: mean / median / 90th percentile absolute error of word starts in ms, share within 100 ms
(over the words that have an event of their own: eSpeak NG gives "of the" one event).
Writes benchmarks/results/word_timing.json.
"""

from __future__ import annotations

import ctypes
import io
import json
import re
import statistics
import sys
import wave
from pathlib import Path

import numpy as np

from taleloom.backends.speech.espeak import EspeakNarrator
from taleloom.backends.speech.timing import (
    align,
    clause_weights,
    letter_weight,
    read_wav,
    silences,
    split_words,
)

RESULTS = Path(__file__).parent / "results"
TEXTS = {
    "en": ["Mina found a small red boat by the river. She smiled, climbed in, and sailed away!",
           "The fox and the owl were friends. Every night they counted the stars together.",
           "Tom looked up at the big grey cloud. \"Will it rain?\" he asked his little dog.",
           "Under the old oak tree, a tiny mouse was building a house of leaves and moss.",
           "The sun came up slowly, painting the sky pink and gold, and the birds began to sing.",
           "Grandma baked a cake with three candles. Everyone sang, clapped, and laughed.",
           "At the end of the day, Mina hugged her cat and fell asleep, dreaming of the sea.",
           "The river was wide and slow, and the little red boat drifted past fields of yellow flowers, old stone "
           "bridges, sleepy cows and a heron standing on one leg. Mina waved at everyone she saw: the farmer on "
           "his tractor, the children fishing from the bank, the baker carrying bread, and even a grumpy goose."],
    "de": ["Mina fand ein kleines rotes Boot am Fluss. Sie lachte und fuhr davon.",
           "Der Fuchs und die Eule waren Freunde. Jede Nacht zählten sie die Sterne."],
    "fr": ["Mina a trouvé un petit bateau rouge près de la rivière. Elle a souri, puis elle est partie.",
           "Le renard et le hibou étaient amis. Chaque nuit, ils comptaient les étoiles."],
    "es": ["Mina encontró un pequeño barco rojo junto al río. Sonrió y se fue navegando."],
}
OPTS = {"rate": 150, "pitch": 50, "gap": 4}  # EspeakNarrator's defaults


class Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event))


class Library:
    """eSpeak NG's synthesiser with its word events (reference only)."""

    def __init__(self):
        self.lib = ctypes.CDLL("libespeak-ng.so.1")
        self.rate = self.lib.espeak_Initialize(2, 0, None, 0)  # AUDIO_OUTPUT_SYNCHRONOUS
        self.samples: list[np.ndarray] = []
        self.starts: list[tuple[int, float]] = []
        self._cb = CALLBACK(self._on_audio)
        self.lib.espeak_SetSynthCallback(self._cb)

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self.samples.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != 0:
            if events[i].type == 1:  # espeakEVENT_WORD
                self.starts.append((events[i].text_position, events[i].audio_position / 1000.0))
            i += 1
        return 0

    def say(self, text: str, voice: str) -> tuple[bytes, list[tuple[int, float]]]:
        self.samples, self.starts = [], []
        self.lib.espeak_SetVoiceByName(voice.encode())
        self.lib.espeak_SetParameter(1, OPTS["rate"], 0)
        self.lib.espeak_SetParameter(3, OPTS["pitch"], 0)
        self.lib.espeak_SetParameter(7, OPTS["gap"], 0)
        data = text.encode("utf-8") + b"\0"
        self.lib.espeak_Synth(data, len(data), 0, 1, 0, 1, None, None)  # POS_CHARACTER, espeakCHARS_UTF8
        self.lib.espeak_Synchronize()
        pcm = np.concatenate(self.samples).astype("<i2").tobytes()
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.rate)
            w.writeframes(pcm)
        return buf.getvalue(), self.starts


def main() -> int:
    narrator = EspeakNarrator()
    lib = Library()
    errors: dict[str, list[float]] = {"phonemes": [], "letters": [], "proportional": []}
    matched = 0
    for lang, texts in TEXTS.items():
        voice = narrator.voice_for(lang)
        for text in texts:
            wav, starts = lib.say(text, voice)
            words = split_words(text)
            at = {}
            for pos, t in starts:  # clause events repeat a position: keep each word's first
                at.setdefault(pos, t)
            offsets = [m.start() + 1 for m in re.finditer(r"\S+", text)]  # eSpeak NG counts from 1
            if len(offsets) != len(words):
                print(f"skip (words do not match): {text}")
                continue
            matched += 1
            said = narrator.phonemes(text, voice)
            timed = [i for i, o in enumerate(offsets) if o in at]  # eSpeak NG reads "of the" as one word
            ref = [at[offsets[i]] for i in timed]
            runs, t0, t1 = silences(*read_wav(wav))
            weights = [letter_weight(w) for w in words]
            edges = t0 + (t1 - t0) * np.concatenate([[0.0], np.cumsum(weights)]) / sum(weights)
            guesses = {"letters": [w.start for w in align(words, wav)],
                       "proportional": list(edges[:-1])}
            weights = clause_weights(words, said)
            if weights is not None:
                guesses["phonemes"] = [w.start for w in align(words, wav, weights)]
            for name, got in guesses.items():
                errors[name].extend(abs(got[i] - r) * 1000 for i, r in zip(timed, ref, strict=True))
    rows = {}
    for name, errs in errors.items():
        if not errs:
            continue
        errs.sort()
        rows[name] = {"words": len(errs), "mean_ms": round(statistics.mean(errs), 1),
                      "median_ms": round(statistics.median(errs), 1),
                      "p90_ms": round(errs[int(0.9 * (len(errs) - 1))], 1),
                      "within_100ms": round(sum(e <= 100 for e in errs) / len(errs), 3)}
    print(f"{'method':<14}{'words':>7}{'mean ms':>9}{'median':>8}{'p90':>8}{'<=100ms':>9}")
    for name, r in rows.items():
        print(f"{name:<14}{r['words']:>7}{r['mean_ms']:>9}{r['median_ms']:>8}{r['p90_ms']:>8}{r['within_100ms']:>9.1%}")
    RESULTS.mkdir(exist_ok=True)
    out = {"texts": matched, "languages": sorted(TEXTS), "reference": "espeak-ng word events (libespeak-ng)",
           "options": OPTS, "methods": rows}
    (RESULTS / "word_timing.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
