"""Read-only share links. Every book gets one when it is made (the QR code in the PDF points at it);
the owner can make more and revoke any. `/books/{share_id}` is the reader page a phone opens."""

from __future__ import annotations

import io

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from taleloom.server.deps import BookDep, HTTPError, SettingsDep, StoreDep
from taleloom.server.routes.books import book_epub, book_file, edition_or_404, edition_pdf, load_manifest
from taleloom.server.schemas import BookPublic, SharePublic, book_public, share_public
from taleloom.server.store import BookRow, Store

router = APIRouter(tags=["share"])


def shared_book(share_id: str, store: Store) -> BookRow:
    share = store.get_share(share_id)
    book = store.get_book(share.book_id) if share else None
    if share is None or book is None:
        raise HTTPError(404, "NotFound", "this share link does not exist", "check the link you were given")
    if share.revoked:
        raise HTTPError(410, "Revoked", "the owner revoked this share link", "ask the owner for a new link")
    return book


@router.post("/v1/books/{book_id}/shares", status_code=201, response_model=SharePublic,
             summary="Make another read-only link to a book")
def create_share(book: BookDep, settings: SettingsDep, store: StoreDep):
    from taleloom.book import new_book_id

    return share_public(store.add_share(book.id, new_book_id()), settings.base_url)


@router.get("/v1/books/{book_id}/shares", response_model=list[SharePublic], summary="A book's share links")
def list_shares(book: BookDep, settings: SettingsDep, store: StoreDep):
    return [share_public(s, settings.base_url) for s in store.shares(book.id)]


@router.delete("/v1/books/{book_id}/shares/{share_id}", status_code=204, summary="Revoke a share link")
def revoke_share(book: BookDep, share_id: str, store: StoreDep):
    if not store.revoke_share(book.id, share_id):
        raise HTTPError(404, "NotFound", f"book {book.id} has no open share link {share_id}",
                        f"GET /v1/books/{book.id}/shares lists them")


@router.get("/v1/shared/{share_id}", response_model=BookPublic, summary="A shared book (read-only, no token)")
def get_shared(share_id: str, settings: SettingsDep, store: StoreDep, lang: str | None = None):
    book = shared_book(share_id, store)
    manifest = load_manifest(settings, book.id)
    if lang and manifest is not None:
        manifest = edition_or_404(manifest, lang)
    public = book_public(book, manifest, f"/v1/shared/{share_id}", with_events=False,
                         lang=lang.strip().lower() if lang else None)
    # a reader sees that a book failed, not the owner's error details (model ids, answers, paths)
    error = {"error": "Failed", "message": "this book could not be finished", "hint": None} if public.error else None
    stages = [st.model_copy(update={"message": None}) for st in public.stages]
    return public.model_copy(update={"id": share_id, "share_url": f"{settings.base_url}/books/{share_id}",
                                     "error": error, "stages": stages})


@router.get("/v1/shared/{share_id}/{name:path}", response_class=FileResponse, summary="A shared book's files")
def get_shared_file(share_id: str, name: str, settings: SettingsDep, store: StoreDep, lang: str | None = None):
    if name not in ("book.pdf", "book.html", "book.epub", "qr.png") and not _page_file(name):
        raise HTTPError(404, "NotFound", f"a shared book has no file {name!r}",
                        "shared books offer book.pdf, book.epub, book.html, qr.png, pages/N.png and audio/N.wav")
    book = shared_book(share_id, store)
    if name == "book.epub":
        return book_epub(settings, book, lang, label="this shared book")
    if name == "book.pdf" and lang:
        return edition_pdf(settings, book, lang, label="this shared book")
    if name == "qr.png":  # drawn for this link, so a new link after a revoke gets its own code
        return Response(qr_png(f"{settings.base_url}/books/{share_id}"), media_type="image/png")
    return book_file(settings, book, name, label="this shared book", lang=lang)


def qr_png(url: str) -> bytes:
    import segno

    buf = io.BytesIO()
    segno.make(url, error="m").save(buf, kind="png", scale=6, border=2)
    return buf.getvalue()


def _page_file(name: str) -> bool:
    kind, _, file = name.partition("/")
    stem, _, ext = file.partition(".")
    return stem.isdigit() and (kind, ext) in (("pages", "png"), ("audio", "wav"))


@router.get("/books/{share_id}", response_class=HTMLResponse, include_in_schema=False)
def reader_page(share_id: str, request: Request, store: StoreDep):
    """The page the QR code opens: the web app in read-only mode."""
    try:
        shared_book(share_id, store)
    except HTTPError as e:
        return HTMLResponse(_message_page(e.message, e.hint or ""), status_code=e.status_code)
    return FileResponse(request.app.state.web_dir / "index.html", media_type="text/html; charset=utf-8")


def _message_page(message: str, hint: str) -> str:
    return (f"<!doctype html><html lang='en'><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width, initial-scale=1'><title>Taleloom</title>"
            f"<link rel='stylesheet' href='/static/style.css'><main class='message'><h1>Taleloom</h1>"
            f"<p>{message}.</p><p>{hint}.</p><p><a href='/'>Make your own book</a></p></main></html>")
