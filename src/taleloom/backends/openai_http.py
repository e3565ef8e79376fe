"""One small HTTP client for OpenAI-compatible servers (vLLM, Ollama, llama.cpp server, OpenAI), shared by
the chat, vision and speech backends: retries with exponential backoff on 429/5xx/connection errors,
timeouts, server-sent-event streaming, and errors that say what to do.

The transport is injectable (``httpx.MockTransport`` in unit tests), so nothing here needs a network.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
from pydantic import Field

from taleloom.backends.base import Options
from taleloom.errors import BackendError, ModelNotFoundError

DEFAULT_URL = "https://api.openai.com/v1"
API_KEY_VARS = ("TALELOOM_OPENAI_API_KEY", "OPENAI_API_KEY")
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class ServerUnreachableError(ModelNotFoundError, BackendError):
    """No answer at all from the server (refused, DNS, timeout) after every retry."""

    status_code = 503


def api_key_from_env() -> str | None:
    """TALELOOM_OPENAI_API_KEY, else OPENAI_API_KEY, else None (local servers need none)."""
    for var in API_KEY_VARS:
        if os.environ.get(var):
            return os.environ[var]
    return None


def parse_json(text: str, what: str) -> Any:
    """json.loads with a BackendError naming `what` and quoting the start of the bad text."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError) as e:
        raise BackendError(f"malformed JSON in {what}: {e}; got {text[:200]!r}",
                           "the server is not speaking the OpenAI API, or the model ignored the JSON format; "
                           "check the URL (it usually ends in /v1) or try again") from e


class OpenAIClient:
    """POSTs JSON to ``{base_url}/{path}``; retries 429/5xx/connection errors with exponential backoff.

    `backoff` is the first wait in seconds, doubled on every retry and capped at `max_backoff`; a
    Retry-After header from the server is honoured within the same cap.
    """

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 120.0,
                 connect_timeout: float = 10.0, max_retries: int = 3, backoff: float = 0.5,
                 max_backoff: float = 20.0, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.base_url, headers=headers, transport=transport,
                                 timeout=httpx.Timeout(timeout, connect=connect_timeout))

    # ------------------------------------------------------------------ requests
    def post_json(self, path: str, payload: dict[str, Any], retries: int | None = None) -> dict[str, Any]:
        """POST and decode the JSON answer; `retries` overrides `max_retries` for this call."""
        response = self._send("POST", path, payload, retries)
        return parse_json(response.text, f"the answer from {self._url(path)}")

    def post_bytes(self, path: str, payload: dict[str, Any]) -> bytes:
        """POST and return the raw body (audio)."""
        return self._send("POST", path, payload).content

    def post_form(self, path: str, fields: dict[str, Any], files: dict[str, tuple[str, bytes, str]]) -> dict[str, Any]:
        """POST multipart form data (``/images/edits``: the picture and mask as files) and decode the JSON answer."""
        form = {k: str(v) for k, v in fields.items() if v is not None}
        response = self._send("POST", path, None, form=(form, files))
        return parse_json(response.text, f"the answer from {self._url(path)}")

    def get_bytes(self, url: str) -> bytes:
        """GET an absolute URL the server handed out (an image link), with the same retries."""
        return self._send("GET", url, None).content

    def get_json(self, path: str, retries: int | None = None) -> dict[str, Any]:
        return parse_json(self._send("GET", path, None, retries).text, f"the answer from {self._url(path)}")

    def stream_events(self, path: str, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST with ``stream: true``; yield each server-sent event's JSON until ``data: [DONE]``.

        Retries happen only before the first event arrives: a stream is never replayed half-way.
        """
        for attempt in range(self.max_retries + 1):
            started = False
            retry_after = None
            try:
                with self.http.stream("POST", path, json=payload) as response:
                    if response.status_code >= 400:
                        response.read()
                        self._check(response, path, attempt)  # raises, or returns to retry
                        retry_after = response.headers.get("retry-after")
                    else:
                        for event in self._events(response, path):
                            started = True
                            yield event
                        return
            except httpx.TransportError as e:
                if started:
                    raise BackendError(f"the stream from {self._url(path)} broke off ({type(e).__name__}: {e})",
                                       "try again; look at the model server's log if it keeps happening") from e
                self._connection_failed(e, path, attempt)
            self._wait(attempt, retry_after)

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ internals
    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def _send(self, method: str, path: str, payload: dict[str, Any] | None, retries: int | None = None,
              form: tuple[dict[str, str], dict[str, tuple[str, bytes, str]]] | None = None) -> httpx.Response:
        retries = self.max_retries if retries is None else retries
        for attempt in range(retries + 1):
            retry_after = None
            try:
                if form is not None:
                    response = self.http.request(method, path, data=form[0], files=form[1])
                else:
                    response = self.http.request(method, path, json=payload)
                if response.status_code < 400:
                    return response
                self._check(response, path, attempt, retries)
                retry_after = response.headers.get("retry-after")
            except httpx.TransportError as e:
                self._connection_failed(e, path, attempt, retries)
            self._wait(attempt, retry_after)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff * 2**attempt
        if retry_after:
            try:
                delay = float(retry_after)
            except ValueError:
                pass
        self.sleep(min(delay, self.max_backoff))

    def _connection_failed(self, error: httpx.TransportError, path: str, attempt: int,
                           retries: int | None = None) -> None:
        if attempt < (self.max_retries if retries is None else retries):
            return
        kind = "timed out" if isinstance(error, httpx.TimeoutException) else "could not be reached"
        raise ServerUnreachableError(
            f"the server at {self._url(path)} {kind} after {attempt + 1} tries ({type(error).__name__}: {error})",
            "start the server (e.g. `python -m llama_cpp.server --model M.gguf`, `ollama serve`, `vllm serve M`), "
            "check host and port in the backend spec, or raise the `timeout` option for slow models") from error

    def _check(self, response: httpx.Response, path: str, attempt: int, retries: int | None = None) -> None:
        """Raise a BackendError for a failed answer; return (to retry) on a retryable one with tries left."""
        status = response.status_code
        if status in RETRY_STATUS and attempt < (self.max_retries if retries is None else retries):
            return
        url = self._url(path)
        detail = _error_detail(response)
        tries = f" after {attempt + 1} tries" if status in RETRY_STATUS else ""
        if status in (401, 403):
            message, hint = (f"{url} refused the request ({status}: {detail})",
                             f"set a valid API key in {API_KEY_VARS[0]} or {API_KEY_VARS[1]}")
        elif status == 404:
            message, hint = (f"{url} answered 404 not found ({detail})",
                             "check that the URL ends in /v1 and that the model name after '#' is served "
                             "(GET /v1/models lists them)")
        elif status == 429:
            message, hint = (f"{url} is rate-limiting us (429{tries}: {detail})",
                             "wait and try again, lower the number of workers, or raise `max_retries`")
        elif status >= 500:
            message, hint = (f"{url} failed with a server error ({status}{tries}: {detail})",
                             "look at the model server's log; it may be out of memory or still loading the model")
        else:
            message, hint = (f"{url} rejected the request ({status}: {detail})",
                             "the server may not support an option we sent (e.g. response_format); see its log")
        error = BackendError(message, hint)
        error.http_status = status  # type: ignore[attr-defined]
        error.detail = detail  # type: ignore[attr-defined]
        raise error

    def _events(self, response: httpx.Response, path: str) -> Iterator[dict[str, Any]]:
        for line in response.iter_lines():
            line = line.strip()
            if not line.startswith("data:"):
                continue  # comments (": ping"), event names, blank separators
            data = line[5:].strip()
            if data == "[DONE]":
                return
            event = parse_json(data, f"a streamed event from {self._url(path)}")
            if isinstance(event, dict) and event.get("error"):
                raise BackendError(f"{self._url(path)} failed while streaming: {_describe(event['error'])}",
                                   "look at the model server's log")
            yield event


def _describe(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def _error_detail(response: httpx.Response) -> str:
    """The server's own error message when it sent one (OpenAI shape or FastAPI's `detail`)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if body.get(key):
                return _describe(body[key])[:300]
    return str(body)[:200]


