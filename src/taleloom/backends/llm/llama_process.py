"""A local GGUF model answered by a supervised child process, through the OpenAI-compatible backend.

`LlamaCppTextModel` (process="child", the default) hands its calls here. The child is
`llama_child` (llama-cpp-python's server) under a `ModelProcess`; the calls go through the same
`OpenAITextModel` code path as any remote OpenAI-compatible server, one at a time (llama.cpp answers
one at a time anyway, and so the call in flight when the child dies is the one that killed it).

When the child dies during a call, the call is sent once more to a fresh child: a kill from outside
(the OOM killer, an operator, the fault script) costs one retry. If the fresh child dies on it too, the
input is what crashes it: the call fails with a message saying so, and nothing restarts in a loop — the
next call starts a child again. A stream that already sent text cannot be replayed; it ends with an error.
Abandoned calls (taleloom.deadline) are sent as streams, so closing the connection stops the model at
its next token.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

from taleloom import deadline
from taleloom.backends.base import Answer, Piece, Sampling, Usage, estimate_usage
from taleloom.backends.llm.openai_compat import OpenAITextModel
from taleloom.backends.llm.supervisor import ModelProcess
from taleloom.backends.openai_http import ServerUnreachableError
from taleloom.errors import BackendError, BadInputError, ModelNotFoundError

log = logging.getLogger("taleloom.models")
T = TypeVar("T")


class ModelCrashedError(BackendError):
    """The model process died while it answered."""


class ChildLlama:
    """One GGUF file served by one child process; `answer` / `answer_stream` like a TextModel's."""

    def __init__(self, path: Path, model_id: str, n_ctx: int, n_threads: int, n_gpu_layers: int = 0,
                 chat_format: str | None = None, extra_buffers: bool = False, timeout: float = 600.0,
                 clip_model: Path | None = None, repack: bool = False, most_threads: int = 0):
        """`clip_model`: the multimodal projector of a vision model (then `chat_format` names the server's
        handler for it, e.g. "llava-1-5"); its calls take OpenAI image parts (data URLs) in the messages.
        `repack`: weights in llama.cpp's CPU_REPACK layout (llamacpp.Options.repack). `most_threads` above
        `n_threads`: the child takes up to that many while the machine's other cores are idle (spare_cores.py)."""
        command = [sys.executable, "-m", "taleloom.backends.llm.llama_child", "--model", str(path), "--port", "{port}",
                   "--n-ctx", str(n_ctx), "--n-threads", str(n_threads), "--n-gpu-layers", str(n_gpu_layers),
                   "--parent", str(os.getpid())]
        if chat_format:
            command += ["--chat-format", chat_format]
        if clip_model is not None:
            command += ["--clip-model", str(clip_model)]
        if most_threads > n_threads:
            command += ["--most-threads", str(most_threads)]
        if extra_buffers:
            command.append("--extra-buffers")
        if repack:
            command.append("--repack")
        self.path, self.model_id, self.n_ctx = path, model_id, n_ctx
        self.process = ModelProcess(f"{'vision model' if clip_model else 'LLM'} {path.name}", command)
        self._timeout = timeout
        self._remote: OpenAITextModel | None = None
        self._remote_url: str | None = None
        self._lock = threading.Lock()

    def remote(self) -> OpenAITextModel:
        """The OpenAI-compatible client of the running child (started or restarted here)."""
        try:
            url = self.process.ensure() + "/v1"
        except ModelNotFoundError as e:  # the child could not load the file: say so in llama.cpp's words
            last = next((line for line in reversed(self.process.log_tail(2000).splitlines()) if line.strip()), "")
            raise ModelNotFoundError(f"could not load GGUF file {self.path}: {last.strip() or e.message}",
                                     "is it a complete GGUF model file?") from e
        if self._remote is None or self._remote_url != url:
            if self._remote is not None:
                self._remote.client.close()
            self._remote = OpenAITextModel(url, "local", schema_format="json_object", extended_sampling=True,
                                           max_retries=0, timeout=self._timeout)
            self._remote_url = url
        return self._remote

    # ------------------------------------------------------------------ calls
    def answer(self, messages: list[dict[str, Any]], sampling: Sampling | None,
               schema: dict[str, Any] | None) -> Answer:
        def ask() -> Answer:
            remote = self.remote()
            self._check_fits(remote, messages)
            if deadline.current() is None:  # a book stage or the CLI: one plain request
                return remote.answer(messages, sampling, schema)
            return self._answer_by_stream(remote, messages, sampling, schema)

        with self._lock:
            return self._twice(ask)

    def answer_stream(self, messages: list[dict[str, Any]], sampling: Sampling | None) -> Iterator[Piece]:
        with self._lock:  # held while the stream runs: the caller iterates and closes it in one thread
            sent = False
            for attempt in (1, 2):
                try:
                    remote = self.remote()
                    self._check_fits(remote, messages)
                    for piece in remote.answer_stream(messages, sampling):
                        sent = True
                        yield piece
                    return
                except (BackendError, OSError) as e:
                    died = self.process.died()
                    if died is None:
                        raise self._translated(e) from e
                    if sent or attempt == 2:
                        raise self._crashed(died, twice=attempt == 2, midway=sent) from e
                    log.warning("%s %s during a streamed call; retrying it once", self.process.name, died)

    def _twice(self, ask: Callable[[], T]) -> T:
        """`ask()`, and once more on a fresh child if the child died during it."""
        for attempt in (1, 2):
            try:
                return ask()
            except (BackendError, OSError) as e:
                died = self.process.died()
                if died is None:
                    raise self._translated(e) from e
                if attempt == 2:
                    raise self._crashed(died, twice=True) from e
                log.warning("%s %s during a call; retrying it once on a fresh process", self.process.name, died)
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer_by_stream(self, remote: OpenAITextModel, messages: list[dict[str, Any]], sampling: Sampling | None,
                          schema: dict[str, Any] | None) -> Answer:
        """The answer read as a stream and checked between chunks, so an abandoned call stops the model
        at its next token (leaving the stream closes the connection, which the child notices)."""
        payload = remote._payload(messages, sampling) | {"stream": True}
        if schema is not None:
            payload |= remote._response_format("json_object", schema)
        text: list[str] = []
        finish = "stop"
        with closing(remote.client.stream_events("chat/completions", payload)) as events:
            for event in events:
                deadline.check()
                for choice in event.get("choices") or []:
                    finish = choice.get("finish_reason") or finish
                    text.append((choice.get("delta") or {}).get("content") or "")
        answer = remote.checked_answer("".join(text), schema, finish, sampling)
        usage = estimate_usage(messages, answer)
        return Answer(answer, "length" if finish == "length" else "stop", Usage(usage.prompt_tokens,
                                                                                 usage.completion_tokens, True))

    def _check_fits(self, remote: OpenAITextModel, messages: list[dict[str, Any]]) -> None:
        """A prompt longer than the context is a 422 that states the limit. (Streamed, the child would only
        end the stream empty.) Counted by the model's own tokenizer when the text could be too long."""
        text = "\n".join(_text_of(m.get("content")) for m in messages)
        if len(text.encode()) + 16 * len(messages) < self.n_ctx:  # a token is at least one byte
            return
        counted = remote.client.http.post(f"{self.process.url}/extras/tokenize/count", json={"input": text})
        tokens = int(counted.json()["count"]) if counted.status_code == 200 else 0
        if tokens + 4 * len(messages) >= self.n_ctx:
            raise BadInputError(f"the prompt is about {tokens:,} tokens; {self.model_id} reads at most {self.n_ctx:,} "
                                "(prompt and answer together)", "shorten the messages or summarise the older ones")

    # ------------------------------------------------------------------ errors
    def _crashed(self, died: str, twice: bool, midway: bool = False) -> ModelCrashedError:
        tail = self.process.log_tail(300)
        where = f" (its last words: {tail})" if tail else ""
        if midway:
            return ModelCrashedError(f"the model process of {self.model_id} {died} in the middle of this answer{where}",
                                     "send the request again; a new model process is started for it")
        return ModelCrashedError(f"the model process of {self.model_id} died twice on this request ({died}); "
                                 f"the request itself is what crashes it{where}",
                                 "change the request (shorter or plainer text, a simpler schema); "
                                 "the service itself is unaffected")

    def _translated(self, error: Exception) -> Exception:
        """The child's refusal of a prompt over its context is the caller's to fix (422)."""
        detail = str(getattr(error, "detail", "") or error)
        if "context window" in detail or "exceed" in detail and "context" in detail:
            return BadInputError(f"the prompt does not fit in the context of {self.model_id}: {detail[:200]}",
                                 f"shorten the messages or lower max_tokens; at most {self.n_ctx} tokens in all")
        if isinstance(error, ServerUnreachableError | OSError):
            return BackendError(f"the model process of {self.model_id} did not answer: {error}",
                                "try again; the server log has details")
        return error

    def close(self) -> None:
        self.process.stop()


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of an OpenAI parts list (an image part
    is a data URL of many kilobytes that the model reads as a few hundred image tokens, not as text)."""
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)
