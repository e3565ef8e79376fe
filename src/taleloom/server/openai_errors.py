"""Errors in OpenAI's shape on the OpenAI-compatible routes, so SDKs raise their usual exceptions
(BadRequestError, AuthenticationError, NotFoundError, RateLimitError...) with our message.

The app's error handlers write one body everywhere, ``{error, message, hint}``; this middleware
rewrites it, on the routes below only, to ``{"error": {"message", "type", "param", "code"}}`` (the
hint joins the message, and stays as ``error.hint``). The book API keeps its own shape. Being one
ASGI layer, it covers every error source alike: handlers, dependencies (auth, limits) and the body
limit, without each of them knowing which shape a route speaks.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

OPENAI_PREFIXES = ("/v1/chat/", "/v1/images/", "/v1/audio/", "/v1/models", "/v1/captions")

# HTTP status -> OpenAI error type (what the official API sends for the same status)
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 405: "invalid_request_error", 409: "conflict_error",
               413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error"}


def is_openai_route(path: str) -> bool:
    return path.startswith(OPENAI_PREFIXES)


def openai_error(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """Our `{error, message, hint[, param]}` body as OpenAI's error object."""
    message = str(body.get("message") or body.get("error") or "error")
    hint = body.get("hint")
    return {"error": {"message": f"{message} ({hint})" if hint else message,
                      "type": ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
                      "param": body.get("param"), "code": body.get("error"), "hint": hint}}


class OpenAIErrors:
    """ASGI middleware: JSON error answers (status >= 400) on OpenAI routes get OpenAI's error shape.
    Successful answers (streams included) pass through untouched and unbuffered."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not is_openai_route(scope["path"]):
            return await self.app(scope, receive, send)
        start: dict | None = None
        started = False
        chunks: list[bytes] = []

        async def reshaping_send(message):
            nonlocal start, started
            if message["type"] == "http.response.start":
                started = True
                headers = dict(message.get("headers", []))
                if message["status"] >= 400 and headers.get(b"content-type", b"").startswith(b"application/json"):
                    start = message  # held until the whole body is here
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                await _send_reshaped(send, start, b"".join(chunks))
                return
            await send(message)

        try:
            await self.app(scope, receive, reshaping_send)
        except Exception as e:  # a bug: the app's own 500 handler words it (and logs it), then it is reshaped
            handler = scope["app"].exception_handlers.get(Exception)
            if started or handler is None:
                raise
            response = await handler(Request(scope), e)
            await response(scope, receive, reshaping_send)


async def _send_reshaped(send, start: dict, raw: bytes) -> None:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and not isinstance(body.get("error"), dict):
        raw = json.dumps(openai_error(start["status"], body), ensure_ascii=False).encode()
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(raw)).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": raw})
