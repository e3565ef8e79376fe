"""Book routes: make a book, follow it live, download it, edit it, delete it. Owner only."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse

from taleloom import orchestrator
from taleloom.book import Brief, Storybook, new_book_id
from taleloom.config import Settings, share_url
from taleloom.errors import BadInputError
from taleloom.server.deps import (
    BookDep,
    HTTPError,
    JobsDep,
    SettingsDep,
    StoreDep,
    UserDep,
    book_storage,
    not_found,
)
from taleloom.server.events import EventHub
from taleloom.server.manifests import ManifestCache
from taleloom.server.schemas import (
    BookCreate,
    BookPublic,
    BookSummary,
    ExtendRequest,
    JobAccepted,
    Links,
    RedrawRequest,
    RetryRequest,
    RewriteRequest,
    TranslateRequest,
    book_public,
)
from taleloom.server.store import BookRow, Job, Store

router = APIRouter(prefix="/v1/books", tags=["books"])
KEEPALIVE_S = 15.0
ENDED = ("done", "failed", "deleted")  # statuses after which a book's events stream ends


# checks ---------------------------------------------------------------------------------------
def check_queue(store: Store, settings: Settings, user_id: str) -> None:
    """429 when the caller, or the whole server, has too many jobs waiting or running."""
    mine = store.count_active(user_id)
    if mine >= settings.max_queue_per_user:
        raise HTTPError(429, "QueueFull", f"you have {mine} jobs queued or running; "
                        f"the limit is {settings.max_queue_per_user} per user",
                        "wait until one of your books is done (GET /v1/books lists them), then send this again",
                        headers={"Retry-After": "30"})
    total = store.count_active()
    if total >= settings.max_queue_total:
        raise HTTPError(429, "ServerBusy", f"the server has {total} jobs queued or running; "
                        f"the limit is {settings.max_queue_total}",
                        "try again in a minute", headers={"Retry-After": "60"})


def check_pages(pages: int, settings: Settings) -> None:
    if pages > settings.max_pages:
        raise BadInputError(f"{pages} pages asked for; this server makes books of at most "
                            f"{settings.max_pages} pages", f"ask for {settings.max_pages} pages or fewer")


def check_form(request: Request) -> None:
    """A book is a form (fields + a photo file): a JSON body would otherwise be read as an empty form
    and get a puzzling "no photo, no idea" answer."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise HTTPError(415, "UnsupportedMediaType",
                        f"POST /v1/books takes multipart/form-data, not {kind or 'a body without a Content-Type'}",
                        "send the brief as form fields and the photo as the file field 'photo' "
                        "(curl -F pages=4 -F photo=@cat.jpg ...)")


# helpers shared with the share routes ---------------------------------------------------------
_manifests = ManifestCache()


def load_manifest(settings: Settings, book_id: str) -> Storybook | None:
    """The book's manifest, parsed again only when its file changed (server/manifests.py): read it, don't
    change it. None when it is not written yet or the folder was deleted."""
    try:
        folder = book_storage(settings).folder(book_id)
    except ValueError:  # not a book id
        return None
    return _manifests.get(folder)


def book_file(settings: Settings, row: BookRow, name: str, label: str | None = None,
              lang: str | None = None) -> FileResponse:
    """One of the book's files by its public name: book.pdf, book.html, manifest.json, qr.png,
    pages/N.png, audio/N.wav. Paths come from the manifest, never from the URL. `label` is how errors
    name the book (a share link's reader must not learn the owner's book id)."""
    book = load_manifest(settings, row.id)
    if lang and book is not None:  # an edition's narration (editions.view)
        book = edition_or_404(book, lang)
    rel: str | None = None
    if name == "manifest.json":
        rel = "manifest.json" if book else None
    elif name in ("book.pdf", "book.html", "qr.png") and book is not None:
        rel = book.files.get({"book.pdf": "pdf", "book.html": "html", "qr.png": "qr"}[name])
    elif book is not None and "/" in name:
        kind, _, file = name.partition("/")
        n = file.rsplit(".", 1)[0]
        page = next((p for p in book.pages if str(p.index) == n), None)
        if page is not None:
            rel = page.image if kind == "pages" else page.audio
    path = book_storage(settings).file(row.id, rel) if rel else None
    if path is None:
        raise HTTPError(404, "NotReady" if row.status in ("queued", "running") else "NotFound",
                        f"{name} of {label or 'book ' + row.id} is not there" + (f" yet (status {row.status})"
                                                                   if row.status in ("queued", "running") else ""),
                        "wait for status 'done' (follow the events stream)" if row.status != "done"
                        else "check the page number against the book's pages")
    media = {".pdf": "application/pdf", ".png": "image/png", ".wav": "audio/wav", ".json": "application/json",
             ".html": "text/html; charset=utf-8"}.get(path.suffix, "application/octet-stream")
    return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=0, must-revalidate"})


