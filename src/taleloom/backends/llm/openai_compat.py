"""TextModel over any OpenAI-compatible chat endpoint: vLLM, Ollama, llama.cpp server, OpenAI.

Spec: ``openai:http://127.0.0.1:8000/v1#qwen2.5-7b`` (no ``#model``: the server's first listed model).
API key from TALELOOM_OPENAI_API_KEY or OPENAI_API_KEY (local servers need none).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import httpx
from pydantic import Field

from taleloom.backends.base import Answer, Piece, Sampling, TextModel, Usage, estimate_usage
from taleloom.backends.openai_http import ServerOptions, first_model, make_client, parse_json, server_ready
from taleloom.errors import BackendError, CutOffAnswerError


class OpenAITextModel(TextModel):
    name = "openai"
    can_stream = True
    supports_schema = True

    class Options(ServerOptions):
        schema_format: Literal["auto", "json_schema", "json_object"] = Field(
            "auto", description="json_schema (OpenAI, vLLM, Ollama) or json_object+schema (llama-cpp-python); "
                                "auto tries the first and falls back to the second when the server rejects it")
        extended_sampling: bool | None = Field(
            None, description="send top_k / repeat_penalty (not in the OpenAI API); None: all but api.openai.com")
        strict: bool = Field(False, description="json_schema 'strict' flag (OpenAI then needs closed schemas)")
        extra_body: dict[str, Any] = Field(default_factory=dict, description="extra fields for every request")

    def __init__(self, location: str | None = None, model: str | None = None,
                 transport: httpx.BaseTransport | None = None, **options: Any):
        self.options = self.Options(**options)
        self.client = make_client(location, self.options, transport)
        self._model = model
        self._schema_format = self.options.schema_format
        self._stream_usage = True  # ask for usage in streams (stream_options) until the server refuses it
        extended = self.options.extended_sampling
        self._extended = extended if extended is not None else "api.openai.com" not in self.client.base_url

    @property
    def model(self) -> str:
        if self._model is None:
            self._model = first_model(self.client)
        return self._model

    @property
    def model_id(self) -> str:  # type: ignore[override]
        return f"openai:{self._model or '?'}@{self.client.base_url}"

    def ready(self) -> tuple[bool, str]:
        return server_ready(self.client)

    def _payload(self, messages: list[dict[str, Any]], sampling: Sampling | None) -> dict[str, Any]:
        s = sampling or Sampling()
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": s.temperature,
                                   "top_p": s.top_p, "max_tokens": s.max_tokens}
        if s.seed is not None:
            payload["seed"] = s.seed
        if s.stop:
            payload["stop"] = s.stop
        if self._extended:
            payload.update(top_k=s.top_k, repeat_penalty=s.repeat_penalty, repetition_penalty=s.repeat_penalty)
        return payload | self.options.extra_body

    def chat(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
             schema: dict[str, Any] | None = None) -> str:
        return self.answer(messages, sampling, schema).text

    def answer(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
               schema: dict[str, Any] | None = None) -> Answer:
        raw = self._ask(messages, sampling, schema)
        finish = ((raw.get("choices") or [{}])[0] or {}).get("finish_reason")
        text = self.checked_answer(_content(raw), schema, finish, sampling)
        return Answer(text, "length" if finish == "length" else "stop", _usage(raw, messages, text))

    def checked_answer(self, text: str, schema: dict[str, Any] | None, finish: str | None,
                       sampling: Sampling | None) -> str:
        """`_checked`, except that JSON cut off by max_tokens says so (CutOffAnswerError: the caller's limit)."""
        if schema is not None and finish == "length":
            try:
                json.loads(text, strict=False)
            except ValueError as e:
                limit = (sampling or Sampling()).max_tokens
                raise CutOffAnswerError(f"{self.model_id} gave incomplete JSON (it stopped at max_tokens={limit}): "
                                        f"{text[:120]!r}", "raise max_tokens, or tighten maxLength in the schema") from e
        return self._checked(text, schema)

    def complete(self, messages: list[dict[str, Any]], sampling: Sampling | None = None,
                 schema: dict[str, Any] | None = None, check_json: bool = True) -> str:
        """`chat` for any message content (the vision captioner sends text + image parts)."""
        text = _content(self._ask(messages, sampling, schema))
        return self._checked(text, schema) if check_json else text

    def _checked(self, text: str, schema: dict[str, Any] | None) -> str:
        """With a schema, the answer must be JSON (raw newlines inside strings allowed: grammars let
        llama.cpp write them, and the stages read answers with strict=False too)."""
        if schema is not None:
            try:
                json.loads(text, strict=False)
            except ValueError:
                parse_json(text, f"the model's answer (asked for JSON by schema, {self.model_id})")
        return text

    def _ask(self, messages: list[dict[str, Any]], sampling: Sampling | None,
             schema: dict[str, Any] | None) -> dict[str, Any]:
        """The server's whole chat answer; with a schema, in the response_format this server understands."""
        payload = self._payload(messages, sampling)
        if schema is None:
            return self.client.post_json("chat/completions", payload)
        if self._schema_format != "auto":
            fmt = self._schema_format
            answer = self.client.post_json("chat/completions", payload | self._response_format(fmt, schema))
        else:  # probe once, without retries: servers reject an unknown format with 400, 422 or even 500
            fmt = "json_schema"
            try:
                answer = self.client.post_json("chat/completions", payload | self._response_format(fmt, schema),
                                               retries=0)
            except BackendError as e:
                if _rejects_format(e):  # llama-cpp-python: {"type": "json_object", "schema": ...}
                    fmt = "json_object"
                answer = self.client.post_json("chat/completions", payload | self._response_format(fmt, schema))
        self._schema_format = fmt  # remember what this server understood
        return answer

    def _response_format(self, fmt: str, schema: dict[str, Any]) -> dict[str, Any]:
        if fmt == "json_object":
            return {"response_format": {"type": "json_object", "schema": schema}}
        return {"response_format": {"type": "json_schema", "json_schema": {
            "name": "answer", "schema": schema, "strict": self.options.strict}}}

    def stream(self, messages: list[dict[str, str]], sampling: Sampling | None = None) -> Iterator[str]:
        return (p.text for p in self.answer_stream(messages, sampling) if p.text)

    def answer_stream(self, messages: list[dict[str, str]], sampling: Sampling | None = None) -> Iterator[Piece]:
        """Pieces as the server sends them. Usage comes from the server's last chunk when it honours
        stream_options.include_usage; otherwise each content chunk counts as one token (servers send
        one token per chunk) and the prompt is estimated."""
        payload = self._payload(messages, sampling) | {"stream": True}
        finish, usage, chunks, text = "stop", None, 0, []
        for event in self._stream_events(payload):
            if isinstance(event.get("usage"), dict):
                usage = _usage(event, messages, "")
            for choice in event.get("choices") or []:
                finish = choice.get("finish_reason") or finish
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    chunks += 1
                    text.append(piece)
                    yield Piece(piece)
        if usage is None or usage.estimated:
            usage = Usage(estimate_usage(messages, "").prompt_tokens, chunks, estimated=True)
        yield Piece("", "length" if finish == "length" else "stop", usage)


    def _stream_events(self, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The stream's events, with stream_options.include_usage while this server takes it; a server that
        refuses the field (400/422 before any event) is asked again without it, and from then on."""
        if self._stream_usage:
            started = False
            try:
                for event in self.client.stream_events(
                        "chat/completions", payload | {"stream_options": {"include_usage": True}}):
                    started = True
                    yield event
                return
            except BackendError as e:
                if started or getattr(e, "http_status", None) not in (400, 422):
                    raise
                self._stream_usage = False
        yield from self.client.stream_events("chat/completions", payload)


def _rejects_format(error: BackendError) -> bool:
    """Did the server refuse the json_schema response_format (rather than fail for another reason)?"""
    status = getattr(error, "http_status", None)
    detail = str(getattr(error, "detail", "")).lower()
    return status in (400, 422) or (status == 500 and ("response_format" in detail or "json_schema" in detail))


def _usage(answer: dict[str, Any], messages: list[dict[str, Any]], text: str) -> Usage:
    """The server's token counts; estimated when it sent none (some servers omit usage)."""
    u = answer.get("usage")
    try:
        return Usage(int(u["prompt_tokens"]), int(u["completion_tokens"]))
    except (KeyError, TypeError, ValueError):
        return estimate_usage(messages, text)


def _content(answer: dict[str, Any]) -> str:
    """The first choice's text; a BackendError when the answer has another shape."""
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as e:
        raise BackendError(f"the chat answer has no choices[0].message.content: {str(answer)[:200]}",
                           "the server is not speaking the OpenAI chat API; check the URL") from e
    if not isinstance(content, str):
        raise BackendError(f"the chat answer's content is {type(content).__name__}, not text",
                           "the model may have answered with a tool call; try another model")
    return content
