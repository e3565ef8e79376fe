"""Illustrator, editor and upscaler over any OpenAI-compatible image server: ``/v1/images/generations`` and
``/v1/images/edits`` of another Taleloom (so a CPU front end draws on a GPU box), OpenAI, LocalAI...

Spec: ``openai:http://gpu-box:8000/v1#model`` (no ``#model``: the server picks). To a server other than
api.openai.com we also send Taleloom's own fields (seed, steps, guidance, sampler, style, negative_prompt),
so a page drawn remotely is the same picture for the same seed; the `extended` option turns that off for
servers that reject unknown fields. The upscaler posts the picture to ``/images/edits`` with the size
`factor` times larger (and ``upscale=factor``, which a Taleloom server answers with its upscaler rather than
a redraw). One HTTP call per picture, `parallel` at a time: the server batches across calls.
"""

from __future__ import annotations

import base64
import binascii
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import Field

from taleloom.backends.base import Illustrator, Upscaler
from taleloom.backends.openai_http import OpenAIClient, ServerOptions, make_client, server_ready
from taleloom.book import ImageRequest
from taleloom.errors import BackendError

GARBAGE_HINT = ("check that the URL is an OpenAI-compatible image server (it usually ends in /v1), e.g. another "
                "`taleloom serve`; look at its log")


class ImageServerOptions(ServerOptions):
    extended: bool | None = Field(None, description="send Taleloom's fields (seed, steps, guidance, sampler, style, "
                                                    "negative_prompt, upscale); None: to every server but api.openai.com")
    parallel: int = Field(4, ge=1, le=64, description="picture requests in flight at once")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="extra fields for every request")


class _ImageServer:
    """What the illustrator and the upscaler share: the client, the model name and reading the answer."""

    Options = ImageServerOptions

    def __init__(self, location: str | None = None, model: str | None = None,
                 transport: httpx.BaseTransport | None = None, **options: Any):
        self.options = self.Options(**options)
        self.client: OpenAIClient = make_client(location, self.options, transport)
        self.model = model
        extended = self.options.extended
        self.extended = extended if extended is not None else "api.openai.com" not in self.client.base_url

    @property
    def model_id(self) -> str:
        return f"openai:{self.model or 'default'}@{self.client.base_url}"

    def ready(self) -> tuple[bool, str]:
        return server_ready(self.client)

    def _fields(self, r: ImageRequest | None, size: tuple[int, int] | None) -> dict[str, Any]:
        fields: dict[str, Any] = {"n": 1, "response_format": "b64_json"}
        if self.model:
            fields["model"] = self.model
        if size is not None:
            fields["size"] = f"{size[0]}x{size[1]}"
        if self.extended and r is not None:
            fields.update(seed=r.seed, steps=r.steps, guidance=r.guidance, style=r.style)
            if r.negative_prompt:
                fields["negative_prompt"] = r.negative_prompt
        return fields | self.options.extra_body

    def _pictures(self, answer: Any, path: str, n: int = 1) -> list[Image.Image]:
        """The pictures of an ImagesResponse (b64_json or url items), each checked to be a picture."""
        where = f"{self.client.base_url}/{path}"
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or len(data) != n:
            raise BackendError(f"{where} answered without {n} picture(s) in 'data' (got {str(answer)[:200]!r})",
                               GARBAGE_HINT)
        return [self._picture(item, where) for item in data]

    def _picture(self, item: Any, where: str) -> Image.Image:
        try:
            if isinstance(item, dict) and item.get("b64_json"):
                raw = base64.b64decode(item["b64_json"], validate=True)
            elif isinstance(item, dict) and item.get("url"):
                raw = self.client.get_bytes(str(item["url"]))
            else:
                raise ValueError(f"an item with neither b64_json nor url: {str(item)[:120]!r}")
            img = Image.open(io.BytesIO(raw))
            img.load()
        except (ValueError, binascii.Error, UnidentifiedImageError, OSError) as e:
            raise BackendError(f"{where} answered something that is not a picture ({type(e).__name__}: {e})",
                               GARBAGE_HINT) from e
        return img.convert("RGB")

    def _each(self, fn, items: list) -> list:
        """`fn` over `items`, `parallel` at a time, results in order (the first error is raised)."""
        if len(items) <= 1 or self.options.parallel == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(min(self.options.parallel, len(items)), thread_name_prefix="openai-images") as pool:
            return list(pool.map(fn, items))


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _size(r: ImageRequest) -> tuple[int, int] | None:
    return (r.width, r.height) if r.width and r.height else None


class OpenAIImageIllustrator(_ImageServer, Illustrator):
    name = "openai"
    max_batch = 8

    def generate(self, requests: list[ImageRequest]) -> list[Image.Image]:
        def one(r: ImageRequest) -> Image.Image:
            payload = {"prompt": r.prompt, **self._fields(r, _size(r))}
            if self.extended:
                payload["sampler"] = r.sampler
            return self._pictures(self.client.post_json("images/generations", payload), "images/generations")[0]

        return self._each(one, requests)

    def img2img(self, request: ImageRequest, image: Image.Image, strength: float = 0.6) -> Image.Image:
        fields = {"prompt": request.prompt, "strength": strength, **self._fields(request, _size(request) or image.size)}
        answer = self.client.post_form("images/edits", fields, {"image": ("image.png", png(image), "image/png")})
        return self._pictures(answer, "images/edits")[0]

    def inpaint(self, request: ImageRequest, image: Image.Image, mask: Image.Image) -> Image.Image:
        # our masks: L, 255 = redraw; OpenAI's: transparent = redraw
        alpha = mask.convert("L").resize(image.size).point(lambda v: 0 if v >= 128 else 255)
        rgba = Image.new("RGBA", image.size, (0, 0, 0, 0))
        rgba.putalpha(alpha)
        files = {"image": ("image.png", png(image.convert("RGB")), "image/png"),
                 "mask": ("mask.png", png(rgba), "image/png")}
        fields = {"prompt": request.prompt, **self._fields(request, _size(request) or image.size)}
        return self._pictures(self.client.post_form("images/edits", fields, files), "images/edits")[0]


class OpenAIImageUpscaler(_ImageServer, Upscaler):
    name = "openai"
    max_batch = 8

    class Options(ImageServerOptions):
        strength: float = Field(0.25, gt=0, le=1, description="how much a server without `upscale` may redraw")

    def upscale(self, image: Image.Image, factor: int = 4, prompt: str = "", seed: int = 0) -> Image.Image:
        size = (image.width * factor, image.height * factor)
        fields = {"prompt": prompt or "the same picture, sharper", **self._fields(None, size),
                  "strength": self.options.strength}
        if self.extended:
            fields.update(upscale=factor, seed=seed)
        answer = self.client.post_form("images/edits", fields, {"image": ("image.png", png(image), "image/png")})
        big = self._pictures(answer, "images/edits")[0]
        return big if big.size == size else ImageOps.fit(big, size, Image.Resampling.LANCZOS)

    def upscale_batch(self, images: list[Image.Image], factor: int = 4, prompts: list[str] | None = None,
                      seeds: list[int] | None = None) -> list[Image.Image]:
        prompts, seeds = prompts or [""] * len(images), seeds or [0] * len(images)
        return self._each(lambda job: self.upscale(job[0], factor, job[1], job[2]),
                          list(zip(images, prompts, seeds, strict=True)))
