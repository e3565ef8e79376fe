"""Single-step model endpoints in the OpenAI shapes people already use, so existing clients and SDKs
work unchanged: images (generations, edits = img2img or inpaint), chat completions (with JSON-schema
answers and streaming), speech; plus /v1/captions for the see step. They share the book jobs'
backends, so their calls count against the same per-backend limits and image requests join the
same batches."""

from __future__ import annotations

import base64
import io
import json
import secrets
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from taleloom.backends.base import Sampling
from taleloom.backends.llm.schema_check import check_schema, min_answer_tokens
from taleloom.book import SEED_MAX, Caption, ImageRequest
from taleloom.deadline import Scope
from taleloom.errors import BadInputError, TaleloomError
from taleloom.imageio import load_photo
from taleloom.server.cancellable import run_step, stream_in_thread
from taleloom.server.deps import HTTPError, SettingsDep, StepUserDep

router = APIRouter(tags=["single steps (OpenAI shapes)"])
MAX_SIDE = 2048


def _backends(request: Request) -> Any:
    return request.app.state.backends


def _size(size: str | None) -> tuple[int, int] | None:
    if not size:
        return None
    w, _, h = size.lower().partition("x")
    if not (w.isdigit() and h.isdigit()) or not (64 <= int(w) <= MAX_SIDE and 64 <= int(h) <= MAX_SIDE):
        raise BadInputError(f"size {size!r} is not WIDTHxHEIGHT between 64 and {MAX_SIDE}", "e.g. size=512x512")
    return int(w), int(h)


def _b64(images: list[Image.Image], prompt: str) -> dict:
    out = []
    for img in images:
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out.append({"b64_json": base64.b64encode(buf.getvalue()).decode("ascii"), "revised_prompt": prompt})
    return {"created": int(time.time()), "data": out}


def _request(prompt: str, negative: str | None, style: str, seed: int | None, steps: int | None,
             guidance: float | None, sampler: str | None, size: tuple[int, int] | None, i: int = 0) -> ImageRequest:
    from taleloom.stages.stage import get_style

    st = get_style(style)
    w, h = size or (None, None)  # the illustrator's native size
    return ImageRequest(prompt=prompt, negative_prompt=st.negative if negative is None else negative,
                        seed=((seed if seed is not None else secrets.randbelow(2**31)) + i) % (SEED_MAX + 1), steps=steps or st.steps,
                        guidance=st.guidance if guidance is None else guidance, sampler=sampler or st.sampler,
                        width=w, height=h, style=st.name)


def _unsupported(e: NotImplementedError) -> HTTPError:
    return HTTPError(501, "NotSupported", str(e) or "this backend cannot do that",
                     "configure an illustrator that supports it (see `taleloom models`)")


class ImageGeneration(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send model, quality, user...
    prompt: str = Field(min_length=1, max_length=2000)
    n: int = Field(1, ge=1, le=8)
    size: str | None = Field(None, description="WIDTHxHEIGHT; default: the illustrator's native size (SDXL 1024x1024)")
    response_format: Literal["b64_json"] = Field("b64_json", description="only b64_json: pictures are not stored")
    negative_prompt: str | None = None
    style: str = "storybook"
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    steps: int | None = Field(None, ge=1, le=200)
    guidance: float | None = Field(None, ge=0, le=30)
    sampler: str | None = None


@router.post("/v1/images/generations", summary="Draw pictures from a prompt")
def images_generations(body: ImageGeneration, request: Request, user: StepUserDep):
    size = _size(body.size)
    reqs = [_request(body.prompt, body.negative_prompt, body.style, body.seed, body.steps, body.guidance,
                     body.sampler, size, i) for i in range(body.n)]
    return _b64(_backends(request).illustrator.generate(reqs), body.prompt)


def _mask(data: bytes, size: tuple[int, int]) -> Image.Image:
    """OpenAI's convention: transparent pixels mark what to redraw. A mask without alpha reads
    white = redraw. Returns mode L, 255 = redraw."""
    try:
        m = Image.open(io.BytesIO(data))
        m.load()
    except Exception:
        raise BadInputError("the mask is not an image", "send a PNG whose transparent (or white) pixels "
                            "mark what to redraw") from None
    if m.mode in ("RGBA", "LA", "PA") or (m.mode == "P" and "transparency" in m.info):
        alpha = m.convert("RGBA").getchannel("A")
        m = alpha.point(lambda a: 255 if a < 128 else 0)
    else:
        m = m.convert("L").point(lambda v: 255 if v >= 128 else 0)
    return m.resize(size, Image.Resampling.NEAREST)


@router.post("/v1/images/edits", summary="img2img (no mask) or inpaint (mask: transparent = redraw)")
def images_edits(request: Request, user: StepUserDep, settings: SettingsDep,
                 image: Annotated[UploadFile, File(description="the picture to change")],
                 prompt: Annotated[str, Form(min_length=1, max_length=2000)],
                 mask: Annotated[UploadFile | None, File(description="PNG; transparent or white = redraw")] = None,
                 n: Annotated[int, Form(ge=1, le=4)] = 1, size: Annotated[str | None, Form()] = None,
                 strength: Annotated[float, Form(gt=0, le=1)] = 0.6,
                 style: Annotated[str, Form()] = "storybook", seed: Annotated[int | None, Form(ge=0, le=SEED_MAX)] = None,
                 steps: Annotated[int | None, Form(ge=1, le=200)] = None,
                 guidance: Annotated[float | None, Form(ge=0, le=30)] = None,
                 response_format: Annotated[Literal["b64_json"], Form()] = "b64_json"):
    photo = load_photo(image.file.read(), image.filename or "the image", max_bytes=settings.max_upload_bytes,
                       max_pixels=settings.max_pixels).image
    wh = _size(size) or photo.size
    if photo.size != wh:
        photo = photo.resize(wh, Image.Resampling.LANCZOS)
    illustrator = _backends(request).illustrator
    m = _mask(mask.file.read(), wh) if mask is not None and mask.filename else None
    out = []
    try:
        for i in range(n):
            req = _request(prompt, None, style, seed, steps, guidance, None, wh, i)
            out.append(illustrator.inpaint(req, photo, m) if m is not None else illustrator.img2img(req, photo, strength))
    except NotImplementedError as e:
        raise _unsupported(e) from None
    return _b64(out, prompt)


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


class ChatCompletion(BaseModel):
    model_config = ConfigDict(extra="ignore")
    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=1, le=8192)
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    n: int = Field(1, ge=1, le=4)
    stream: bool = False
    response_format: dict[str, Any] | None = Field(None, description='{"type": "json_schema", "json_schema": '
                                                   '{"schema": {...}}} constrains the answer')

    def sampling(self) -> Sampling:
        fields = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                  "max_tokens": self.max_tokens, "seed": self.seed}
        return Sampling(**{k: v for k, v in fields.items() if v is not None})

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


