"""Single-step model endpoints in the OpenAI shapes people already use, so existing clients and SDKs
work unchanged: chat completions here (JSON-schema answers, streaming, usage), images (images.py),
speech (speech.py) and the model list (models.py), plus /v1/captions for the see step. They share the
book jobs' backends, so their calls count against the same per-backend limits and image requests join
the same batches. Errors on these routes come in OpenAI's shape (server/openai_errors.py)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taleloom.backends.base import Answer, Sampling
from taleloom.backends.llm.schema_check import check_schema, min_answer_tokens
from taleloom.book import SEED_MAX, Caption
from taleloom.deadline import Scope
from taleloom.errors import BadInputError, TaleloomError
from taleloom.imageio import load_photo
from taleloom.server.cancellable import run_step, stream_in_thread
from taleloom.server.deps import SettingsDep, StepUserDep
from taleloom.server.routes import images, models, speech

router = APIRouter(tags=["single steps (OpenAI shapes)"])
router.include_router(images.router)
router.include_router(speech.router)
router.include_router(models.router)


def _backends(request: Request) -> Any:
    return request.app.state.backends


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str | list[dict[str, Any]]

    @field_validator("content")
    @classmethod
    def _text_parts(cls, content: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
        """A text part's `text` must be a string (123, null, a list... were a 500)."""
        for i, part in enumerate(content if isinstance(content, list) else []):
            if part.get("type") == "text" and not isinstance(part.get("text"), str):
                raise ValueError(f"part {i} is of type 'text' but its 'text' is "
                                 f"{type(part.get('text')).__name__}, not a string")
        return content

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletion(BaseModel):
    model_config = ConfigDict(extra="ignore")
    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(None, ge=1, le=8192, description="the newer name of max_tokens")
    seed: int | None = Field(None, ge=0, le=SEED_MAX, description="choice i uses seed + i")
    n: int = Field(1, ge=1, le=4, description="answers to the same messages (drawn one after another)")
    stop: str | list[str] | None = Field(None, description="up to 4 strings; the answer ends before the first")
    stream: bool = False
    stream_options: StreamOptions | None = Field(None, description="include_usage: a last chunk with usage")
    logprobs: bool | None = Field(None, description="not supported: true is refused (422)")
    top_logprobs: int | None = Field(None, description="not supported (422)")
    tools: list[Any] | None = Field(None, description="not supported: tool calls are refused (422)")
    response_format: dict[str, Any] | None = Field(None, description='{"type": "json_schema", "json_schema": '
                                                   '{"schema": {...}}} constrains the answer')

    def sampling(self, choice: int = 0) -> Sampling:
        seed = None if self.seed is None else (self.seed + choice) % (SEED_MAX + 1)
        stop = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        fields = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                  "max_tokens": self.max_completion_tokens or self.max_tokens, "seed": seed, "stop": stop}
        return Sampling(**{k: v for k, v in fields.items() if v is not None})

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and (len(stop) > 4 or not all(stop)):
            raise ValueError("give at most 4 non-empty stop strings")
        return stop

    @model_validator(mode="after")
    def _supported(self) -> ChatCompletion:
        """Options we cannot honour are refused by name, never silently ignored."""
        if self.logprobs or self.top_logprobs is not None:
            raise ValueError("logprobs/top_logprobs: this server's models do not return token log-probabilities; "
                             "leave them out")
        if self.tools:
            raise ValueError("tools: this server does not do tool calls; ask for JSON with response_format "
                             "json_schema instead")
        return self

    @field_validator("response_format")
    @classmethod
    def _known_format(cls, rf: dict[str, Any] | None) -> dict[str, Any] | None:
        """A malformed response_format is the client's mistake (422), not the model's (502)."""
        if rf is None:
            return None
        kind = rf.get("type")
        if kind not in ("text", "json_object", "json_schema"):
            raise ValueError(f"type {kind!r} is not one of 'text', 'json_object', 'json_schema'")
        if kind == "json_schema":
            spec = rf.get("json_schema", {})
            if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
                raise ValueError('json_schema must be an object like {"name": "x", "schema": {"type": "object"}}')
            schema = spec.get("schema") or {"type": "object"}
            if not isinstance(schema.get("type", "object"), str | list):
                raise ValueError("json_schema.schema.type must be a JSON Schema type name")
        return rf

    def schema(self) -> dict | None:
        rf = self.response_format or {}
        if rf.get("type") == "json_schema":
            return (rf.get("json_schema") or {}).get("schema") or {"type": "object"}
        if rf.get("type") == "json_object":
            return {"type": "object"}
        return None


