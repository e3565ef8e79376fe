"""Abandoned work stops (issue 10, row 5): a denoising loop inside a cancelled scope ends at its next step, a
batch of pictures stops only when every request in it was abandoned, and queued abandoned requests never run."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from taleloom.backends.base import Illustrator
from taleloom.backends.batching import Batcher
from taleloom.book import ImageRequest
from taleloom.deadline import Cancelled, DeadlineExceeded, Scope, check
from taleloom.diffusion.sample import sample_loop
from taleloom.diffusion.samplers import make_sampler
from taleloom.diffusion.schedule import make_schedule


def test_check_is_a_no_op_outside_any_scope():
    check()


def test_a_scope_past_its_deadline_names_the_setting():
    scope = Scope(0.001, "the chat completion", "chat_deadline_s")
    time.sleep(0.01)
    with pytest.raises(DeadlineExceeded, match="chat_deadline_s"):
        scope.check()


def counting_denoiser(calls: list[int], cancel_at: int | None = None, scope: Scope | None = None):
    def denoise(x, t):
        calls.append(t)
        if cancel_at is not None and len(calls) == cancel_at:
            scope.cancel()
        return torch.zeros_like(x)

    return denoise


def test_the_denoising_loop_stops_at_the_next_step_once_its_request_is_abandoned():
    sampler = make_sampler("ddim", make_schedule("cosine", 1000))
    calls: list[int] = []
    scope = Scope(None, "the picture request")
    with pytest.raises(Cancelled):
        scope.run(sample_loop, counting_denoiser(calls, cancel_at=3, scope=scope), sampler, (1, 3, 8, 8), 50,
                  torch.Generator().manual_seed(0))
    assert len(calls) == 3  # not 50
    calls.clear()
    sample_loop(counting_denoiser(calls), sampler, (1, 3, 8, 8), 50, torch.Generator().manual_seed(0))
    assert len(calls) == 50  # outside a scope (a book, training) nothing stops it


class SlowIllustrator(Illustrator):
    """Draws by 'denoising' in steps, checking for abandonment between them like the engine does."""

    name = "slow"
    max_batch = 4

    def __init__(self):
        self.steps_run = 0
        self.batches: list[int] = []

    def generate(self, requests):
        from PIL import Image

        self.batches.append(len(requests))
        for _ in range(40):
            check()
            self.steps_run += 1
            time.sleep(0.01)
        return [Image.new("RGB", (8, 8)) for _ in requests]


def test_a_batch_stops_only_when_all_its_requests_are_abandoned():
    inner = SlowIllustrator()
    batcher = Batcher(lambda: inner, max_wait=0.2)
    scope = Scope(None, "request A")
    results: dict[str, object] = {}

    def single_step():
        try:
            results["a"] = scope.run(batcher.generate, [ImageRequest(prompt="a")])
        except Cancelled as e:
            results["a"] = e

    def book():
        results["book"] = batcher.generate([ImageRequest(prompt="b")])

    threads = [threading.Thread(target=single_step), threading.Thread(target=book)]
    for t in threads:
        t.start()
    time.sleep(0.35)
    scope.cancel()  # request A's client leaves mid-batch; the book still wants its picture
    for t in threads:
        t.join(30)
    assert inner.batches == [2] and inner.steps_run == 40 and len(results["book"]) == 1

    alone = Scope(None, "request C")
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(_try(alone.run, batcher.generate, [ImageRequest(prompt="c")])))
    t.start()
    time.sleep(0.35)
    alone.cancel()
    t.join(30)
    assert isinstance(out[0], Cancelled) and inner.steps_run < 80  # stopped part-way


def test_an_abandoned_request_still_queued_never_runs():
    inner = SlowIllustrator()
    batcher = Batcher(lambda: inner, max_wait=0.0)
    gone = Scope(None, "request D")
    gone.cancel()
    with pytest.raises(Cancelled):
        gone.run(batcher.generate, [ImageRequest(prompt="d")])  # checked on entry
    scope = Scope(None, "request E")
    blocker = threading.Thread(target=lambda: batcher.generate([ImageRequest(prompt="busy")]))
    blocker.start()
    time.sleep(0.05)  # the first batch is running; E queues behind it
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(_try(scope.run, batcher.generate, [ImageRequest(prompt="e")])))
    t.start()
    time.sleep(0.05)
    scope.cancel()
    blocker.join(30)
    t.join(30)
    assert isinstance(out[0], Cancelled) and inner.batches == [1]


def _try(fn, *args):
    try:
        return fn(*args)
    except Cancelled as e:
        return e
