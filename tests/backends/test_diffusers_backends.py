"""Diffusers backends on tiny random-weight SD / SDXL (+ refiner) / x4-upscaler pipelines built here and
saved with save_pretrained: 2 steps at 64 px of text-to-image, img2img, inpainting and base + refiner."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

pytest.importorskip("diffusers")

from taleloom.backends.image.diffusers_backend import DiffusersIllustrator, SDXLIllustrator, TurboIllustrator  # noqa: E402
from taleloom.backends.image.diffusers_common import SAMPLERS, make_scheduler, resolve_folder  # noqa: E402
from taleloom.backends.image.diffusers_upscale import DiffusersUpscaler  # noqa: E402
from taleloom.backends.image.random_weights import build_sd, build_sdxl, build_x4_upscaler  # noqa: E402
from taleloom.backends.registry import create  # noqa: E402
from taleloom.book import ImageRequest  # noqa: E402
from taleloom.errors import BackendError, BadInputError, ModelNotFoundError  # noqa: E402

CPU = {"device": "cpu", "steps": 2}


def req(prompt: str = "a cat in a hat", seed: int = 0, **kw) -> ImageRequest:
    return ImageRequest(prompt=prompt, seed=seed, **({"width": 64, "height": 64, "guidance": 3.0} | kw))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a busy machine threads spin-wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("diffusers")
    build_sd(root / "sd")
    build_sdxl(root / "xl" / "base", root / "xl" / "refiner")
    build_x4_upscaler(root / "x4")
    return root


@pytest.fixture(scope="module")
def sd(folders):
    return create("illustrator", f"diffusers-sd:{folders / 'sd'}", **CPU)


def test_settings_pick_the_backends(folders):
    from taleloom.config import Settings
    from taleloom.orchestrator import Backends

    backends = Backends(Settings(illustrator=f"diffusers-sd:{folders / 'sd'}", upscaler=f"diffusers-x4:{folders / 'x4'}",
                                 device="cpu"))
    illustrator, upscaler = backends.illustrator.inner, backends.upscaler.inner  # the pool's wrappers hold them
    assert isinstance(illustrator, DiffusersIllustrator) and illustrator.device == "cpu"
    assert isinstance(upscaler, DiffusersUpscaler)


def test_sampler_names_map_onto_diffusers_schedulers(folders):
    from diffusers import DDIMScheduler

    config = DDIMScheduler.from_pretrained(folders / "sd" / "scheduler").config
    for name, (cls_name, _) in SAMPLERS.items():
        scheduler = make_scheduler(name, config)
        assert type(scheduler).__name__ == cls_name
        assert scheduler.config.beta_schedule == "scaled_linear"  # the model's own betas survive
    assert make_scheduler("dpmpp_2m_karras", config).config.use_karras_sigmas is True
    assert make_scheduler("dpmpp_2m", config).config.algorithm_type == "dpmsolver++"
    with pytest.raises(BadInputError) as info:
        make_scheduler("heun", config)
    assert "ddim, dpmpp_2m, dpmpp_2m_karras, euler_a, lcm" in str(info.value)


def test_missing_model_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(ModelNotFoundError) as info:
        create("illustrator", f"diffusers-sdxl:{tmp_path / 'nope'}")
    assert str(tmp_path / "nope") in str(info.value)
    assert "hf download stabilityai/stable-diffusion-xl-base-1.0" in str(info.value)
    with pytest.raises(ModelNotFoundError, match="needs a model folder"):
        create("illustrator", "diffusers-sd")
    with pytest.raises(ModelNotFoundError, match="no model_index.json"):
        resolve_folder(str(tmp_path), "diffusers-sd", "x/y")
    with pytest.raises(ModelNotFoundError, match="not in the local Hugging Face cache"):
        resolve_folder("nobody-here/no-such-model", "diffusers-sd", "x/y")


def test_options_reject_unknown_fields_and_samplers(folders):
    with pytest.raises(ValidationError):
        DiffusersIllustrator(str(folders / "sd"), device="cpu", guidance_scale=7)
    with pytest.raises(BadInputError, match="choose one of"):
        DiffusersIllustrator(str(folders / "sd"), device="cpu", sampler="k_lms")


def test_sd_text_to_image_batches_and_seeds(sd):
    requests = [req(seed=1), req("a dog", seed=2, negative_prompt="blurry"), req(seed=1, sampler="euler_a"),
                req(seed=1)]
    images = sd.generate(requests)
    assert [im.size for im in images] == [(64, 64)] * 4 and all(im.mode == "RGB" for im in images)
    assert np.allclose(pixels(images[0]), pixels(images[3]), atol=2)  # same seed, same picture, even in a batch
    assert not np.allclose(pixels(images[0]), pixels(images[1]), atol=2)
    assert not np.allclose(pixels(images[0]), pixels(images[2]), atol=2)  # another sampler
    alone = sd.generate([req(seed=1)])[0]
    assert np.allclose(pixels(alone), pixels(images[0]), atol=2)  # batching does not change a picture
    assert type(sd.pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"  # request default dpmpp_2m


def test_sd_sizes_and_unknown_sampler(sd):
    with pytest.raises(BadInputError, match="not a multiple of 8"):
        sd.generate([ImageRequest(prompt="x", width=60, height=64)])
    with pytest.raises(BadInputError, match="euler_a"):
        sd.generate([req(sampler="plms")])


def test_sd_img2img_and_inpaint(sd):
    photo = Image.new("RGB", (100, 80), (200, 40, 40))
    a = sd.img2img(req(seed=3), photo, strength=0.5)
    b = sd.img2img(req(seed=3), photo, strength=0.5)
    assert a.size == (64, 64) and np.array_equal(pixels(a), pixels(b))
    assert sd._pipes["img2img"].unet is sd.pipe.unet  # the same weights, not a second copy
    with pytest.raises(BadInputError, match="strength"):
        sd.img2img(req(), photo, strength=0.0)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    c = sd.inpaint(req(seed=4), photo, mask)
    d = sd.inpaint(req(seed=5), photo, mask)
    assert c.size == (64, 64) and not np.array_equal(pixels(c), pixels(d))
    assert type(sd._pipes["inpaint"]).__name__ == "StableDiffusionInpaintPipeline"


def test_sdxl_base_alone(folders):
    xl = SDXLIllustrator(str(folders / "xl" / "base"), **CPU)
    assert xl.refiner is None and "refiner" not in xl.model_id
    (image,) = xl.generate([req(seed=7)])
    assert image.size == (64, 64)


def test_sdxl_base_and_refiner_hand_off(folders, monkeypatch):
    xl = create("illustrator", f"diffusers-sdxl:{folders / 'xl'}", **CPU)  # base/ + refiner/ layout
    assert xl.refiner is not None and "+refiner" in xl.model_id
    assert xl.refiner.vae is xl.pipe.vae and xl.refiner.text_encoder_2 is xl.pipe.text_encoder_2
    calls: list[tuple[str, dict]] = []
    for pipe in (xl.pipe, xl.refiner):
        cls = type(pipe)
        original = cls.__call__

        def spy(self, *args, _original=original, _name=cls.__name__, **kwargs):
            calls.append((_name, kwargs))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__call__", spy)
    images = xl.generate([req(seed=1), req(seed=2)])
    assert [im.size for im in images] == [(64, 64)] * 2
    (base_name, base_kw), (refiner_name, refiner_kw) = calls
    assert base_name == "StableDiffusionXLPipeline" and base_kw["denoising_end"] == 0.8
    assert base_kw["output_type"] == "latent"
    assert refiner_name == "StableDiffusionXLImg2ImgPipeline" and refiner_kw["denoising_start"] == 0.8
    assert refiner_kw["image"].shape == (2, 4, 32, 32)  # latents, not pictures


def test_sdxl_refiner_option_img2img_and_inpaint(folders):
    xl = SDXLIllustrator(str(folders / "xl" / "base"), refiner=str(folders / "xl" / "refiner"),
                         refiner_switch=0.5, sampler="euler_a", **CPU)
    photo = Image.new("RGB", (64, 64), (30, 120, 200))
    assert xl.img2img(req(seed=1), photo, strength=0.7).size == (64, 64)
    mask = Image.new("L", (64, 64), 255)
    assert xl.inpaint(req(seed=1), photo, mask).size == (64, 64)
    assert type(xl._pipes["refiner-inpaint"]).__name__ == "StableDiffusionXLInpaintPipeline"
    assert type(xl.refiner.scheduler).__name__ == "EulerAncestralDiscreteScheduler"


def test_wrong_pipeline_family_is_named(folders):
    with pytest.raises(ModelNotFoundError, match="use the diffusers-sdxl backend"):
        DiffusersIllustrator(str(folders / "xl" / "base"), device="cpu")


def test_turbo_and_lcm_few_step_settings(folders):
    turbo = TurboIllustrator(str(folders / "sd"), device="cpu")
    assert turbo.kind == "turbo"
    s = turbo.settings(req(steps=30, guidance=7.5))
    assert (s.sampler, s.steps, s.guidance) == ("euler_a", 4, 0.0)
    turbo.generate([req()])
    assert turbo.pipe.scheduler.config.timestep_spacing == "trailing"
    photo = Image.new("RGB", (64, 64), "white")
    assert turbo.img2img(req(), photo, strength=0.2).size == (64, 64)  # ceil(1/0.2)=5 steps → 1 denoising step
    lcm = create("illustrator", f"diffusers-turbo:{folders / 'xl' / 'base'}", device="cpu", kind="lcm", steps=2)
    assert lcm.kind == "lcm-cfg" and lcm.settings(req()).sampler == "lcm"
    lcm.generate([req()])
    assert type(lcm.pipe.scheduler).__name__ == "LCMScheduler"


def test_out_of_memory_says_what_to_change(sd, monkeypatch):
    def boom(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(type(sd.pipe), "__call__", boom)
    with pytest.raises(BackendError) as info:
        sd.generate([req(seed=1), req(seed=2)])
    message = str(info.value)
    assert "out of memory while drawing" in message and "2 x 64x64" in message
    for advice in ("batch_size=1", "vae_tiling=true", 'cpu_offload="model"', "smaller picture"):
        assert advice in message


def test_x4_upscaler(folders):
    up = create("upscaler", f"diffusers-x4:{folders / 'x4'}", device="cpu", steps=2)
    small = Image.new("RGB", (16, 16), (10, 200, 30))
    assert up.upscale(small, 4, seed=1).size == (64, 64)
    assert up.upscale(Image.new("RGB", (20, 12)), 2).size == (40, 24)  # not a multiple of 8; x4 then reduced
    assert up.upscale(small, 1).size == (16, 16)
    with pytest.raises(BadInputError, match="factor from 1 to 4"):
        up.upscale(small, 8)
    assert isinstance(up, DiffusersUpscaler)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sdxl_refiner_fp16_on_cuda_with_offload(folders):
    xl = SDXLIllustrator(str(folders / "xl"), device="cuda", dtype="float16", cpu_offload="model", vae_tiling=True,
                         steps=2)
    assert xl.dtype == torch.float16
    assert xl.generate([req()])[0].size == (64, 64)


def test_a_request_without_a_size_gets_the_models_native_size(sd):
    pipe = sd.pipe
    native = pipe.unet.config.sample_size * pipe.vae_scale_factor  # 1024 for SDXL, 512 for SD 1.5
    image = sd.generate([ImageRequest(prompt="a cat", seed=1)])[0]
    assert sd.native_size == native and image.size == (native, native)
