"""The model process: llama-cpp-python's own OpenAI-compatible server (`llama_cpp.server`) for one GGUF file
(with ``--clip-model``, a vision model: its multimodal projector and the chat format that reads images).

Run by `taleloom.backends.llm.supervisor` as ``python -m taleloom.backends.llm.llama_child --model M.gguf
--port P ...``, never in the API process: whatever llama.cpp's native code does (a segfault on a
grammar, an abort on an empty grammar stack, a kill -9), it takes down this process only, and the
supervisor starts a new one. Three things differ from ``python -m llama_cpp.server``:

- a prompt that starts like a recent one reuses that start's evaluation, exactly (prompt_prefixes.py:
  whole batches of earlier prompts only, so the same seed gives the same answer whatever was asked
  before, as from an empty cache); a vision model starts every chat from an empty KV cache instead
  (its image embeddings are not tokens);
- a new request never interrupts a running stream (``interrupt_requests=False``): calls queue;
- logits are kept for the last token only (``logits_all=False``, the server's default is True): nothing
  here asks for prompt log-probabilities, and keeping them made the server compute the vocabulary
  projection for every prompt token and copy it (628 × 151,936 floats for Qwen's write prompt), which
  slowed the write stage's prompt by about a fifth;
- weights load without llama.cpp's extra buffer types unless asked: ``--repack`` (the LLM's default)
  keeps its CPU_REPACK layout but never the AMX one, which crashes on AMX CPUs (llamacpp._model_params,
  cpu_buffers.py); grammars are checked on the sampled token first (grammar_sampling.py); and the process exits when its parent is gone, so a kill -9 of the API
  leaves no orphan holding the model's memory.
"""

from __future__ import annotations

import argparse
import os
import sys
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
    parser.add_argument("--most-threads", type=int, default=0,
                        help="take up to this many threads while the other cores are idle (spare_cores.py)")
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

    from taleloom.backends.llm import prompt_prefixes, spare_cores
    from taleloom.backends.llm.llamacpp import _model_params

    if args.clip_model:
        _reset_before_each_chat()
    else:
        prompt_prefixes.install(prompt_prefixes.PrefixStates(), lambda line: print(line, file=sys.stderr, flush=True))
    if args.n_gpu_layers == 0:
        spare_cores.install(args.n_threads, args.most_threads)
    server = ServerSettings(host="127.0.0.1", port=args.port, interrupt_requests=False)
    model = ModelSettings(model=args.model, model_alias=args.alias, n_ctx=args.n_ctx, n_threads=args.n_threads,
                          n_threads_batch=args.n_threads, n_batch=prompt_prefixes.ALIGN,
                          n_ubatch=prompt_prefixes.ALIGN, n_gpu_layers=args.n_gpu_layers,
                          chat_format=args.chat_format, clip_model_path=args.clip_model, verbose=False,
                          logits_all=False)
    with _model_params(args.extra_buffers, repack=args.repack):
        app = create_app(server_settings=server, model_settings=[model])  # loads the weights
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