def _finished(settings: Settings, row: BookRow, what: str, label: str | None = None) -> Storybook:
    book = load_manifest(settings, row.id)
    if book is None or row.status != "done" or not book.stage_done("bind"):
        raise HTTPError(404, "NotReady" if row.status in ("queued", "running") else "NotFound",
                        f"{label or 'book ' + row.id} has no {what} yet (status {row.status})",
                        "wait for status 'done' (follow the events stream)")
    return book


def edition_or_404(book: Storybook, lang: str | None) -> Storybook:
    """The book as its `lang` edition reads; an unknown or stale one → 404 naming the languages there are."""
    from taleloom.editions import view

    try:
        return view(book, lang.strip().lower() if lang else None)
    except BadInputError as e:
        raise HTTPError(404, "NotFound", e.message, e.hint) from None


def book_epub(settings: Settings, row: BookRow, lang: str | None = None, label: str | None = None) -> FileResponse:
    """The finished book's EPUB (or its `lang` edition's), made on first request and again after each change.
    `label` names the book in errors (a share link's reader must not learn the owner's book id)."""
    from taleloom.editions import epub_path

    book = _finished(settings, row, "EPUB", label)
    shown = edition_or_404(book, lang)
    path = epub_path(book_storage(settings).folder(row.id), book, shown.brief.lang if shown is not book else None)
    return FileResponse(path, media_type="application/epub+zip", filename=_download_name(shown, ".epub"),
                        headers={"Cache-Control": "private, max-age=0, must-revalidate"})


def edition_pdf(settings: Settings, row: BookRow, lang: str, label: str | None = None) -> FileResponse:
    """The PDF of the book's `lang` edition (`label` as for `book_epub`)."""
    book = _finished(settings, row, "PDF", label)
    shown = edition_or_404(book, lang)
    rel = shown.files.get("pdf") if shown is not book else book.files.get("pdf")
    path = book_storage(settings).file(row.id, rel) if rel else None
    if path is None:
        raise HTTPError(404, "NotFound", f"the {lang} edition of {label or 'book ' + row.id} has no PDF",
                        "ask the book's owner for it" if label else f"make it again: POST /v1/books/{row.id}:translate")
    return FileResponse(path, media_type="application/pdf", filename=_download_name(shown, ".pdf"),
                        headers={"Cache-Control": "private, max-age=0, must-revalidate"})


def _download_name(book: Storybook, suffix: str) -> str:
    title = "".join(c for c in (book.title_translated or book.title or "storybook") if c.isalnum() or c in " _-")
    return (title.strip() or "storybook") + suffix


def first_share_url(request: Request, store: Store, book_id: str) -> str | None:
    share = store.first_share(book_id)
    return share_url(request.app.state.settings.base_url, share.id) if share else None


# routes ---------------------------------------------------------------------------------------
@router.post("", status_code=202, response_model=BookPublic, summary="Make a book from a photo and a brief")
async def create_book(request: Request, user: UserDep, settings: SettingsDep, store: StoreDep, jobs: JobsDep,
                      form: Annotated[BookCreate, Form()],
                      photo: Annotated[UploadFile | None, File(description="JPEG/PNG/WebP photo")] = None):
    check_form(request)
    check_pages(form.pages, settings)  # the server's limit first: it is lower than the Brief's own
    brief = form.brief()
    orchestrator.validate_brief(brief)  # style and language known
    data = await photo.read() if photo is not None and photo.filename else None
    if data is None and not brief.idea:
        raise BadInputError("neither a photo nor a story idea was sent",
                            "attach a photo as the multipart field 'photo', or give an 'idea'")
    check_queue(store, settings, user.id)
    row, job, book = await run_in_threadpool(_create, settings, store, user.id, brief, data)
    jobs.submit(job)
    return book_public(row, book, f"/v1/books/{row.id}", share_url=book.url)


