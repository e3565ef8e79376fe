"""/v1/images/generations and /v1/images/edits in OpenAI's shapes, and the short-lived picture links
they hand out for ``response_format: "url"``.

Size policy: the picture comes back at exactly the `size` asked for (any WIDTHxHEIGHT from 64 to
2048; "auto" or none: the illustrator's native size). The illustrator is asked for that size; one that
draws at a fixed size (the embedded model: 32×32) is followed by the upscaler (×4) when the size asked
for is at least twice as large on both sides, then the picture is cropped to the asked aspect ratio
and resized (Lanczos) to the exact size. OpenAI's `style` ("vivid", "natural") and `quality` map onto
our presets (STYLE_ALIASES, QUALITY_STEPS); `revised_prompt` is set when the illustrator was given
other words than the prompt (the embedded model draws the trained concept nearest to it).
"""

from __future__ import annotations

import base64
import io
import secrets
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse
from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field, field_validator

from taleloom.book import SEED_MAX, STEPS_MAX, ImageRequest, Steps
from taleloom.config import Settings
from taleloom.deadline import Scope
from taleloom.errors import BadInputError, choice_error
from taleloom.imageio import load_mask, load_photo
from taleloom.server import image_links
from taleloom.server.cancellable import run_step
from taleloom.server.deps import HTTPError, SettingsDep, StepUserDep, not_found

router = APIRouter(tags=["single steps (OpenAI shapes)"])
MAX_SIDE = 2048
STYLE_ALIASES = {"vivid": "storybook", "natural": "watercolor"}  # OpenAI's style names -> our presets
QUALITY_STEPS = {"low": 0.5, "auto": 1.0, "standard": 1.0, "medium": 1.0, "high": 2.0, "hd": 2.0}  # x preset steps
Quality = Literal["auto", "low", "standard", "medium", "high", "hd"]
OutputFormat = Literal["png", "jpeg", "webp"]


def _size(size: str | None) -> tuple[int, int] | None:
    if not size or size == "auto":
        return None
    w, _, h = size.lower().partition("x")
    if not (w.isdigit() and h.isdigit()) or not (64 <= int(w) <= MAX_SIDE and 64 <= int(h) <= MAX_SIDE):
        raise BadInputError(f"size {size!r} is not WIDTHxHEIGHT between 64 and {MAX_SIDE}",
                            "e.g. size=512x512, 256x256 or 1024x768; 'auto' draws at the illustrator's own size")
    return int(w), int(h)


def preset(style: str):
    """Our style preset for `style`: one of ours, or OpenAI's vivid/natural."""
    from taleloom.stages.stage import STYLES, get_style

    name = STYLE_ALIASES.get(style, style)
    if name not in STYLES:
        raise choice_error("style", style, [*STYLES, *STYLE_ALIASES])
    return get_style(name)


def _request(prompt: str, style: str, seed: int | None, i: int, size: tuple[int, int] | None,
             negative: str | None = None, steps: int | None = None, guidance: float | None = None,
             sampler: str | None = None, quality: str | None = None, concepts: list[str] | None = None) -> ImageRequest:
    st = preset(style)
    w, h = size or (None, None)  # the illustrator's native size
    steps = steps or max(1, min(200, round(st.steps * QUALITY_STEPS[quality or "auto"])))
    return ImageRequest(prompt=prompt, negative_prompt=st.negative if negative is None else negative,
                        concepts=concepts or [], seed=((seed if seed is not None else secrets.randbelow(2**31)) + i)
                        % (SEED_MAX + 1), steps=steps, guidance=st.guidance if guidance is None else guidance,
                        sampler=sampler or st.sampler, width=w, height=h, style=st.name)


def _concepts(illustrator: Any, prompt: str) -> list[str]:
    """The trained concept nearest to the prompt, for an illustrator that only knows a fixed vocabulary
    (what the book's stage does for each page); [] for one that reads whole prompts."""
    from taleloom.stages.stage import concept_mapper_for

    mapper = concept_mapper_for(illustrator)
    return list(mapper(prompt, 1)) if mapper is not None else []


