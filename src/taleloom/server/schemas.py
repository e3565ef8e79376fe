"""Request and response bodies of the book API (`BookCreate` / `BookPublic` pairs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from taleloom.book import SEED_MAX, Brief, Storybook, WordTiming
from taleloom.config import share_url
from taleloom.render.labels import translation_notice
from taleloom.server.store import BookRow, Share

Status = Literal["queued", "running", "done", "failed"]


class BookCreate(Brief):
    """Form fields of POST /v1/books (next to the `photo` file): the Brief itself, every field of it
    (story sampling included), with the Brief's defaults and bounds. The server's own page limit
    (`max_pages`) is checked after."""

    model_config = ConfigDict(extra="ignore")  # the form also carries the photo part

    def brief(self) -> Brief:
        return Brief.model_validate(self.model_dump())


class StagePublic(BaseModel):
    name: str
    status: str
    seconds: float | None = None
    message: str | None = None


class PagePublic(BaseModel):
    index: int
    text: str | None = Field(None, description="the page text in the reader's language")
    text_en: str | None = Field(None, description="the page text as written (English)")
    scene: str | None = None
    image: str | None = Field(None, description="URL of the picture, once drawn")
    audio: str | None = Field(None, description="URL of the narration, once spoken")
    audio_seconds: float | None = None
    words: list[WordTiming] | None = Field(None, description="when each word of the narration is spoken (read-along)")


class Links(BaseModel):
    self: str
    events: str | None = None
    pdf: str | None = None
    epub: str | None = Field(None, description="EPUB 3 with narration and read-along, once the book is done")
    manifest: str | None = None
    html: str | None = None
    qr: str | None = None


class BookPublic(BaseModel):
    id: str
    status: Status
    title: str | None = None
    created: str
    updated: str | None = None
    brief: Brief | None = None
    stages: list[StagePublic] = Field(default_factory=list)
    current: dict | None = Field(None, description="the latest pipeline event while the book is being made")
    pages: list[PagePublic] = Field(default_factory=list)
    editions: list[EditionPublic] = Field(default_factory=list, description="the book in other languages")
    links: Links
    share_url: str | None = Field(None, description="read-only link (the QR code points here)")
    error: dict | None = None
    notice: str | None = Field(None, description="in the reader's language, when the text is not (all) "
                                                 "translated into it")


class BookSummary(BaseModel):
    id: str
    status: Status
    title: str | None = None
    pages: int
    created: str


class RedrawRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int | None = Field(None, ge=0, le=SEED_MAX,
                             description="new seed; default: the next seed after the page's current one")
    style: str | None = Field(None, description="another style preset for this page")


class RewriteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instruction: str = Field(min_length=1, max_length=500, description="what to change, e.g. 'make it funnier'")


class ExtendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pages: int = Field(2, ge=1, description="how many pages to add")


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int | None = Field(None, ge=0, le=SEED_MAX,
                             description="seed for the stages still to run; none: a new random seed")


class TranslateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    langs: list[str] = Field(min_length=1, max_length=8, description="languages to add, ISO 639-1 codes, e.g. ['de', 'fr']")


class EditionPublic(BaseModel):
    lang: str
    title: str
    machine_translated: bool = Field(description="translated by the LLM, not by a person")
    translated: bool = Field(description="false when the LLM could not translate and the text stayed English")
    current: bool = Field(description="false after a rewrite or extension: translate again to refresh it")
    pages_kept_english: list[int] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    pdf: str | None = None
    epub: str | None = None


class JobAccepted(BaseModel):
    id: str = Field(description="the book id")
    status: Status
    job: str
    links: Links


class SharePublic(BaseModel):
    id: str
    url: str
    created: str
    revoked: str | None = None


def share_public(share: Share, base_url: str) -> SharePublic:
    return SharePublic(id=share.id, url=share_url(base_url, share.id), created=share.created, revoked=share.revoked)


def book_public(row: BookRow, book: Storybook | None, base: str, current: dict | None = None,
                share_url: str | None = None, with_events: bool = True, lang: str | None = None) -> BookPublic:
    """The API's view of a book. `base` is the URL prefix its files hang under
    (/v1/books/{id} for the owner, /v1/shared/{share} for a share link); with `lang`, `book` is that
    edition's view (editions.view) and its narration URLs ask for that edition's audio."""
    pages: list[PagePublic] = []
    stages: list[StagePublic] = []
    files: dict[str, str] = {}
    if book is not None:
        version = len(book.history)  # changes when a page is redrawn, so browsers fetch the new picture
        for p in book.pages:
            pages.append(PagePublic(
                index=p.index, text=p.text_translated or p.text, text_en=p.text, scene=p.scene,
                image=f"{base}/pages/{p.index}.png?v={version}" if p.image else None,
                audio=f"{base}/audio/{p.index}.wav?v={version}{f'&lang={lang}' if lang else ''}" if p.audio else None,
                audio_seconds=p.audio_seconds, words=p.words if p.audio else None))
        stages = [StagePublic(name=s.name, status=s.status, seconds=s.seconds, message=s.message)
                  for s in book.stages.values()]
        files = book.files
    ready = row.status == "done" or "pdf" in files
    links = Links(self=base, events=f"{base}/events" if with_events else None,
                  pdf=f"{base}/book.pdf" if ready and "pdf" in files else None,
                  epub=f"{base}/book.epub" if row.status == "done" and "pdf" in files else None,
                  manifest=f"{base}/manifest.json" if with_events else None,
                  html=f"{base}/book.html" if "html" in files else None,
                  qr=f"{base}/qr.png" if "qr" in files else None)
    title = (book.title_translated or book.title) if book is not None else row.title
    editions = _editions(book, base, row.status == "done") if book is not None else []
    return BookPublic(id=row.id, status=row.status, title=title, created=row.created, updated=row.updated,
                      brief=book.brief if book is not None else None, stages=stages, current=current,
                      pages=pages, links=links, share_url=share_url, error=row.error, editions=editions,
                      notice=translation_notice(book) if book is not None else None)


def _editions(book: Storybook, base: str, done: bool) -> list[EditionPublic]:
    from taleloom.editions import is_current

    out = []
    for lang, e in sorted(book.editions.items()):
        current = is_current(book, e)
        out.append(EditionPublic(lang=lang, title=e.title, machine_translated=e.machine_translated,
                                 translated=e.translated, current=current, notes=e.notes,
                                 pages_kept_english=[p.index for p in e.pages if p.kept_english],
                                 pdf=f"{base}/book.pdf?lang={lang}" if current and done and "pdf" in e.files else None,
                                 epub=f"{base}/book.epub?lang={lang}" if current and done else None))
    return out
