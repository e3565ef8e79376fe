"""Prompt-prefix reuse (backends/llm/prompt_prefixes.py) on real SmolLM2 in llama.cpp: a prompt that starts
like an earlier one does not evaluate that start again, and its answer is still the one an empty cache
gives, token for token, whatever was asked in between; the model process evaluates the write stage's
instructions ahead (TextModel.preload) and the book's first answer is the same as without."""

from __future__ import annotations

import pytest

from taleloom.backends import registry
from taleloom.backends.base import Sampling
from taleloom.backends.llm.prompt_prefixes import ALIGN, PrefixStates, install
from taleloom.book import Brief
from taleloom.stages import write
from taleloom.stages.write import BOOK_SYSTEM, book_prefix

USERS = ["A cat and a red ball.", "A dog who is afraid of the rain.", "Three fruits go to school."]


@pytest.fixture(scope="module")
def llama():
    return registry.create("llm", "smollm2", process="inline")._load()


def ask(llama, system: str, user: str, seed: int) -> str:
    answer = llama.create_chat_completion(messages=[{"role": "system", "content": system},
                                                    {"role": "user", "content": user}],
                                          seed=seed, max_tokens=40, temperature=1.0)
    return answer["choices"][0]["message"]["content"]


def from_empty(llama, system: str, seed_user: list[tuple[int, str]]) -> list[str]:
    """Each answer from an empty cache (a store that keeps nothing)."""
    undo = install(PrefixStates(max_bytes=0))
    try:
        return [ask(llama, system, user, seed) for seed, user in seed_user]
    finally:
        undo()


def test_a_shared_start_is_evaluated_once_and_the_answers_do_not_change(llama):
    asks = list(enumerate(USERS))
    expected = from_empty(llama, BOOK_SYSTEM, asks)
    store = PrefixStates()
    undo = install(store)
    try:
        assert ask(llama, BOOK_SYSTEM, USERS[0], 0) == expected[0] and store.reused == 0  # nothing kept yet
        for seed, user in asks:
            assert ask(llama, BOOK_SYSTEM, user, seed) == expected[seed]
            assert store.reused >= 2 * ALIGN and store.reused % ALIGN == 0  # the long system message, whole batches
        assert ask(llama, "Answer in one word.", "Hello", 9)  # another start in between...
        assert store.reused == 0
        assert ask(llama, BOOK_SYSTEM, USERS[2], 2) == expected[2]  # ...and the book's start is loaded back
        assert store.reused >= 2 * ALIGN
    finally:
        undo()


def test_an_answer_is_never_reused_only_prompts(llama):
    """The next turn of a conversation holds the last answer; those tokens were evaluated one at a time, so
    they are evaluated again (as from empty), and only the earlier prompt's whole batches are reused."""
    first = [{"role": "system", "content": BOOK_SYSTEM}, {"role": "user", "content": USERS[0]}]
    store = PrefixStates()
    undo = install(store)
    try:
        answer = llama.create_chat_completion(messages=first, seed=1, max_tokens=30)
        prompt = answer["usage"]["prompt_tokens"]
        turn = [*first, answer["choices"][0]["message"], {"role": "user", "content": "More."}]
        again = llama.create_chat_completion(messages=turn, seed=2, max_tokens=30)["choices"][0]["message"]
        assert store.reused == prompt // ALIGN * ALIGN > 0
    finally:
        undo()
    undo = install(PrefixStates(max_bytes=0))
    try:
        assert llama.create_chat_completion(messages=turn, seed=2, max_tokens=30)["choices"][0]["message"] == again
    finally:
        undo()


def test_the_model_process_evaluates_the_book_instructions_ahead_and_answers_the_same():
    child, inline = registry.create("llm", "smollm2"), registry.create("llm", "smollm2", process="inline")
    brief = Brief(pages=2, hero="Mina", seed=4)
    book = [{"role": "system", "content": BOOK_SYSTEM},  # the write stage's first request
            {"role": "user", "content": write._book_prompt("a grey cat in a garden", brief, "Mina", "cat", 2, 2)}]
    sampling = Sampling(seed=4, max_tokens=40, temperature=1.0)
    try:
        child.preload([book_prefix(brief)])
        answer = child.chat(book, sampling)
        assert "reused" in child._child().process.log_tail(4000)  # the request skipped the instructions
        assert answer == inline.chat(book, sampling)  # inline starts from an empty cache every time
    finally:
        child._child().close()
