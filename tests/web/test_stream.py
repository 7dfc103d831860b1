"""The live event stream's fan-out (firmware/web/stream.py), on real loopback connections: the
SSE framing, what a new client gets first (head, newest status and results, missed events),
broadcasts to every client, a client too far behind dropped without holding up the others,
closed clients removed, the stream limit and stopping every stream."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from firmware.web.stream import KEEPALIVE, STREAM_HEAD, StreamHub, sse_frame

GENEROUS_S = 30.0


def test_sse_frames() -> None:
    assert sse_frame("status", {"a": 1}) == b'event: status\ndata: {"a":1}\n\n'
    assert sse_frame("action", [1, "x"], event_id=42) == \
        b'id: 42\nevent: action\ndata: [1,"x"]\n\n'
    assert sse_frame("results", {"ppm": float("nan")}) == \
        b'event: results\ndata: {"ppm":null}\n\n'
    assert sse_frame("x", "two\nlines").count(b"\n") == 3  # the data stays on one line
    assert STREAM_HEAD.startswith(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
    assert STREAM_HEAD.endswith(b"\r\n\r\nretry: 2000\n\n")
    assert KEEPALIVE.startswith(b":")  # a comment line: ignored by EventSource


class Peer:
    """The client end of one loopback connection, and the server's transport to it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 transport: asyncio.WriteTransport) -> None:
        self.reader = reader
        self.writer = writer
        self.transport = transport

    async def read_exactly(self, count: int) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(count), GENEROUS_S)

    async def read_to_end(self) -> bytes:
        try:
            return await asyncio.wait_for(self.reader.read(), GENEROUS_S)
        except ConnectionResetError:
            return b"<reset>"


Scenario = Callable[[Callable[..., Awaitable[Peer]]], Awaitable[Any]]


def run(scenario: Scenario) -> Any:
    """Run ``scenario`` with a function that opens loopback connections (``small_buffers``:
    kernel buffers kept small, so a client that does not read backs up quickly)."""

    async def main() -> Any:
        accepted: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

        async def on_connect(reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
            await accepted.put(writer)

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        peers: list[Peer] = []

        async def connect(*, small_buffers: bool = False) -> Peer:
            sock = socket.socket()
            if small_buffers:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock)
            server_side = await asyncio.wait_for(accepted.get(), GENEROUS_S)
            if small_buffers:
                server_side.get_extra_info("socket").setsockopt(socket.SOL_SOCKET,
                                                                socket.SO_SNDBUF, 4096)
            transport = server_side.transport
            assert isinstance(transport, asyncio.WriteTransport)
            peer = Peer(reader, writer, transport)
            peers.append(peer)
            return peer

        async with server:
            try:
                return await scenario(connect)
            finally:
                for peer in peers:
                    peer.writer.close()
                    peer.transport.abort()

    return asyncio.run(main())


def test_a_new_client_gets_the_head_the_newest_status_and_results_and_its_backlog() -> None:
    async def scenario(connect: Callable[..., Awaitable[Peer]]) -> None:
        hub = StreamHub(max_streams=5, buffer_bytes=1 << 20)
        first = await connect()
        hub.add(first.transport, "first", [])
        assert await first.read_exactly(len(STREAM_HEAD)) == STREAM_HEAD  # nothing else yet
        status = sse_frame("status", {"n": 1})
        results = sse_frame("results", {"ppm": 2})
        hub.broadcast(status, kind="status")
        hub.broadcast(sse_frame("status", {"n": 2}), kind="status")
        hub.broadcast(results, kind="results")
        action = sse_frame("action", {"id": "a"}, event_id=7)
        hub.broadcast(action)  # not kept: a reconnecting client asks for it by id
        missed = sse_frame("action", {"id": "b"}, event_id=6)
        later = await connect()
        client = hub.add(later.transport, "later", [missed, b""])
        expected = STREAM_HEAD + sse_frame("status", {"n": 2}) + results + missed
        assert await later.read_exactly(len(expected)) == expected
        assert client.sent_bytes == len(expected) and client.peer == "later"
        assert hub.events_sent == 4 and len(hub.clients) == 2

    run(scenario)


