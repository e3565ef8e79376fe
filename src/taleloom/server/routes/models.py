"""GET /v1/models and /v1/models/{id} in OpenAI's shape: one entry per backend role in use, with the
endpoints it serves, so tools that list models first (many UIs do) find something to pick.

The `model` field clients send on the other routes is not used to choose a backend: each role has
one configured backend (settings), and that backend answers."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from taleloom.backends import registry
from taleloom.server.deps import HTTPError, UserDep

router = APIRouter(tags=["single steps (OpenAI shapes)"])
STARTED = int(time.time())
# role -> the OpenAI-shaped endpoints its backend serves (the upscaler finishes pictures asked at a big size)
ENDPOINTS: dict[str, list[str]] = {
    "captioner": ["/v1/captions"],
    "llm": ["/v1/chat/completions"],
    "illustrator": ["/v1/images/generations", "/v1/images/edits"],
    "upscaler": ["/v1/images/generations", "/v1/images/edits"],
    "narrator": ["/v1/audio/speech"],
}
assert tuple(ENDPOINTS) == registry.ROLES  # one list of roles: the registry's


def model_id(role: str, spec: str) -> str:
    return f"{role}/{registry.Spec.parse(spec).name}"


def _entry(request: Request, role: str) -> dict[str, Any]:
    from taleloom.server.routes.speech import voices

    settings, backends = request.app.state.settings, request.app.state.backends
    spec = registry.Spec.parse(getattr(settings, role))
    described = {e.name: e.description for e in registry.available(role)}
    entry: dict[str, Any] = {"id": model_id(role, getattr(settings, role)), "object": "model", "created": STARTED,
                             "owned_by": "taleloom", "role": role, "backend": spec.name, "model": spec.model,
                             "description": described.get(spec.name, ""), "endpoints": ENDPOINTS[role],
                             "loaded": backends.get(role).loaded}
    if role == "narrator":
        try:
            entry["voices"] = voices(backends.narrator)
        except Exception as e:  # a narrator that cannot load: still listed, with why
            entry["voices"], entry["error"] = [], f"{type(e).__name__}: {e}"
    return entry


@router.get("/v1/models", summary="The backends in use, one per role, with the endpoints each serves")
def list_models(request: Request, user: UserDep):
    return {"object": "list", "data": [_entry(request, role) for role in registry.ROLES]}


@router.get("/v1/models/{model:path}", summary="One backend in use (ids as GET /v1/models lists them)")
def get_model(model: str, request: Request, user: UserDep):
    settings = request.app.state.settings
    for role in registry.ROLES:
        if model_id(role, getattr(settings, role)) == model:
            return _entry(request, role)
    known = [model_id(role, getattr(settings, role)) for role in registry.ROLES]
    raise HTTPError(404, "NotFound", f"model {model!r} is not served here", f"the models are {', '.join(known)}")
