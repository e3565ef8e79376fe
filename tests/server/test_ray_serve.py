"""Models on Ray Serve, for real: `taleloom ray up` starts a Ray head on loopback with the illustrator as a
deployment of 2 replicas (and the upscaler of 1), a `taleloom serve` whose illustrator and upscaler are
`ray:` makes books on it, and one illustrator replica dies by SIGKILL while it draws (raytestbackends.py: the
replica that takes a marker file kills itself mid-call, so the kill lands mid-call every time): every book
still finishes with every page, and the pictures of a book share model calls (`@serve.batch`).

Slow (about 100 s: starting Ray is most of it), so out of the default suite; `make test-ray` runs it and CI
runs that (.ci/run)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from serverkit import HERE, Server, free_port, make_book, taleloom_cmd

pytest.importorskip("ray.serve", reason="Ray Serve is not installed: pip install 'taleloom[ray]' (make install adds it)")

from taleloom.scale import cluster  # noqa: E402

pytestmark = pytest.mark.slow
UNIT = "0.5"  # seconds a test-model unit sleeps in the replicas: a 4-page batch draws for 4 s


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    data = tmp_path_factory.mktemp("ray")
    env = {**os.environ, "TALELOOM_PLUGINS": "testbackends:register,raytestbackends:register",
           "TALELOOM_TEST_DELAY": UNIT, "TALELOOM_TEST_DIE_ONCE": str(data / "die-once"),
           "TALELOOM_DATA_DIR": str(data), "TALELOOM_CONFIG": str(data / "none.toml"),
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    up = subprocess.run(taleloom_cmd() + ["ray", "up", "illustrator=test-dies-once", "upscaler=test", "--replicas",
                                          "illustrator=2", "--port", str(free_port()), "--json"],
                        env=env, capture_output=True, text=True, timeout=300)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        address = json.loads(up.stdout.strip().splitlines()[-1])["address"]
        cluster.connect(address)
        yield address, data / "die-once"
    finally:
        import ray

        ray.shutdown()
        cluster.stop_head(data)


def replica_pids(handle, want: int) -> set[int]:
    """The pids of the deployment's replicas, asked until `want` different ones answered."""
    seen: set[int] = set()
    for _ in range(200):
        seen.add(handle.describe.remote().result(timeout_s=30)["pid"])
        if len(seen) >= want:
            return seen
    raise AssertionError(f"only {len(seen)} replica(s) answered")


def test_a_killed_replica_loses_no_page(ray_cluster, tmp_path):
    from ray import serve

    address, marker = ray_cluster
    illustrators = serve.get_deployment_handle("ModelServer", "taleloom-illustrator")
    pids = replica_pids(illustrators, 2)
    marker.write_text("")  # the next replica to draw dies in the middle of its call
    front = Server(tmp_path / "front", env={"TALELOOM_ILLUSTRATOR": f"ray:{address}",
                                           "TALELOOM_UPSCALER": f"ray:{address}", "TALELOOM_WORKERS": "2"}).start()
    try:
        with front.client(front.token()) as client:
            books = [make_book(client, pages=4)["id"] for _ in range(2)]
            done = [_wait(client, b) for b in books]
            for book in done:
                assert book["status"] == "done", json.dumps(book)[:800]
                assert all(p["image"] for p in book["pages"]) and len(book["pages"]) == 4
                for p in book["pages"]:
                    picture = client.get(p["image"])
                    assert picture.status_code == 200 and picture.content[:4] == b"\x89PNG"
    finally:
        front.stop()
    victim = int(marker.with_suffix(".taken").read_text())
    assert victim in pids
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)
    batches = [illustrators.describe.remote().result(timeout_s=60)["batches"] for _ in range(10)]
    assert any(int(size) > 1 for b in batches for size in b), batches  # pages shared model calls


def _wait(client, book_id: str, timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/v1/books/{book_id}").json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"book {book_id} not finished after {timeout} s: {json.dumps(body)[:800]}")


def test_errors_are_clear_without_a_cluster_or_app(ray_cluster):
    from taleloom.backends.registry import create
    from taleloom.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError) as e:
        create("narrator", f"ray:{ray_cluster[0]}").speak("hello", "en")  # no narrator was deployed
    assert "taleloom-narrator" in e.value.message and "taleloom ray up" in e.value.hint
