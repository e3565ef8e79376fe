"""The FastAPI app: `create_app(settings)`.

Start-up (`lifespan`) opens the store, builds the backends once (each model loads on first use, or
at once in a background warm-up) and keeps them on `app.state`, starts the job workers and resumes
every book a previous run left unfinished. OpenAPI docs at /docs; the web page at /.

Plugins: ``TALELOOM_PLUGINS="package.module:function[,other:function]"`` — each function is called
with `taleloom.backends.registry.register` at start-up, before any backend is created, exactly like
an entry point of the ``taleloom.backends`` group. Use it to try a backend without packaging it.
"""

from __future__ import annotations

import logging
import secrets
import sys
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

import taleloom
from taleloom.config import Settings, get_settings
from taleloom.errors import TaleloomError, TooLargeError
from taleloom.server.deps import InFlight
from taleloom.server.openai_errors import OpenAIErrors, is_openai_route

log = logging.getLogger("taleloom.server")
WEB_DIR = Path(__file__).parent / "web"
FORM_SLACK = 1024 * 1024  # bytes a multipart request may carry beside the photo (fields, headers)


@asynccontextmanager
async def lifespan(app: FastAPI):
    from taleloom.server.limits import warm
    from taleloom.server.service import open_service

    settings: Settings = app.state.settings
    # Job threads run CPU-bound Python (PDF layout, PNG encoding) beside the request handlers; a short
    # GIL switch interval keeps status requests quick while they do (5 ms is Python's default).
    sys.setswitchinterval(0.001)
    service = open_service(settings)  # store, backends, events, and the book workers (none with --workers 0)
    app.state.plugins = service.plugins
    app.state.store, app.state.backends = service.store, service.backends
    app.state.hub, app.state.jobs = service.hub, service.jobs
    app.state.warm = {}
    log.info("taleloom %s: %d book worker(s), data in %s", taleloom.__version__, service.jobs.workers,
             settings.data_dir)
    if settings.warm:
        threading.Thread(target=lambda: app.state.warm.update(warm(service.backends)), name="warm-up",
                         daemon=True).start()
    yield
    service.close()


class BodyLimit:
    """Refuses a request body over the limit before it is read whole (413), whether or not the
    client announced its length."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        limit = self.max_bytes
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            response = JSONResponse(_too_large(int(length), limit).to_dict(), status_code=413)
            return await response(scope, receive, send)
        seen, refused = 0, False

        async def counted():
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit and not refused:  # answer now; the app sees the client go away
                refused = True
                await JSONResponse(_too_large(seen, limit).to_dict(), status_code=413)(scope, receive, send)
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        try:
            await self.app(scope, counted, guarded_send)
        except Exception:
            if not refused:
                raise


def _too_large(size: int, limit: int) -> TooLargeError:
    return TooLargeError(f"the request is {size / 1e6:.1f} MB or more; this server takes at most "
                         f"{(limit - FORM_SLACK) / 1e6:.1f} MB per upload",
                         "resize or re-compress the photo (a 2000-pixel JPEG is about 1 MB)")


def _install_error_handlers(app: FastAPI) -> None:
    def body(error: str, message: str, hint: str | None) -> dict:
        return {"error": error, "message": message, "hint": hint}

    @app.exception_handler(TaleloomError)
    async def taleloom_error(request: Request, e: TaleloomError):
        return JSONResponse(e.to_dict(), status_code=e.status_code, headers=getattr(e, "headers", None))

    def fields(errors) -> str:
        return "; ".join(f"{'.'.join(str(x) for x in err['loc'] if x != 'body')}: {err['msg']}" for err in errors)

    def param(request: Request, errors) -> dict:
        """The first field at fault, for OpenAI's error.param (OpenAI routes only: see openai_errors.py)."""
        if not is_openai_route(request.url.path) or not errors:
            return {}
        return {"param": ".".join(str(x) for x in errors[0]["loc"] if x not in ("body", "query", "path")) or None}

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, e: RequestValidationError):
        return JSONResponse(body("BadInputError", f"the request is not valid: {fields(e.errors())}",
                                 "fix the fields named above; /docs describes every route")
                            | param(request, e.errors()), status_code=422)

    @app.exception_handler(ValidationError)
    async def model_invalid(request: Request, e: ValidationError):
        return JSONResponse(body("BadInputError", f"the request is not valid: {fields(e.errors())}",
                                 "fix the fields named above; /docs describes every route"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        name = {404: "NotFound", 405: "MethodNotAllowed"}.get(e.status_code, "HTTPError")
        hint = "see /docs for the routes" if e.status_code in (404, 405) else None
        return JSONResponse(body(name, str(e.detail), hint), status_code=e.status_code,
                            headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def internal(request: Request, e: Exception):
        """Never the exception's text (paths, ids, other users' data): a request id that finds it in the log."""
        rid = new_request_id()
        log.error("internal error, request id %s, on %s %s", rid, request.method, request.url.path,
                  exc_info=(type(e), e, e.__traceback__))
        return JSONResponse(internal_error_body(rid), status_code=500, headers={"X-Request-ID": rid})


def new_request_id() -> str:
    return secrets.token_hex(8)


def internal_error_body(rid: str) -> dict:
    """The body of every 500: says nothing of the server's insides, only where the operator can look."""
    return {"error": "InternalError", "message": f"internal error (request id {rid})",
            "hint": f"this is a bug, not your request's fault; the server log has the details under {rid}"}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The whole service: book API, share links, single-step endpoints, web page."""
    from taleloom.server.routes import books, openai, share

    settings = settings or get_settings()
    app = FastAPI(title="Taleloom", version=taleloom.__version__, lifespan=lifespan,
                  description="Turn a photo into an illustrated, translated, narrated storybook. "
                              "Authenticate with `Authorization: Bearer <token>` (`taleloom token create`).")
    app.state.settings = settings
    app.state.in_flight = InFlight()
    app.state.web_dir = WEB_DIR
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes + FORM_SLACK)
    app.add_middleware(OpenAIErrors)  # outside BodyLimit, so its 413 is reshaped too
    _install_error_handlers(app)
    app.include_router(books.router)
    app.include_router(share.router)
    app.include_router(openai.router)

    @app.get("/healthz", tags=["service"], summary="Liveness, queue and backend state")
    def healthz(request: Request):
        from taleloom.server.limits import loaded

        state = request.app.state
        return {"ok": True, "version": taleloom.__version__, "workers": state.jobs.workers,
                "events": "postgresql" if state.hub.shared else "this process",
                "queued": state.jobs.queued(), "active_jobs": state.store.count_active(),
                "backends": loaded(state.backends), "warm": state.warm,
                "batching": state.backends.illustrator.stats(), "plugins": state.plugins}

    @app.get("/v1/options", tags=["service"], summary="Languages, styles and limits for the book form")
    def options():
        from taleloom.stages.stage import DEFAULT_STYLE, STYLES
        from taleloom.stages.translate import LANGUAGES

        return {"languages": LANGUAGES,
                "styles": {name: s.description for name, s in STYLES.items()}, "default_style": DEFAULT_STYLE,
                "max_pages": settings.max_pages, "max_upload_bytes": settings.max_upload_bytes,
                "max_pixels": settings.max_pixels}

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app