def fit(images: list[Image.Image], size: tuple[int, int] | None, upscaler: Any,
        requests: list[ImageRequest]) -> list[Image.Image]:
    """Each picture at exactly `size` (see the module's size policy); unchanged when `size` is None."""
    if size is None or all(im.size == size for im in images):
        return images
    w, h = size
    small = [i for i, im in enumerate(images) if im.width * 2 <= w and im.height * 2 <= h]
    if small and len({images[i].size for i in small}) == 1:
        big = upscaler.upscale_batch([images[i] for i in small], 4, [requests[i].prompt for i in small],
                                     [requests[i].seed for i in small])
        images = list(images)
        for i, im in zip(small, big, strict=True):
            images[i] = im
    return [im if im.size == size else ImageOps.fit(im.convert("RGB"), size, Image.Resampling.LANCZOS)
            for im in images]


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    (img.convert("RGB") if fmt == "jpeg" else img).save(buf, format=fmt.upper())
    return buf.getvalue()


def answer(images: list[Image.Image], response_format: str, output_format: str, revised: str | None,
           request: Request, settings: Settings) -> dict:
    """OpenAI's ImagesResponse: created, data[] with b64_json or a short-lived url (+ revised_prompt)."""
    data = []
    for img in images:
        raw = _encode(img, output_format)
        if response_format == "url":
            name = image_links.save(settings.data_dir, raw, output_format, settings.image_url_seconds)
            item: dict[str, Any] = {"url": f"{str(request.base_url).rstrip('/')}/v1/images/files/{name}"}
        else:
            item = {"b64_json": base64.b64encode(raw).decode("ascii")}
        if revised is not None:
            item["revised_prompt"] = revised
        data.append(item)
    return {"created": int(time.time()), "data": data, "output_format": output_format}


def _unsupported(e: NotImplementedError) -> HTTPError:
    return HTTPError(501, "NotSupported", str(e) or "this backend cannot do that",
                     "configure an illustrator that supports it (see `taleloom models`)")