def test_a_broadcast_reaches_every_client() -> None:
    async def scenario(connect: Callable[..., Awaitable[Peer]]) -> None:
        hub = StreamHub(max_streams=5, buffer_bytes=1 << 20)
        peers = [await connect() for _ in range(3)]
        clients = [hub.add(p.transport, f"p{i}", []) for i, p in enumerate(peers)]
        frames = [sse_frame("results", {"k": k}) for k in range(20)]
        for frame in frames:
            hub.broadcast(frame, kind="results")
        wanted = STREAM_HEAD + b"".join(frames)
        for peer, client in zip(peers, clients, strict=True):
            assert await peer.read_exactly(len(wanted)) == wanted
            assert client.sent_bytes == len(wanted)
        assert hub.events_sent == 20 and hub.last_results == frames[-1]

    run(scenario)


def test_a_client_too_far_behind_is_dropped_and_the_others_keep_streaming() -> None:
    async def scenario(connect: Callable[..., Awaitable[Peer]]) -> None:
        hub = StreamHub(max_streams=5, buffer_bytes=64 * 1024)
        stalled, reading = await connect(small_buffers=True), await connect()
        slow = hub.add(stalled.transport, "stalled", [])
        fast = hub.add(reading.transport, "reading", [])
        frame = sse_frame("results", {"pad": "x" * 16000})
        received = bytearray()

        async def read_all() -> None:
            while chunk := await reading.reader.read(65536):
                received.extend(chunk)

        reader_task = asyncio.create_task(read_all())
        sent = 0
        for _ in range(2000):  # the stalled client's buffers fill long before this
            hub.broadcast(frame)
            sent += 1
            await asyncio.sleep(0)  # let the reading client read, as the server's loop does
            if slow not in hub.clients:
                break
        assert slow not in hub.clients and slow.closed.is_set()
        assert hub.dropped_slow == 1
        assert fast in hub.clients and not fast.closed.is_set()
        for _ in range(5):
            hub.broadcast(frame)
            sent += 1
            await asyncio.sleep(0)
        wanted = len(STREAM_HEAD) + sent * len(frame)
        deadline = asyncio.get_running_loop().time() + GENEROUS_S
        while len(received) < wanted and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert bytes(received) == STREAM_HEAD + frame * sent
        assert fast.sent_bytes == wanted
        assert stalled.transport.is_closing()  # aborted: its buffered bytes are dropped too
        reader_task.cancel()

    run(scenario)


def test_a_closing_client_is_removed_at_the_next_write() -> None:
    async def scenario(connect: Callable[..., Awaitable[Peer]]) -> None:
        hub = StreamHub(max_streams=5, buffer_bytes=1 << 20)
        gone, staying = await connect(), await connect()
        gone_client = hub.add(gone.transport, "gone", [])
        hub.add(staying.transport, "staying", [])
        gone.transport.close()  # what the server does once it sees the peer leave
        hub.broadcast(sse_frame("status", {}), kind="status")
        assert gone_client not in hub.clients and gone_client.closed.is_set()
        assert len(hub.clients) == 1 and hub.dropped_slow == 0
        # a client whose transport is already closing when it is added is dropped at once
        late = await connect()
        late.transport.close()
        client = hub.add(late.transport, "late", [])
        assert client not in hub.clients and client.closed.is_set()

    run(scenario)


def test_the_stream_limit_remove_and_close_all() -> None:
    async def scenario(connect: Callable[..., Awaitable[Peer]]) -> None:
        hub = StreamHub(max_streams=2, buffer_bytes=1 << 20)
        assert not hub.full
        a, b = await connect(), await connect()
        client_a = hub.add(a.transport, "a", [])
        assert not hub.full
        hub.add(b.transport, "b", [])
        assert hub.full
        hub.remove(client_a)
        assert not hub.full and client_a.closed.is_set()
        hub.remove(client_a)  # twice is harmless
        hub.broadcast(sse_frame("status", {"x": 1}))
        hub.close_all()
        assert hub.clients == set()
        assert await b.read_to_end() == STREAM_HEAD + sse_frame("status", {"x": 1})
        assert await a.read_exactly(len(STREAM_HEAD)) == STREAM_HEAD  # removed: nothing more
        assert not a.transport.is_closing()  # remove leaves closing to the connection's owner

    run(scenario)
