"""Word timings for any narration: when each printed word is spoken, found from the audio itself.

Every narrator returns a `Speech` (WAV bytes + `WordTiming`s, the type lives in book.py). A narrator that
knows its durations (a neural voice's phoneme durations) fills the timings itself; one that does not
(eSpeak NG's command line only gives phonemes) calls `align`, which places the word boundaries on the
pauses of the real audio: a dynamic programme chooses, for each gap between words, a silent stretch of
the audio (or, when none fits, a point inside the sound) so that every word lasts about as long as its
weight (its phonemes, or its letters) says, punctuation falls on long pauses, and no long pause is left
inside a word. `benchmarks/word_timing.py` measures it against timings from the synthesiser.
"""

from __future__ import annotations

import io
import re
import wave
from dataclasses import dataclass, field

import numpy as np

from taleloom.book import WordTiming

FRAME_S = 0.005  # resolution of the silence map
MIN_SILENCE_S = 0.015  # shorter dips are part of a word (the closure of a stop consonant is often longer)
LONG_PAUSE_S = 0.12  # eSpeak NG and neural voices pause at least this long at a comma or full stop
SILENCE_LEVEL = 0.02  # a frame is silent below this share of the loudest frame's peak

_CLAUSE_END = re.compile(r"[,;:\u3001\uff0c\uff1b\uff1a\u060c]")
_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f\u061f\u0964]")
_NO_SPACES = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\u0e00-\u0e7f]")  # CJK, kana, Thai


@dataclass
class Speech:
    """One narration: the WAV file's bytes and when each word is spoken."""

    audio: bytes
    words: list[WordTiming] = field(default_factory=list)
    source: str = ""  # how the timings were found (kept in the manifest)


def split_words(text: str) -> list[str]:
    """The words as the reader sees them: runs between spaces, punctuation kept on its word; in scripts
    written without spaces (Chinese, Japanese, Thai) every character is a word."""
    words: list[str] = []
    for token in text.split():
        if not any(c.isalnum() for c in token):
            if words:
                words[-1] += " " + token  # French "Oui !": the mark belongs to the word before it
            continue
        if not _NO_SPACES.search(token):
            words.append(token)
            continue
        for ch in token:
            if words and not ch.isalnum():
                words[-1] += ch  # 。 and 、 stay with the character before them
            else:
                words.append(ch)
    return words


def pause_class(word: str) -> int:
    """2 after a sentence, 1 after a clause, 0 inside one: how long a pause a voice makes after `word`."""
    tail = word.rstrip("\"'\u201d\u2019\u00bb)]")
    if _SENTENCE_END.search(tail[-1:] or ""):
        return 2
    if _CLAUSE_END.search(tail[-1:] or ""):
        return 1
    return 0


def letter_weight(word: str) -> float:
    """A word's expected length from its letters (the fallback when no phonemes are known)."""
    return 1.0 + sum(1 for c in word if c.isalnum())


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Mono float samples in [-1, 1] and the sample rate of a 16-bit (or 8/32-bit) PCM WAV."""
    with wave.open(io.BytesIO(data)) as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        raw = w.readframes(w.getnframes())
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}[width]
    x = np.frombuffer(raw, dtype=dtype).astype(np.float32)
    if width == 1:
        x = (x - 128.0) / 128.0
    else:
        x /= float(2 ** (8 * width - 1))
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    return x, rate


def silences(samples: np.ndarray, rate: int) -> tuple[list[tuple[float, float]], float, float]:
    """Silent stretches inside the speech as (start, end) seconds, and the speech's first and last sound."""
    hop = max(1, int(rate * FRAME_S))
    n = len(samples) // hop
    if n == 0:
        return [], 0.0, len(samples) / rate
    frames = np.abs(samples[: n * hop]).reshape(n, hop).max(axis=1)
    loud = frames >= SILENCE_LEVEL * max(float(frames.max()), 1e-6)
    idx = np.flatnonzero(loud)
    if idx.size == 0:
        return [], 0.0, len(samples) / rate
    first, last = int(idx[0]), int(idx[-1]) + 1
    runs: list[tuple[float, float]] = []
    i = first
    while i < last:
        if loud[i]:
            i += 1
            continue
        j = i
        while j < last and not loud[j]:
            j += 1
        if (j - i) * FRAME_S >= MIN_SILENCE_S:
            runs.append((i * FRAME_S, j * FRAME_S))
        i = j
    return runs, first * FRAME_S, last * FRAME_S


def align(words: list[str], wav: bytes, weights: list[float] | None = None) -> list[WordTiming]:
    """Timings for `words` (as printed, in order) in the narration `wav`; `weights` are their expected
    relative lengths (phoneme-based when the narrator knows them, letters otherwise)."""
    if not words:
        return []
    samples, rate = read_wav(wav)
    runs, t0, t1 = silences(samples, rate)
    weights = list(weights) if weights else [letter_weight(w) for w in words]
    if len(weights) != len(words):
        raise ValueError(f"{len(weights)} weights for {len(words)} words")
    bounds = _boundaries(runs, t0, t1, np.asarray(weights, dtype=np.float64), [pause_class(w) for w in words[:-1]])
    return [WordTiming(text=w, start=round(s, 3), end=round(e, 3)) for w, (s, e) in zip(words, bounds, strict=True)]