class ImageGeneration(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send model, user, moderation...
    prompt: str = Field(min_length=1, max_length=2000)
    n: int = Field(1, ge=1, le=10)
    size: str | None = Field(None, description="WIDTHxHEIGHT (64-2048), returned exactly; 'auto'/none: the "
                                               "illustrator's native size")
    response_format: Literal["b64_json", "url"] = Field(
        "b64_json", description="url: a link to the picture on this server, valid for image_url_seconds")
    output_format: OutputFormat = "png"
    background: Literal["auto", "opaque"] | None = Field(None, description="transparent is refused: pictures are opaque")
    quality: Quality | None = Field(None, description="sampling steps: low = half the preset's, high/hd = twice")
    style: str = Field("storybook", description="a preset of GET /v1/options, or OpenAI's vivid (storybook) / "
                                                "natural (watercolor)")
    negative_prompt: str | None = None
    seed: int | None = Field(None, ge=0, le=SEED_MAX, description="picture i uses seed + i")
    steps: Steps | None = None
    guidance: float | None = Field(None, ge=0, le=30, allow_inf_nan=False)
    sampler: str | None = None
    stream: bool = Field(False, description="not supported: partial pictures are not streamed (422)")

    @field_validator("stream")
    @classmethod
    def _no_stream(cls, stream: bool) -> bool:
        if stream:
            raise ValueError("this server does not stream partial pictures; leave stream out (the answer is the "
                             "finished pictures)")
        return stream

    @field_validator("style")
    @classmethod
    def _known_style(cls, style: str) -> str:
        preset(style)  # a BadInputError (a ValueError) lists the known ones
        return style


def _scope(settings: Settings) -> Scope:
    return Scope(settings.image_deadline_s, "the picture request", "image_deadline_s")


@router.post("/v1/images/generations", summary="Draw pictures from a prompt")
async def images_generations(body: ImageGeneration, request: Request, user: StepUserDep, settings: SettingsDep):
    size = _size(body.size)
    backends = request.app.state.backends

    def draw() -> dict:
        concepts = _concepts(backends.illustrator, body.prompt)
        reqs = [_request(body.prompt, body.style, body.seed, i, size, body.negative_prompt, body.steps,
                         body.guidance, body.sampler, body.quality, concepts) for i in range(body.n)]
        images = fit(backends.illustrator.generate(reqs), size, backends.upscaler, reqs)
        return answer(images, body.response_format, body.output_format, concepts[0] if concepts else None,
                      request, settings)

    return await run_step(request, _scope(settings), draw)


@router.post("/v1/images/edits", summary="img2img (no mask) or inpaint (mask: transparent = redraw)")
async def images_edits(request: Request, user: StepUserDep, settings: SettingsDep,
                 image: Annotated[UploadFile, File(description="the picture to change")],
                 prompt: Annotated[str, Form(min_length=1, max_length=2000)],
                 mask: Annotated[UploadFile | None, File(description="PNG; transparent or white = redraw")] = None,
                 n: Annotated[int, Form(ge=1, le=4)] = 1, size: Annotated[str | None, Form()] = None,
                 strength: Annotated[float, Form(gt=0, le=1, allow_inf_nan=False)] = 0.6,
                 style: Annotated[str, Form()] = "storybook", seed: Annotated[int | None, Form(ge=0, le=SEED_MAX)] = None,
                 steps: Annotated[int | None, Form(ge=1, le=STEPS_MAX)] = None,
                 guidance: Annotated[float | None, Form(ge=0, le=30, allow_inf_nan=False)] = None,
                 quality: Annotated[Quality | None, Form()] = None,
                 output_format: Annotated[OutputFormat, Form()] = "png",
                 background: Annotated[Literal["auto", "opaque"] | None, Form()] = None,
                 response_format: Annotated[Literal["b64_json", "url"], Form()] = "b64_json",
                 upscale: Annotated[int | None, Form(ge=2, le=4, description=(
                     "Taleloom's own: enlarge the picture this many times with the upscaler instead of redrawing "
                     "it (what an `openai:` upscaler of another Taleloom sends); size, if given, is the final size"))]
                 = None):
    photo_bytes, mask_bytes = await image.read(), await mask.read() if mask is not None and mask.filename else None
    backends = request.app.state.backends

    def edit() -> dict:
        photo = load_photo(photo_bytes, image.filename or "the image", max_bytes=settings.max_upload_bytes,
                           max_pixels=settings.max_pixels).image
        if upscale:
            big = backends.upscaler.upscale(photo, upscale, prompt, seed or 0)
            wh = _size(size) or big.size
            big = big if big.size == wh else ImageOps.fit(big.convert("RGB"), wh, Image.Resampling.LANCZOS)
            return answer([big], response_format, output_format, None, request, settings)
        wh = _size(size) or photo.size
        if photo.size != wh:
            photo = photo.resize(wh, Image.Resampling.LANCZOS)
        illustrator = backends.illustrator
        m = (load_mask(mask_bytes, wh, "the mask", max_bytes=settings.max_upload_bytes,
                       max_pixels=settings.max_pixels) if mask_bytes is not None else None)
        concepts = _concepts(illustrator, prompt)
        reqs = [_request(prompt, style, seed, i, wh, None, steps, guidance, None, quality, concepts) for i in range(n)]
        try:
            out = [illustrator.inpaint(r, photo, m) if m is not None else illustrator.img2img(r, photo, strength)
                   for r in reqs]
        except NotImplementedError as e:
            raise _unsupported(e) from None
        return answer(fit(out, wh, backends.upscaler, reqs), response_format, output_format,
                      concepts[0] if concepts else None, request, settings)

    return await run_step(request, _scope(settings), edit)


@router.get("/v1/images/files/{name}", summary="A picture from response_format=url (no token: the link is the key)",
            response_class=FileResponse, responses={200: {"content": {"image/png": {}}}})
def image_file(name: str, settings: SettingsDep):
    found = image_links.find(settings.data_dir, name, settings.image_url_seconds)
    if found is None:
        raise not_found("this picture link", "links expire image_url_seconds after the picture was drawn; "
                                             "draw it again (same seed, same picture)")
    path, left = found
    return FileResponse(path, media_type=image_links.MEDIA_TYPES[path.suffix[1:]],
                        headers={"Cache-Control": f"private, max-age={int(left)}"})
