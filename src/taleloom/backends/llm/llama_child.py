"""The model process: llama-cpp-python's own OpenAI-compatible server (`llama_cpp.server`) for one GGUF file
(with ``--clip-model``, a vision model: its multimodal projector and the chat format that reads images).

Run by `taleloom.backends.llm.supervisor` as ``python -m taleloom.backends.llm.llama_child --model M.gguf
--port P ...``, never in the API process: whatever llama.cpp's native code does (a segfault on a
grammar, an abort on an empty grammar stack, a kill -9), it takes down this process only, and the
supervisor starts a new one. Three things differ from ``python -m llama_cpp.server``:

- every chat completion starts from an empty KV cache (``Llama.reset()`` first), as the in-process
  backend does, so the same seed gives the same answer whatever was asked before;
- a new request never interrupts a running stream (``interrupt_requests=False``): calls queue;
- weights load without llama.cpp's extra buffer types unless asked: ``--repack`` (the LLM's default)
  keeps its CPU_REPACK layout but never the AMX one, which crashes on AMX CPUs (llamacpp._model_params,
  cpu_buffers.py); grammars are checked on the sampled token first (grammar_sampling.py); and the process exits when its parent is gone, so a kill -9 of the API
  leaves no orphan holding the model's memory.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

PARENT_POLL_S = 0.5


def _exit_with_parent(parent: int) -> None:
    """Exit as soon as the process that started us is gone (we are re-parented)."""
    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(0)
            time.sleep(PARENT_POLL_S)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _reset_before_each_chat() -> None:
    import llama_cpp

    original = llama_cpp.Llama.create_chat_completion

    def create_chat_completion(self, *args, **kwargs):
        self.reset()  # no prompt-prefix reuse: the same seed gives the same answer
        return original(self, *args, **kwargs)

    llama_cpp.Llama.create_chat_completion = create_chat_completion


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--n-threads", type=int, default=1)
    parser.add_argument("--n-gpu-layers", type=int, default=0)
    parser.add_argument("--chat-format", default=None)
    parser.add_argument("--clip-model", default=None, help="multimodal projector GGUF (mmproj) of a vision model")
    parser.add_argument("--alias", default="local")
    parser.add_argument("--extra-buffers", action="store_true")
    parser.add_argument("--repack", action="store_true", help="CPU_REPACK weights, no AMX (llamacpp.Options.repack)")
    parser.add_argument("--parent", type=int, default=None, help="exit when this process is gone")
    args = parser.parse_args(argv)
    if args.parent:
        _exit_with_parent(args.parent)

    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    from taleloom.backends.llm.llamacpp import _model_params

    _reset_before_each_chat()
    server = ServerSettings(host="127.0.0.1", port=args.port, interrupt_requests=False)
    model = ModelSettings(model=args.model, model_alias=args.alias, n_ctx=args.n_ctx, n_threads=args.n_threads,
                          n_threads_batch=args.n_threads, n_gpu_layers=args.n_gpu_layers,
                          chat_format=args.chat_format, clip_model_path=args.clip_model, verbose=False)
    with _model_params(args.extra_buffers, repack=args.repack):
        app = create_app(server_settings=server, model_settings=[model])  # loads the weights
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
