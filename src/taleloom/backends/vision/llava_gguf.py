"""Captioner over a local LLaVA-style GGUF + its multimodal projector (mmproj) through llama-cpp-python.

Spec: ``llava-gguf:/models/llava-v1.5-7b`` — a folder holding the model GGUF and an ``*mmproj*.gguf`` —
or ``llava-gguf:/models/llava.gguf`` with the ``mmproj`` option. ``handler`` picks llama-cpp-python's chat
handler for the model family (LLaVA 1.5 by default). The photo goes in as a data URL, the answer is
JSON-constrained by llama.cpp's grammar.

By default (process="child") the model runs in a supervised child process — llama-cpp-python's
OpenAI-compatible server with the projector and the handler's chat format (llm/llama_child.py), asked
through the same `ChildLlama` code path as the local LLM — so native code that crashes on a photo fails
that one caption and the process is started again, never the service (issue 10). process="inline" loads
it into this process (no second Python, for callers that own their process).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

from PIL import Image
from pydantic import Field

from taleloom.backends.base import Captioner, Options, Sampling
from taleloom.backends.local_models import how_to_get
from taleloom.backends.vision.describe import CAPTION_SCHEMA, chat_messages, parse_caption
from taleloom.book import Caption
from taleloom.config import cpu_threads, most_threads
from taleloom.errors import BackendError, ModelNotFoundError

HANDLERS = {  # option value → llama_cpp.llama_chat_format class
    "llava15": "Llava15ChatHandler", "llava16": "Llava16ChatHandler", "moondream": "MoondreamChatHandler",
    "nanollava": "NanoLlavaChatHandler", "llama3-vision-alpha": "Llama3VisionAlphaChatHandler",
    "minicpmv26": "MiniCPMv26ChatHandler", "qwen25vl": "Qwen25VLChatHandler",
}
SERVER_FORMATS = {  # option value → llama_cpp.server chat_format (the child's name for the same handler)
    "llava15": "llava-1-5", "llava16": "llava-1-6", "moondream": "moondream", "nanollava": "nanollava",
    "llama3-vision-alpha": "llama-3-vision-alpha", "minicpmv26": "minicpm-v-2.6", "qwen25vl": "qwen2.5-vl",
}
REPO = "mys/ggml_llava-v1.5-7b"


class LlavaGGUFCaptioner(Captioner):
    name = "llava-gguf"

    class Options(Options):
        mmproj: str | None = Field(None, description="projector GGUF; default: the *mmproj*.gguf beside the model")
        handler: Literal["llava15", "llava16", "moondream", "nanollava", "llama3-vision-alpha", "minicpmv26",
                         "qwen25vl"] = "llava15"
        n_ctx: int = Field(4096, ge=512, description="context tokens (the image alone takes 576 in LLaVA 1.5)")
        n_gpu_layers: int = Field(-1, description="layers on the GPU when llama.cpp was built with one (-1: all)")
        n_threads: int | None = None
        max_tokens: int = Field(300, ge=16, le=4096)
        temperature: float = Field(0.2, ge=0.0, le=2.0)
        seed: int = 0
        max_side: int = Field(768, ge=64, le=4096, description="longer side of the image given to the model")
        process: Literal["child", "inline"] = Field(
            "child", description="child: run llama.cpp in a supervised child process (a crash there fails one "
                                 "caption and the process is restarted); inline: in this process")

    def __init__(self, location: str | None = None, model: str | None = None, **options: Any):
        self.options = self.Options(**options)
        self.model_path, self.mmproj_path = self._find_files(location or model)
        self.model_id = f"{self.name}:{self.model_path.name}+{self.mmproj_path.name}"
        self._lock = threading.Lock()
        self.llm: Any = None  # the in-process llama_cpp.Llama (process="inline")
        self.child: Any = None  # the ChildLlama serving the model (process="child"; it starts on first use)
        if self.options.process == "child":
            from taleloom.backends.llm.llama_process import ChildLlama

            o = self.options
            self.child = ChildLlama(self.model_path, self.model_id, o.n_ctx, cpu_threads(o.n_threads or 0),
                                    o.n_gpu_layers, SERVER_FORMATS[o.handler], clip_model=self.mmproj_path,
                                    most_threads=most_threads(o.n_threads or 0))
            return
        self.llm = self._load_inline()

    def _load_inline(self) -> Any:
        try:
            import llama_cpp
            from llama_cpp import llama_chat_format
        except ImportError as e:
            raise ModelNotFoundError("llama-cpp-python is not installed", "pip install llama-cpp-python") from e
        handler = getattr(llama_chat_format, HANDLERS[self.options.handler])(
            clip_model_path=str(self.mmproj_path), verbose=False)
        from taleloom.backends.llm.llamacpp import _model_params

        try:
            with _model_params(extra_buffers=False):  # this llama.cpp build segfaults in AMX buffers
                return llama_cpp.Llama(model_path=str(self.model_path), chat_handler=handler,
                                       n_ctx=self.options.n_ctx, n_gpu_layers=self.options.n_gpu_layers,
                                       n_threads=self.options.n_threads, seed=self.options.seed, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise ModelNotFoundError(f"llama.cpp could not load {self.model_path}: {e}",
                                     "check that the file is a complete GGUF of a model llama.cpp supports") from e

    def _find_files(self, location: str | None) -> tuple[Path, Path]:
        get = how_to_get(self.name, REPO) + " (the folder needs the model GGUF and its mmproj GGUF)"
        if not location:
            raise ModelNotFoundError(f"the {self.name} backend needs a model folder or GGUF file", get)
        path = Path(location).expanduser()
        if not path.exists():
            raise ModelNotFoundError(f"{path} does not exist", get)
        folder = path if path.is_dir() else path.parent
        ggufs = sorted(folder.glob("*.gguf"))
        projectors = [p for p in ggufs if "mmproj" in p.name.lower()]
        models = [p for p in ggufs if p not in projectors]
        if path.is_dir():
            if len(models) != 1:
                raise ModelNotFoundError(f"{folder} holds {len(models)} model GGUF files ({', '.join(m.name for m in models) or 'none'})",
                                         "keep exactly one beside the mmproj file, or name the file in the spec")
            path = models[0]
        mmproj = Path(self.options.mmproj).expanduser() if self.options.mmproj else None
        if mmproj is None:
            if len(projectors) != 1:
                raise ModelNotFoundError(f"no single *mmproj*.gguf projector beside {path} (found {len(projectors)})",
                                         "put the model's mmproj file in the folder or pass the `mmproj` option")
            mmproj = projectors[0]
        if not mmproj.is_file():
            raise ModelNotFoundError(f"projector {mmproj} does not exist", get)
        return path, mmproj

    def caption(self, image: Image.Image, hint: str | None = None) -> Caption:
        messages = chat_messages(image, hint, self.options.max_side)
        if self.child is not None:  # deadlines, cancellation and crashes: ChildLlama's, as for the LLM
            o = self.options
            sampling = Sampling(temperature=o.temperature, max_tokens=o.max_tokens, seed=o.seed,
                                repeat_penalty=1.0)  # llama-cpp-python's own default, as inline
            answer = self.child.answer(messages, sampling, CAPTION_SCHEMA)
            return parse_caption(answer.text, hint, self.model_id)
        with self._lock:
            try:
                answer = self.llm.create_chat_completion(
                    messages=messages,
                    response_format={"type": "json_object", "schema": CAPTION_SCHEMA},
                    max_tokens=self.options.max_tokens, temperature=self.options.temperature, seed=self.options.seed)
            except (ValueError, RuntimeError) as e:  # e.g. prompt longer than n_ctx
                raise BackendError(f"{self.model_id} failed to caption the photo: {e}",
                                   "raise the n_ctx option or lower max_side") from e
        return parse_caption(answer["choices"][0]["message"]["content"] or "", hint, self.model_id)

    def close(self) -> None:
        """Stop the model's child process (if one was started)."""
        if self.child is not None:
            self.child.close()