def _create(settings: Settings, store: Store, user_id: str, brief: Brief,
            photo: bytes | None) -> tuple[BookRow, Job, Storybook]:
    book_id, share_id = new_book_id(), new_book_id()
    storage = book_storage(settings)
    folder = storage.folder(book_id)
    try:
        # the QR code points at the share link, not at the owner's id
        book = orchestrator.create_book(folder, brief, photo, share_url(settings.base_url, share_id), photo_limits={
            "max_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels})
        with store.exclusive("submit"):  # queue-limit check and insert together, across API processes
            check_queue(store, settings, user_id)
            job = store.add_book(book_id, user_id, brief.pages, share_id=share_id)
    except BaseException:
        storage.delete(book_id)
        raise
    return store.get_book(book_id), job, book


@router.get("", response_model=list[BookSummary], summary="Your books, newest first")
def list_books(user: UserDep, store: StoreDep):
    return [BookSummary(id=b.id, status=b.status, title=b.title, pages=b.pages, created=b.created)
            for b in store.list_books(user.id)]


@router.get("/{book_id}", response_model=BookPublic, summary="Status, stages and pages of a book")
async def get_book(book: BookDep, request: Request, settings: SettingsDep, store: StoreDep, jobs: JobsDep,
                   lang: str | None = None) -> Response:
    """Polled often while a book is made, so it stays on the event loop: indexed lookups and a manifest
    parsed only when it changed cost less than a hop to the thread pool, which under load waits behind the
    job threads. Serialised once here: FastAPI would dump, validate and dump the answer again.
    `?lang=` shows an edition's text, title and narration (see POST :translate)."""
    public = book_status(book, request, settings, store, jobs, lang)
    return Response(public.model_dump_json(), media_type="application/json")


def book_status(book: BookRow, request: Request, settings: Settings, store: Store, jobs,
                lang: str | None = None) -> BookPublic:
    """What GET /v1/books/{id} answers (also the events stream's first message)."""
    manifest = load_manifest(settings, book.id)
    if lang and manifest is not None:
        manifest = edition_or_404(manifest, lang)
    return book_public(book, manifest, f"/v1/books/{book.id}", current=jobs.current.get(book.id),
                       share_url=first_share_url(request, store, book.id), lang=lang.strip().lower() if lang else None)


@router.get("/{book_id}/events", summary="Live progress as server-sent events",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "events: snapshot, status, started, progress, finished, failed, done"}})
async def book_events(book: BookDep, request: Request, settings: SettingsDep, store: StoreDep, jobs: JobsDep):
    hub: EventHub = request.app.state.hub
    queue = hub.subscribe(book.id)  # before the snapshot, so nothing falls between the two

    async def stream():
        try:
            row = await run_in_threadpool(store.get_book, book.id) or book
            snap = book_status(row, request, settings, store, jobs)
            yield hub.message("snapshot", snap.model_dump(mode="json")).encode()
            if row.status in ("done", "failed"):
                return
            while not await request.is_disconnected():
                try:
                    msg = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    # the book may have ended or gone where this process cannot hear it (another server
                    # ran or deleted it): the store says, and the stream ends with it
                    now_row = store.get_book(book.id)
                    status = now_row.status if now_row is not None else "deleted"
                    if status in ENDED:
                        yield hub.message("status", {"book_id": book.id, "status": status}).encode()
                        return
                    yield b": keep-alive\n\n"
                    continue
                yield msg.encode()
                if msg.kind == "status" and msg.data.get("status") in ENDED:
                    return
        finally:
            hub.unsubscribe(book.id, queue)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/{book_id}/book.pdf", response_class=FileResponse, summary="The printable book (?lang=: an edition)")
def get_pdf(book: BookDep, settings: SettingsDep, lang: str | None = None):
    return edition_pdf(settings, book, lang) if lang else book_file(settings, book, "book.pdf")


@router.get("/{book_id}/book.html", response_class=FileResponse, summary="The book as one web page")
def get_html(book: BookDep, settings: SettingsDep):
    return book_file(settings, book, "book.html")


@router.get("/{book_id}/book.epub", response_class=FileResponse,
            summary="The book as EPUB 3: fixed-layout pages, narration and read-along (Media Overlays)")
def get_epub(book: BookDep, settings: SettingsDep, lang: str | None = None):
    return book_epub(settings, book, lang)


@router.get("/{book_id}/manifest.json", summary="Every prompt, seed, model id and parameter of the book")
def get_manifest(book: BookDep, settings: SettingsDep):
    return book_file(settings, book, "manifest.json")


@router.get("/{book_id}/qr.png", response_class=FileResponse, summary="QR code of the share link")
def get_qr(book: BookDep, settings: SettingsDep):
    return book_file(settings, book, "qr.png")


@router.get("/{book_id}/pages/{n:int}.png", response_class=FileResponse, summary="Picture of page n")
def get_page(book: BookDep, n: int, settings: SettingsDep):
    return book_file(settings, book, f"pages/{n}.png")


@router.get("/{book_id}/audio/{n:int}.wav", response_class=FileResponse, summary="Narration of page n")
def get_audio(book: BookDep, n: int, settings: SettingsDep, lang: str | None = None):
    return book_file(settings, book, f"audio/{n}.wav", lang=lang)


def _check_editable(book: BookRow, kind: str) -> None:
    """One change at a time, and only to a book that has pages (checked before the page number)."""
    if book.status in ("queued", "running"):
        raise HTTPError(409, "Busy", f"book {book.id} is {book.status}; one change at a time",
                        "wait for status 'done', then send this again")
    if book.status == "failed" and kind != "make":
        raise HTTPError(409, "Failed", f"book {book.id} failed and has no finished pages to change",
                        f"resume it first: POST /v1/books/{book.id}:retry")


