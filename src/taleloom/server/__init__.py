"""The HTTP service: many people make books at once. `create_app(settings)` builds the FastAPI app;
`taleloom serve` runs it under uvicorn. Imported lazily so `taleloom token` stays light."""

from __future__ import annotations


def __getattr__(name: str):
    if name == "create_app":
        from taleloom.server.app import create_app

        return create_app
    raise AttributeError(name)
