"""What every diffusers backend shares: options, finding the model folder (never downloading), sampler
names → diffusers schedulers, device / dtype / memory settings, and a clear out-of-memory message."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from pydantic import Field

from taleloom.backends.local_models import TorchOptions, pick_dtype, resolve_model_folder
from taleloom.errors import BackendError, BadInputError, ModelNotFoundError, choice_error

# sampler name → (diffusers scheduler class, extra config)
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                                 "use_karras_sigmas": False}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                                        "use_karras_sigmas": True}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}


class DiffusersOptions(TorchOptions):
    """Placement and memory settings shared by every diffusers backend."""

    variant: str | None = Field(None, description="weight files variant to load, e.g. 'fp16'")
    attention: Literal["sdpa", "eager"] = Field("sdpa", description="PyTorch scaled-dot-product attention or plain")
    cpu_offload: Literal["none", "model", "sequential"] = Field(
        "none", description="keep weights on the CPU and move each model (or layer: slow) to the GPU when used")
    vae_tiling: bool = Field(False, description="decode big images tile by tile (less memory)")
    vae_slicing: bool = Field(False, description="decode a batch one image at a time (less memory)")
    progress: bool = Field(False, description="show diffusers' progress bars")


def sampler_names() -> list[str]:
    return sorted(SAMPLERS)


def make_scheduler(name: str, base_config: Any, **extra: Any):
    """The diffusers scheduler for sampler `name`, built on the model's own scheduler config (betas, offsets)."""
    if name not in SAMPLERS:
        raise choice_error("sampler", name, sampler_names())
    import diffusers

    cls_name, kwargs = SAMPLERS[name]
    return getattr(diffusers, cls_name).from_config(base_config, **(kwargs | extra))


def resolve_folder(location: str | None, backend: str, repo: str) -> Path:
    """A local diffusers pipeline folder (with model_index.json) or a cached repo id; never downloaded."""
    return resolve_model_folder(location, backend, repo, marker="model_index.json")


def load_pipeline(loader: Any, folder: Path, dtype: torch.dtype, options: DiffusersOptions, repo: str,
                  **kwargs: Any) -> Any:
    """`loader.from_pretrained` on a local folder only; a broken folder is a ModelNotFoundError naming it."""
    from diffusers.utils import deprecation_utils

    # newer diffusers call it `dtype` and warn about `torch_dtype`; older ones only know `torch_dtype`
    dtype_key = "dtype" if hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE") else "torch_dtype"
    try:
        return loader.from_pretrained(folder, local_files_only=True, variant=options.variant,
                                      **{dtype_key: dtype}, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        raise ModelNotFoundError(f"could not load the diffusers pipeline in {folder}: {e}",
                                 f"the folder may be incomplete; download it again, e.g. `hf download {repo} "
                                 f"--local-dir {folder}`" + (" (or drop the `variant` option)" if options.variant
                                                             else "")) from e


def resolve_dtype(options: DiffusersOptions, device: str) -> torch.dtype:
    return pick_dtype(options, device)


def place(pipe: Any, options: DiffusersOptions, device: str) -> Any:
    """Attention kind, offload or move to `device`, VAE tiling/slicing, progress bars."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    processor = AttnProcessor2_0 if options.attention == "sdpa" else AttnProcessor
    for name in ("unet", "vae"):
        model = getattr(pipe, name, None)
        if model is not None and hasattr(model, "set_attn_processor"):
            model.set_attn_processor(processor())
    if options.cpu_offload != "none" and device.startswith("cuda"):
        if options.cpu_offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    vae = getattr(pipe, "vae", None)
    if vae is not None:
        (vae.enable_tiling if options.vae_tiling else vae.disable_tiling)()
        (vae.enable_slicing if options.vae_slicing else vae.disable_slicing)()
    pipe.set_progress_bar_config(disable=not options.progress)
    return pipe


def oom_hint(options: DiffusersOptions, batch: int, width: int, height: int) -> str:
    """What to change, from the cheapest fix to the slowest one, skipping what is already set."""
    steps = []
    if batch > 1:
        steps.append("batch_size=1")
    if options.dtype in ("auto", "float32") and options.device != "cpu":
        steps.append('dtype="float16"')
    if not options.vae_tiling:
        steps.append("vae_tiling=true")
    if options.cpu_offload == "none":
        steps.append('cpu_offload="model"')
    elif options.cpu_offload == "model":
        steps.append('cpu_offload="sequential" (slow)')
    steps.append(f"a smaller picture than {width}x{height}")
    return "try, in this order: " + ", ".join(steps) + "; or close other programs using the GPU"


@contextmanager
def out_of_memory_guard(what: str, options: DiffusersOptions, batch: int, width: int, height: int):
    """Turn a CUDA (or MPS/CPU allocator) out-of-memory error into a BackendError that says what to change."""
    try:
        yield
    except (torch.cuda.OutOfMemoryError, RuntimeError, MemoryError) as e:
        if not isinstance(e, torch.cuda.OutOfMemoryError | MemoryError) and "out of memory" not in str(e).lower():
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        first_line = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise BackendError(f"out of memory while {what} ({batch} x {width}x{height}): {first_line}",
                           oom_hint(options, batch, width, height)) from e


def check_size(width: int, height: int, multiple: int = 8) -> None:
    if width % multiple or height % multiple or width < multiple or height < multiple:
        raise BadInputError(f"picture size {width}x{height} is not a multiple of {multiple}",
                            f"use sizes like {width // multiple * multiple or multiple}x"
                            f"{height // multiple * multiple or multiple}")


def check_strength(strength: float) -> None:
    if not 0.0 < strength <= 1.0:
        raise BadInputError(f"strength {strength} is outside (0, 1]",
                            "0.3 keeps most of the picture, 0.8 keeps little of it, 1.0 redraws it all")


def fit(image: Image.Image, width: int, height: int, mode: str = "RGB") -> Image.Image:
    """`image` converted and resized to exactly width x height (masks use nearest-neighbour)."""
    image = image.convert(mode)
    if image.size != (width, height):
        resample = Image.Resampling.NEAREST if mode in ("L", "1") else Image.Resampling.LANCZOS
        image = image.resize((width, height), resample)
    return image
