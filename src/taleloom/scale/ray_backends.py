"""The `ray:` backends: every role's interface answered by its Ray Serve deployment (scale/deployments.py).

Spec: ``ray:ADDRESS#PREFIX`` — ``ray:`` (RAY_ADDRESS or the local cluster), ``ray:127.0.0.1:6379``,
``ray:head:6379#taleloom`` (the apps are PREFIX-ROLE; default ``taleloom``). A book's pictures are sent as one
request (up to the replicas' `max_batch`), so the replicas' ``@serve.batch`` puts the pages of several
books into one model call. A replica
that dies mid-call (a crash, ``kill -9``, a lost node) fails only that call's requests: they are sent again
and Serve routes them to a live replica (a picture is the same for the same seed, so a retry is safe).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PIL import Image
from pydantic import Field

from taleloom.backends.base import (
    Answer,
    Captioner,
    Illustrator,
    Narrator,
    Options,
    Sampling,
    TextModel,
    Upscaler,
)
from taleloom.book import Caption, ImageRequest
from taleloom.errors import BackendError, ModelNotFoundError, TaleloomError

log = logging.getLogger("taleloom.scale")


class RayOptions(Options):
    retries: int = Field(4, ge=0, le=20, description="times a call is sent again after its replica died")
    backoff: float = Field(0.5, ge=0, description="first wait before a retry in seconds, doubled each time")


class RayRole:
    """The connection to one role's deployment: lazy (first call), shared by threads, with retries."""

    def __init__(self, role: str, location: str | None, model: str | None, options: RayOptions):
        from taleloom.scale.deployments import APP_PREFIX, app_name

        self.role, self.address, self.options = role, location, options
        self.app = app_name(role, model or APP_PREFIX)
        self._handle: Any = None
        self._about: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self.retried = 0  # calls sent again after a replica died (shown by `describe`)

    @property
    def model_id(self) -> str:
        return f"ray:{self.app}@{self.address or 'auto'}"

    def handle(self) -> Any:
        with self._lock:
            if self._handle is None:
                from ray import serve

                from taleloom.scale.cluster import connect

                connect(self.address)
                try:
                    self._handle = serve.get_deployment_handle("ModelServer", self.app)
                except Exception as e:  # Serve raises plain errors (KeyError, RayServeException) for a missing app
                    raise ModelNotFoundError(f"the Ray cluster has no running app {self.app!r} ({e})",
                                             f"deploy it: taleloom ray up {self.role}=SPEC") from None
            return self._handle

    def call_many(self, send: Callable[[Any, Any], Any], items: list[Any]) -> list[Any]:
        """`send(handle, item)` for every item at once (one request each); the results in order. Requests whose
        replica died are sent again, `retries` times, with a growing wait between rounds."""
        import ray.exceptions as rex
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

        lost = (rex.RayActorError, rex.ActorUnavailableError, rex.ObjectLostError, BackPressureError,
                DeploymentUnavailableError)
        handle = self.handle()
        results: list[Any] = [None] * len(items)
        todo = list(range(len(items)))
        for attempt in range(self.options.retries + 1):
            pending = [(i, send(handle, items[i])) for i in todo]
            todo = []
            for i, response in pending:
                try:
                    results[i] = response.result()
                except Exception as e:
                    cause = getattr(e, "cause", None) if isinstance(e, rex.RayTaskError) else None
                    if not isinstance(e, lost) and not isinstance(cause, lost):
                        if isinstance(cause, TaleloomError | ValueError | NotImplementedError):
                            raise cause from None  # the backend itself failed: its own error, as if local
                        if isinstance(e, rex.RayError):
                            raise BackendError(f"the {self.role} on Ray ({self.app}) failed: "
                                               f"{type(e).__name__}: {str(e).splitlines()[0][:300]}",
                                               "see the replica's log in the Ray session folder "
                                               "(/tmp/ray/session_latest/logs/serve/)") from None
                        log.warning("a %s call on Ray failed: %r", self.role, e)
                        raise
                    if attempt == self.options.retries:
                        raise BackendError(f"the {self.role} on Ray ({self.app}) lost its replica {attempt + 1} times "
                                           f"({type(e).__name__})", "check the cluster: taleloom ray status") from None
                    log.warning("a %s call lost its Ray replica (%s); sending it again", self.role, type(e).__name__)
                    todo.append(i)
            if not todo:
                return results
            self.retried += len(todo)
            time.sleep(self.options.backoff * 2**attempt)
        return results  # pragma: no cover

    def about(self) -> dict[str, Any]:
        """What a replica says of itself (model id, max_batch...), asked once."""
        if self._about is None:
            self._about = self.call_many(lambda h, _: h.describe.remote(), [None])[0]
        return self._about

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.call_many(lambda h, _: h.call.remote(method, *args, **kwargs), [None])[0]


