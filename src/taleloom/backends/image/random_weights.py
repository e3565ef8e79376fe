"""Random-weight diffusers pipelines with the real architectures' shapes, built locally and saved with
``save_pretrained`` — so the diffusers backends are tested (and benchmarked) without downloading a weight.

``size="tiny"``: a few thousand parameters, 64 px, for CPU tests. ``size="full"``: the real SDXL base and
refiner shapes (2.6 B + 2.3 B parameters, 1024 px), for the GPU overhead benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch

Size = Literal["tiny", "full"]

# SD / SDXL noise schedule ("scaled_linear" betas), shared by every folder written here
_BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)


def write_tiny_clip_tokenizer(folder: Path) -> Path:
    """A CLIP BPE tokenizer over lowercase letters, digits and a few merges (vocab.json + merges.txt)."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789,.!?'-")
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for piece in chars + [c + "</w>" for c in chars]:
        vocab.setdefault(piece, len(vocab))
    merges = ["t h", "th e</w>", "a n", "an d</w>", "o f</w>", "i n", "in g</w>"]
    for merge in merges:
        vocab.setdefault(merge.replace(" ", ""), len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77,
                              pad_token="<|endoftext|>")
    tokenizer.save_pretrained(folder)
    return folder


def _clip_config(size: Size, big: bool = False):
    from transformers import CLIPTextConfig

    if size == "tiny":
        return CLIPTextConfig(vocab_size=1000, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                              num_attention_heads=4, projection_dim=32, bos_token_id=0, eos_token_id=1,
                              pad_token_id=1, hidden_act="gelu")
    if big:  # OpenCLIP ViT-bigG text tower (SDXL text_encoder_2)
        return CLIPTextConfig(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                              num_attention_heads=20, projection_dim=1280, hidden_act="gelu")
    return CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                          num_attention_heads=12, projection_dim=768, hidden_act="quick_gelu")


def _vae(size: Size, blocks: int | None = None):
    from diffusers import AutoencoderKL

    if size == "tiny":
        channels = [8, 16, 16][: blocks or 2]
        return AutoencoderKL(block_out_channels=channels, in_channels=3, out_channels=3, latent_channels=4,
                             down_block_types=["DownEncoderBlock2D"] * len(channels),
                             up_block_types=["UpDecoderBlock2D"] * len(channels), norm_num_groups=4,
                             layers_per_block=1, sample_size=64)
    return AutoencoderKL(block_out_channels=[128, 256, 512, 512], in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                         layers_per_block=2, sample_size=1024, scaling_factor=0.13025)


def _tokenizer(folder: Path):
    """The tiny tokenizer for every size: prompts still pad to 77 tokens, so the text encoders do full work."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(write_tiny_clip_tokenizer(folder / "_tokenizer"))


def build_sd(folder: Path, seed: int = 0) -> Path:
    """A tiny Stable Diffusion 1.x-shaped text-to-image folder (64 px)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=32, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=4, norm_num_groups=4)
    pipe = StableDiffusionPipeline(vae=_vae("tiny"), text_encoder=CLIPTextModel(_clip_config("tiny")),
                                   tokenizer=_tokenizer(folder), unet=unet,
                                   scheduler=DDIMScheduler(**_BETAS, clip_sample=False, set_alpha_to_one=False,
                                                           steps_offset=1),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return _save(pipe, folder)


def _sdxl_unet(size: Size, refiner: bool):
    from diffusers import UNet2DConditionModel

    text_dim = 32 if size == "tiny" else 1280  # pooled projection of text_encoder_2
    time_ids = 5 if refiner else 6  # the refiner conditions on an aesthetic score instead of the target size
    if size == "tiny":
        return UNet2DConditionModel(
            block_out_channels=(8, 16), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
            addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), norm_num_groups=4,
            projection_class_embeddings_input_dim=time_ids * 8 + text_dim,
            cross_attention_dim=32 if refiner else 64)
    if refiner:
        return UNet2DConditionModel(
            sample_size=128, block_out_channels=(384, 768, 1536, 1536), layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=4, attention_head_dim=(6, 12, 24, 24), use_linear_projection=True,
            cross_attention_dim=1280, addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=time_ids * 256 + text_dim)
    return UNet2DConditionModel(
        sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), use_linear_projection=True,
        cross_attention_dim=2048, addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=time_ids * 256 + text_dim)


def build_sdxl(folder: Path, refiner_folder: Path | None = None, size: Size = "tiny", seed: int = 0,
               device: str = "cpu", dtype: torch.dtype = torch.float32) -> Path:
    """SDXL base (two text encoders, size/crop conditioning) and optionally a refiner sharing its
    text_encoder_2 and VAE, as the real refiner does. `device` speeds up initialising the full size;
    weights are saved in `dtype`."""
    torch.manual_seed(seed)
    with torch.device(device):
        return _build_sdxl(folder, refiner_folder, size, dtype)


def _build_sdxl(folder: Path, refiner_folder: Path | None, size: Size, dtype: torch.dtype) -> Path:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = _tokenizer(folder)
    scheduler = EulerDiscreteScheduler(**_BETAS, steps_offset=1, timestep_spacing="leading")
    vae = _vae(size)
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config(size, big=True))
    base = StableDiffusionXLPipeline(vae=vae, text_encoder=CLIPTextModel(_clip_config(size)),
                                     text_encoder_2=text_encoder_2, tokenizer=tokenizer, tokenizer_2=tokenizer,
                                     unet=_sdxl_unet(size, refiner=False), scheduler=scheduler,
                                     add_watermarker=False)
    _save(base if dtype == torch.float32 else base.to(dtype=dtype), folder)
    if refiner_folder is not None:
        refiner = StableDiffusionXLImg2ImgPipeline(
            vae=vae, text_encoder=None, text_encoder_2=text_encoder_2, tokenizer=None, tokenizer_2=tokenizer,
            unet=_sdxl_unet(size, refiner=True), scheduler=scheduler, requires_aesthetics_score=True,
            force_zeros_for_empty_prompt=False, add_watermarker=False)
        _save(refiner if dtype == torch.float32 else refiner.to(dtype=dtype), refiner_folder)
    return folder


def build_x4_upscaler(folder: Path, seed: int = 0) -> Path:
    """A tiny Stable Diffusion x4 upscaler (UNet on latents + the low-res image, 3-block VAE = x4)."""
    from diffusers import DDIMScheduler, DDPMScheduler, StableDiffusionUpscalePipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 8, 16), layers_per_block=1, sample_size=32, in_channels=7, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        attention_head_dim=4, use_linear_projection=True, num_class_embeds=400, norm_num_groups=4)
    vae = _vae("tiny", blocks=3)
    vae.register_to_config(scaling_factor=0.08333)
    pipe = StableDiffusionUpscalePipeline(
        vae=vae, text_encoder=CLIPTextModel(_clip_config("tiny")), tokenizer=_tokenizer(folder), unet=unet,
        low_res_scheduler=DDPMScheduler(), scheduler=DDIMScheduler(prediction_type="v_prediction"),
        max_noise_level=350)
    return _save(pipe, folder)


def _save(pipe, folder: Path) -> Path:
    import shutil

    pipe.save_pretrained(folder)
    shutil.rmtree(folder / "_tokenizer", ignore_errors=True)
    return folder
