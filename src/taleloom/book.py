"""The records that flow through the pipeline. `Storybook` is saved as manifest.json after every stage.

Paths inside a book (photo, page images, audio) are relative to the book folder, so a book folder
can be moved or served as it is.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from taleloom import brief_text
from taleloom.errors import BadInputError

FORMAT_VERSION = 1
SEED_MAX = 2**32 - 1  # seeds are 0..2**32-1 everywhere: torch and llama.cpp take them, JSON carries them exactly
TEXT_LIMITS = {"tone": 100, "idea": 500, "description": 500}  # characters, after white space is collapsed
# denoising steps of one picture, wherever a person can ask for them (API, CLI, backend options): well past
# where quality stops improving (~50), and a bound on the work one request can ask of the illustrator
STEPS_MAX = 250
Steps = Annotated[int, Field(ge=1, le=STEPS_MAX, description=f"denoising steps (1-{STEPS_MAX})")]


def new_book_id() -> str:
    """Unguessable id (128 bits, URL-safe)."""
    return secrets.token_urlsafe(16)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Brief(Strict):
    """What the reader asked for."""

    pages: int = Field(4, ge=1, le=24, description="number of story pages")
    lang: str = Field("en", description="ISO 639-1 code of the reader's language")
    style: str = Field("storybook", description="illustration style preset name")
    hero: str | None = Field(None, description="hero's name; the LLM picks one when empty")
    age: int = Field(6, ge=2, le=14, description="reader's age, sets vocabulary and length")
    tone: str = Field("warm and gentle", description="tone of the story")
    idea: str | None = Field(None, description="one-line story idea (used with or instead of a photo)")
    description: str | None = Field(None, description="user's own description of the photo, merged into the caption")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="book seed; page seeds derive from it")
    temperature: float | None = Field(None, ge=0, le=2, description="story sampling temperature (default: the writer's)")
    top_p: float | None = Field(None, gt=0, le=1, description="story nucleus sampling (default: the writer's)")
    top_k: int | None = Field(None, ge=0, description="story top-k sampling, 0 = off (default: the writer's)")

    @field_validator("lang")
    @classmethod
    def _lang_code(cls, v: str) -> str:
        return v.strip().lower()  # "KO" and "ko " mean Korean too

    @field_validator("hero", "tone", "idea", "description")
    @classmethod
    def _plain_text(cls, v: str | None, info: ValidationInfo) -> str | None:
        """Free text is checked at the door (brief_text.py); a manifest read back from disk is taken as
        it was stored (context {"stored": True}), so books made before a rule tightened still open."""
        if v is None or (info.context or {}).get("stored"):
            return v
        field = info.field_name or "text"
        text = brief_text.hero_name(v) if field == "hero" else brief_text.clean(v, field, TEXT_LIMITS[field])
        if not text and field == "tone":
            raise ValueError("tone is empty; describe it in a few words (e.g. warm and gentle)")
        return text or None


class Caption(Strict):
    text: str
    concepts: list[str] = Field(default_factory=list, description="top concepts, best first")
    facts: dict[str, Any] = Field(default_factory=dict, description="plain image facts: colours, light, faces...")
    model_id: str = ""


class CastMember(Strict):
    name: str
    look: str = Field(description="what they look like, reused in every picture prompt")
    role: str = "hero"
    look_translated: str | None = None  # the look as the cover prints it, in brief.lang


class PageDraft(Strict):
    text: str
    scene: str = Field(description="what the picture shows, in English")
    outline: str = Field("", description="the plan's line for this page (extend continues from these)")


class Draft(Strict):
    title: str
    cast: list[CastMember]
    pages: list[PageDraft]
    notes: list[str] = Field(default_factory=list)  # what the writer had to do instead (kept in the manifest)


class ImageRequest(Strict):
    """One picture to draw. Big backends read `prompt`; the embedded one reads `concepts` when set."""

    prompt: str
    negative_prompt: str = ""
    concepts: list[str] = Field(default_factory=list)
    seed: int = Field(0, ge=0, le=SEED_MAX)
    steps: Steps = 20
    guidance: float = 3.0
    sampler: str = "dpmpp_2m"
    width: int | None = Field(None, ge=8, le=4096, description="None: the illustrator's native size (SDXL 1024)")
    height: int | None = Field(None, ge=8, le=4096)
    style: str = "storybook"
    hero_box: tuple[float, float, float, float] | None = Field(
        None, description="whole scenes (embedded illustrator): where the hero stands, (left, top, right, bottom) "
                          "in fractions of the picture; concepts[1], the setting or a friend, fills the rest, and "
                          "concepts[2], when given, is a thing beside them")
    hero_seed: int | None = Field(
        None, ge=0, le=SEED_MAX, description="whole scenes: the seed of the noise inside hero_box, the same on every "
                                             "page so the hero looks the same; `seed` draws the rest of the page")


class WordTiming(Strict):
    """When one word of a page's narration is spoken, in seconds from the start of the page's audio.

    Every narrator fills these (eSpeak NG from its phonemes and the audio's pauses, a neural voice from its
    phoneme durations); read-along highlighting and EPUB Media Overlays read them."""

    text: str  # the word as printed on the page (punctuation attached)
    start: float = Field(ge=0)
    end: float = Field(ge=0)


class PageCheck(Strict):
    """One look at a page's picture by the aligned encoder (stages/audit.py): is the hero there, is the
    setting there, does it look like the hero on the other pages; every attempt is kept."""

    attempt: int  # 0 = the first drawing, 1.. = redraws with a new seed
    seed: int
    hero: float  # share of the encoder's concepts the picture is less like than the hero (1 = nearest)
    setting: float  # the same for the scene's setting
    consistency: float  # cosine of the hero region's features with the other pages' mean
    passed: bool
    kept: bool = False  # this attempt's picture is the page's picture


class Page(Strict):
    index: int  # 1-based page number
    text: str  # English text from the writer
    scene: str
    outline: str = ""  # the plan's line for this page
    text_translated: str | None = None  # in brief.lang (same as text when lang is English)
    request: ImageRequest | None = None
    image: str | None = None  # relative path of the final picture
    image_lowres: str | None = None
    audio: str | None = None  # relative path of the narration
    audio_seconds: float | None = None
    words: list[WordTiming] | None = None  # when each word of the narration is spoken
    words_source: str | None = None  # how the timings were found ("espeak-ng phonemes + pauses", ...)
    checks: list[PageCheck] = Field(default_factory=list)  # the picture's audit, attempt by attempt


class TranslationRecord(Strict):
    """Whether the printed words are really in the reader's language (the book says so when not)."""

    lang: str
    status: Literal["translated", "partly", "not_translated"]
    kept_english: list[str] = Field(default_factory=list, description="printed texts left in English: title, "
                                                                     "cover, page N")
    checked_by: str = ""  # the language identifier that checked each translation
    kept_words: dict[str, str] = Field(default_factory=dict, description="translated texts that kept a few English "
                                                                        "words, and the words: {'page 2': 'fairy'}")