class ServerOptions(Options):
    """Connection settings shared by every OpenAI-compatible backend."""

    api_key: str | None = Field(None, description="overrides TALELOOM_OPENAI_API_KEY / OPENAI_API_KEY")
    timeout: float = Field(120.0, gt=0, description="seconds to wait for an answer")
    connect_timeout: float = Field(10.0, gt=0)
    max_retries: int = Field(3, ge=0, description="retries on 429, 5xx and connection errors")
    backoff: float = Field(0.5, ge=0, description="first retry wait in seconds, doubled each retry")


def make_client(location: str | None, options: ServerOptions, transport: httpx.BaseTransport | None,
                default_url: str = DEFAULT_URL) -> OpenAIClient:
    url = location or default_url
    if urlparse(url).scheme not in ("http", "https"):
        raise ModelNotFoundError(f"{url!r} is not an http(s) URL of an OpenAI-compatible server",
                                 "write the spec as openai:http://HOST:PORT/v1#MODEL")
    return OpenAIClient(url, options.api_key or api_key_from_env(), timeout=options.timeout,
                        connect_timeout=options.connect_timeout, max_retries=options.max_retries,
                        backoff=options.backoff, transport=transport)


def first_model(client: OpenAIClient) -> str:
    """The first model the server lists (GET /models) — for specs that name none."""
    data = client.get_json("models").get("data") or []
    if not data:
        raise ModelNotFoundError(f"{client.base_url}/models lists no model",
                                 "name the model after '#' in the spec, e.g. openai:http://host:8000/v1#my-model")
    return str(data[0]["id"])


def server_ready(client: OpenAIClient) -> tuple[bool, str]:
    """(ready, reason) for `taleloom models`: the server answers GET /models (any HTTP answer means it is up)."""
    try:
        names = [str(m.get("id")) for m in client.get_json("models", retries=0).get("data") or []]
    except ServerUnreachableError as e:
        return False, e.message
    except BackendError as e:
        if getattr(e, "http_status", None) in (401, 403):
            return False, e.message
        return True, f"{client.base_url} answers"
    return True, f"{client.base_url} serves {', '.join(names[:3]) or 'no listed model'}"