@router.post("/v1/chat/completions", summary="Chat with the configured LLM (stream=true for SSE chunks)")
async def chat_completions(body: ChatCompletion, request: Request, user: StepUserDep, settings: SettingsDep):
    check_chat(body, settings.chat_max_messages)
    llm = _backends(request).llm
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    cid, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
    scope = Scope(settings.chat_deadline_s, "the chat completion", "chat_deadline_s")
    if body.stream:
        if body.schema() is not None or body.n > 1:
            raise BadInputError("stream=true works with plain text answers and n=1",
                                "drop response_format / n, or set stream=false")
        return StreamingResponse(_chat_chunks(request, scope, llm, messages, body.sampling(), cid, created),
                                 media_type="text/event-stream")

    def answer() -> list[str]:
        return [llm.chat(messages, body.sampling(), body.schema()) for _ in range(body.n)]

    texts = await run_step(request, scope, answer)
    choices = [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
               for i, text in enumerate(texts)]
    return {"id": cid, "object": "chat.completion", "created": created, "model": llm.model_id,
            "choices": choices, "usage": None}


async def _chat_chunks(request: Request, scope: Scope, llm: Any, messages: list[dict], sampling: Sampling,
                       cid: str, created: int):
    def chunk(delta: dict, finish: str | None) -> bytes:
        data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": llm.model_id,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""}, None)
    try:
        async for piece in stream_in_thread(request, scope, lambda: llm.stream(messages, sampling)):
            yield chunk({"content": piece}, None)
    except TaleloomError as e:  # the status line is long gone: say it in the stream, as OpenAI does
        yield f"data: {json.dumps({'error': e.to_dict()}, ensure_ascii=False)}\n\n".encode()
    else:
        yield chunk({}, "stop")
    yield b"data: [DONE]\n\n"


class Speech(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input: str = Field(min_length=1, max_length=4096)
    model: str | None = None
    voice: str | None = None
    language: str = Field("en", description="ISO 639-1 code (Taleloom's addition to the OpenAI shape)")
    response_format: Literal["wav"] = Field("wav", description="only wav")


@router.post("/v1/audio/speech", response_class=Response, summary="Read text aloud (WAV)",
             responses={200: {"content": {"audio/wav": {}}}})
def audio_speech(body: Speech, request: Request, user: StepUserDep):
    return Response(_backends(request).narrator.speak(body.input, body.language), media_type="audio/wav")


@router.post("/v1/captions", response_model=Caption, summary="Describe a photo (the book's see step)")
def captions(request: Request, user: StepUserDep, settings: SettingsDep,
             image: Annotated[UploadFile, File(description="JPEG/PNG/WebP photo")],
             hint: Annotated[str | None, Form(max_length=500, description="your own words about it")] = None):
    photo = load_photo(image.file.read(), image.filename or "the image", max_bytes=settings.max_upload_bytes,
                       max_pixels=settings.max_pixels)
    return _backends(request).captioner.caption(photo.image, hint or None)
