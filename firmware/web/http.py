"""A small, strict HTTP/1.1 layer on asyncio streams: requests in, responses out.

Why not a framework: the appliance needs a handful of JSON routes and one event stream, and
it must hold up against hostile clients on a Pi with a DSP loop beside it. Every resource a
client can make the server hold is bounded here: the request head (``max_head_bytes``, read
within ``request_timeout_s`` in total, so a slowloris client is cut off however slowly it
trickles), the body (``max_body_bytes``, Content-Length only), idle keep-alive time, and the
time a response may take to drain. Malformed input gets a 4xx answer and a closed
connection, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from firmware.state import json_safe

REASONS = {
    200: "OK", 202: "Accepted", 204: "No Content", 304: "Not Modified", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 409: "Conflict", 411: "Length Required",
    413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable", 504: "Gateway Timeout",
}
MAX_HEADERS = 64
MAX_QUERY_FIELDS = 32


def is_small_decimal(text: str, digits: int = 12) -> bool:
    """ASCII digits only, at most ``digits`` of them (``str.isdigit`` also accepts "²", and
    ``int()`` refuses more than 4300 digits): safe to pass to ``int``."""
    return 0 < len(text) <= digits and text.isascii() and text.isdigit()


class HttpError(Exception):
    """Raised by parsing and handlers to answer with an error status and a JSON body."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass(slots=True)
class Request:
    """One parsed request; header names are lower-case."""

    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    version: str
    headers: dict[str, str]
    body: bytes
    peer: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"

    def query_value(self, name: str) -> str | None:
        """The last value of a query parameter, or None."""
        values = self.query.get(name)
        return values[-1] if values else None

    def json(self) -> Any:
        """The body parsed as JSON (an empty body is ``{}``); 415/400 on anything else."""
        if not self.body.strip():
            return {}
        content_type = self.headers.get("content-type", "application/json")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise HttpError(415, "unsupported_media_type",
                            f"the body must be application/json, not {content_type!r}")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, "bad_json", f"the body is not valid JSON: {exc}") from None


@dataclass(slots=True)
class Response:
    """A complete response (streams write their own head, see stream.py)."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self, *, keep_alive: bool, head_only: bool = False) -> bytes:
        """Status line, headers and body as bytes."""
        lines = [f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Status')}",
                 "Connection: " + ("keep-alive" if keep_alive else "close"),
                 "X-Content-Type-Options: nosniff",
                 "Referrer-Policy: no-referrer"]
        if self.status not in (204, 304):  # a 304 has no body and says no length
            lines.append(f"Content-Length: {len(self.body)}")
            lines.append(f"Content-Type: {self.content_type}")
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + self.body


def dumps(payload: Any) -> str:
    """Compact JSON; NaN and infinities become null (a script's get_status may hold them)."""
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(json_safe(payload), separators=(",", ":"), allow_nan=False)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response (NaN written as null)."""
    body = dumps(payload).encode()
    return Response(status, body, "application/json",
                    {"Cache-Control": "no-store", **(headers or {})})


def error_response(error: HttpError) -> Response:
    """The JSON error body every 4xx/5xx uses."""
    return json_response(error.status, {"error": {"status": error.status, "code": error.code,
                                                  "message": error.message}}, error.headers)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one connection may make the server hold or wait for."""

    max_head_bytes: int = 16384
    max_body_bytes: int = 16384
    request_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    write_timeout_s: float = 10.0


async def read_request(reader: asyncio.StreamReader, peer: str, limits: Limits,
                       *, first: bool) -> Request | None:
    """Read one request within the limits; None when the client closed (or went idle
    between keep-alive requests). Raises HttpError for anything malformed or too big.

    A connection's first request must arrive whole within ``request_timeout_s`` of the
    connection; a later one may wait ``idle_timeout_s`` for its first byte, then has
    ``request_timeout_s`` for the rest.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.request_timeout_s
    try:
        async with asyncio.timeout_at(deadline if first else
                                      loop.time() + limits.idle_timeout_s):
            first_byte = await reader.read(1)
    except TimeoutError:
        if first:
            raise HttpError(408, "request_timeout", "no request arrived in time") from None
        return None
    if not first_byte:
        return None
    if not first:
        deadline = loop.time() + limits.request_timeout_s
    try:
        async with asyncio.timeout_at(deadline):
            head = first_byte + await reader.readuntil(b"\r\n\r\n")
            request = _parse_head(head, peer)
            request.body = await _read_body(reader, request, limits)
            return request
    except TimeoutError:
        raise HttpError(408, "request_timeout",
                        f"the request did not arrive within {limits.request_timeout_s:g} s"
                        ) from None
    except asyncio.LimitOverrunError:
        raise HttpError(431, "head_too_large",
                        f"request line and headers exceed {limits.max_head_bytes} bytes"
                        ) from None
    except asyncio.IncompleteReadError:
        return None


def _parse_head(head: bytes, peer: str) -> Request:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise HttpError(400, "bad_request", "undecodable request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "bad_request", "malformed request line")
    method, target, version = parts
    if not method.isalpha() or not method.isupper():
        raise HttpError(400, "bad_request", f"malformed method {method[:16]!r}")
    if not target.startswith("/"):
        raise HttpError(400, "bad_request", "the request target must be an absolute path")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "bad_request", "malformed header line")
        headers[name.lower()] = value.strip()
        if len(headers) > MAX_HEADERS:
            raise HttpError(431, "too_many_headers", f"more than {MAX_HEADERS} headers")
    try:
        split = urlsplit(target)
        query = parse_qs(split.query, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError as exc:  # an odd target ("//[x") or too many query fields
        raise HttpError(400, "bad_request", f"malformed request target: {exc}") from None
    return Request(method=method, target=target, path=unquote(split.path), query=query,
                   version=version, headers=headers, body=b"", peer=peer)


async def _read_body(reader: asyncio.StreamReader, request: Request, limits: Limits) -> bytes:
    if "transfer-encoding" in request.headers:
        raise HttpError(501, "chunked_not_supported",
                        "chunked request bodies are not supported; send Content-Length")
    raw_length = request.headers.get("content-length")
    if raw_length is None:
        return b""
    if not is_small_decimal(raw_length):
        raise HttpError(400, "bad_request", f"invalid Content-Length {raw_length[:20]!r}")
    length = int(raw_length)
    if length > limits.max_body_bytes:
        raise HttpError(413, "body_too_large",
                        f"request bodies are limited to {limits.max_body_bytes} bytes, "
                        f"this one is {length}")
    return await reader.readexactly(length) if length else b""
