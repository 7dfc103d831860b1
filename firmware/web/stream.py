"""StreamHub: the live Server-Sent Events stream, fanned out to every client at once.

An event is serialised once and handed to each client's transport without waiting: a client
that does not read (a stalled phone, a hostile peer) only fills its own transport buffer, and
once that holds more than ``buffer_bytes`` it is dropped, so memory stays bounded and nobody
else, least of all the DSP thread, waits for it. New clients get the newest status at once
and, with ``Last-Event-ID``, the action events they missed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from firmware.web.http import dumps

log = logging.getLogger("pafw.web")

STREAM_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
               b"Cache-Control: no-store\r\nConnection: keep-alive\r\n"
               b"X-Accel-Buffering: no\r\nX-Content-Type-Options: nosniff\r\n\r\n"
               b"retry: 2000\n\n")
KEEPALIVE = b": keep-alive\n\n"


def sse_frame(event: str, payload: Any, event_id: int | None = None) -> bytes:
    """One SSE event: ``event:``, optional ``id:`` and the JSON payload on one data line."""
    data = dumps(payload)
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


class StreamClient:
    """One connected stream reader."""

    __slots__ = ("closed", "peer", "sent_bytes", "transport")

    def __init__(self, transport: asyncio.WriteTransport, peer: str) -> None:
        self.transport = transport
        self.peer = peer
        self.sent_bytes = 0
        self.closed = asyncio.Event()


class StreamHub:
    """Every stream client; ``broadcast`` writes to all, dropping the ones too far behind."""

    def __init__(self, *, max_streams: int, buffer_bytes: int) -> None:
        self.max_streams = max_streams
        self.buffer_bytes = buffer_bytes
        self.clients: set[StreamClient] = set()
        self.dropped_slow = 0
        self.events_sent = 0
        self.last_status: bytes | None = None
        self.last_results: bytes | None = None

    @property
    def full(self) -> bool:
        return len(self.clients) >= self.max_streams

    def add(self, transport: asyncio.WriteTransport, peer: str,
            backlog: list[bytes]) -> StreamClient:
        """Register a client whose response head is to be written now, with the newest
        status/results and ``backlog`` (missed action events) right after it."""
        client = StreamClient(transport, peer)
        self.clients.add(client)
        for frame in (STREAM_HEAD, self.last_status, self.last_results, *backlog):
            if frame:
                self._write(client, frame)
        return client

    def remove(self, client: StreamClient) -> None:
        self.clients.discard(client)
        client.closed.set()

    def broadcast(self, frame: bytes, *, kind: str | None = None) -> None:
        """Write one frame to every client (``kind`` status/results: also kept for new
        clients)."""
        if kind == "status":
            self.last_status = frame
        elif kind == "results":
            self.last_results = frame
        for client in list(self.clients):
            self._write(client, frame)
        self.events_sent += 1

    def _write(self, client: StreamClient, frame: bytes) -> None:
        transport = client.transport
        if transport.is_closing():
            self.remove(client)
            return
        if transport.get_write_buffer_size() + len(frame) > self.buffer_bytes:
            self.dropped_slow += 1
            log.info("dropping stream client %s: %d bytes unread", client.peer,
                     transport.get_write_buffer_size())
            transport.abort()
            self.remove(client)
            return
        transport.write(frame)
        client.sent_bytes += len(frame)

    def close_all(self) -> None:
        """Server stop: close every stream."""
        for client in list(self.clients):
            client.transport.close()
            self.remove(client)
