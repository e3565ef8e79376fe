"""The five backend roles. Each backend is one small class: capabilities as class attributes,
a nested pydantic `Options` that rejects unknown fields, and one main method.

Backends are constructed by the registry from a spec string (``name[:location][#model]``);
the constructor receives ``location`` and ``model`` (both may be None) plus Options fields.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

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
    stop: list[str] = Field(default_factory=list, max_length=4,
                            description="the answer ends before the first of these strings (not included)")


FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Usage:
    """Tokens one chat call read and wrote, as OpenAI clients read `usage`. `estimated`: the backend
    could not count, so the numbers come from `estimate_tokens` (about 4 characters a token)."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Answer:
    """A chat answer with why it ended: "length" when max_tokens cut it, "stop" otherwise."""

    text: str
    finish_reason: FinishReason
    usage: Usage


@dataclass(frozen=True)
class Piece:
    """One step of a streamed answer: text as it comes; the last piece carries finish_reason and usage."""

    text: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


def estimate_tokens(text: str) -> int:
    """OpenAI's rule of thumb (about 4 characters a token) for backends that cannot count."""
    return (len(text) + 3) // 4


def estimate_usage(messages: list[dict[str, Any]], answer: str) -> Usage:
    prompt = sum(estimate_tokens(str(m.get("content", ""))) + 4 for m in messages)  # + role and separators
    return Usage(prompt, estimate_tokens(answer), estimated=True)


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """`text` up to the first stop string (excluded) and whether one was found."""
    ends = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[:min(ends)], True) if ends else (text, False)


class StopCutter:
    """Cuts a streamed answer at the first stop string, holding back only text that could start one."""

    def __init__(self, stop: list[str]):
        self.stop = [s for s in stop if s]
        self.held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The text that is safe to send now."""
        if self.stopped:
            return ""
        self.held += piece
        text, self.stopped = cut_at_stop(self.held, self.stop)
        if self.stopped:
            self.held = ""
            return text
        hold = next((k for k in range(min(len(self.held), max(map(len, self.stop), default=1) - 1), 0, -1)
                     if any(s.startswith(self.held[-k:]) for s in self.stop)), 0)
        out, self.held = self.held[:len(self.held) - hold], self.held[len(self.held) - hold:]
        return out

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out


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
    """`chat` (text) is all a backend must write. `answer` and `answer_stream` add the finish reason and
    token counts the OpenAI chat API reports; a backend that knows them overrides those two and
    derives `chat`/`stream` from them. The defaults here estimate the counts, apply `sampling.stop`
    after the fact, and always say "stop"."""

    role = "llm"
    can_stream: ClassVar[bool] = False
    supports_schema: ClassVar[bool] = False
    # can plan a book and write its pages in one structured answer (False: the write stage asks for one plain
    # story instead, as for the 135M fast preset, whose plans fail their checks)
    writes_plans: ClassVar[bool] = True
    # can translate a book (False: the translate stage keeps the English and says so without asking, as for
    # the 135M fast preset, whose "translations" read back as unrelated text: benchmarks/story_quality.py)
    translates: ClassVar[bool] = True

    @abstractmethod
    def chat(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
             schema: dict[str, Any] | None = None) -> str:
        """Answer a chat; with `schema`, the answer is JSON that validates against it."""

    def preload(self, prefixes: Sequence[list[dict[str, str]]] = ()) -> None:
        """Load the model now, so that its first answer does not wait for it: the orchestrator calls this on
        a background thread while the photo is looked at (a local model's child process loads it on the
        other core). `prefixes`: conversations that later calls start with (the write stage's
        instructions); a model that reuses prompt prefixes exactly (the local GGUF's model process)
        evaluates them now. Nothing to do for a server."""

    def stream(self, messages: list[dict[str, str]], sampling: Sampling | None = None) -> Iterator[str]:
        yield self.chat(messages, sampling)

    def answer(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
               schema: dict[str, Any] | None = None) -> Answer:
        """`chat` with its finish reason and token counts."""
        text, _ = cut_at_stop(self.chat(messages, sampling, schema), sampling.stop if sampling else [])
        return Answer(text, "stop", estimate_usage(messages, text))

    def answer_stream(self, messages: list[dict[str, str]], sampling: Sampling | None = None) -> Iterator[Piece]:
        """`stream` as Pieces; the last one (text "") has finish_reason and usage."""
        cutter, sent = StopCutter(sampling.stop if sampling else []), []
        for piece in self.stream(messages, sampling):
            if text := cutter.feed(piece):
                sent.append(text)
                yield Piece(text)
            if cutter.stopped:
                break
        if text := cutter.flush():
            sent.append(text)
            yield Piece(text)
        yield Piece("", "stop", estimate_usage(messages, "".join(sent)))


class Captioner(Backend):
    role = "captioner"
    # capability: the captioner words its captions with the LLM; the pool then hands it the pooled LLM
    # (the same backend and concurrency limit the stories use) through `use_llm`
    uses_llm: ClassVar[bool] = False

    def use_llm(self, llm: TextModel) -> None:
        """Word captions with `llm` (called by the pool when `uses_llm`). A backend object, never a closure."""

    @abstractmethod
    def caption(self, image: Image.Image, hint: str | None = None) -> Caption:
        """Describe a photo. `hint` is the user's own description, merged in when given."""


class Illustrator(Backend):
    role = "illustrator"
    max_batch: int = 4  # requests per call the backend handles at once (the pool's batcher fills up to it)
    # capability: the model only knows a fixed concept vocabulary (the embedded one), so the stage maps each
    # scene onto it with `nearest_concepts`, and `aligned` (its aligned image encoder) can check the pictures
    draws_concepts: bool = False

    def nearest_concepts(self, text: str, k: int = 5) -> list[str]:
        """The `k` concept names nearest to `text`, best first (only when `draws_concepts`)."""
        raise NotImplementedError(f"{self.name} draws full prompts, not concepts")

    def concept_vocabulary(self) -> list[str]:
        """Every concept name the model draws (when `draws_concepts`): the stage looks for them word for word
        in a scene before it asks for the nearest ones. Empty: not listed (the stage asks for the nearest)."""
        return []

    @property
    def aligned(self) -> Any:
        """The aligned image encoder that checks this illustrator's pictures, or None."""
        return None

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
        """ISO codes this narrator can read; empty when it cannot tell (then every language is tried)."""
        return set()

    def voice_for(self, language: str) -> str:
        """The voice that reads `language`; BadInputError naming the known languages when there is none."""
        supported = self.languages()
        if supported and language not in supported:
            from taleloom.errors import BadInputError

            raise BadInputError(f"{self.name} cannot read language {language!r}",
                                f"narration needs one of: {', '.join(sorted(supported))}")
        return language