def check_chat(body: ChatCompletion, max_messages: int) -> None:
    """What would reach the model unfit is refused here with a 422 that states the limit (issue 10, row 8):
    too many messages, a schema llama.cpp should not compile, max_tokens too small for a JSON answer."""
    if len(body.messages) > max_messages:
        raise BadInputError(f"{len(body.messages)} messages sent; this server takes at most {max_messages} "
                            "per request", "send fewer messages (summarise the older ones)")
    schema = body.schema()
    if schema is None:
        return
    check_schema(schema, "response_format's schema")
    need, given = min_answer_tokens(schema), body.sampling().max_tokens
    if given < need:
        raise BadInputError(f"max_tokens={given} is too small for a JSON answer to this response_format: the "
                            f"shortest valid answer needs about {need} tokens", f"set max_tokens to {need} or more")


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


@router.post("/v1/chat/completions", summary="Chat with the configured LLM (stream=true for SSE chunks)")
async def chat_completions(body: ChatCompletion, request: Request, user: StepUserDep, settings: SettingsDep):
    check_chat(body, settings.chat_max_messages)
    llm = _backends(request).llm
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    cid, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
    scope = Scope(settings.chat_deadline_s, "the chat completion", "chat_deadline_s")
    if body.stream:
        if body.schema() is not None:
            raise BadInputError("stream=true works with plain text answers", "drop response_format, or set stream=false")
        usage = body.stream_options is not None and body.stream_options.include_usage
        return StreamingResponse(_chat_chunks(request, scope, llm, messages, body, cid, created, usage),
                                 media_type="text/event-stream")

    def answer() -> list[Answer]:
        return [llm.answer(messages, body.sampling(i), body.schema()) for i in range(body.n)]

    answers = await run_step(request, scope, answer)
    choices = [{"index": i, "message": {"role": "assistant", "content": a.text}, "logprobs": None,
                "finish_reason": a.finish_reason} for i, a in enumerate(answers)]
    return {"id": cid, "object": "chat.completion", "created": created, "model": llm.model_id, "choices": choices,
            "usage": _usage(answers[0].usage.prompt_tokens, sum(a.usage.completion_tokens for a in answers))}


async def _chat_chunks(request: Request, scope: Scope, llm: Any, messages: list[dict], body: ChatCompletion,
                       cid: str, created: int, include_usage: bool):
    """OpenAI's chunk stream; with include_usage every chunk has "usage": null and one last chunk
    (no choices) carries the totals. Choices of n > 1 are streamed one after another. The LLM is driven
    by one thread for the whole stream (stream_in_thread), which lets it go the moment the stream ends."""
    def chunk(choices: list[dict], usage: dict | None = None) -> bytes:
        data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": llm.model_id,
                "choices": choices}
        if include_usage:
            data["usage"] = usage
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

    def pieces():
        for i in range(body.n):
            for piece in llm.answer_stream(messages, body.sampling(i)):
                yield i, piece

    prompt_tokens, completion_tokens, started = 0, 0, set()
    try:
        async for i, piece in stream_in_thread(request, scope, pieces):
            if i not in started:
                started.add(i)
                yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            if piece.text:
                yield chunk([{"index": i, "delta": {"content": piece.text}, "finish_reason": None}])
            if piece.finish_reason is not None:
                yield chunk([{"index": i, "delta": {}, "finish_reason": piece.finish_reason}])
                if piece.usage is not None:
                    prompt_tokens = piece.usage.prompt_tokens
                    completion_tokens += piece.usage.completion_tokens
    except TaleloomError as e:  # the status line is long gone: say it in the stream, as OpenAI does
        yield f"data: {json.dumps({'error': e.to_dict()}, ensure_ascii=False)}\n\n".encode()
    else:
        if include_usage:
            yield chunk([], _usage(prompt_tokens, completion_tokens))
    yield b"data: [DONE]\n\n"


@router.post("/v1/captions", response_model=Caption, summary="Describe a photo (the book's see step)")
async def captions(request: Request, user: StepUserDep, settings: SettingsDep,
                   image: Annotated[UploadFile, File(description="JPEG/PNG/WebP photo")],
                   hint: Annotated[str | None, Form(max_length=500, description="your own words about it")] = None):
    data = await image.read()

    def see() -> Caption:
        photo = load_photo(data, image.filename or "the image", max_bytes=settings.max_upload_bytes,
                           max_pixels=settings.max_pixels)
        return _backends(request).captioner.caption(photo.image, hint or None)

    scope = Scope(settings.caption_deadline_s, "the caption request", "caption_deadline_s")
    return await run_step(request, scope, see)
