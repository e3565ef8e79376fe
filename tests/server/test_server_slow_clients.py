"""Slow clients (issue 10, row 9): many connections that send half their headers, or their headers and
half a body, are all answered 408 and closed after the settings' deadlines, while the server keeps
answering everyone else."""

from __future__ import annotations

import socket
import time

import pytest
from serverkit import Server

ENV = {"TALELOOM_HEADER_TIMEOUT": "1", "TALELOOM_BODY_TIMEOUT": "2"}
HALF = 150  # connections of each kind


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("slow"), env=ENV).start()
    yield srv
    srv.stop()


def closed(sock: socket.socket) -> bytes | None:
    """What the server sent before closing, or None while the connection is still open."""
    sock.setblocking(False)
    got = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got
            got += chunk
    except BlockingIOError:
        return None if not got else (got if got.endswith(b"}") else None)
    except ConnectionResetError:
        return got


def test_half_sent_requests_are_closed(server):
    token = server.token()
    socks = []
    for _ in range(HALF):  # headers that never end
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"GET /v1/books HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        socks.append(("headers", s))
    for _ in range(HALF):  # complete headers, a body that never ends
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(f"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{{\"prompt\": ".encode())
        socks.append(("body", s))
    with server.client(token) as client:  # everyone else is still served meanwhile
        assert client.get("/v1/books").status_code == 200
    deadline = time.monotonic() + 60
    answers: dict[int, bytes] = {}
    while len(answers) < len(socks) and time.monotonic() < deadline:
        for i, (_, s) in enumerate(socks):
            if i not in answers:
                got = closed(s)
                if got is not None:
                    answers[i] = got
        time.sleep(0.2)
    still_open = [kind for i, (kind, _) in enumerate(socks) if i not in answers]
    assert not still_open, f"{len(still_open)} slow connections still open: {still_open[:5]}"
    for i, (kind, s) in enumerate(socks):
        assert answers[i].startswith(b"HTTP/1.1 408"), (kind, answers[i][:200])
        assert (b"headers" if kind == "headers" else b"body") in answers[i]
        s.close()
    with server.client(token) as client:
        assert client.get("/healthz").status_code == 200


def test_slow_but_steady_request_is_not_cut(server):
    """A request whose parts arrive within the deadlines is served, even with pauses between them."""
    token = server.token()
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"GET /v1/books HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.3)
    s.sendall(f"Authorization: Bearer {token}\r\n\r\n".encode())
    s.settimeout(10)
    assert s.recv(65536).startswith(b"HTTP/1.1 200")
    s.close()


def test_answered_request_whose_body_never_ends_is_closed_without_a_second_answer(server):
    """A route may answer before the body is in (here: 413 from the announced length); the connection is
    still closed at the body deadline, and the client reads one answer, not a 408 after it."""
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"POST /v1/books HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
              b"Content-Length: 999999999\r\n\r\n--b\r\n")
    s.settimeout(30)
    got = b""
    while chunk := s.recv(65536):
        got += chunk
    s.close()
    assert got.startswith(b"HTTP/1.1 413") and got.count(b"HTTP/1.1 ") == 1, got[:300]
