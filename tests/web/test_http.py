"""The HTTP/1.1 layer (firmware/web/http.py): ``read_request`` over a real loopback connection
(what it parses, and the 4xx it raises for malformed, oversized, chunked or late requests,
None when the client goes away), ``Request`` helpers (keep-alive, query, JSON body), response
encoding, JSON with NaN, and the error body every failure uses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from firmware.web.http import (
    MAX_HEADERS,
    HttpError,
    Limits,
    Request,
    Response,
    dumps,
    error_response,
    is_small_decimal,
    json_response,
    read_request,
)

GENEROUS = Limits(max_head_bytes=4096, max_body_bytes=64, request_timeout_s=30.0,
                  idle_timeout_s=30.0)

Client = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def serve_one(client: Client, limits: Limits = GENEROUS, *, first: bool = True) -> Any:
    """Run ``read_request`` on the server side of one real loopback connection while
    ``client`` talks; its result, or the HttpError it raised."""

    async def main() -> Any:
        outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                outcome.set_result(await read_request(reader, "127.0.0.1", limits,
                                                      first=first))
            except HttpError as exc:
                outcome.set_result(exc)
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0,
                                            limit=limits.max_head_bytes)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                await client(reader, writer)
                return await asyncio.wait_for(outcome, 60)
            finally:
                writer.close()

    return asyncio.run(main())


def sends(data: bytes, *, then_close: bool = False) -> Client:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        if then_close:
            writer.close()

    return client


def error_of(data: bytes, limits: Limits = GENEROUS) -> HttpError:
    outcome = serve_one(sends(data), limits)
    assert isinstance(outcome, HttpError), outcome
    return outcome


def test_a_request_is_parsed() -> None:
    request = serve_one(sends(b"GET /api/v1/trend%20x?node=a&n=1&n=2&empty= HTTP/1.1\r\n"
                              b"Host: 127.0.0.1\r\nX-Thing:  spaced value \r\n\r\n"))
    assert isinstance(request, Request)
    assert (request.method, request.target, request.path, request.version) == (
        "GET", "/api/v1/trend%20x?node=a&n=1&n=2&empty=", "/api/v1/trend x", "HTTP/1.1")
    assert request.query == {"node": ["a"], "n": ["1", "2"]}
    assert request.query_value("n") == "2" and request.query_value("nope") is None
    assert request.headers == {"host": "127.0.0.1", "x-thing": "spaced value"}
    assert (request.body, request.peer, request.params) == (b"", "127.0.0.1", {})


def test_a_body_is_read_by_its_content_length() -> None:
    request = serve_one(sends(b'POST /p HTTP/1.1\r\nContent-Length: 11\r\n'
                              b'Content-Type: application/json\r\n\r\n{"a": [1]}\nGET / HTTP'))
    assert request.body == b'{"a": [1]}\n'  # the next request's bytes stay unread
    assert request.json() == {"a": [1]}


@pytest.mark.parametrize(("version", "connection", "keep"), [
    ("HTTP/1.1", None, True), ("HTTP/1.1", "close", False), ("HTTP/1.1", "Close", False),
    ("HTTP/1.0", None, False), ("HTTP/1.0", "Keep-Alive", True),
])
def test_keep_alive(version: str, connection: str | None, keep: bool) -> None:
    headers = {} if connection is None else {"connection": connection}
    assert Request("GET", "/", "/", {}, version, headers, b"", "p").keep_alive is keep


@pytest.mark.parametrize(("head", "status", "code", "message"), [
    (b"GET /\r\n\r\n", 400, "bad_request", "malformed request line"),
    (b"GET / HTTP/2\r\n\r\n", 400, "bad_request", "malformed request line"),
    (b"GET  / HTTP/1.1\r\n\r\n", 400, "bad_request", "malformed request line"),
    (b"get / HTTP/1.1\r\n\r\n", 400, "bad_request", "malformed method 'get'"),
    (b"G3T / HTTP/1.1\r\n\r\n", 400, "bad_request", "malformed method 'G3T'"),
    (b"GET http://x/ HTTP/1.1\r\n\r\n", 400, "bad_request",
     "the request target must be an absolute path"),
    (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400, "bad_request", "malformed header line"),
    (b"GET / HTTP/1.1\r\n: empty name\r\n\r\n", 400, "bad_request", "malformed header line"),
    (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "bad_request", "malformed header line"),
    (b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
     + b"\r\n", 431, "too_many_headers", f"more than {MAX_HEADERS} headers"),
    (b"GET /?" + b"&".join(b"q%d=1" % i for i in range(40)) + b" HTTP/1.1\r\n\r\n", 400,
     "bad_request", "malformed request target: "),
    (b"GET //[x HTTP/1.1\r\n\r\n", 400, "bad_request", "malformed request target: "),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501, "chunked_not_supported",
     "chunked request bodies are not supported; send Content-Length"),
    (b"POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n", 413, "body_too_large",
     "request bodies are limited to 64 bytes, this one is 65"),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 5000 + b"\r\n\r\n", 431, "head_too_large",
     "request line and headers exceed 4096 bytes"),
])
def test_malformed_or_oversized_requests(head: bytes, status: int, code: str,
                                         message: str) -> None:
    error = error_of(head)
    assert (error.status, error.code) == (status, code)
    assert error.message.startswith(message), error.message


@pytest.mark.parametrize("length", ["-1", "1e3", "0x10", "²", " ", "1" * 13, "12 3", "+5"])
def test_an_invalid_content_length(length: str) -> None:
    error = error_of(f"POST / HTTP/1.1\r\nContent-Length: {length}\r\n\r\n".encode())
    assert (error.status, error.code) == (400, "bad_request")
    as_read = length.encode().decode("latin-1").strip()  # a head is read as latin-1
    assert error.message == f"invalid Content-Length {as_read[:20]!r}"


def test_a_zero_content_length_is_an_empty_body() -> None:
    request = serve_one(sends(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"))
    assert request.body == b"" and request.json() == {}


def test_a_client_that_goes_away_is_no_request() -> None:
    assert serve_one(sends(b"", then_close=True)) is None
    assert serve_one(sends(b"GET / HTTP/1.1\r\nHost: x\r\n", then_close=True)) is None
    assert serve_one(sends(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}",
                           then_close=True)) is None


def test_a_first_request_that_does_not_arrive_in_time() -> None:
    quick = Limits(max_head_bytes=4096, request_timeout_s=0.3)
    silent = error_of(b"", quick)
    assert (silent.status, silent.code, silent.message) == (408, "request_timeout",
                                                            "no request arrived in time")
    # the whole head (and body) counts from the connection on, however slowly it trickles
    for partial in (b"GET / HTTP/1.1\r\nHost: x\r\n",
                    b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}"):
        error = error_of(partial, Limits(max_body_bytes=64, request_timeout_s=0.3))
        assert (error.status, error.code) == (408, "request_timeout")


def test_a_later_request_may_idle_then_has_the_request_timeout() -> None:
    idle = Limits(request_timeout_s=30.0, idle_timeout_s=0.3)
    assert serve_one(sends(b""), idle, first=False) is None  # idled out: no answer owed
    # the first byte may take the idle time; from it on, the rest has request_timeout_s
    late = Limits(request_timeout_s=0.3, idle_timeout_s=30.0)
    error = serve_one(sends(b"GET / HTTP/1.1\r\n"), late, first=False)
    assert isinstance(error, HttpError)
    assert (error.status, error.code, error.message) == (
        408, "request_timeout", "the request did not arrive within 0.3 s")


def body_request(body: bytes, content_type: str | None = "application/json") -> Request:
    headers = {} if content_type is None else {"content-type": content_type}
    return Request("POST", "/", "/", {}, "HTTP/1.1", headers, body, "p")


def test_request_json() -> None:
    assert body_request(b"  \n").json() == {}
    assert body_request(b'{"seconds": 0.5}', None).json() == {"seconds": 0.5}
    assert body_request(b"[1]", "Application/JSON; charset=utf-8").json() == [1]
    with pytest.raises(HttpError) as unsupported:
        body_request(b"a=1", "text/plain").json()
    assert (unsupported.value.status, unsupported.value.code) == (415, "unsupported_media_type")
    assert unsupported.value.message == "the body must be application/json, not 'text/plain'"
    for bad in (b"{", b"\xff\xfe", b"{'a': 1}"):
        with pytest.raises(HttpError) as invalid:
            body_request(bad).json()
        assert (invalid.value.status, invalid.value.code) == (400, "bad_json")
        assert invalid.value.message.startswith("the body is not valid JSON: ")


def test_response_encoding() -> None:
    response = Response(200, b'{"a":1}', headers={"ETag": '"x"'})
    head, _, body = response.encode(keep_alive=True).partition(b"\r\n\r\n")
    assert head.decode("latin-1").split("\r\n") == [
        "HTTP/1.1 200 OK", "Connection: keep-alive", "X-Content-Type-Options: nosniff",
        "Referrer-Policy: no-referrer", "Content-Length: 7", "Content-Type: application/json",
        'ETag: "x"']
    assert body == b'{"a":1}'
    head_only = response.encode(keep_alive=False, head_only=True)
    assert head_only.endswith(b"\r\n\r\n") and b"Connection: close" in head_only
    assert b"Content-Length: 7" in head_only and not head_only.endswith(b'{"a":1}')


@pytest.mark.parametrize("status", [204, 304])
def test_no_length_for_answers_without_body(status: int) -> None:
    encoded = Response(status, b"", "text/html").encode(keep_alive=True)
    names = [line.split(b":")[0] for line in encoded.split(b"\r\n")[1:] if line]
    assert names == [b"Connection", b"X-Content-Type-Options", b"Referrer-Policy"]
    assert encoded.endswith(b"\r\n\r\n")


def test_an_unlisted_status_still_has_a_reason() -> None:
    assert Response(299).encode(keep_alive=True).startswith(b"HTTP/1.1 299 Status\r\n")


def test_json_with_nan_and_infinity_is_valid_json() -> None:
    assert dumps({"a": 1.5, "b": [float("nan"), float("inf")], "c": "x"}) == \
        '{"a":1.5,"b":[null,null],"c":"x"}'
    response = json_response(201, {"v": float("-inf")}, {"Location": "/x"})
    assert (response.status, response.content_type) == (201, "application/json")
    assert json.loads(response.body) == {"v": None}
    assert response.headers == {"Cache-Control": "no-store", "Location": "/x"}


def test_every_error_has_the_same_body() -> None:
    error = HttpError(401, "unauthorized", "send the token", {"WWW-Authenticate": "Bearer"})
    assert str(error) == "send the token"
    response = error_response(error)
    assert response.status == 401
    assert json.loads(response.body) == {"error": {"status": 401, "code": "unauthorized",
                                                   "message": "send the token"}}
    assert response.headers == {"Cache-Control": "no-store", "WWW-Authenticate": "Bearer"}
    assert HttpError(404, "not_found", "x").headers == {}


@pytest.mark.parametrize(("text", "ok"), [
    ("0", True), ("123456789012", True), ("1234567890123", False), ("", False), ("-1", False),
    ("1.0", False), ("²", False), ("١٢", False), (" 1", False),
])
def test_is_small_decimal(text: str, ok: bool) -> None:
    assert is_small_decimal(text) is ok
    assert is_small_decimal("12345", digits=4) is False
