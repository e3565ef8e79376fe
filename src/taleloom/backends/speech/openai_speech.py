"""Narrator over any OpenAI-compatible ``/v1/audio/speech`` endpoint (OpenAI, Kokoro-FastAPI, openedai-speech,
LocalAI...). Spec: ``openai:http://127.0.0.1:8880/v1#kokoro``; the answer is asked for, and checked, as WAV."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import Field

from taleloom.backends.base import Narrator
from taleloom.backends.openai_http import ServerOptions, make_client, server_ready
from taleloom.errors import BackendError, BadInputError


class OpenAINarrator(Narrator):
    name = "openai"

    class Options(ServerOptions):
        voice: str = Field("alloy", description="voice name the server knows")
        voices: dict[str, str] = Field(default_factory=dict, description="language code → voice, overrides `voice`")
        speed: float = Field(1.0, ge=0.25, le=4.0)
        max_chars: int = Field(4096, ge=1, description="the OpenAI API's limit per request")

    def __init__(self, location: str | None = None, model: str | None = None,
                 transport: httpx.BaseTransport | None = None, **options: Any):
        self.options = self.Options(**options)
        self.client = make_client(location, self.options, transport)
        self.model = model or "tts-1"

    @property
    def model_id(self) -> str:  # type: ignore[override]
        return f"openai:{self.model}@{self.client.base_url}"

    def ready(self) -> tuple[bool, str]:
        return server_ready(self.client)

    def languages(self) -> set[str]:
        return set(self.options.voices)  # empty: the server decides (most multilingual voices read any text)

    def speak(self, text: str, language: str) -> bytes:
        if not text.strip():
            raise BadInputError("nothing to read aloud: the text is empty", "give the page some text")
        if len(text) > self.options.max_chars:
            raise BadInputError(f"text of {len(text)} characters is longer than {self.options.max_chars}",
                                "split it into pages, or raise the `max_chars` option if your server allows it")
        payload = {"model": self.model, "input": text, "response_format": "wav", "speed": self.options.speed,
                   "voice": self.options.voices.get(language, self.options.voice)}
        audio = self.client.post_bytes("audio/speech", payload)
        if audio[:4] != b"RIFF" or audio[8:12] != b"WAVE":
            raise BackendError(f"{self.client.base_url}/audio/speech did not answer with WAV audio "
                               f"(starts with {audio[:12]!r})",
                               "use a speech server that supports response_format='wav'")
        return audio
