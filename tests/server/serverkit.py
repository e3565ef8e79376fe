"""Helpers for the service tests, which run against a real `taleloom serve` (uvicorn) on loopback, started as a subprocess
with a temporary data folder and the fast test backends of testbackends.py (loaded through the
TALELOOM_PLUGINS hook)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from PIL import Image

HERE = Path(__file__).parent
TEST_BACKENDS = {f"TALELOOM_{role.upper()}": "test" for role in
                 ("captioner", "llm", "illustrator", "upscaler", "narrator")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def taleloom_cmd() -> list[str]:
    script = Path(sys.executable).parent / "taleloom"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from taleloom.cli import main; main()"]


class Server:
    """One `taleloom serve` process. `env` adds or overrides TALELOOM_* settings; `test_backends=False`
    leaves the product's configured backends in place."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, port: int | None = None,
                 test_backends: bool = True, args: tuple[str, ...] = ()):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        fast = {**TEST_BACKENDS, "TALELOOM_PLUGINS": "testbackends:register"} if test_backends else {}
        self.env = {**os.environ, **fast, "TALELOOM_DATA_DIR": str(self.data_dir),
                    "TALELOOM_CONFIG": str(self.data_dir / "none.toml"),
                    "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
                    "TALELOOM_WARM": "0", **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log = self.data_dir / f"server-{self.port}.log"
        self.args = args  # more `taleloom serve` options, e.g. ("--workers", "0") for an API process

    def start(self, timeout: float = 60.0) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(taleloom_cmd() + ["serve", "--port", str(self.port), "--log-level", "warning",
                                                          *self.args],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def token(self, name: str | None = None) -> str:
        """A bearer token made through the store the server uses (the same thing `taleloom token create` does)."""
        from taleloom.server.store import Store, database_url

        store = Store(database_url(self.env.get("TALELOOM_DATABASE_URL"), self.data_dir))
        try:
            return store.create_token(name)[0]
        finally:
            store.close()

    def client(self, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


class Worker(Server):
    """One `taleloom worker` process on the same store and data folder (PostgreSQL only)."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, name: str = "worker"):
        super().__init__(data_dir, env)
        self.log = self.data_dir / f"{name}-{self.port}.log"

    def start(self, timeout: float = 60.0) -> Worker:
        """Returns once the worker says it is ready (it has started its book workers)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(taleloom_cmd() + ["worker", "--log-level", "info", "--stop-timeout", "5"],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            if b"taleloom worker pid" in self.log.read_bytes():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker did not start in {timeout} s:\n{self.log.read_text()[-3000:]}")


class AppServer:
    """The same service as `Server`, in this process: `create_app` with the same settings, its lifespan
    (store, workers, events) run once, requests through FastAPI's TestClient — no Python start-up, no
    uvicorn, no sockets. For route tests that need no real process (a kill -9, a browser, PostgreSQL or a
    socket-level client keep `Server`). Its `env` stays in os.environ while it runs: some settings are
    read at call time (TALELOOM_TEST_DELAY)."""

    url = "http://testserver"

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, test_backends: bool = True):
        self.data_dir = Path(data_dir)
        fast = {**TEST_BACKENDS, "TALELOOM_PLUGINS": "testbackends:register"} if test_backends else {}
        self.env = {**fast, "TALELOOM_DATA_DIR": str(self.data_dir), "TALELOOM_CONFIG": str(self.data_dir / "none.toml"),
                    "TALELOOM_WARM": "0", "TALELOOM_BASE_URL": self.url, **(env or {})}
        self.log = self.data_dir / "server.log"
        self._saved: dict[str, str | None] = {}
        self._main = None

    def start(self) -> AppServer:
        import logging

        from fastapi.testclient import TestClient

        from taleloom.config import get_settings
        from taleloom.server.app import create_app

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        self._log_handler = logging.FileHandler(self.log)  # what `taleloom serve` would print (request ids)
        logging.getLogger("taleloom").addHandler(self._log_handler)
        self.app = create_app(get_settings())
        self._main = TestClient(self.app, base_url=self.url, raise_server_exceptions=False).__enter__()
        return self

    def stop(self) -> None:
        import logging

        if self._main is not None:
            self._main.__exit__(None, None, None)
            self._main = None
            logging.getLogger("taleloom").removeHandler(self._log_handler)
            self._log_handler.close()
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def token(self, name: str | None = None) -> str:
        return self.app.state.store.create_token(name)[0]

    def client(self, token: str | None = None, timeout: float = 30.0):
        """A client (httpx API) whose requests run on the app's own event loop, as its lifespan did."""
        from fastapi.testclient import TestClient

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = TestClient(self.app, base_url=self.url, headers=headers, raise_server_exceptions=False)
        client.portal = self._main.portal  # one loop for every client (events, the hub's subscriptions)
        return client


def any_server(data_dir: Path, env: dict[str, str] | None = None, real: bool = False) -> Server | AppServer:
    """An `AppServer`, or a real `Server` when `real` or when TALELOOM_TEST_REAL_SERVER=1 (to run the
    in-process tests against a real process once in a while, or to compare their times)."""
    real = real or os.environ.get("TALELOOM_TEST_REAL_SERVER") == "1"
    return (Server if real else AppServer)(data_dir, env=env)


def error_body(r: httpx.Response) -> dict:
    """An error answer as {error, message, hint}: the book API's own shape, or OpenAI's
    {"error": {message, type, param, code, hint}} that the OpenAI routes answer in (checked here)."""
    body = r.json()
    if isinstance(body.get("error"), dict):
        e = body["error"]
        assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(e), body
        return {"error": e["code"], "message": e["message"], "hint": e["hint"]}
    return body


def photo_bytes(size: tuple[int, int] = (320, 240), colour=(200, 120, 40), fmt: str = "JPEG") -> bytes:
    img = Image.new("RGB", size, colour)
    for x in range(0, size[0], 40):  # a little structure, so it is not one flat colour
        img.paste((40, 90, 200), (x, 0, x + 10, size[1]))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def make_book(client: httpx.Client, pages: int = 2, photo: bytes | None = None, **fields) -> dict:
    files = {"photo": ("photo.jpg", photo if photo is not None else photo_bytes(), "image/jpeg")}
    r = client.post("/v1/books", data={"pages": str(pages), **{k: str(v) for k, v in fields.items()}}, files=files)
    assert r.status_code == 202, r.text
    return r.json()


def wait_status(client: httpx.Client, book_id: str, want=("done", "failed"), timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/v1/books/{book_id}").json()
        if body["status"] in want:
            return body
        time.sleep(0.1)
    raise AssertionError(f"book {book_id} still {body['status']} after {timeout} s: {json.dumps(body)[:800]}")


def iter_events(client: httpx.Client, book_id: str, timeout: float = 60.0) -> Iterator[tuple[str, dict]]:
    """Follow the book's SSE stream, yielding (event, data) pairs as they arrive, until it closes."""
    with client.stream("GET", f"/v1/books/{book_id}/events", timeout=timeout) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                yield kind, json.loads(line[6:])


def read_events(client: httpx.Client, book_id: str, timeout: float = 60.0) -> list[tuple[str, dict]]:
    """Follow the SSE stream until it closes; returns (event, data) pairs."""
    return list(iter_events(client, book_id, timeout))
