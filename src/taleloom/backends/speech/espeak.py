"""espeak-ng narrator (Debian package `espeak-ng`): offline, every language it has a voice for."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from taleloom.backends.base import Narrator
from taleloom.backends.base import Options as BaseOptions
from taleloom.backends.speech.timing import Speech, align, clause_weights, split_words
from taleloom.errors import BackendError, BadInputError, ModelNotFoundError

SPEAK_TIMEOUT_S = 120  # a narration that takes longer is an error the caller hears, not a hung request
# ISO 639-1 codes whose espeak-ng voice has another name
ALIASES = {"zh": "cmn", "en": "en-us", "fr": "fr-fr", "no": "nb"}


class EspeakNarrator(Narrator):
    name = "espeak"
    binary: ClassVar[str] = "espeak-ng"

    class Options(BaseOptions):
        speed: int = Field(150, ge=80, le=450, description="words per minute (children's books read slowly)")
        pitch: int = Field(50, ge=0, le=99)
        gap: int = Field(4, ge=0, le=100, description="pause between words, in 10 ms units")

    def __init__(self, location: str | None = None, model: str | None = None, **options):
        self.options = self.Options(**options)
        self.path = location or shutil.which(self.binary)
        self.model_id = f"espeak-ng{'#' + model if model else ''}"
        self.voice_override = model

    def ready(self) -> tuple[bool, str]:
        if not self.path or not Path(self.path).exists():
            return False, "espeak-ng is not installed (apt-get install espeak-ng)"
        return True, f"{len(self.languages())} languages"

    def languages(self) -> set[str]:
        """Language codes with a voice, from `espeak-ng --voices` (plus the ISO aliases we map)."""
        if not self.path:
            return set()
        codes = _voices(self.path)
        return codes | {iso for iso, voice in ALIASES.items() if voice in codes}

    def voice_for(self, language: str) -> str:
        """The espeak-ng voice for an ISO code; an unsupported one → BadInputError listing the known ones."""
        if self.voice_override:
            return self.voice_override
        lang = language.strip().lower().replace("_", "-")
        known = _voices(self._binary())
        base = lang.split("-")[0]
        for cand in (ALIASES.get(lang), lang, ALIASES.get(base), base):
            if cand and cand in known:
                return cand
        regional = sorted(v for v in known if v.startswith(base + "-"))
        if regional:
            return regional[0]
        raise BadInputError(f"espeak-ng has no voice for language {language!r}",
                            f"narration needs one of: {', '.join(sorted(self.languages()))}")

    def speak(self, text: str, language: str) -> bytes:
        voice = self.voice_for(language)
        return self._synthesise(text, voice)

    def speak_words(self, text: str, language: str) -> Speech:
        """The narration and its word timings: each word's length from the phonemes eSpeak NG reads it
        with (`-x`), placed on the pauses of the audio it made (see backends/speech/timing.py)."""
        voice = self.voice_for(language)
        audio = self.speak(text, language)
        words = split_words(text)
        weights = clause_weights(words, self.phonemes(text, voice))
        if weights is not None:
            return Speech(audio, align(words, audio, weights), "espeak-ng phonemes + pauses")
        return Speech(audio, align(words, audio), "espeak-ng audio pauses + letters")

    def phonemes(self, text: str, voice: str) -> list[list[str]]:
        """eSpeak NG's phoneme mnemonics (`-x`): one list per clause it reads, one string per word."""
        try:
            proc = subprocess.run([self._binary(), "-q", "-x", "-v", voice, "--stdin"], input=text.encode("utf-8"),
                                  capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:  # timings then fall back to letters; never an unhandled error
            return []
        if proc.returncode != 0:
            return []
        return [line.split() for line in proc.stdout.decode("utf-8", errors="replace").splitlines() if line.split()]

    def _synthesise(self, text: str, voice: str) -> bytes:
        o = self.options
        with tempfile.TemporaryDirectory(prefix="taleloom-espeak-") as tmp:
            out = Path(tmp) / "speech.wav"
            cmd = [self._binary(), "-v", voice, "-s", str(o.speed), "-p", str(o.pitch), "-g", str(o.gap),
                   "-w", str(out), "--stdin"]
            try:
                proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, timeout=SPEAK_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise BackendError(f"espeak-ng did not finish reading {len(text)} characters within "
                                   f"{SPEAK_TIMEOUT_S} s (voice {voice!r})",
                                   "send shorter text, or try again when the server is less busy") from None
            if proc.returncode != 0 or not out.exists() or out.stat().st_size <= 44:
                raise BackendError(f"espeak-ng failed for voice {voice!r}: {proc.stderr.decode(errors='replace')[:300]}",
                                   "check that espeak-ng and espeak-ng-data are installed")
            return out.read_bytes()

    def _binary(self) -> str:
        if not self.path:
            raise ModelNotFoundError("espeak-ng is not installed", "apt-get install espeak-ng (or run `make install`)")
        return self.path


@functools.cache
def _voices(binary: str) -> frozenset[str]:
    proc = subprocess.run([binary, "--voices"], capture_output=True, text=True, timeout=30)
    codes = set()
    for line in proc.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2:
            codes.add(parts[1].lower())
    return frozenset(codes)
