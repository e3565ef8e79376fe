"""The five backend roles. Each backend is one small class: capabilities as class attributes,
a nested pydantic `Options` that rejects unknown fields, and one main method.

Backends are constructed by the registry from a spec string (``name[:location][#model]``);
the constructor receives ``location`` and ``model`` (both may be None) plus Options fields.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from taleloom.book import SEED_MAX, Caption, ImageRequest

if TYPE_CHECKING:
    from taleloom.backends.speech.timing import Speech


class Options(BaseModel):
    """Base for every backend's options: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Sampling(Options):
    """LLM sampling settings (talk 001: temperature, top-p, top-k)."""

    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(40, ge=0)
    repeat_penalty: float = Field(1.1, ge=1.0, le=2.0)
    max_tokens: int = Field(512, ge=1, le=8192)
    seed: int | None = Field(None, ge=0, le=SEED_MAX)


class Backend(ABC):
    """Common shape. `model_id` names exactly which model answered (goes to the manifest)."""

    role: ClassVar[str]
    name: ClassVar[str]
    model_id: str = ""

    class Options(Options):
        pass

    def ready(self) -> tuple[bool, str]:
        """(is it usable now, a one-line reason) — shown by `taleloom models`."""
        return True, "ok"


class TextModel(Backend):
    role = "llm"
    can_stream: ClassVar[bool] = False
    supports_schema: ClassVar[bool] = False

    @abstractmethod
    def chat(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
             schema: dict[str, Any] | None = None) -> str:
        """Answer a chat; with `schema`, the answer is JSON that validates against it."""

    def stream(self, messages: list[dict[str, str]], sampling: Sampling | None = None) -> Iterator[str]:
        yield self.chat(messages, sampling)


class Captioner(Backend):
    role = "captioner"

    @abstractmethod
    def caption(self, image: Image.Image, hint: str | None = None) -> Caption:
        """Describe a photo. `hint` is the user's own description, merged in when given."""


class Illustrator(Backend):
    role = "illustrator"
    max_batch: ClassVar[int] = 4  # requests per call the backend handles at once

    @abstractmethod
    def generate(self, requests: list[ImageRequest]) -> list[Image.Image]:
        """Draw one picture per request (batched where the backend can)."""

    def img2img(self, request: ImageRequest, image: Image.Image, strength: float = 0.6) -> Image.Image:
        raise NotImplementedError(f"{self.name} does not support img2img")

    def inpaint(self, request: ImageRequest, image: Image.Image, mask: Image.Image) -> Image.Image:
        raise NotImplementedError(f"{self.name} does not support inpainting")


class Upscaler(Backend):
    role = "upscaler"

    max_batch: int = 1  # pictures one upscale_batch call takes at once

    @abstractmethod
    def upscale(self, image: Image.Image, factor: int = 4, prompt: str = "", seed: int = 0) -> Image.Image:
        """Return the image `factor` times larger."""

    def upscale_batch(self, images: list[Image.Image], factor: int = 4, prompts: list[str] | None = None,
                      seeds: list[int] | None = None) -> list[Image.Image]:
        """Several pictures at once; a backend that batches its model calls overrides this."""
        prompts, seeds = prompts or [""] * len(images), seeds or [0] * len(images)
        return [self.upscale(im, factor, p, s) for im, p, s in zip(images, prompts, seeds, strict=True)]


class Narrator(Backend):
    role = "narrator"

    @abstractmethod
    def speak(self, text: str, language: str) -> bytes:
        """Read `text` aloud in `language` (ISO code); return a WAV file's bytes."""

    def speak_words(self, text: str, language: str) -> Speech:
        """Read `text` aloud and say when each printed word is spoken. This default places the words on
        the audio's pauses by their letters; a narrator that knows its phonemes or durations overrides it."""
        from taleloom.backends.speech.timing import Speech, align, split_words

        audio = self.speak(text, language)
        return Speech(audio, align(split_words(text), audio), "audio pauses + letters")

    def languages(self) -> set[str]:
        return set()
