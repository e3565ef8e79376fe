"""/v1/audio/speech in OpenAI's shape: any narrator's WAV, encoded as mp3 (OpenAI's default), opus,
aac, flac, wav or pcm and sped up or slowed down by ffmpeg (taleloom.audio_formats).

Voices: our narrators read a *language*, so `voice` is either a language code the narrator has a
voice for (it then picks the language) or one of OpenAI's voice names, which all mean "the narrator's
voice for `language`". GET /v1/models lists them on the narrator's entry (`voices`)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from taleloom.audio_formats import FORMATS, SPEED_RANGE, encode, media_type
from taleloom.deadline import Scope
from taleloom.errors import BadInputError
from taleloom.server.cancellable import run_step
from taleloom.server.deps import SettingsDep, StepUserDep

router = APIRouter(tags=["single steps (OpenAI shapes)"])
OPENAI_VOICES = ("alloy", "ash", "ballad", "cedar", "coral", "echo", "fable", "marin", "nova", "onyx", "sage",
                 "shimmer", "verse")
AudioFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
assert set(AudioFormat.__args__) == set(FORMATS)  # type: ignore[attr-defined]


def voices(narrator) -> list[str]:
    """What `voice` may be: OpenAI's names, then the narrator's language codes."""
    return [*OPENAI_VOICES, *sorted(narrator.languages())]


class Speech(BaseModel):
    model_config = ConfigDict(extra="ignore")  # instructions, stream_format...
    input: str = Field(min_length=1, max_length=4096)
    model: str | None = None
    voice: str | None = Field(None, description="an OpenAI voice name (the narrator's voice for `language`) or a "
                                                "language code; GET /v1/models lists them")
    language: str = Field("en", description="ISO 639-1 code (Taleloom's addition to the OpenAI shape)")
    response_format: AudioFormat = Field("mp3", description="OpenAI's default is mp3; pcm is raw 24 kHz s16le mono")
    speed: float = Field(1.0, ge=SPEED_RANGE[0], le=SPEED_RANGE[1], description="0.25 to 4, pitch kept")


@router.post("/v1/audio/speech", response_class=Response, summary="Read text aloud (mp3, opus, aac, flac, wav, pcm)",
             responses={200: {"content": {media_type(f): {} for f in FORMATS}}})
async def audio_speech(body: Speech, request: Request, user: StepUserDep, settings: SettingsDep):
    narrator = request.app.state.backends.narrator

    def speak() -> bytes:  # in a worker thread: languages() may ask the narrator's program
        language = body.language
        if body.voice and body.voice not in OPENAI_VOICES:
            known = narrator.languages()
            if body.voice not in known:
                raise BadInputError(f"voice {body.voice!r} is not one this narrator has",
                                    f"use one of OpenAI's names ({', '.join(OPENAI_VOICES[:4])}...) or a language "
                                    f"code: {', '.join(sorted(known)) or 'none listed'}")
            language = body.voice
        return encode(narrator.speak(body.input, language), body.response_format, body.speed)

    scope = Scope(settings.speech_deadline_s, "the speech request", "speech_deadline_s")
    return Response(await run_step(request, scope, speak), media_type=media_type(body.response_format))
