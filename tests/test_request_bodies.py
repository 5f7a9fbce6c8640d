"""No route takes a request body, so none is read: a request announcing one
is answered 413 at once and its connection closed (issue 19, point 5: a POST
announcing 10**9 bytes, sent a byte every 5 s, held its connection for ever,
and about 1,010 of them used up a process's file descriptors)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import trio

from conftest import RunningServer
from rawhttp import request

#: Seconds the server may take to answer and close. A bound, not a figure:
#: a server that waited for the body would hold the connection for ever.
BOUND = 10


async def exchange(server: RunningServer, head: bytes) -> bytes:
    """Send ``head`` (and not a byte more), then read until the server closes."""
    parts = urlsplit(server.base_url)
    stream = await trio.open_tcp_stream(parts.hostname or "127.0.0.1", parts.port or 80)
    answer = b""
    async with stream:
        await stream.send_all(head)
        with trio.fail_after(BOUND):
            try:
                while chunk := await stream.receive_some(65536):
                    answer += chunk
            except trio.BrokenResourceError:
                pass  # reset after the answer: closed as well
    return answer


def status_and_headers(answer: bytes) -> tuple[int, dict[str, str]]:
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1")
    status_line, *lines = head.split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines)}
    return int(status_line.split()[1]), headers


ANNOUNCED = {
    "a gigabyte, one byte sent": b"Content-Length: 1000000000\r\n\r\nx",
    "a chunked body, nothing sent": b"Transfer-Encoding: chunked\r\n\r\n",
    "a small body, half sent": b"Content-Length: 10\r\n\r\nhello",
}


@pytest.mark.parametrize("body", ANNOUNCED.values(), ids=ANNOUNCED.keys())
@pytest.mark.parametrize("method_path", [b"POST /healthz", b"PUT /", b"POST /ws", b"GET /"])
async def test_a_request_announcing_a_body_is_refused_and_closed_at_once(
    server: RunningServer, method_path: bytes, body: bytes
) -> None:
    head = method_path + b" HTTP/1.1\r\nHost: %s\r\n" % urlsplit(server.base_url).netloc.encode()
    answer = await exchange(server, head + body)
    status, headers = status_and_headers(answer)
    assert status == 413
    assert headers["connection"] == "close"
    assert headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in headers


async def test_a_request_saying_its_body_is_empty_is_served(server: RunningServer) -> None:
    status, _, body = await request(server, "/healthz", {"Content-Length": "0"})
    assert status == 200
    assert b'"ok"' in body
