"""Audio in the formats OpenAI's speech API answers in (mp3, opus, aac, flac, wav, pcm), encoded
from a narrator's WAV by ffmpeg (Debian package `ffmpeg`, run as a program), with an optional speed
change that keeps the pitch (ffmpeg's `atempo`). Every narrator writes WAV, so every voice gets every
format."""

from __future__ import annotations

import shutil
import subprocess

from taleloom.errors import BackendError, ModelNotFoundError

# format -> (ffmpeg output arguments, media type). pcm is OpenAI's: raw 24 kHz 16-bit little-endian mono.
FORMATS: dict[str, tuple[list[str], str]] = {
    "mp3": (["-f", "mp3", "-c:a", "libmp3lame", "-q:a", "5"], "audio/mpeg"),  # VBR, ~130 kb/s at 44.1 kHz
    "opus": (["-f", "ogg", "-c:a", "libopus", "-b:a", "32k"], "audio/ogg"),
    "aac": (["-f", "adts", "-c:a", "aac", "-b:a", "64k"], "audio/aac"),
    "flac": (["-f", "flac"], "audio/flac"),
    "wav": (["-f", "wav", "-c:a", "pcm_s16le"], "audio/wav"),
    "pcm": (["-f", "s16le", "-c:a", "pcm_s16le", "-ar", "24000", "-ac", "1"], "audio/pcm"),
}
SPEED_RANGE = (0.25, 4.0)


def media_type(fmt: str) -> str:
    return FORMATS[fmt][1]


def tempo_filter(speed: float) -> str:
    """ffmpeg atempo chain for `speed`; one atempo stage takes 0.5 to 2, so slower speeds chain stages."""
    stages = []
    while speed < 0.5:
        stages.append(0.5)
        speed /= 0.5
    while speed > 2.0:
        stages.append(2.0)
        speed /= 2.0
    stages.append(speed)
    return ",".join(f"atempo={s:.6g}" for s in stages)


def encode(wav: bytes, fmt: str, speed: float = 1.0, timeout: float = 120.0) -> bytes:
    """`wav` (a WAV file's bytes) as `fmt`, played `speed` times as fast."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown audio format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "wav" and speed == 1.0:
        return wav
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ModelNotFoundError(f"ffmpeg is needed for {fmt} audio{' and speed' if speed != 1.0 else ''}, "
                                 "and it is not installed", "apt-get install ffmpeg, or ask for response_format "
                                 "'wav' at speed 1")
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "wav", "-i", "pipe:0"]
    if speed != 1.0:
        cmd += ["-filter:a", tempo_filter(speed)]
    try:
        done = subprocess.run([*cmd, *FORMATS[fmt][0], "pipe:1"], input=wav, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BackendError(f"ffmpeg took over {timeout:.0f} s to encode {fmt}", "send shorter text") from None
    if done.returncode != 0 or not done.stdout:
        raise BackendError(f"ffmpeg could not encode the narration as {fmt}: "
                           f"{done.stderr.decode(errors='replace').strip()[:300]}",
                           "the narrator's WAV may be malformed; try response_format 'wav'")
    return done.stdout
