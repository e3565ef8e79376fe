"""Captioner over any OpenAI-compatible vision chat endpoint (vLLM, Ollama, llama.cpp server, GPT-4o).

Spec: ``openai:http://127.0.0.1:11434/v1#llava:7b``. The photo travels inside the request as a JPEG data URL;
the chat itself (retries, JSON-schema format probing) is the OpenAI TextModel's.
"""

from __future__ import annotations

from typing import Any

import httpx
from PIL import Image
from pydantic import Field

from taleloom.backends.base import Captioner, Sampling
from taleloom.backends.llm.openai_compat import OpenAITextModel
from taleloom.backends.openai_http import ServerOptions
from taleloom.backends.vision.describe import CAPTION_SCHEMA, chat_messages, parse_caption
from taleloom.book import Caption


class OpenAICaptioner(Captioner):
    name = "openai"

    class Options(ServerOptions):
        max_side: int = Field(1024, ge=64, le=4096, description="longer side of the image sent, in pixels")
        max_tokens: int = Field(300, ge=16, le=4096)
        temperature: float = Field(0.2, ge=0.0, le=2.0)
        json_schema: bool = Field(True, description="ask for the caption as JSON by schema (response_format)")

    def __init__(self, location: str | None = None, model: str | None = None,
                 transport: httpx.BaseTransport | None = None, **options: Any):
        self.options = self.Options(**options)
        server = self.options.model_dump(include=set(ServerOptions.model_fields))
        self.chat_model = OpenAITextModel(location, model, transport=transport, extended_sampling=False, **server)

    @property
    def model_id(self) -> str:  # type: ignore[override]
        return self.chat_model.model_id

    def ready(self) -> tuple[bool, str]:
        return self.chat_model.ready()

    def caption(self, image: Image.Image, hint: str | None = None) -> Caption:
        sampling = Sampling(temperature=self.options.temperature, max_tokens=self.options.max_tokens)
        schema = CAPTION_SCHEMA if self.options.json_schema else None
        text = self.chat_model.complete(chat_messages(image, hint, self.options.max_side), sampling, schema,
                                        check_json=False)  # plain prose still makes a caption
        return parse_caption(text, hint, self.model_id)
