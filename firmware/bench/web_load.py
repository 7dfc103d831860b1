"""The load process of `pafw bench web`: stream readers, slowloris connections and a stalled
reader against the appliance's web server, in a fresh interpreter of its own.

It imports only the standard library and this module (no numpy, no numba, not the appliance),
so its CPU is the clients' own; `firmware.bench.web` starts it (``load_main``) and drives it
with JSON lines over its stdin and stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"
STREAM_PATH = "/api/v1/stream"
TRICKLE_S = 0.5  # one byte of request head per this long, per slowloris connection
SLOWLORIS_CONNECTIONS = 2
STALLED_READERS = 1
#: the stalled reader's receive buffer: 1 is raised to the kernel's minimum, so the data the
#: kernels hold for it (mostly the server's send buffer, ~64 kB) fills sooner
STALLED_RCVBUF = 1
READY_TIMEOUT_S = 30.0
QUIESCE_TIMEOUT_S = 10.0
DATA_MARK = b"\ndata: "  # one per SSE event (every event has an ``event:`` line first)


@dataclass
class _Slow:
    """Counters of the slowloris connections of one loaded round."""

    opened: int = 0
    cut: int = 0
    cut_after_s: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)


class _StreamReader(asyncio.Protocol):
    """One SSE client: sends the GET, then counts bytes and events as fast as they come."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.status: int | None = None
        self.events = 0
        self.bytes = 0
        self.tail = b""
        self.first_event = asyncio.get_running_loop().create_future()
        self.closing = False
        self.cut = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.bytes += len(data)
        if self.status is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            parts = self.head.split(b" ", 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            data, self.head = self.head[end + 4:], b""
            if self.status != 200:
                self._first(False)
                self.close()
                return
        chunk = self.tail + data
        found = chunk.count(DATA_MARK)
        self.tail = chunk[-(len(DATA_MARK) - 1):]
        if found:
            self.events += found
            self._first(True)

    def connection_lost(self, exc: Exception | None) -> None:
        self.cut = not self.closing
        self._first(False)

    def _first(self, ok: bool) -> None:
        if not self.first_event.done():
            self.first_event.set_result(ok)

    def close(self) -> None:
        """Disconnect (by us, not counted as a cut)."""
        self.closing = True
        if self.transport is not None:
            self.transport.close()


class _Slowloris(asyncio.Protocol):
    """Trickles a request head that never ends, one byte per ``TRICKLE_S``."""

    HEAD = b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.done = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.sent = 0
        self.status = ""
        self.started = time.monotonic()
        self.closing = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.started = time.monotonic()
        self._trickle()

    def _trickle(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        byte = self.HEAD[self.sent:self.sent + 1] or b"a"
        self.transport.write(byte)
        self.sent += 1
        self._timer = self.loop.call_later(TRICKLE_S, self._trickle)

    def data_received(self, data: bytes) -> None:
        if not self.status:
            parts = data.split(b" ", 2)
            self.status = parts[1].decode("latin-1") if len(parts) > 1 else "?"

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.done.done():
            self.done.set_result(time.monotonic() - self.started)

    def close(self) -> None:
        """Disconnect (by us)."""
        self.closing = True
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.abort()


class _Load:
    """The load process: connects and disconnects the clients on the parent's commands."""

    def __init__(self, port: int, clients: int) -> None:
        self.port = port
        self.clients = clients
        self.request = (f"GET {STREAM_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                        "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n").encode()
        self.readers: list[_StreamReader] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.slowloris = _Slow()
        self.stalled_opened = 0
        self.connect_errors: dict[str, int] = {}
        self.running = False
        #: (wall, CPU, (events, bytes)) when every client had its first event
        self._mark: tuple[float, float, tuple[int, int]] = (0.0, 0.0, (0, 0))

    async def run(self) -> None:
        """Serve the commands read from stdin, one a line, until ``quit`` or EOF (the parent
        is gone); each answer is one JSON line on stdout."""
        loop = asyncio.get_running_loop()
        _reply("hello", os.getpid())
        while True:
            command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if command == "connect":
                _reply("ready", await self.connect())
            elif command == "disconnect":
                _reply("round", await self.disconnect())
            else:
                await self.disconnect()
                return

    async def connect(self) -> dict[str, Any]:
        """Open every connection; return once every stream client has its first event."""
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        self.running = True
        self.slowloris, self.stalled_opened, self.connect_errors = _Slow(), 0, {}
        self.tasks = [asyncio.create_task(self._slowloris()) for _ in
                      range(SLOWLORIS_CONNECTIONS)]
        self.tasks += [asyncio.create_task(self._stalled()) for _ in range(STALLED_READERS)]
        self.readers = []
        results = await asyncio.gather(
            *(loop.create_connection(lambda: _StreamReader(self.request), HOST, self.port)
              for _ in range(self.clients)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                name = type(result).__name__
                self.connect_errors[name] = self.connect_errors.get(name, 0) + 1
            else:
                self.readers.append(result[1])
        firsts = [r.first_event for r in self.readers]
        if firsts:
            await asyncio.wait(firsts, timeout=READY_TIMEOUT_S)
        ready = sum(f.done() and f.result() for f in firsts)
        self._mark = (time.monotonic(), time.process_time(), self._totals())
        return {"ramp_s": time.monotonic() - start, "connected": len(self.readers),
                "ready": ready, "connect_errors": dict(self.connect_errors),
                "statuses": _count(str(r.status) for r in self.readers)}

    def _totals(self) -> tuple[int, int]:
        return sum(r.events for r in self.readers), sum(r.bytes for r in self.readers)

    async def disconnect(self) -> dict[str, Any]:
        """Close everything; the round's counters (events and bytes: since ``ready``)."""
        if not self.running:
            return {}
        wall, cpu, (events0, bytes0) = self._mark
        events, nbytes = self._totals()
        window = time.monotonic() - wall
        cpu_s = time.process_time() - cpu
        cut = sum(r.cut for r in self.readers)
        self.running = False
        for reader in self.readers:
            reader.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.sleep(0.05)  # let the transports close
        return {"window_s": window, "events": events - events0, "bytes": nbytes - bytes0,
                "readers": len(self.readers), "cut_by_server": cut,
                "cpu_percent": 100.0 * cpu_s / window if window > 0 else 0.0,
                "slowloris": vars(self.slowloris), "stalled_opened": self.stalled_opened}

    async def _slowloris(self) -> None:
        """One slowloris connection after another, each until the server cuts it."""
        loop = asyncio.get_running_loop()
        protocol: _Slowloris | None = None
        try:
            while self.running:
                _, protocol = await loop.create_connection(_Slowloris, HOST, self.port)
                self.slowloris.opened += 1
                lasted = await protocol.done
                if protocol.closing:
                    return
                self.slowloris.cut += 1
                self.slowloris.cut_after_s.append(lasted)
                status = protocol.status or "none"
                self.slowloris.statuses[status] = self.slowloris.statuses.get(status, 0) + 1
        finally:
            if protocol is not None:
                protocol.close()

    async def _stalled(self) -> None:
        """A stream client that sends its request and never reads. When the server drops
        it, its FIN waits behind the unsent data, so only the server can tell: the parent
        watches ``hub.dropped_slow``."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
            sock.setblocking(False)
            await loop.sock_connect(sock, (HOST, self.port))
            await loop.sock_sendall(sock, self.request)
            self.stalled_opened += 1
            await asyncio.Event().wait()  # until cancelled at the end of the round
        finally:
            sock.close()


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _reply(kind: str, payload: Any) -> None:
    sys.stdout.write(json.dumps([kind, payload]) + "\n")
    sys.stdout.flush()


def raise_nofile_limit() -> None:
    """Allow as many open files as the hard limit does (many clients, many sockets)."""
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def load_main() -> None:
    """Entry point of the load process: ``python -c ... PORT CLIENTS [CPU,...]``."""
    port, clients = int(sys.argv[1]), int(sys.argv[2])
    if len(sys.argv) > 3 and sys.argv[3]:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            os.sched_setaffinity(0, {int(c) for c in sys.argv[3].split(",")})
    raise_nofile_limit()
    asyncio.run(_Load(port, clients).run())
