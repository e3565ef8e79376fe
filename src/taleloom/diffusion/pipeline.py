"""TextToImage: a trained checkpoint + the MiniLM text encoder + the samplers, as one object.

`generate` (text → pictures), `img2img`, `inpaint` and `interpolate` all run the same written-out
loop (sample.py) with classifier-free guidance (guidance.py). This is what `taleloom engine
sample|edit` and the embedded illustrator call. Images come back as RGB PIL images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from PIL import Image

from taleloom.config import resolve_device
from taleloom.diffusion.checkpoint import load_checkpoint
from taleloom.diffusion.data import pil_to_tensor, square, tensor_to_pil, to_rgb, upsample_condition
from taleloom.diffusion.guidance import Denoiser
from taleloom.diffusion.sample import sample_loop
from taleloom.diffusion.samplers import make_sampler
from taleloom.diffusion.schedule import make_schedule
from taleloom.diffusion.text_encoder import TextEncoder, get_text_encoder
from taleloom.errors import BadInputError

IMAGE_MODES = ("RGB", "RGBA", "L", "LA", "P", "PA")  # modes an input picture may have
MASK_MODES = ("1", "L", "LA", "RGB", "RGBA", "P")


def _check_image(image: Image.Image, what: str) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise BadInputError(f"{what} must be a PIL image, got {type(image).__name__}")
    if image.mode not in IMAGE_MODES:
        raise BadInputError(
            f"{what} has mode {image.mode!r}", f"convert it to RGB; accepted modes: {', '.join(IMAGE_MODES)}"
        )
    w, h = image.size
    if w != h:
        raise BadInputError(
            f"{what} is {w}×{h}, but the engine draws square pictures", "crop it to a square first"
        )
    return to_rgb(image)


class TextToImage:
    """Load a checkpoint folder once, then draw: `generate(prompts, seeds=[...]) -> list[PIL.Image]`."""

    def __init__(
        self, checkpoint_dir: str | os.PathLike, device: str = "cpu", text_encoder: TextEncoder | None = None
    ):
        self.device = torch.device(resolve_device(device))
        self.model, self.meta = load_checkpoint(checkpoint_dir, self.device)
        self.config = self.model.config
        self.codec = None  # latent models: the autoencoder between the U-Net's latents and pixels
        if "latent" in self.meta:
            from taleloom.diffusion.checkpoint import checkpoint_dir as _folder
            from taleloom.diffusion.latent import LatentCodec

            self.codec = LatentCodec(_folder(checkpoint_dir), self.meta["latent"], self.device)
        self.image_size = self.codec.image_size if self.codec else self.config.image_size  # pixels drawn
        self.schedule = make_schedule(self.meta["schedule"], int(self.meta["timesteps"]))
        self.prediction_type = self.meta["prediction_type"]
        self._encoder = text_encoder

    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            self._encoder = get_text_encoder(self.device, self.config.max_text_len)
        return self._encoder

    # --- pieces -------------------------------------------------------------------------------------
    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(context (B, L, 384), mask (B, L)) on the model's device."""
        ctx, mask = self.encoder.encode(list(prompts))
        return ctx.to(self.device), mask.to(self.device)

    def _cond_image(self, cond_image, batch: int) -> torch.Tensor | None:
        """Super-resolution models take the low-res picture(s), upsampled to image_size; others take none."""
        need = self.config.cond_channels
        if cond_image is None:
            if need:
                raise BadInputError(
                    "this checkpoint is a super-resolution model and needs a low-resolution input image",
                    "pass cond_image (the picture to upscale)",
                )
            return None
        if not need:
            raise BadInputError("this checkpoint takes no conditioning image", "leave cond_image out")
        if isinstance(cond_image, torch.Tensor):
            x = cond_image.float()
            if x.ndim == 3:
                x = x[None]
        else:
            images = [cond_image] if isinstance(cond_image, Image.Image) else list(cond_image)
            x = torch.stack([pil_to_tensor(_check_image(im, "the conditioning image")) for im in images])
        if x.ndim != 4 or x.shape[1] != need:
            raise BadInputError(f"conditioning image has shape {tuple(x.shape)}, expected (B, {need}, h, w)")
        if x.shape[0] not in (1, batch):
            raise BadInputError(f"{x.shape[0]} conditioning images for {batch} pictures")
        return upsample_condition(x.to(self.device), self.config.image_size).expand(batch, -1, -1, -1)

    def denoiser(
        self, prompts: Sequence[str], negative_prompt: str = "", guidance: float = 3.0, cond_image=None
    ) -> Denoiser:
        """The guided ε-denoiser for these prompts (a negative prompt replaces the null condition)."""
        if guidance < 0:
            raise BadInputError(
                f"guidance must be >= 0, got {guidance}", "use 0–10; 1 = no guidance, 3 is typical"
            )
        b = len(prompts)
        cond = self.encode(prompts)
        if negative_prompt:
            uncond = self.encode([negative_prompt])
        else:
            with torch.no_grad():
                uncond = self.model.null_context(1)
        return Denoiser(
            self.model, self.schedule, self.prediction_type, cond=cond, uncond=uncond,
            guidance=guidance, cond_image=self._cond_image(cond_image, b),
        )  # fmt: skip

    def sampler(self, name: str = "dpmpp_2m", **kw):
        try:
            clip = None if self.codec is not None else 1.0  # latents are unit-variance, not bounded to [-1, 1]
            return make_sampler(name, self.schedule, clip_sample=clip, **kw)
        except BadInputError:
            raise
        except (ValueError, TypeError) as e:
            raise BadInputError(str(e)) from e

    def noise(self, seeds: Sequence[int]) -> torch.Tensor:
        """x_T (B, C, H, W): each picture's noise from its own seed, so a seed draws the same picture in any batch."""
        c, s = self.config.in_channels, self.config.image_size  # the U-Net's space (latent size for latent models)
        return torch.cat(
            [torch.randn(1, c, s, s, generator=torch.Generator().manual_seed(int(x))) for x in seeds]
        ).to(self.device)

    @staticmethod
    def _seeds(seeds: Sequence[int] | int | None, n: int) -> list[int]:
        if seeds is None:
            return list(range(n))
        if isinstance(seeds, int):
            return [seeds + i for i in range(n)]
        seeds = [int(s) for s in seeds]
        if len(seeds) == 1 and n > 1:
            return [seeds[0] + i for i in range(n)]
        if len(seeds) != n:
            raise BadInputError(
                f"{len(seeds)} seeds for {n} prompts", "give one seed per prompt, or one seed for all"
            )
        return seeds

    @staticmethod
    def _check_steps(steps: int) -> None:
        if not isinstance(steps, int) or steps <= 0:
            raise BadInputError(f"steps must be a positive integer, got {steps!r}", "20–50 is typical")

    def _run(self, denoiser, sampler, x_T, steps, seeds, progress, **kw) -> torch.Tensor:
        gen = torch.Generator(device=self.device).manual_seed(
            int(seeds[0]) + 1
        )  # noise of stochastic samplers
        try:
            return sample_loop(
                denoiser, sampler, tuple(x_T.shape), steps, gen, x_T=x_T, progress=progress, **kw
            )
        except ValueError as e:
            raise BadInputError(str(e)) from e

    # --- public API ---------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str] | str,
        negative_prompt: str = "",
        sampler: str = "dpmpp_2m",
        steps: int = 20,
        guidance: float = 3.0,
        seeds: Sequence[int] | int | None = None,
        cond_image=None,
        eta: float = 0.0,
        progress: bool = False,
        spacing: str = "trailing",
    ) -> list[Image.Image]:
        """Draw one picture per prompt. Same prompt + seed + settings → the same picture on the same device."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        self._check_steps(steps)
        seeds = self._seeds(seeds, len(prompts))
        den = self.denoiser(prompts, negative_prompt, guidance, cond_image)
        smp = self.sampler(sampler, spacing=spacing, **({"eta": eta} if sampler == "ddim" else {}))
        x0 = self._run(den, smp, self.noise(seeds), steps, seeds, progress)
        return self.pictures(x0, prompts)

    def region_box(self, box: Sequence[float]) -> tuple[int, int, int, int]:
        """A box (left, top, right, bottom) in fractions of the picture → (y0, y1, x0, x1) in the U-Net's
        pixels, snapped to its downsampling grid (a window must pass through every level whole)."""
        if len(box) != 4 or not all(0.0 <= float(v) <= 1.0 for v in box) or box[0] >= box[2] or box[1] >= box[3]:
            raise BadInputError(f"region box {tuple(box)} is not (left, top, right, bottom) within 0..1",
                                "e.g. (0.25, 0.25, 1.0, 1.0) for the lower right three quarters")
        m = 2 ** (len(self.config.channel_mults) - 1)
        s = self.config.image_size

        def snap(v: float) -> int:
            return int(round(v * s / m)) * m

        x0, y0, x1, y1 = (snap(float(v)) for v in box)
        x1, y1 = max(x1, x0 + m), max(y1, y0 + m)
        return y0, min(y1, s), x0, min(x1, s)

    @torch.no_grad()
    def generate_scene(
        self,
        prompts: Sequence[str] | str,
        regions: Sequence[tuple[Sequence[str] | str, Sequence[float]]],
        negative_prompt: str = "",
        sampler: str = "dpmpp_2m",
        steps: int = 20,
        guidance: float = 3.0,
        seeds: Sequence[int] | int | None = None,
        region_weight: float = 4.0,
        progress: bool = False,
        spacing: str = "trailing",
        region_seeds: Sequence[int | None] | None = None,
    ) -> list[Image.Image]:
        """Whole scenes with region prompts: `prompts` (one per picture) draw the background over the whole
        picture, each region (prompt(s), box) draws its prompt inside its box (see RegionDenoiser).
        `region_seeds` (one per picture, None = none): the noise inside the first region's box comes from
        this seed instead, so a book's hero keeps its look while each page's `seeds` vary the rest.
        Works for pixel and latent models alike; same prompts, boxes and seeds → the same picture."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        self._check_steps(steps)
        seeds = self._seeds(seeds, len(prompts))
        if guidance < 0:
            raise BadInputError(f"guidance must be >= 0, got {guidance}", "use 0–10; 1 = no guidance, 3 is typical")
        b = len(prompts)
        den = self.scene_denoiser(prompts, regions, negative_prompt, guidance, region_weight)
        parts = den.regions
        smp = self.sampler(sampler, spacing=spacing)
        x_T = self.noise(seeds)
        if region_seeds is not None and parts:
            if len(region_seeds) != b:
                raise BadInputError(f"{len(region_seeds)} region seeds for {b} pictures", "give one per picture")
            y0, y1, x0_, x1 = parts[0][1]
            for i, rs in enumerate(region_seeds):
                if rs is not None:
                    x_T[i, :, y0:y1, x0_:x1] = self.noise([rs])[0, :, y0:y1, x0_:x1]
        x0 = self._run(den, smp, x_T, steps, seeds, progress)
        return self.pictures(x0, prompts)

    def scene_denoiser(self, prompts: Sequence[str], regions, negative_prompt: str = "", guidance: float = 3.0,
                       region_weight: float = 4.0):
        """The guided RegionDenoiser for whole scenes: `prompts` over the picture, each (prompt(s), box) in its box."""
        from taleloom.diffusion.guidance import RegionDenoiser

        b = len(prompts)
        parts = []
        for region_prompts, box in regions:
            rp = [region_prompts] * b if isinstance(region_prompts, str) else list(region_prompts)
            if len(rp) != b:
                raise BadInputError(f"a region has {len(rp)} prompts for {b} pictures", "give one, or one per picture")
            parts.append((self.encode(rp), self.region_box(box)))
        with torch.no_grad():
            uncond = self.encode([negative_prompt]) if negative_prompt else self.model.null_context(1)
        return RegionDenoiser(self.model, self.schedule, self.prediction_type, cond=self.encode(prompts),
                              regions=parts, uncond=uncond, guidance=guidance, region_weight=region_weight)

    @torch.no_grad()
    def redraw(
        self, prompts: Sequence[str], images: Sequence[Image.Image], strength: float = 0.6,
        regions: Sequence[tuple[Sequence[str] | str, Sequence[float]]] = (), sampler: str = "dpmpp_2m",
        steps: int = 20, guidance: float = 3.0, seeds: Sequence[int] | int | None = None, spacing: str = "trailing",
    ) -> list[Image.Image]:  # fmt: skip
        """img2img for a batch: each picture (any square size, resized to the model's) is noised to the level
        of `strength` with its own seed's noise and denoised following its prompt (and region prompts, as in
        generate_scene). Why: a cascade can take a layout from one model and the look from another."""
        from taleloom.diffusion.edit import img2img_start_index

        prompts = list(prompts)
        if len(images) != len(prompts):
            raise BadInputError(f"{len(images)} pictures for {len(prompts)} prompts", "give one picture per prompt")
        self._check_steps(steps)
        seeds = self._seeds(seeds, len(prompts))
        start = img2img_start_index(steps, strength)
        x = torch.cat([self._image_batch(im, "the input image") for im in images])
        den = (self.scene_denoiser(prompts, regions, guidance=guidance) if regions
               else self.denoiser(prompts, guidance=guidance))
        smp = self.sampler(sampler, spacing=spacing)
        smp.set_timesteps(steps)
        x_t = smp.add_noise(x, self.noise(seeds), int(smp.timesteps[start]))
        gen = torch.Generator(device=self.device).manual_seed(int(seeds[0]) + 1)
        try:
            out = sample_loop(den, smp, tuple(x.shape), steps, gen, x_T=x_t, start_index=start)
        except ValueError as e:
            raise BadInputError(str(e)) from e
        return self.pictures(out, prompts)

    def pictures(self, x0: torch.Tensor, prompts: Sequence[str] | None = None) -> list[Image.Image]:
        """The sampler's result → RGB pictures (decoded by the autoencoder for a latent model; `prompts`, one per
        picture, tell a class-conditioned decoder each picture's style)."""
        if self.codec is not None:
            x0 = self.codec.decode(x0, prompts)
        return [tensor_to_pil(x) for x in x0]

    def _image_batch(self, image: Image.Image, what: str) -> torch.Tensor:
        """A square of another size is resized to the model's (a 128 px book picture goes back to 32 px);
        a picture that is not square, or of an unknown mode, is refused by `_check_image`."""
        img = square(_check_image(image, what), self.image_size)
        x = pil_to_tensor(img)[None].to(self.device)  # (1, 3, S, S)
        return self.codec.encode(x) if self.codec is not None else x

    @torch.no_grad()
    def img2img(
        self, prompt: str, image: Image.Image, strength: float = 0.6, negative_prompt: str = "",
        sampler: str = "ddim", steps: int = 20, guidance: float = 3.0, seed: int = 0, progress: bool = False,
    ) -> Image.Image:  # fmt: skip
        """Redraw `image` following `prompt`; strength near 0 keeps most of it, 1 ignores it."""
        self._check_steps(steps)
        if not 0.0 < strength <= 1.0:
            raise BadInputError(f"strength must be in (0, 1], got {strength}",
                                "0.3 keeps the picture, 0.8 repaints most of it")
        x = self._image_batch(image, "the input image")
        den = self.denoiser([prompt], negative_prompt, guidance)
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        from taleloom.diffusion import edit

        try:
            out = edit.img2img(den, self.sampler(sampler), x, strength, steps, gen)
        except ValueError as e:
            raise BadInputError(str(e)) from e
        return self.pictures(out[:1], [prompt])[0]

    @torch.no_grad()
    def inpaint(
        self, prompt: str, image: Image.Image, mask: Image.Image, negative_prompt: str = "",
        sampler: str = "ddim", steps: int = 30, guidance: float = 3.0, seed: int = 0, progress: bool = False,
    ) -> Image.Image:  # fmt: skip
        """Regenerate the white part of `mask` (same size as `image`), keep the black part."""
        self._check_steps(steps)
        if not isinstance(mask, Image.Image) or mask.mode not in MASK_MODES:
            raise BadInputError("the mask must be a black-and-white image (white = regenerate)")
        if mask.size != image.size:
            raise BadInputError(
                f"the mask is {mask.size[0]}×{mask.size[1]} but the image is {image.size[0]}×{image.size[1]}",
                "draw the mask at the image's size",
            )
        x = self._image_batch(image, "the input image")
        m = mask.convert("L").resize((self.config.image_size,) * 2, Image.Resampling.NEAREST)
        m_t = (
            torch.frombuffer(bytearray(m.tobytes()), dtype=torch.uint8).view(1, 1, *m.size[::-1]) >= 128
        ).float()
        den = self.denoiser([prompt], negative_prompt, guidance)
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        from taleloom.diffusion import edit

        try:
            out = edit.inpaint(den, self.sampler(sampler), x, m_t.to(self.device), steps, gen)
        except ValueError as e:
            raise BadInputError(str(e)) from e
        return self.pictures(out[:1], [prompt])[0]

    @torch.no_grad()
    def interpolate(
        self, prompt_a: str, prompt_b: str | None = None, seed_a: int = 0, seed_b: int | None = None,
        frames: int = 5, negative_prompt: str = "", sampler: str = "ddim", steps: int = 20,
        guidance: float = 3.0, progress: bool = False,
    ) -> list[Image.Image]:  # fmt: skip
        """`frames` pictures from (prompt_a, seed_a) to (prompt_b, seed_b): slerp of noise, lerp of text tokens."""
        self._check_steps(steps)
        if frames < 2:
            raise BadInputError(f"frames must be at least 2, got {frames}")
        from taleloom.diffusion.edit import lerp_condition, slerp

        prompt_b = prompt_a if prompt_b is None else prompt_b
        seed_b = seed_a if seed_b is None else seed_b
        ctx_ab, mask_ab = self.encode([prompt_a, prompt_b])
        cond_a, cond_b = (ctx_ab[:1], mask_ab[:1]), (ctx_ab[1:], mask_ab[1:])
        noise = self.noise([seed_a, seed_b])
        ws = torch.linspace(0, 1, frames).tolist()
        x_T = torch.cat([slerp(noise[:1], noise[1:], w) for w in ws])  # (F, C, H, W): all frames in one batch
        conds = [lerp_condition(cond_a, cond_b, w) for w in ws]
        ctx, mask = torch.cat([c for c, _ in conds]), torch.cat([m for _, m in conds])  # (F, L, D), (F, L)
        den = self.denoiser([prompt_a] * frames, negative_prompt, guidance)
        den.cond = (ctx, mask)
        x0 = self._run(den, self.sampler(sampler), x_T, steps, [seed_a], progress)
        return self.pictures(x0, [prompt_a if w < 0.5 else prompt_b for w in ws])
