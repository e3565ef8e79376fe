"""Service tests run against a real `taleloom serve` (uvicorn) on loopback: see serverkit.py."""

from __future__ import annotations

import pytest
from serverkit import Server


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    """A fast server shared by a test module (a module's SERVER_ENV adds settings)."""
    srv = Server(tmp_path_factory.mktemp("serve"), env=getattr(request.module, "SERVER_ENV", None)).start()
    yield srv
    srv.stop()