def _boundaries(runs: list[tuple[float, float]], t0: float, t1: float, weights: np.ndarray,
                pauses: list[int]) -> list[tuple[float, float]]:
    """(start, end) of each word: the dynamic programme described in the module docstring."""
    n_words = len(weights)
    if n_words == 1 or t1 - t0 <= 0:
        return [(t0, t1)] * n_words if n_words == 1 else _proportional(t0, t1, weights)
    # candidates for a boundary: silent runs (word ends at s, next starts at e) and points every 20 ms
    grid = np.arange(t0 + 0.02, t1 - 0.01, 0.02)
    inside = np.zeros(len(grid), dtype=bool)
    for s, e in runs:
        inside |= (grid > s - 0.01) & (grid < e + 0.01)
    cand_s = np.concatenate([[t0], [s for s, _ in runs], grid[~inside], [t1]])
    cand_e = np.concatenate([[t0], [e for _, e in runs], grid[~inside], [t1]])
    length = cand_e - cand_s
    is_run = np.concatenate([[False], np.ones(len(runs), bool), np.zeros(int((~inside).sum()), bool), [False]])
    order = np.argsort(cand_s, kind="stable")
    cand_s, cand_e, length, is_run = cand_s[order], cand_e[order], length[order], is_run[order]
    m = len(cand_s)
    long_total = sum(e - s for s, e in runs if e - s >= LONG_PAUSE_S)
    rate = max(t1 - t0 - long_total, 0.05 * n_words) / float(weights.sum())  # seconds per unit of weight
    # long pauses strictly inside a word: counted from a cumulative sum over the candidates
    cum_long = np.concatenate([[0], np.cumsum(is_run & (length >= LONG_PAUSE_S))])
    rows = np.arange(m)
    f = np.full(m, np.inf)
    f[0] = 0.0
    back = np.zeros((n_words, m), dtype=np.int64)
    for k in range(n_words):
        expected = weights[k] * rate
        # a word from candidate j' (before it) to j (after it), looking back at most 3x its expected length
        lo = np.searchsorted(cand_s, cand_s - (3.0 * expected + 0.5))
        band = int((rows - lo).max()) + 1
        prev = rows[:, None] - np.arange(1, band + 1)[None, :]  # (m, band)
        ok = prev >= 0
        prev = np.maximum(prev, 0)
        dur = cand_s[:, None] - cand_e[prev]
        inner = np.maximum(cum_long[rows][:, None] - cum_long[prev + 1], 0)  # runs j'+1 .. j-1
        cost = ((dur - expected) / (expected + 0.05)) ** 2 + 4.0 * inner + f[prev]
        cost = np.where(ok & (dur > 0.02), cost, np.inf)
        best = np.argmin(cost, axis=1)
        reach = cost[rows, best]
        back[k] = prev[rows, best]
        if k == n_words - 1:
            if not np.isfinite(reach[m - 1]):
                return _proportional(t0, t1, weights)  # too little sound for so many words
            break
        p = pauses[k]
        boundary = np.where(is_run, np.where(length >= LONG_PAUSE_S, 0.0 if p else 1.5,
                                             2.0 if p else 0.0), 4.0 if p else 1.0)
        boundary[0] = boundary[m - 1] = np.inf
        f = reach + boundary
    idx = [m - 1]
    for k in range(n_words - 1, 0, -1):
        idx.append(int(back[k, idx[-1]]))
    idx.append(0)
    idx.reverse()  # idx[k] is the boundary before word k; idx[k+1] the one after it
    return [(float(cand_e[idx[k]]), float(cand_s[idx[k + 1]])) for k in range(n_words)]


def _proportional(t0: float, t1: float, weights: np.ndarray) -> list[tuple[float, float]]:
    edges = t0 + (t1 - t0) * np.concatenate([[0.0], np.cumsum(weights)]) / float(weights.sum())
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


_VOWELS = set("aeiouyAEIOUVY@03&")


def phoneme_weight(phonemes: str) -> float:
    """Expected length of one word from eSpeak NG's phoneme mnemonics (`-x`): a consonant 1, a vowel 2,
    a diphthong 2.5, a long vowel (`:`) +0.7, a stressed one (`'` or `,` before it) x1.3."""
    total, i, stress = 0.5, 0, 1.0
    s = phonemes.replace("#", "").replace("_", "").replace("|", "")
    while i < len(s):
        c = s[i]
        if c in "',":
            stress = 1.3
            i += 1
        elif c in _VOWELS:
            j = i
            while j < len(s) and s[j] in _VOWELS:
                j += 1
            w = 2.0 + 0.5 * min(j - i - 1, 1)
            if j < len(s) and s[j] == ":":
                w, j = w + 0.7, j + 1
            total += w * stress
            stress, i = 1.0, j
        elif c.isalpha():
            total += 1.0
            i += 1
        else:
            i += 1
    return total


def clause_weights(words: list[str], clauses: list[list[str]]) -> list[float] | None:
    """Word weights from a voice's phonemes, given per clause (`clauses[i]` = the phoneme strings of the
    i-th clause it read). A clause whose words the voice merged or split ("from the" read as one, "25"
    as two) shares its phoneme weight out by letters. None when the clauses themselves do not match."""
    groups: list[list[int]] = [[]]
    for i, w in enumerate(words):
        groups[-1].append(i)
        if pause_class(w) and i < len(words) - 1:
            groups.append([])
    if len(groups) != len(clauses):
        return None
    weights = [0.0] * len(words)
    for group, said in zip(groups, clauses, strict=True):
        if len(group) == len(said):
            for i, ph in zip(group, said, strict=True):
                weights[i] = phoneme_weight(ph)
            continue
        total = sum(phoneme_weight(ph) for ph in said)
        letters = [letter_weight(words[i]) for i in group]
        for i, lw in zip(group, letters, strict=True):
            weights[i] = total * lw / sum(letters)
    return weights
