"""Illustrators over diffusers pipelines: Stable Diffusion 1.x/2.x, SDXL base (+ refiner hand-off) and
few-step SD-Turbo / SDXL-Turbo / LCM; text-to-image, img2img and inpainting all through the same backend.

Specs: ``diffusers-sd:/models/sd15``, ``diffusers-sdxl:/models/sdxl`` (a folder holding ``base/`` and
``refiner/`` works too, as does the ``refiner`` option), ``diffusers-turbo:/models/sdxl-turbo``, or a Hugging
Face repo id already in the local cache (``diffusers-sdxl:stabilityai/stable-diffusion-xl-base-1.0``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from PIL import Image
from pydantic import Field

from taleloom.backends.base import Illustrator
from taleloom.backends.batching import batches
from taleloom.backends.image.diffusers_common import (
    DiffusersOptions,
    check_size,
    check_strength,
    fit,
    load_pipeline,
    make_scheduler,
    out_of_memory_guard,
    place,
    resolve_dtype,
    resolve_folder,
    sampler_names,
)
from taleloom.backends.image.diffusers_upscale import DiffusersUpscaler  # noqa: F401  (registered name lives here)
from taleloom.book import ImageRequest, Steps
from taleloom.config import resolve_device
from taleloom.errors import ModelNotFoundError, choice_error

SD_FAMILY = ("StableDiffusionPipeline",)
SDXL_FAMILY = ("StableDiffusionXLPipeline",)


@dataclass(frozen=True)
class Settings:
    """What one pipeline call uses: the request's values unless the backend's options override them."""

    sampler: str
    steps: int
    guidance: float
    width: int
    height: int


class DiffusersIllustrator(Illustrator):
    name = "diffusers-sd"
    family: ClassVar[tuple[str, ...]] = SD_FAMILY  # pipeline classes this backend accepts
    suggested_repo: ClassVar[str] = "stable-diffusion-v1-5/stable-diffusion-v1-5"

    class Options(DiffusersOptions):
        batch_size: int = Field(4, ge=1, le=64, description="pictures per pipeline call")
        sampler: str | None = Field(None, description="overrides each request's sampler")
        steps: Steps | None = Field(None, description="overrides each request's steps")
        guidance: float | None = Field(None, ge=0.0, le=50.0, description="overrides each request's guidance")
        width: int | None = Field(None, ge=8, le=4096, description="overrides each request's width")
        height: int | None = Field(None, ge=8, le=4096, description="overrides each request's height")
        negative_prompt: str = Field("", description="added to every request's negative prompt")
        safety_checker: bool = Field(True, description="keep the folder's safety checker when it has one")

    def __init__(self, location: str | None = None, model: str | None = None, **options: Any):
        self.options = self.Options(**options)
        if self.options.sampler is not None and self.options.sampler not in sampler_names():
            raise choice_error("sampler", self.options.sampler, sampler_names())
        self.device = resolve_device(self.options.device)
        self.dtype = resolve_dtype(self.options, self.device)
        self.folder = self._find_folder(location or model)
        self.pipe = self._load(self.folder)
        self.model_id = f"{self.name}:{self.folder}"
        self._pipes: dict[str, Any] = {"text2img": self.pipe}
        self._schedulers: dict[tuple[str, str], Any] = {}
        self._scheduler_config = self.pipe.scheduler.config
        self._lock = threading.Lock()
        self.max_batch = self.options.batch_size  # type: ignore[misc]

    # ------------------------------------------------------------------ loading
    def _find_folder(self, location: str | None) -> Path:
        return resolve_folder(location, self.name, self.suggested_repo)

    def _load(self, folder: Path) -> Any:
        from diffusers import AutoPipelineForText2Image

        kwargs: dict[str, Any] = {}
        if not self.options.safety_checker and (folder / "safety_checker").is_dir():
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        pipe = self._from_pretrained(AutoPipelineForText2Image, folder, **kwargs)
        kind = type(pipe).__name__
        if kind not in self.family:
            better = {"StableDiffusionXLPipeline": "diffusers-sdxl", "StableDiffusionPipeline": "diffusers-sd"}
            raise ModelNotFoundError(f"{folder} holds a {kind}, which the {self.name} backend does not drive",
                                     f"use the {better.get(kind, 'matching')} backend for this folder")
        return place(pipe, self.options, self.device)

    def _from_pretrained(self, loader: Any, folder: Path, **kwargs: Any) -> Any:
        return load_pipeline(loader, folder, self.dtype, self.options, self.suggested_repo, **kwargs)

    # ------------------------------------------------------------------ settings
    @property
    def native_size(self) -> int:
        """The side the model was trained at (SD 1.5: 512, SDXL: 1024): latent sample size × VAE factor."""
        pipe = self.pipe
        return int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))

    def settings(self, request: ImageRequest) -> Settings:
        o = self.options
        native = self.native_size
        s = Settings(sampler=o.sampler or request.sampler, steps=o.steps or request.steps,
                     guidance=request.guidance if o.guidance is None else o.guidance,
                     width=o.width or request.width or native, height=o.height or request.height or native)
        if s.sampler not in sampler_names():
            raise choice_error("sampler", s.sampler, sampler_names())
        check_size(s.width, s.height, 8)
        return s

    def _scheduler_extra(self, sampler: str) -> dict[str, Any]:
        return {}

    def _use_sampler(self, pipe: Any, role: str, sampler: str) -> None:
        key = (role, sampler)
        if key not in self._schedulers:
            config = self._scheduler_config if role == "base" else self._refiner_scheduler_config
            self._schedulers[key] = make_scheduler(sampler, config, **self._scheduler_extra(sampler))
        pipe.scheduler = self._schedulers[key]

    def _negative(self, request: ImageRequest) -> str:
        return ", ".join(p for p in (request.negative_prompt, self.options.negative_prompt) if p.strip())

    # ------------------------------------------------------------------ drawing
    def generate(self, requests: list[ImageRequest]) -> list[Image.Image]:
        """Requests that share size/steps/guidance/sampler go through the pipeline together, in batches."""
        images: list[Image.Image | None] = [None] * len(requests)
        for chunk in batches(requests, self.options.batch_size, key=self.settings):
            s = self.settings(requests[chunk[0]])
            drawn = self._call("text2img", [requests[i] for i in chunk], s, {"width": s.width, "height": s.height})
            for i, image in zip(chunk, drawn, strict=True):
                images[i] = image
        return images  # type: ignore[return-value]

    def img2img(self, request: ImageRequest, image: Image.Image, strength: float = 0.6) -> Image.Image:
        """Redraw `image` (resized to the request's size); strength 0.3 keeps most of it, 1.0 none."""
        check_strength(strength)
        s = self.settings(request)
        steps = max(s.steps, math.ceil(1 / strength))  # diffusers runs int(steps * strength) steps: at least one
        extra = {"image": fit(image, s.width, s.height), "strength": strength}
        return self._call("img2img", [request], Settings(s.sampler, steps, s.guidance, s.width, s.height), extra)[0]

    def inpaint(self, request: ImageRequest, image: Image.Image, mask: Image.Image) -> Image.Image:
        """Redraw the white part of `mask` (black is kept), following the request's prompt."""
        s = self.settings(request)
        extra = {"image": fit(image, s.width, s.height), "mask_image": fit(mask, s.width, s.height, "L"),
                 "width": s.width, "height": s.height}
        return self._call("inpaint", [request], s, extra)[0]

    def _call(self, mode: str, requests: list[ImageRequest], s: Settings, extra: dict[str, Any]) -> list[Image.Image]:
        negatives = [self._negative(r) for r in requests]
        kwargs = dict(prompt=[r.prompt for r in requests],
                      negative_prompt=negatives if any(negatives) else None,
                      num_inference_steps=s.steps, guidance_scale=s.guidance,
                      # CPU generators: the same seed gives the same picture on any device
                      generator=[torch.Generator("cpu").manual_seed(r.seed) for r in requests], **extra)
        what = {"text2img": "drawing", "img2img": "redrawing (img2img)", "inpaint": "inpainting"}[mode]
        with self._lock, torch.inference_mode(), \
                out_of_memory_guard(f"{what} with {self.name}", self.options, len(requests), s.width, s.height):
            pipe = self._pipe(mode)
            self._use_sampler(pipe, "base", s.sampler)
            return self._run(mode, pipe, s, kwargs)

    def _run(self, mode: str, pipe: Any, s: Settings, kwargs: dict[str, Any]) -> list[Image.Image]:
        return list(pipe(**kwargs).images)

    def _pipe(self, mode: str, base: Any = None, cache_prefix: str = "") -> Any:
        """The img2img / inpaint pipeline built on the loaded one's components (no second copy in memory)."""
        key = cache_prefix + mode
        if key not in self._pipes:
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

            loader = {"img2img": AutoPipelineForImage2Image, "inpaint": AutoPipelineForInpainting}[mode]
            pipe = loader.from_pipe(base if base is not None else self.pipe)
            pipe.set_progress_bar_config(disable=not self.options.progress)
            self._pipes[key] = pipe
        return self._pipes[key]


class SDXLIllustrator(DiffusersIllustrator):
    """SDXL base, optionally followed by the refiner: the base denoises the first `refiner_switch` of the
    schedule (``denoising_end``) and hands its latents to the refiner, which finishes (``denoising_start``)."""

    name = "diffusers-sdxl"
    family = SDXL_FAMILY
    suggested_repo = "stabilityai/stable-diffusion-xl-base-1.0"

    class Options(DiffusersIllustrator.Options):
        refiner: str | None = Field(None, description="SDXL refiner folder (or cached repo id)")
        refiner_switch: float = Field(0.8, gt=0.0, lt=1.0, description="share of the schedule the base denoises")

    def __init__(self, location: str | None = None, model: str | None = None, **options: Any):
        self._auto_refiner: Path | None = None
        super().__init__(location, model, **options)
        self.refiner = None
        where = self.options.refiner or self._auto_refiner
        if where is not None:
            folder = resolve_folder(str(where), f"{self.name} refiner", "stabilityai/stable-diffusion-xl-refiner-1.0")
            self.refiner = self._load_refiner(folder)
            self._refiner_scheduler_config = self.refiner.scheduler.config
            self.model_id += f"+refiner:{folder}@{self.options.refiner_switch}"

    def _find_folder(self, location: str | None) -> Path:
        root = Path(location).expanduser() if location else None
        if root is not None and (root / "base" / "model_index.json").exists():  # base/ + refiner/ layout
            if (root / "refiner" / "model_index.json").exists():
                self._auto_refiner = root / "refiner"
            return root / "base"
        return super()._find_folder(location)

    def _load_refiner(self, folder: Path) -> Any:
        from diffusers import AutoPipelineForImage2Image

        # the refiner shares the base's second text encoder and VAE, as in the SDXL paper's set-up
        refiner = self._from_pretrained(AutoPipelineForImage2Image, folder, text_encoder_2=self.pipe.text_encoder_2,
                                        vae=self.pipe.vae)
        return place(refiner, self.options, self.device)

    def _run(self, mode: str, pipe: Any, s: Settings, kwargs: dict[str, Any]) -> list[Image.Image]:
        if self.refiner is None:
            return super()._run(mode, pipe, s, kwargs)
        switch = self.options.refiner_switch
        latents = pipe(**kwargs, denoising_end=switch, output_type="latent").images
        refiner = self.refiner if mode != "inpaint" else self._pipe("inpaint", self.refiner, "refiner-")
        self._use_sampler(refiner, "refiner", s.sampler)
        keep = ("prompt", "negative_prompt", "num_inference_steps", "guidance_scale", "generator", "mask_image")
        return list(refiner(**{k: v for k, v in kwargs.items() if k in keep}, image=latents,
                            denoising_start=switch).images)


class TurboIllustrator(DiffusersIllustrator):
    """Few-step models: SD-Turbo / SDXL-Turbo (1-4 steps, no guidance, Euler ancestral on trailing
    timesteps) and LCM-distilled models (4-8 steps with the LCM scheduler). Their own step counts and
    guidance replace the requests' (tuned for ordinary models) unless the options set them."""

    name = "diffusers-turbo"
    family = SD_FAMILY + SDXL_FAMILY
    suggested_repo = "stabilityai/sdxl-turbo"
    KIND_DEFAULTS: ClassVar[dict[str, tuple[str, int, float]]] = {  # kind → (sampler, steps, guidance)
        "turbo": ("euler_a", 4, 0.0),
        "lcm": ("lcm", 4, 8.0),  # LCM-distilled UNets take guidance as an embedding, not as CFG
        "lcm-cfg": ("lcm", 4, 1.5),  # LCM scheduler on a UNet without that embedding (fused LCM-LoRA)
    }

    class Options(DiffusersIllustrator.Options):
        kind: Literal["auto", "turbo", "lcm"] = Field("auto", description="auto: lcm when the folder's scheduler "
                                                                           "or UNet is LCM, else turbo")

    def __init__(self, location: str | None = None, model: str | None = None, **options: Any):
        super().__init__(location, model, **options)
        kind = self.options.kind
        if kind == "auto":
            is_lcm = self._scheduler_config.get("_class_name") == "LCMScheduler"
            kind = "lcm" if is_lcm or self._lcm_unet() else "turbo"
        if kind == "lcm" and not self._lcm_unet():
            kind = "lcm-cfg"
        self.kind = kind
        self.model_id += f"[{kind}]"

    def _lcm_unet(self) -> bool:
        return getattr(self.pipe.unet.config, "time_cond_proj_dim", None) is not None

    def settings(self, request: ImageRequest) -> Settings:
        sampler, steps, guidance = self.KIND_DEFAULTS[self.kind]
        o = self.options
        base = request.model_copy(update={"sampler": o.sampler or sampler, "steps": o.steps or steps,
                                          "guidance": guidance if o.guidance is None else o.guidance})
        return super().settings(base)

    def _scheduler_extra(self, sampler: str) -> dict[str, Any]:
        return {"timestep_spacing": "trailing"} if self.kind == "turbo" and sampler != "lcm" else {}
