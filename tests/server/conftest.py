"""Service tests run against a real `taleloom serve` (uvicorn) on loopback: see serverkit.py."""

from __future__ import annotations

import pytest
from serverkit import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A fast server shared by a test module."""
    srv = Server(tmp_path_factory.mktemp("serve")).start()
    yield srv
    srv.stop()
