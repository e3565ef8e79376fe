"""Service tests: the app in this process through FastAPI's TestClient by default, or a real `taleloom serve`
(uvicorn) on loopback where the test needs a process of its own: see serverkit.py."""

from __future__ import annotations

import pytest
from pg import Postgres, PostgresUnavailable
from serverkit import any_server


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    """A fast server shared by a test module (a module's SERVER_ENV adds settings). In this process unless
    the module sets REAL_SERVER = True (kill -9, a browser, an HTTP client library, a model process that
    must not take pytest down with it). TALELOOM_TEST_REAL_SERVER=1 runs every module against a real one."""
    srv = any_server(tmp_path_factory.mktemp("serve"), getattr(request.module, "SERVER_ENV", None),
                     real=getattr(request.module, "REAL_SERVER", False)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL cluster on loopback for a test module; the module is skipped without one."""
    try:
        pg = Postgres().start()
    except PostgresUnavailable as e:
        pytest.skip(f"no PostgreSQL server: {e}")
    yield pg
    pg.stop()
