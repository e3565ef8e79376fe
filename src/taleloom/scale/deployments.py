"""Each model role as a Ray Serve deployment (`pip install taleloom[ray]`).

A replica builds the role's backend from an ordinary spec (``embedded``, ``diffusers-sdxl:/models/sdxl``...)
through the registry, once, and serves the role's interface methods. Pictures are batched across books
with ``@serve.batch``: each book's pictures come as one request (so its pages stay on one replica and in one
call), the books whose requests arrive together are handed on at once, and the replica's `Batcher` (the pool's,
backends/batching.py) draws them in model calls of up to `max_batch` pictures, grouped by what a call must
share (size, steps, sampler, guidance), filling the next call while the model draws. Model calls run in a thread so the replica keeps taking requests
while it draws. One app per role (``taleloom-illustrator``...), so a role is redeployed or scaled alone.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

from ray import serve

from taleloom.backends import registry
from taleloom.backends.batching import Batcher
from taleloom.errors import BackendError

# the methods of each role's interface a client may call through `call` (generate goes through the batcher)
METHODS = {
    "illustrator": {"img2img", "inpaint"},
    "upscaler": {"upscale", "upscale_batch"},
    "captioner": {"caption"},
    "llm": {"chat", "answer"},
    "narrator": {"speak", "speak_words", "languages"},
}
APP_PREFIX = "taleloom"


def app_name(role: str, prefix: str = APP_PREFIX) -> str:
    return f"{prefix}-{role}"


@dataclass
class RoleConfig:
    """One role's deployment: which backend, how many replicas, and how pictures are batched."""

    role: str
    spec: str  # an ordinary backend spec, built in every replica
    replicas: int = 1
    options: dict[str, Any] = field(default_factory=dict)  # the backend's Options
    max_batch: int = 8  # pictures per model call at most (illustrator)
    batch_wait_s: float = 0.05  # how long a replica waits for more pictures before drawing
    num_cpus: float = 1.0  # Ray resources each replica reserves
    num_gpus: float = 0.0
    plugins: str = ""  # TALELOOM_PLUGINS-style "module:function" loaded in each replica
    device: str | None = None  # torch device for backends that take one (settings.device)


def _pictures(books: list[list[Any]]) -> int:
    """A batch's size in pictures (each request is one book's list of pictures)."""
    return sum(len(b) for b in books)


@serve.deployment(max_ongoing_requests=64, health_check_period_s=2, health_check_timeout_s=10,
                  graceful_shutdown_timeout_s=5)
class ModelServer:
    """One replica of one role's backend."""

    def __init__(self, config: RoleConfig):
        from taleloom.server.service import load_plugins

        load_plugins(config.plugins)
        self.config = config
        self.backend = registry.create(config.role, config.spec, default_device=config.device, **config.options)
        # the one place pictures are batched (backends/batching.py): @serve.batch alone forms a batch from
        # what arrives within batch_wait_s and then queues it, so under a steady trickle every call drew one book
        self.batcher = (Batcher(lambda: self.backend, workers=1, max_wait=config.batch_wait_s,
                                max_batch=min(config.max_batch, max(1, self.backend.max_batch)))
                        if config.role == "illustrator" else None)
        self.generate.set_max_batch_size(config.max_batch)
        self.generate.set_batch_wait_timeout_s(config.batch_wait_s)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05, batch_size_fn=_pictures, max_concurrent_batches=8)
    async def generate(self, books: list[list[Any]]) -> list[list[Any]]:
        """Pictures of the books whose requests arrived together (one request per book, so its pages stay
        together); `max_batch` counts pictures. They join the replica's Batcher, which draws them in as few
        model calls as may be, filling the next call while the model draws the current one."""
        drawn = await asyncio.to_thread(self.batcher.generate, [r for book in books for r in book])
        out, k = [], 0
        for book in books:
            out.append(drawn[k:k + len(book)])
            k += len(book)
        return out

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Any other method of the role's interface, e.g. ``call("caption", image, hint)``."""
        if method not in METHODS[self.config.role]:
            raise ValueError(f"{method!r} is not a {self.config.role} method; known: {sorted(METHODS[self.config.role])}")
        return await asyncio.to_thread(getattr(self.backend, method), *args, **kwargs)

    def describe(self) -> dict[str, Any]:
        """What answers here: for `taleloom ray status`, the benchmark (batch sizes) and tests (pid)."""
        return {"role": self.config.role, "model_id": self.backend.model_id, "pid": os.getpid(),
                "replica": serve.get_replica_context().replica_id.unique_id,
                "ready": list(self.backend.ready()), "max_batch": self.config.max_batch,
                "batches": self.batcher.stats()["batch_sizes"] if self.batcher else {}}


def deploy(config: RoleConfig, prefix: str = APP_PREFIX) -> None:
    """(Re)deploy one role as its own app on the connected cluster; returns when its replicas are up."""
    serve.start(proxy_location="Disabled")  # handles only: no HTTP proxy (it would take port 8000)
    app = ModelServer.options(num_replicas=config.replicas, ray_actor_options={
        "num_cpus": config.num_cpus, "num_gpus": config.num_gpus}).bind(config)
    try:
        serve.run(app, name=app_name(config.role, prefix), route_prefix=None)
    except RuntimeError as e:  # a replica could not start: most often the backend spec or a missing plugin
        raise BackendError(f"the {config.role} deployment ({config.spec}) did not start: {e}",
                           "the replica's error is in the Ray session's logs (/tmp/ray/session_latest/logs/serve/); "
                           "check the spec and that taleloom (and any plugin) is importable on every node") from None
