"""Asking the LLM for JSON that must also pass our own checks, with retries on fresh seeds.

Small models (the embedded SmolLM2-135M) often give answers that fit the schema yet are useless:
a copied example, a story without its hero, a sentence repeated three times. Each ask therefore
names a `check` that returns what is wrong (or None); a failed answer is retried with another seed,
and after the last try a BackendError lists what went wrong in every try.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from taleloom.backends.base import Sampling, TextModel
from taleloom.backends.json_answers import first_json_object
from taleloom.book import SEED_MAX
from taleloom.errors import BackendError

TRIES = 4  # answers asked for before giving up
SEED_STRIDE = 1_000_003  # a retry's seed: seed + try * stride (far from the seeds of other calls)
log = logging.getLogger(__name__)

Check = Callable[[dict[str, Any], int], str | None]  # (answer, try index from 0) -> what is wrong, or None


def parse_object(text: str) -> dict[str, Any] | None:
    """The JSON object in `text` (or in prose around it, from backends without constrained decoding)."""
    value = first_json_object(text)
    return value if isinstance(value, dict) else None


def ask_json(llm: TextModel, messages: list[dict[str, str]], schema: dict[str, Any], sampling: Sampling,
             what: str, check: Check | None = None, tries: int = TRIES) -> dict[str, Any]:
    """Ask until an answer parses and passes `check`; `what` names the task in the error ("write page 2").

    `check` gets the try's index too, so a wish (stay close to the photo) can be dropped on the last tries."""
    base_seed = sampling.seed if sampling.seed is not None else 0
    problems: list[str] = []
    for attempt in range(tries):
        s = sampling.model_copy(update={"seed": (base_seed + attempt * SEED_STRIDE) % (SEED_MAX + 1)})
        try:
            text = llm.chat(messages, s, schema)
        except BackendError as e:  # e.g. JSON cut off at max_tokens: another seed may fit
            problems.append(e.message)
            log.info("%s, try %d failed: %s", what, attempt + 1, e.message)
            continue
        data = parse_object(text)
        problem = "the answer is not a JSON object" if data is None else (check(data, attempt) if check else None)
        if problem is None:
            return data  # type: ignore[return-value]
        problems.append(f"{problem}: {_short(text)}")
        log.info("%s, try %d rejected: %s", what, attempt + 1, problems[-1])
    model = getattr(llm, "model_id", "") or getattr(llm, "name", "the LLM")
    listed = "; ".join(f"try {i + 1}: {p}" for i, p in enumerate(problems))
    raise BackendError(f"the LLM ({model}) could not {what}: {tries} answers failed validation — {listed}",
                       "try another seed or temperature, or a larger model (TALELOOM_LLM=gguf:/path/model.gguf "
                       "or an OpenAI-compatible server)")


def _short(text: str, n: int = 100) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= n else text[: n - 1] + "…")