class _OnRay:
    Options = RayOptions

    def __init__(self, location: str | None = None, model: str | None = None, **options: Any):
        self.ray = RayRole(self.role, location, model, self.Options(**options))  # type: ignore[attr-defined]

    @property
    def model_id(self) -> str:
        return self.ray.model_id

    def ready(self) -> tuple[bool, str]:
        try:
            about = self.ray.handle().describe.remote().result(timeout_s=10)
        except Exception as e:  # ready() reports, it does not raise
            return False, f"{self.ray.app}: {e}"
        return bool(about["ready"][0]), f"{self.ray.app} on Ray: {about['model_id']}"


class RayIllustrator(_OnRay, Illustrator):
    name = "ray"
    max_batch = 64  # the replicas batch; a larger list only means more requests in flight at once

    def generate(self, requests: list[ImageRequest]) -> list[Image.Image]:
        """One request per `max_batch` pictures (the replicas' limit), so a book's pages share a call."""
        n = self.ray.about()["max_batch"]
        parts = [requests[i:i + n] for i in range(0, len(requests), n)]
        return [im for part in self.ray.call_many(lambda h, p: h.generate.remote(p), parts) for im in part]

    def img2img(self, request: ImageRequest, image: Image.Image, strength: float = 0.6) -> Image.Image:
        return self.ray.call("img2img", request, image, strength)

    def inpaint(self, request: ImageRequest, image: Image.Image, mask: Image.Image) -> Image.Image:
        return self.ray.call("inpaint", request, image, mask)


class RayUpscaler(_OnRay, Upscaler):
    name = "ray"
    max_batch = 8

    def upscale(self, image: Image.Image, factor: int = 4, prompt: str = "", seed: int = 0) -> Image.Image:
        return self.ray.call("upscale", image, factor, prompt, seed)

    def upscale_batch(self, images: list[Image.Image], factor: int = 4, prompts: list[str] | None = None,
                      seeds: list[int] | None = None) -> list[Image.Image]:
        return self.ray.call("upscale_batch", images, factor, prompts, seeds)


class RayCaptioner(_OnRay, Captioner):
    name = "ray"

    def caption(self, image: Image.Image, hint: str | None = None) -> Caption:
        return self.ray.call("caption", image, hint)


class RayTextModel(_OnRay, TextModel):
    name = "ray"
    supports_schema = True

    def chat(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
             schema: dict[str, Any] | None = None) -> str:
        return self.ray.call("chat", messages, sampling, schema)

    def answer(self, messages: list[dict[str, str]], sampling: Sampling | None = None,
               schema: dict[str, Any] | None = None) -> Answer:
        return self.ray.call("answer", messages, sampling, schema)


class RayNarrator(_OnRay, Narrator):
    name = "ray"

    def speak(self, text: str, language: str) -> bytes:
        return self.ray.call("speak", text, language)

    def speak_words(self, text: str, language: str):
        return self.ray.call("speak_words", text, language)

    def languages(self) -> set[str]:
        return self.ray.call("languages")
