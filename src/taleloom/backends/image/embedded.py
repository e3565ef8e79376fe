"""Embedded illustrator and upscaler: our own diffusion models, trained on emoji, shipped in
`taleloom/assets/` (hash-verified) and run on the CPU with no download.

Two shipped illustrators, chosen by the spec's model ("embedded#v1", "embedded#v2"; plain "embedded"
is DEFAULT_VERSION):
- v1: a pixel-space U-Net drawing 32×32 pictures in one emoji style; the ×4 super-resolution model
  turns them into 128×128 pictures.
- v2: a latent U-Net with our own autoencoder, drawing 128×128 pictures in eleven trained styles; a
  book style preset picks its trained style (styles.py) and the prompt says it, as the captions did.
The illustrators only understand their concept vocabulary, so when a request carries `concepts` (the
stage maps each scene onto them with `nearest_concepts`), the prompt is built from them: with a
`hero_box` the page is a whole scene (v2: the hero and the setting drawn apart and laid out as a collage,
collage.py; v1, or `scene="regions"`: the hero drawn in its box and the setting around it with region
prompts, pipeline.generate_scene), else the first concept alone. Without concepts the request's prompt
is used as it is. `location` ("embedded:/path") points at a checkpoint folder of your own.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

import torch
from PIL import Image
from pydantic import Field

from taleloom.backends.base import Illustrator, Upscaler
from taleloom.backends.base import Options as BaseOptions
from taleloom.backends.image.collage import collage
from taleloom.book import SEED_MAX, ImageRequest
from taleloom.errors import BadInputError

SHIPPED = {"v1": "illustrator", "v2": "illustrator-v2"}  # version → folder in taleloom/assets
DEFAULT_VERSION = "v2"  # since v2 at step 20,300 measured better than v1 (benchmarks/illustrator_compare.py, model card)
STYLED_PROMPTS = "concept, style words"  # config.json "prompts" of a model trained on styles.caption()


def _checkpoint(location: str | None, shipped: str) -> Path:
    if location:
        return Path(location)
    from taleloom.assets import verified_dir

    return verified_dir(shipped)


def _model_id(kind: str, folder: Path) -> str:
    import hashlib

    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()[:12]
    return f"taleloom-emoji-{kind}@{digest}"


class _Lazy:
    """Loads the TextToImage pipeline on first use (constructing a backend stays instant)."""

    _pipe = None
    model_id: str
    _lock = threading.Lock()

    def _load(self, location: str | None, shipped: str, kind: str, device: str):
        if self._pipe is None:
            with self._lock:
                if self._pipe is None:
                    from taleloom.diffusion.pipeline import TextToImage

                    folder = _checkpoint(location, shipped)
                    self._pipe = TextToImage(folder, device="cpu" if device == "auto" else device)
                    self.model_id = _model_id(kind, folder)
        return self._pipe


class EmbeddedIllustrator(_Lazy, Illustrator):
    name = "embedded"
    max_batch = 4
    draws_concepts = True  # its vocabulary is the emoji concepts it was trained on

    class Options(BaseOptions):
        device: str = Field("auto", description="'auto' = CPU; the model is small")
        concept_template: str = Field("{concept}", description="prompt built from a request's first concept")
        layout: str = Field("", description="v2 only: '' = v2 alone (the default since phase 2 draws shapes of its "
                                             "own); 'v1' = start each concept picture from v1's drawing of it and "
                                             "redraw it in the style (SDEdit)")
        layout_strength: float = Field(0.6, gt=0.0, le=1.0, description="v2 with a layout: how much of the "
                                       "v1 drawing is redrawn (1 = all of it, nothing of the layout kept)")
        scene: Literal["auto", "collage", "regions"] = Field(
            "auto", description="whole scenes: 'collage' draws the hero and the setting apart and lays them out "
                                "(collage.py), 'regions' in one picture with region prompts; 'auto' = collage "
                                "for v2 alone, regions otherwise")

    def __init__(self, location: str | None = None, model: str | None = None, **options):
        self.options = self.Options(**options)
        self.version = model if model in SHIPPED else DEFAULT_VERSION
        self.location = location or (None if model in SHIPPED else model)
        self.model_id = "taleloom-emoji-base" if self.version == "v1" else "taleloom-emoji-v2"

    @property
    def pipe(self):
        kind = "base" if self.version == "v1" else "v2"
        return self._load(self.location, SHIPPED[self.version], kind, self.options.device)

    @property
    def styled(self) -> bool:
        """Was the model trained on "concept, style words" captions (v2)?"""
        return self.pipe.meta.get("prompts") == STYLED_PROMPTS

    def ready(self) -> tuple[bool, str]:
        try:
            pipe = self.pipe
        except Exception as e:
            return False, f"embedded illustrator unavailable: {e}"
        return True, f"{self.model_id}, {pipe.image_size}×{pipe.image_size} px"

    # --- concepts ------------------------------------------------------------------------------------
    @property
    def aligned(self):
        from taleloom.diffusion.aligned import load_aligned_encoder

        return load_aligned_encoder(None)

    @property
    def _own_concepts(self) -> list[str] | None:
        """The concepts a model lists beside its weights (concepts.json: v2), or None (v1: the aligned
        encoder's `trained` marks)."""
        if not hasattr(self, "_concepts"):
            import json

            path = _checkpoint(self.location, SHIPPED[self.version]) / "concepts.json"
            self._concepts = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        return self._concepts

    def concept_vocabulary(self) -> list[str]:
        """The concept names the model was trained on."""
        return self._own_concepts or self.aligned.concept_vocabulary()

    def nearest_concepts(self, text: str, k: int = 5) -> list[str]:
        """The k trained concepts nearest to `text` (MiniLM similarity), best first."""
        own = self._own_concepts
        if own is None:
            return self.aligned.nearest_concepts(text, k)
        known = set(own)
        ranked = self.aligned.nearest_concepts(text, len(self.aligned.concepts), trained_only=False)
        return [c for c in ranked if c in known][:k]

    def concept_prompt(self, concept: str, style: str) -> str:
        """The prompt for one concept: v2 adds the trained style's words for the book's style preset (a derived
        style's source set: its picture is finished afterwards, `finished`)."""
        if self.styled:
            from taleloom.backends.image.styles import caption, drawn_style, style_for_preset

            return caption(concept, drawn_style(style_for_preset(style)))
        return self.options.concept_template.format(concept=concept)

    def prompt_for(self, request: ImageRequest) -> tuple[str, str]:
        """(prompt, negative prompt) the model is given. With concepts: the first concept's prompt and no
        negative prompt (the storybook negatives are words the emoji model never saw)."""
        if request.concepts:
            return self.concept_prompt(request.concepts[0], request.style), ""
        return request.prompt, request.negative_prompt

    def scene_for(self, request: ImageRequest) -> tuple[str, str, tuple[float, float, float, float]] | None:
        """(setting prompt, hero prompt, hero box) when the request is a whole scene, else None."""
        if request.hero_box is None or len(request.concepts) < 2:
            return None
        return (self.concept_prompt(request.concepts[1], request.style),
                self.concept_prompt(request.concepts[0], request.style), tuple(request.hero_box))

    # --- drawing -------------------------------------------------------------------------------------
    @property
    def collages(self) -> bool:
        """Whole scenes as a collage (options.scene; 'auto': v2 alone, whose region-prompt scenes drew neither
        the hero nor the setting recognisably: the model card's scene figures)."""
        if self.options.scene == "auto":
            return self.version == "v2" and self.layout_model is None
        return self.options.scene == "collage"

    @property
    def layout_model(self) -> EmbeddedIllustrator | None:
        """v1, which draws a concept's shape, when this v2 starts its pictures from v1's (options.layout)."""
        if self.version == "v1" or self.options.layout != "v1":
            return None
        if not hasattr(self, "_layout"):
            self._layout = EmbeddedIllustrator(model="v1", device=self.options.device)
        return self._layout

    def generate(self, requests: list[ImageRequest]) -> list[Image.Image]:
        """One picture per request (v1: 32×32, v2: 128×128); requests that share sampler settings (and,
        for whole scenes, the hero's box) run as one batch. v2 with a layout: v1 draws each request that
        names concepts (whole scenes too), then v2 redraws that picture in the style (`layout_strength`)."""
        pipe = self.pipe
        layouts: list[Image.Image | None] = [None] * len(requests)
        if self.layout_model is not None and any(r.concepts for r in requests):
            idx = [i for i, r in enumerate(requests) if r.concepts]
            for i, im in zip(idx, self.layout_model.generate([requests[i] for i in idx]), strict=True):
                layouts[i] = im.resize((pipe.image_size,) * 2, Image.Resampling.LANCZOS)
        out: list[Image.Image | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        prompts = [self.prompt_for(r) for r in requests]
        scenes = [self.scene_for(r) for r in requests]
        for i, r in enumerate(requests):
            box = scenes[i][2] if scenes[i] else None
            groups.setdefault((prompts[i][1], r.sampler, r.steps, r.guidance, box, layouts[i] is not None),
                              []).append(i)
        for (negative, sampler, steps, guidance, box, layout), idx in groups.items():
            seeds = [requests[i].seed for i in idx]
            if box is not None and not layout and self.collages:
                # a book's pages share one hero (prompt and hero seed): each distinct hero is drawn once
                keys = [(scenes[i][1], requests[i].seed if requests[i].hero_seed is None else requests[i].hero_seed)
                        for i in idx]
                distinct = list(dict.fromkeys(keys))
                drawn = dict(zip(distinct, pipe.generate([p for p, _ in distinct], sampler=sampler, steps=steps,
                                                         guidance=guidance, seeds=[s for _, s in distinct]),
                                 strict=True))
                heroes = [drawn[k] for k in keys]
                settings = pipe.generate([scenes[i][0] for i in idx], sampler=sampler, steps=steps, guidance=guidance,
                                         seeds=seeds)
                things: list[Image.Image | None] = [None] * len(idx)
                third = [j for j, i in enumerate(idx) if len(requests[i].concepts) > 2]
                if third:  # a thing beside the hero and a friend: noise of its own, next to the friend's seed
                    drawn_things = pipe.generate(
                        [self.concept_prompt(requests[idx[j]].concepts[2], requests[idx[j]].style) for j in third],
                        sampler=sampler, steps=steps, guidance=guidance,
                        seeds=[(seeds[j] + 1) % (SEED_MAX + 1) for j in third])
                    for j, im in zip(third, drawn_things, strict=True):
                        things[j] = im
                images = [collage(h, s, box, t) for h, s, t in zip(heroes, settings, things, strict=True)]
            elif layout:
                regions = [([scenes[i][1] for i in idx], box)] if box is not None else []
                text = [scenes[i][0] if box is not None else prompts[i][0] for i in idx]
                images = pipe.redraw(text, [layouts[i] for i in idx], self.options.layout_strength, regions,
                                     sampler=sampler, steps=steps, guidance=guidance, seeds=seeds)
            elif box is not None:
                images = pipe.generate_scene([scenes[i][0] for i in idx], [([scenes[i][1] for i in idx], box)],
                                             sampler=sampler, steps=steps, guidance=guidance, seeds=seeds,
                                             region_seeds=[requests[i].hero_seed for i in idx])
            else:
                images = pipe.generate([prompts[i][0] for i in idx], negative_prompt=negative, sampler=sampler,
                                       steps=steps, guidance=guidance, seeds=seeds)
            for i, im in zip(idx, images, strict=True):
                out[i] = self.finished(im, requests[i])
        return out  # type: ignore[return-value]

    def finished(self, image: Image.Image, request: ImageRequest) -> Image.Image:
        """v2's picture in a derived trained style (pixel, ink) finished with the transform that made that
        style's training pictures (styles.finish); v1 and every other style as drawn."""
        if not self.styled:
            return image
        from taleloom.backends.image.styles import finish, style_for_preset

        return finish(image, style_for_preset(request.style))

    def img2img(self, request: ImageRequest, image: Image.Image, strength: float = 0.6) -> Image.Image:
        prompt, negative = self.prompt_for(request)
        drawn = self.pipe.img2img(prompt, image, strength=strength, negative_prompt=negative, steps=request.steps,
                                  guidance=request.guidance, seed=request.seed)
        return self.finished(drawn, request)  # a redraw in pixel or ink style is finished like a new picture;
        # inpaint is not: the picture outside its mask must stay exactly as it was

    def inpaint(self, request: ImageRequest, image: Image.Image, mask: Image.Image) -> Image.Image:
        prompt, negative = self.prompt_for(request)
        small = image.convert("RGB").resize((self.pipe.image_size,) * 2, Image.Resampling.LANCZOS)
        m = mask.convert("L").resize(small.size, Image.Resampling.NEAREST)
        return self.pipe.inpaint(prompt, small, m, negative_prompt=negative, steps=request.steps,
                                 guidance=request.guidance, seed=request.seed)


SR_MAX_INPUT = 64  # the ×4 model learnt 32 → 128 px; bigger pictures are enlarged by Lanczos resampling


class EmbeddedUpscaler(_Lazy, Upscaler):
    """×4 super-resolution diffusion (32 → 128 px), conditioned on the bicubic-upsampled picture."""

    name = "embedded"

    class Options(BaseOptions):
        device: str = Field("auto", description="'auto' = CPU")
        sampler: str = "dpmpp_2m"
        steps: int = Field(12, ge=1, le=250, description="denoising steps of the super-resolution model")
        use_prompt: bool = Field(False, description="condition on the prompt text (else the learned null text)")

    def __init__(self, location: str | None = None, model: str | None = None, **options):
        self.options = self.Options(**options)
        self.location = location or model
        self.model_id = "taleloom-emoji-x4"

    @property
    def max_batch(self) -> int:  # type: ignore[override]
        """4 pictures per denoising loop on a GPU; 1 on the CPU, where a batch is no faster (8.7 s for 4
        pictures batched vs 8.2 s one by one on 1 thread, 5.0 s both on 2) and one by one reports progress."""
        return 4 if self.options.device.startswith("cuda") else 1

    @property
    def pipe(self):
        return self._load(self.location, "upscaler", "x4", self.options.device)

    def ready(self) -> tuple[bool, str]:
        try:
            pipe = self.pipe
        except Exception as e:
            return False, f"embedded upscaler unavailable: {e}"
        return True, f"{self.model_id}, ×4 from {pipe.config.cond_channels}-channel low-res input"

    def upscale(self, image: Image.Image, factor: int = 4, prompt: str = "", seed: int = 0) -> Image.Image:
        return self.upscale_batch([image], factor, [prompt], [seed])[0]

    @torch.no_grad()
    def upscale_batch(self, images: list[Image.Image], factor: int = 4, prompts: list[str] | None = None,
                      seeds: list[int] | None = None) -> list[Image.Image]:
        """Upscale same-sized square pictures together (one batched denoising loop)."""
        from taleloom.diffusion.data import pil_to_tensor, tensor_to_pil, to_rgb, upsample_condition
        from taleloom.diffusion.guidance import Denoiser
        from taleloom.diffusion.sample import sample_loop

        if factor not in (2, 4):
            raise BadInputError(f"the embedded upscaler enlarges 2× or 4×, not {factor}×", "use factor 4 (or 2)")
        sizes = {im.size for im in images}
        if len(sizes) != 1 or next(iter(sizes))[0] != next(iter(sizes))[1]:
            raise BadInputError(f"pictures to upscale together must be square and the same size, got {sorted(sizes)}")
        side = next(iter(sizes))[0]
        if side > SR_MAX_INPUT:  # v2's 128 px pictures: no ×2 model is trained yet, and ×4 at 512 px costs 16×
            return [to_rgb(im).resize((factor * side,) * 2, Image.Resampling.LANCZOS) for im in images]
        pipe = self.pipe
        seeds = seeds or [0] * len(images)
        low = torch.stack([pil_to_tensor(to_rgb(im)) for im in images]).to(pipe.device)  # (B, 3, s, s)
        cond_image = upsample_condition(low, 4 * side)
        if self.options.use_prompt and prompts:
            cond = pipe.encode(prompts)
        else:
            cond = pipe.model.null_context(len(images))
        den = Denoiser(pipe.model, pipe.schedule, pipe.prediction_type, cond=cond, guidance=1.0, cond_image=cond_image)
        x_T = torch.cat([torch.randn(1, 3, 4 * side, 4 * side, generator=torch.Generator().manual_seed(int(s)))
                         for s in seeds]).to(pipe.device)
        gen = torch.Generator(device=pipe.device).manual_seed(int(seeds[0]) + 1)
        x0 = sample_loop(den, pipe.sampler(self.options.sampler), tuple(x_T.shape), self.options.steps, gen, x_T=x_T)
        out = [tensor_to_pil(x) for x in x0]
        if factor == 2:
            out = [im.resize((2 * side, 2 * side), Image.Resampling.LANCZOS) for im in out]
        return out
