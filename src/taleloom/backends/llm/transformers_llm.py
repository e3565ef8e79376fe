"""TextModel over a transformers causal-LM folder (Qwen2.5, Llama 3, SmolLM2, ...): the folder's chat
template, sampling (temperature, top-p, top-k, repetition penalty, seed) and streaming.

Spec: ``transformers:/models/Qwen2.5-1.5B-Instruct``. Decoding is not grammar-constrained here: with a
schema the model is told the schema and its answer's JSON is extracted and checked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from taleloom.backends.base import Answer, Piece, Sampling, StopCutter, TextModel, Usage, cut_at_stop
from taleloom.backends.json_answers import first_json_object, schema_instruction
from taleloom.backends.local_models import TorchOptions, pick_dtype, resolve_model_folder
from taleloom.config import resolve_device
from taleloom.errors import BackendError, ModelNotFoundError


class TransformersTextModel(TextModel):
    name = "transformers"
    can_stream = True
    supports_schema = False  # asked for in words, then checked: not constrained decoding
    suggested_repo = "Qwen/Qwen2.5-1.5B-Instruct"

    class Options(TorchOptions):
        pass

    def __init__(self, location: str | None = None, model: str | None = None, **options: Any):
        self.options = self.Options(**options)
        self.folder = resolve_model_folder(location or model, self.name, self.suggested_repo)
        self.device = resolve_device(self.options.device)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(self.folder, local_files_only=True,
                                                              dtype=pick_dtype(self.options, self.device))
        except (OSError, ValueError) as e:
            raise ModelNotFoundError(f"could not load a causal language model from {self.folder}: {e}",
                                     "the folder needs config.json, the weights and the tokenizer files") from e
        if not self.tokenizer.chat_template:
            raise ModelNotFoundError(f"{self.folder} has no chat template (tokenizer_config.json 'chat_template')",
                                     "use an instruction-tuned (chat) model folder")
        self.model.to(self.device).eval()
        self.model_id = f"{self.name}:{self.folder}"
        self._lock = threading.Lock()

    def _inputs(self, messages: list[dict[str, str]]):
        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)

    def _generate_kwargs(self, sampling: Sampling | None) -> dict[str, Any]:
        s = sampling or Sampling()
        sample = s.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": s.max_tokens, "do_sample": sample,
                                  "repetition_penalty": s.repeat_penalty,
                                  "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id}
        if s.stop:  # generation halts at a stop string; the string itself is cut off the text afterwards
            kwargs.update(stop_strings=s.stop, tokenizer=self.tokenizer)
        if sample:
            kwargs.update(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k)
        else:  # greedy: clear the folder's sampling defaults so transformers does not warn about them
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs

    @contextmanager
    def _seeded(self, sampling: Sampling | None) -> Iterator[None]:
        """Seed torch for one generation without disturbing the process's random state."""
        import torch

        devices = [self.device] if self.device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices):
            if sampling is not None and sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            yield

    def chat(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
             schema: dict[str, Any] | None = None) -> str:
        return self.answer(messages, sampling, schema).text

    def answer(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
               schema: dict[str, Any] | None = None) -> Answer:
        import torch

        if schema is not None:
            messages = [{"role": "system", "content": schema_instruction(schema)}, *messages]
        inputs = self._inputs(messages)
        with self._lock, torch.inference_mode(), self._seeded(sampling):
            out = self.model.generate(**inputs, **self._generate_kwargs(sampling))
        new = out[0, inputs["input_ids"].shape[1]:]
        text = self.tokenizer.decode(new, skip_special_tokens=True).strip()
        text, stopped = cut_at_stop(text, (sampling or Sampling()).stop)
        max_tokens = (sampling or Sampling()).max_tokens
        cut = not stopped and len(new) >= max_tokens and int(new[-1]) != self.tokenizer.eos_token_id
        usage = Usage(int(inputs["input_ids"].shape[1]), len(new))  # one sequence: no padding in `new`
        if schema is None:
            return Answer(text, "length" if cut else "stop", usage)
        data = first_json_object(text)
        if not isinstance(data, dict):
            raise BackendError(f"{self.model_id} did not answer with a JSON object: {text[:200]!r}",
                               "use a larger instruction-tuned model, or an OpenAI-compatible server with "
                               "JSON-schema decoding (vLLM, llama.cpp server)")
        return Answer(json.dumps(data, ensure_ascii=False), "length" if cut else "stop", usage)

    def stream(self, messages: list[dict[str, str]], sampling: Sampling | None = None) -> Iterator[str]:
        return (p.text for p in self.answer_stream(messages, sampling) if p.text)

    def answer_stream(self, messages: list[dict[str, str]], sampling: Sampling | None = None) -> Iterator[Piece]:
        import torch
        from transformers import TextIteratorStreamer

        inputs = self._inputs(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock, torch.inference_mode(), self._seeded(sampling):
                    self.model.generate(**inputs, **self._generate_kwargs(sampling), streamer=streamer)
            except BaseException as e:  # surfaced in the caller's thread below
                errors.append(e)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        cutter, sent = StopCutter((sampling or Sampling()).stop), []
        for piece in streamer:
            if text := cutter.feed(piece):
                sent.append(text)
                yield Piece(text)
        thread.join()
        if errors:
            raise BackendError(f"{self.model_id} failed while streaming: {errors[0]}", "see the log") from errors[0]
        if text := cutter.flush():
            sent.append(text)
            yield Piece(text)
        answer = "".join(sent)
        completion = len(self.tokenizer(answer, add_special_tokens=False)["input_ids"]) if answer else 0
        max_tokens = (sampling or Sampling()).max_tokens
        finish = "length" if not cutter.stopped and completion >= max_tokens else "stop"
        yield Piece("", finish, Usage(int(inputs["input_ids"].shape[1]), completion))
