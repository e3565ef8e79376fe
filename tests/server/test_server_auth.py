"""Auth: every route under /v1/books (taken from the live OpenAPI spec, so a new route is covered
without editing this test) refuses a missing token, a wrong token and another user's token."""

from __future__ import annotations

import pytest
from serverkit import make_book, wait_status

BODIES = {":rewrite": {"instruction": "shorter"}, ":extend": {"pages": 1}, ":redraw": {}}


@pytest.fixture(scope="module")
def setup(server):
    owner = server.client(server.token("owner"))
    book = make_book(owner, pages=1)
    wait_status(owner, book["id"])
    spec = server.client().get("/openapi.json").json()
    routes = [(method.upper(), path) for path, ops in spec["paths"].items()
              if path.startswith("/v1/books") for method in ops]
    return owner, book, routes


def _fill(path: str, book: dict) -> str:
    share_id = book["share_url"].rsplit("/", 1)[1]
    return path.replace("{book_id}", book["id"]).replace("{n}", "1").replace("{share_id}", share_id)


def _call(client, method: str, path: str):
    body = next((b for suffix, b in BODIES.items() if path.endswith(suffix)), None)
    if method == "POST" and path == "/v1/books":
        return client.post(path, data={"pages": "1"}, files={"photo": ("p.jpg", b"x", "image/jpeg")})
    return client.request(method, path, json=body)


def test_every_book_route_is_covered(setup):
    _, _, routes = setup
    paths = {p for _, p in routes}
    for expected in ("/v1/books", "/v1/books/{book_id}", "/v1/books/{book_id}/events", "/v1/books/{book_id}/book.pdf",
                     "/v1/books/{book_id}/pages/{n}.png", "/v1/books/{book_id}/audio/{n}.wav",
                     "/v1/books/{book_id}/pages/{n}:redraw", "/v1/books/{book_id}/pages/{n}:rewrite",
                     "/v1/books/{book_id}:extend", "/v1/books/{book_id}/shares/{share_id}"):
        assert expected in paths
    assert len(routes) >= 15


def test_no_token_and_bad_token_are_401(server, setup):
    _, book, routes = setup
    for client in (server.client(), server.client("tl_not-a-real-token")):
        for method, path in routes:
            r = _call(client, method, _fill(path, book))
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
            assert set(r.json()) == {"error", "message", "hint"}


def test_other_users_token_is_404_and_changes_nothing(server, setup):
    owner, book, routes = setup
    other = server.client(server.token("mallory"))
    for method, path in routes:
        if "{book_id}" not in path:
            continue
        r = _call(other, method, _fill(path, book))
        assert r.status_code == 404, (method, path, r.status_code, r.text)
        assert book["id"] in r.json()["message"]
    assert book["id"] not in [b["id"] for b in other.get("/v1/books").json()]
    after = owner.get(f"/v1/books/{book['id']}").json()
    assert after["status"] == "done" and len(after["pages"]) == 1
    assert [s["revoked"] for s in owner.get(f"/v1/books/{book['id']}/shares").json()] == [None]


def test_single_step_routes_need_a_token(server):
    anon = server.client()
    for path in ("/v1/images/generations", "/v1/images/edits", "/v1/chat/completions", "/v1/audio/speech",
                 "/v1/captions"):
        assert anon.post(path, json={}).status_code == 401, path


def test_revoked_token_is_refused(server):
    from taleloom.server.store import Store, database_url

    token = server.token("temp")
    client = server.client(token)
    assert client.get("/v1/books").status_code == 200
    store = Store(database_url(None, server.data_dir))
    assert store.revoke_token(token) == 1
    store.close()
    assert client.get("/v1/books").status_code == 401