class EditionPage(Strict):
    """One page of an edition: its text and narration in the edition's language (the picture is the book's)."""

    index: int
    text: str
    kept_english: bool = False  # the LLM could not translate this page, so it is printed (and read) in English
    audio: str | None = None
    audio_seconds: float | None = None
    words: list[WordTiming] | None = None
    words_source: str | None = None


class Edition(Strict):
    """The same book in another language: same pictures, new text and narration, its own PDF and EPUB."""

    lang: str
    title: str
    pages: list[EditionPage]
    machine_translated: bool = True  # made by the LLM, not by a person
    translated: bool = True  # False when the LLM could not translate at all and the text stayed English
    model_id: str | None = None  # the LLM that translated
    source: str = ""  # fingerprint of the English text it was made from; another one means the book changed since
    created: str = Field(default_factory=now)
    notes: list[str] = Field(default_factory=list)  # the translate stage's warnings, the narrator's skips
    files: dict[str, str] = Field(default_factory=dict)  # "pdf" → relative path


class StageRecord(Strict):
    name: str
    status: Literal["pending", "running", "done", "failed", "skipped"] = "pending"
    started: str | None = None
    finished: str | None = None
    seconds: float | None = None
    model_seconds: float | None = None  # time spent inside models (for overhead figures)
    model_id: str | None = None
    message: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)  # settings the stage used (the writer's sampling)


class Change(Strict):
    """One edit of an existing book, kept in the manifest's history."""

    at: str = Field(default_factory=now)
    action: Literal["extend", "rewrite", "redraw", "translate", "retry"]
    page: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class Storybook(Strict):
    format_version: int = FORMAT_VERSION
    id: str = Field(default_factory=new_book_id)
    created: str = Field(default_factory=now)
    brief: Brief = Field(default_factory=Brief)
    photo: str | None = None  # relative path of the normalised input photo
    caption: Caption | None = None
    title: str | None = None
    title_translated: str | None = None
    translation: TranslationRecord | None = None
    cast: list[CastMember] = Field(default_factory=list)
    pages: list[Page] = Field(default_factory=list)
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    models: dict[str, str] = Field(default_factory=dict)  # role → model id used
    url: str | None = None
    files: dict[str, str] = Field(default_factory=dict)  # "pdf", "html", "qr" → relative path
    history: list[Change] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # what was done to the input (photo rotated, first GIF frame...)
    editions: dict[str, Edition] = Field(default_factory=dict)  # language code → the book in that language

    def stage_done(self, name: str) -> bool:
        rec = self.stages.get(name)
        return rec is not None and rec.status in ("done", "skipped")

    @property
    def text_lang(self) -> str:
        """The language the pages are actually in: the brief's, unless the LLM left every page in English. The
        one place this is decided: the PDF, HTML and EPUB take their `lang`, `dir` and fonts from it."""
        lang = self.brief.lang
        if lang == "en" or any(p.text_translated and p.text_translated != p.text for p in self.pages):
            return lang
        return "en"

    @property
    def wall_seconds(self) -> float:
        """Seconds the stages took on the clock: the union of their spans, so two stages that ran at once (the
        translation beside the pictures) count once; the sum of `seconds` counts them twice."""
        spans = sorted((t, t + r.seconds) for r in self.stages.values() if r.started and r.seconds is not None
                       for t in [datetime.fromisoformat(r.started).timestamp()])
        covered, end = 0.0, float("-inf")
        for start, stop in spans:
            if stop > end:
                covered, end = covered + stop - max(start, end), stop
        return covered

    @property
    def complete(self) -> bool:
        """Every stage finished (done or skipped); a new book holds a record of each (pipeline.STAGES)."""
        return bool(self.stages) and all(self.stage_done(name) for name in self.stages)

    def page(self, n: int) -> Page:
        """Page `n` (1-based); a number outside the book → BadInputError."""
        if not 1 <= n <= len(self.pages):
            raise BadInputError(f"page {n} does not exist; this book has {count(len(self.pages), 'page')}",
                                f"choose a page from 1 to {len(self.pages)}")
        return self.pages[n - 1]


def count(n: int, noun: str) -> str:
    """'1 page', '3 pages': for the messages people read."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
