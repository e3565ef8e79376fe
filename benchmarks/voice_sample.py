"""The narrators side by side on one page of a children's story: the Piper neural voice (default for
English) and eSpeak NG (every other language, and the fallback). Writes a WAV of each to listen to, and
measures what can be measured without ears: audio length, words a minute, loudness (RMS), share of
speech vs pause, and synthesis time (real-time factor) on 1 thread.

    python benchmarks/voice_sample.py

Writes benchmarks/results/voice_samples/{piper,espeak}.wav and benchmarks/results/voice_sample.json.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PAGE = ("Mina the cat woke up early. The sun was warm on the windowsill, and a little bird was singing outside. "
        "Would today be the day she finally caught it? Mina stretched, yawned, and jumped down to find out.")


def measure(name: str, narrator, repeats: int = 3) -> dict:
    from taleloom.backends.speech.timing import read_wav

    narrator.speak_words("Hello.", "en")  # loads the model: not timed
    times, speech = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        speech = narrator.speak_words(PAGE, "en")
        times.append(time.perf_counter() - t0)
    samples, rate = read_wav(speech.audio)
    seconds = len(samples) / rate
    rms = float(np.sqrt(np.mean(samples ** 2)))
    frames = samples[: len(samples) // (rate // 50) * (rate // 50)].reshape(-1, rate // 50)
    voiced = float((np.sqrt((frames ** 2).mean(axis=1)) > 0.1 * rms).mean())
    out_dir = RESULTS / "voice_samples"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.wav").write_bytes(speech.audio)
    synth = statistics.median(times)
    return {"model_id": narrator.model_id, "audio_s": round(seconds, 2), "words": len(PAGE.split()),
            "words_per_minute": round(len(PAGE.split()) / seconds * 60, 1), "rms": round(rms, 3),
            "voiced_share": round(voiced, 3), "synthesis_s_median": round(synth, 3),
            "real_time_factor": round(synth / seconds, 3), "word_timings": speech.source,
            "first_words": [(w.text, w.start, w.end) for w in speech.words[:5]], "wav": f"voice_samples/{name}.wav"}


def main() -> int:
    from taleloom.backends import registry

    rows = {name: measure(name, registry.create("narrator", name)) for name in ("piper", "espeak")}
    print(f"{'voice':>7} {'audio s':>8} {'wpm':>6} {'rms':>6} {'voiced':>7} {'synth s':>8} {'RTF':>6}")
    for name, r in rows.items():
        print(f"{name:>7} {r['audio_s']:>8.2f} {r['words_per_minute']:>6.1f} {r['rms']:>6.3f} "
              f"{r['voiced_share']:>7.1%} {r['synthesis_s_median']:>8.3f} {r['real_time_factor']:>6.3f}")
    out = {"page": PAGE, "load": os.getloadavg(), "threads": 1, "voices": rows}
    (RESULTS / "voice_sample.json").write_text(json.dumps(out, indent=1))
    print(f"wrote {RESULTS / 'voice_sample.json'} and the WAVs in {RESULTS / 'voice_samples'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
