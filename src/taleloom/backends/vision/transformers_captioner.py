"""Captioner over a transformers model folder: BLIP (image captioning) or a LLaVA-style vision chat model
(LLaVA, LLaVA-NeXT, Qwen2-VL... anything AutoModelForImageTextToText loads).

Spec: ``transformers:/models/llava-1.5-7b-hf`` or ``transformers:/models/blip-image-captioning-large``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Literal

from PIL import Image
from pydantic import Field

from taleloom.backends.base import Captioner
from taleloom.backends.local_models import TorchOptions, pick_dtype, resolve_model_folder
from taleloom.backends.vision.describe import SYSTEM, caption_prompt, concepts_from_text, parse_caption
from taleloom.book import Caption
from taleloom.config import resolve_device
from taleloom.errors import ModelNotFoundError


class TransformersCaptioner(Captioner):
    name = "transformers"
    suggested_repo = "llava-hf/llava-1.5-7b-hf"

    class Options(TorchOptions):
        kind: Literal["auto", "blip", "llava"] = Field("auto", description="auto: from the folder's config.json")
        max_new_tokens: int = Field(160, ge=8, le=2048)
        blip_prefix: str = Field("a picture of", description="BLIP's conditional-captioning prefix ('' for none)")

    def __init__(self, location: str | None = None, model: str | None = None, **options: Any):
        self.options = self.Options(**options)
        self.folder = resolve_model_folder(location or model, self.name, self.suggested_repo)
        self.device = resolve_device(self.options.device)
        self.kind = self.options.kind if self.options.kind != "auto" else _kind(self.folder)
        import transformers

        loader = transformers.BlipForConditionalGeneration if self.kind == "blip" \
            else transformers.AutoModelForImageTextToText
        try:
            self.processor = transformers.AutoProcessor.from_pretrained(self.folder, local_files_only=True)
            self.model = loader.from_pretrained(self.folder, local_files_only=True,
                                                dtype=pick_dtype(self.options, self.device))
        except (OSError, ValueError) as e:
            raise ModelNotFoundError(f"could not load a {self.kind} captioning model from {self.folder}: {e}",
                                     "the folder needs config.json, the weights and the processor files "
                                     "(preprocessor_config.json, tokenizer)") from e
        self.model.to(self.device).eval()
        self.model_id = f"{self.name}:{self.folder}[{self.kind}]"
        self._lock = threading.Lock()

    def caption(self, image: Image.Image, hint: str | None = None) -> Caption:
        import torch

        image = image.convert("RGB")
        if self.kind == "blip":
            inputs = self.processor(images=image, text=self.options.blip_prefix or None, return_tensors="pt")
        else:
            messages = [{"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
                        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": caption_prompt(hint)}]}]
            prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
            inputs = self.processor(images=image, text=prompt, return_tensors="pt")
        inputs = inputs.to(self.device, self.model.dtype)
        with self._lock, torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.options.max_new_tokens, do_sample=False)
        if self.kind != "blip":  # chat models echo the prompt; BLIP's output already starts with the prefix
            out = out[:, inputs["input_ids"].shape[1]:]
        text = self.processor.batch_decode(out, skip_special_tokens=True)[0].strip()
        if self.kind == "blip":
            caption = parse_caption(text, hint, self.model_id)
            return caption.model_copy(update={"concepts": concepts_from_text(text)})
        return parse_caption(text, hint, self.model_id)


def _kind(folder: Path) -> str:
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type", "")
    except (OSError, ValueError):
        model_type = ""
    return "blip" if model_type == "blip" else "llava"
