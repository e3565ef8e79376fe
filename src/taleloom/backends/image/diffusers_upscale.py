"""The Stable Diffusion x4 upscaler as an `Upscaler`: a latent diffusion model conditioned on the low-res
picture and a prompt. Spec: ``diffusers-x4:/models/sd-x4-upscaler``."""

from __future__ import annotations

import threading
from typing import Any

import torch
from PIL import Image
from pydantic import Field

from taleloom.backends.base import Upscaler
from taleloom.backends.image.diffusers_common import (
    DiffusersOptions,
    load_pipeline,
    out_of_memory_guard,
    place,
    resolve_dtype,
    resolve_folder,
)
from taleloom.book import Steps
from taleloom.config import resolve_device
from taleloom.errors import BadInputError, ModelNotFoundError


class DiffusersUpscaler(Upscaler):
    name = "diffusers-x4"
    suggested_repo = "stabilityai/stable-diffusion-x4-upscaler"

    class Options(DiffusersOptions):
        steps: Steps = 20
        guidance: float = Field(9.0, ge=0.0, le=50.0)
        noise_level: int = Field(20, ge=0, le=350, description="noise added to the low-res picture (more: freer)")
        prompt: str = Field("a detailed children's book illustration", description="used when none is given")
        max_input_side: int = Field(1024, ge=16, description="larger inputs are refused (x4 of it is decoded)")

    def __init__(self, location: str | None = None, model: str | None = None, **options: Any):
        self.options = self.Options(**options)
        self.device = resolve_device(self.options.device)
        self.folder = resolve_folder(location or model, self.name, self.suggested_repo)
        from diffusers import StableDiffusionUpscalePipeline

        pipe = load_pipeline(StableDiffusionUpscalePipeline, self.folder, resolve_dtype(self.options, self.device),
                             self.options, self.suggested_repo)
        if type(pipe).__name__ != "StableDiffusionUpscalePipeline":
            raise ModelNotFoundError(f"{self.folder} holds a {type(pipe).__name__}, not the x4 upscaler",
                                     f"download {self.suggested_repo} and point diffusers-x4 at it")
        self.pipe = place(pipe, self.options, self.device)
        self.model_id = f"{self.name}:{self.folder}"
        self._lock = threading.Lock()

    def upscale(self, image: Image.Image, factor: int = 4, prompt: str = "", seed: int = 0) -> Image.Image:
        """x4 through the model; factors 2 and 3 are x4 then a Lanczos reduction."""
        if factor not in (1, 2, 3, 4):
            raise BadInputError(f"the x4 upscaler cannot enlarge {factor} times", "use a factor from 1 to 4")
        if factor == 1:
            return image.copy()
        if max(image.size) > self.options.max_input_side:
            raise BadInputError(f"picture of {image.width}x{image.height} is too large to upscale",
                                f"the limit is {self.options.max_input_side} px a side (max_input_side option)")
        target = (image.width * factor, image.height * factor)
        w, h = max(8, image.width // 8 * 8), max(8, image.height // 8 * 8)  # the UNet halves the size 3 times
        low = image.convert("RGB").resize((w, h), Image.Resampling.LANCZOS) if (w, h) != image.size \
            else image.convert("RGB")
        with self._lock, torch.inference_mode(), out_of_memory_guard("upscaling x4", self.options, 1, w * 4, h * 4):
            out = self.pipe(prompt=prompt or self.options.prompt, image=low, num_inference_steps=self.options.steps,
                            guidance_scale=self.options.guidance, noise_level=self.options.noise_level,
                            generator=torch.Generator("cpu").manual_seed(seed)).images[0]
        return out if out.size == target else out.resize(target, Image.Resampling.LANCZOS)
