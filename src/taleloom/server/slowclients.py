"""Time limits on slow clients, where uvicorn has none.

uvicorn closes a connection that sits idle *between* requests (`timeout_keep_alive`), but one that
sends half a request line, half its headers, or half its body is kept open for ever: a thousand such
connections (slowloris) hold a thousand sockets and buffers. `timed_h11(header_s, body_s)` is
uvicorn's h11 protocol with two deadlines per request: the headers must be complete within
`header_s` of the request's first byte (or of the connection's opening), the body within `body_s`
of the headers. A late client gets a 408 and the connection is closed; the route reading its body
sees the client leave.

Passed to uvicorn as `http=timed_h11(...)` by `taleloom serve` (settings `header_timeout` and
`body_timeout`).
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.h11_impl import H11Protocol


def _408(message: str) -> bytes:
    body = json.dumps({"error": "RequestTimeout", "message": message,
                       "hint": "send the whole request without pausing; check the network"}).encode()
    head = (f"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode()
    return head + body


class TimedH11Protocol(H11Protocol):
    """H11Protocol plus a read deadline for each request's headers and body (class attributes)."""

    header_timeout = 10.0
    body_timeout = 120.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._read_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm(self.header_timeout, None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._read_timer is None and self._between_requests():
            self._arm(self.header_timeout, None)  # first bytes of the next request on a kept-alive connection
        before = self.cycle
        super().data_received(data)
        self._follow(before)

    def on_response_complete(self) -> None:
        before = self.cycle
        super().on_response_complete()  # may start a pipelined request
        self._follow(before)

    # ------------------------------------------------------------------------------------------
    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _follow(self, before) -> None:
        """Move the deadline along: headers done → body deadline; body done → none."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return
        if cycle is not before:  # a request's headers just completed
            if cycle.more_body:
                self._arm(self.body_timeout, cycle)
            else:
                self._disarm()
        elif not cycle.more_body and self._read_timer is not None:
            self._disarm()  # its body is complete

    def _arm(self, seconds: float, cycle) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._expired, cycle)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _expired(self, cycle) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if cycle is None:
            if not self._between_requests():
                return  # the headers came in time; the body has its own deadline
            what = f"the request's headers did not arrive within {self.header_timeout:g} s"
        else:
            if cycle is not self.cycle or not cycle.more_body:
                return
            what = f"the request's body did not arrive within {self.body_timeout:g} s"
        if cycle is None or not cycle.response_started:  # answer, unless the route already did
            self.transport.write(_408(what))
        self.transport.close()


def timed_h11(header_s: float, body_s: float) -> type[TimedH11Protocol]:
    """The protocol class for uvicorn's `http=` with these deadlines."""
    return type("TimedH11", (TimedH11Protocol,), {"header_timeout": header_s, "body_timeout": body_s})