def _edit(book: BookRow, settings: Settings, store: Store, jobs, kind: str, params: dict) -> JobAccepted:
    _check_editable(book, kind)
    manifest = load_manifest(settings, book.id)
    params = {**params, "history": len(manifest.history) if manifest else 0}  # tells a resumed edit it was done
    with store.exclusive("submit"):
        check_queue(store, settings, book.user_id)
        job = store.add_job(book.id, book.user_id, kind, params)
    jobs.submit(job)
    base = f"/v1/books/{book.id}"
    return JobAccepted(id=book.id, status="queued", job=kind, links=Links(self=base, events=f"{base}/events"))


def _page_count(settings: Settings, book: BookRow, n: int) -> None:
    manifest = load_manifest(settings, book.id)
    count = len(manifest.pages) if manifest else 0
    if not 1 <= n <= count:
        raise not_found(f"page {n} of book {book.id}", f"pages are numbered 1 to {count}")


@router.post("/{book_id}/pages/{n:int}:redraw", status_code=202, response_model=JobAccepted,
             summary="Draw page n again (new seed, or another style)")
def redraw(book: BookDep, n: int, settings: SettingsDep, store: StoreDep, jobs: JobsDep,
           body: RedrawRequest | None = None):
    body = body or RedrawRequest()
    _check_editable(book, "redraw")
    _page_count(settings, book, n)
    if body.style:
        from taleloom.stages.stage import get_style

        get_style(body.style)
    return _edit(book, settings, store, jobs, "redraw", {"page": n, **body.model_dump(exclude_none=True)})


@router.post("/{book_id}/pages/{n:int}:rewrite", status_code=202, response_model=JobAccepted,
             summary="Rewrite the text of page n following an instruction")
def rewrite(book: BookDep, n: int, body: RewriteRequest, settings: SettingsDep, store: StoreDep, jobs: JobsDep):
    _check_editable(book, "rewrite")
    _page_count(settings, book, n)
    return _edit(book, settings, store, jobs, "rewrite", {"page": n, "instruction": body.instruction})


@router.post("/{book_id}:extend", status_code=202, response_model=JobAccepted, summary="Add pages to the story")
def extend(book: BookDep, settings: SettingsDep, store: StoreDep, jobs: JobsDep, body: ExtendRequest | None = None):
    body = body or ExtendRequest()
    manifest = load_manifest(settings, book.id)
    have = len(manifest.pages) if manifest else book.pages
    if have + body.pages > settings.max_pages:
        raise BadInputError(f"the book has {have} pages; {body.pages} more would pass this server's limit of "
                            f"{settings.max_pages}", f"add at most {max(0, settings.max_pages - have)} pages")
    return _edit(book, settings, store, jobs, "extend", {"pages": body.pages})


@router.post("/{book_id}:translate", status_code=202, response_model=JobAccepted,
             summary="Add languages: same pictures, translated text, new narration, a PDF and EPUB each")
def translate(book: BookDep, body: TranslateRequest, settings: SettingsDep, store: StoreDep, jobs: JobsDep):
    from taleloom.editions import parse_langs

    _check_editable(book, "translate")
    manifest = load_manifest(settings, book.id)
    if manifest is None:
        raise not_found(f"book {book.id}", "check the id")
    langs = parse_langs(body.langs, manifest)  # unknown language or the book's own: 422 before queueing
    return _edit(book, settings, store, jobs, "translate", {"langs": langs})


@router.post("/{book_id}:retry", status_code=202, response_model=JobAccepted,
             summary="Resume a failed book from its last finished stage, on a new seed unless one is given")
def retry(book: BookDep, settings: SettingsDep, store: StoreDep, jobs: JobsDep, body: RetryRequest | None = None):
    if book.status != "failed":
        raise HTTPError(409, "NotFailed", f"book {book.id} is {book.status}; only a failed book is retried",
                        "nothing to do" if book.status == "done" else "wait for it to finish")
    orchestrator.reseed(book_storage(settings).folder(book.id), body.seed if body else None)
    return _edit(book, settings, store, jobs, "make", {})


@router.delete("/{book_id}", status_code=204, summary="Delete a book, its files and its share links")
def delete_book(book: BookDep, request: Request, settings: SettingsDep, store: StoreDep, jobs: JobsDep):
    store.delete_book(book.id)  # first: a worker that stops on the cancel finds the book gone and removes its folder
    busy = jobs.cancel(book.id)  # a running job stops at its next event
    request.app.state.hub.publish(book.id, "status", {"book_id": book.id, "status": "deleted"})  # streams end
    if not busy:  # else the worker removes the files once it has stopped writing them
        book_storage(settings).delete(book.id)
    return Response(status_code=204)
