"""Frames: msgpack round trips, JSON-like values only, size caps on both sides."""

from __future__ import annotations

import asyncio
import datetime
import socket
import struct
import subprocess
import sys

import msgpack
import pytest

from firmware.actions.python import protocol
from firmware.actions.python.protocol import (
    BlockingChannel,
    FrameTooLargeError,
    ProtocolError,
    check_json_like,
    describe_exit,
    jsonable,
    pack,
    read_message,
    unpack,
)

MESSAGES = [
    {"t": "init", "node_id": "n", "python_config": {"a": [1, 2.5, None, True, "é"]}},
    {"t": "call", "id": 7, "method": "on_trigger", "args": ["concentration", {"value": 1e3}]},
    {"t": "resp", "id": 3, "error": {"type": "PermissionError", "message": "no"}},
    {"t": "log", "level": "info", "message": "x" * 10_000, "stream": "stdout"},
]


@pytest.mark.parametrize("message", MESSAGES)
def test_pack_unpack_round_trip(message):
    frame = pack(message)
    (size,) = struct.unpack(">I", frame[:4])
    assert size == len(frame) - 4
    assert unpack(frame[4:]) == message


def test_tuples_travel_as_lists():
    assert unpack(pack({"t": "call", "args": (1, (2, 3))})[4:])["args"] == [1, [2, 3]]


@pytest.mark.parametrize(("value", "match"), [
    ({1, 2}, r"value\[0\]\['k'\] is a set"),
    (b"raw", r"is a bytes"),
    (object(), r"is a object"),
    ({1: "int key"}, r"key 1 of type int; keys must be str"),
])
def test_only_json_like_values(value, match):
    with pytest.raises(TypeError, match=match):
        check_json_like([{"k": value}] if isinstance(value, set) else value)
    with pytest.raises(ProtocolError, match="cannot send a 'result' message"):
        pack({"t": "result", "value": value})


def test_depth_is_bounded():
    deep: list = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(TypeError, match="nested deeper than 64"):
        check_json_like(deep)


def test_sender_refuses_oversized_frame_naming_size_and_cap():
    with pytest.raises(FrameTooLargeError, match=r"'result' message of 2,097,1\d\d bytes exceeds "
                                                 r"the 1,048,576-byte frame cap"):
        pack({"t": "result", "value": "x" * (2 << 20)})
    assert len(pack({"t": "result", "value": "x" * 1000}, max_frame_bytes=1100)) < 1100
    with pytest.raises(FrameTooLargeError, match="1,000-byte frame cap"):
        pack({"t": "result", "value": "x" * 1000}, max_frame_bytes=1000)


def test_receiver_rejects_garbage():
    with pytest.raises(ProtocolError, match="malformed frame"):
        unpack(b"\xc1")
    with pytest.raises(ProtocolError, match="expected a map with a 't' key"):
        unpack(msgpack.packb([1, 2]))
    with pytest.raises(ProtocolError, match="malformed frame"):  # strict_map_key
        unpack(msgpack.packb({"t": "x", "m": {1: 2}}))


def test_blocking_channel_round_trip_and_eof():
    a, b = socket.socketpair()
    left, right = BlockingChannel(a), BlockingChannel(b)
    for message in MESSAGES:
        left.send(message)
        assert right.recv() == message
    left.close()
    assert right.recv() is None
    right.close()


def test_blocking_receiver_refuses_oversized_header_before_reading():
    a, b = socket.socketpair()
    a.sendall(struct.pack(">I", 5_000_000))  # announce 5 MB, send nothing more
    with pytest.raises(FrameTooLargeError, match="incoming frame of 5,000,000 bytes exceeds "
                                                 "the 4,096-byte frame cap"):
        BlockingChannel(b, 4096).recv()
    a.close()
    b.close()


def test_blocking_receiver_reports_truncated_frame():
    a, b = socket.socketpair()
    a.sendall(pack({"t": "log", "message": "hello"})[:-2])
    a.close()
    with pytest.raises(ProtocolError, match="connection closed inside a frame"):
        BlockingChannel(b).recv()
    b.close()


def test_async_reader_round_trip_cap_and_eof():
    async def main():
        reader = asyncio.StreamReader()
        for message in MESSAGES:
            reader.feed_data(pack(message))
        for message in MESSAGES:
            assert await read_message(reader) == message
        reader.feed_eof()
        assert await read_message(reader) is None

        reader = asyncio.StreamReader()
        reader.feed_data(struct.pack(">I", 2 << 20))
        with pytest.raises(FrameTooLargeError, match="2,097,152 bytes exceeds the 1,048,576"):
            await read_message(reader)

        reader = asyncio.StreamReader()
        reader.feed_data(b"\x00\x00")
        reader.feed_eof()
        with pytest.raises(ProtocolError, match="inside a frame header"):
            await read_message(reader)

    asyncio.run(main())


def test_method_sets_and_wire_errors():
    expected = {"on_trigger", "on_update", "on_clear", "get_status", "on_stop"}
    assert expected == protocol.CALL_METHODS
    assert "publish_mqtt" in protocol.API_METHODS
    assert protocol.WIRE_ERRORS["PermissionError"] is PermissionError


def test_describe_exit():
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-11) == "killed by SIGSEGV (signal 11)"
    assert describe_exit(None) == "still running"


def test_worker_side_imports_stay_small():
    """The worker process must not pay for asyncio, pydantic, numpy, yaml, paho or the rest
    of the firmware; the package's public names load lazily on the host side."""
    code = ("import sys; import firmware.actions.python.worker; "
            "heavy = ('asyncio', 'pydantic', 'numpy', 'numba', 'yaml', 'paho', 'scipy', "
            "'firmware.config.loader', 'firmware.actions.python.host', 'logging', 'dataclasses'); "
            "print(','.join(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         check=True, timeout=30)
    assert out.stdout.strip() == ""
    from firmware.actions.python import WorkerSupervisor, resolve_script

    assert WorkerSupervisor.__module__ == "firmware.actions.python.supervisor"
    assert callable(resolve_script)


def test_jsonable_turns_datetimes_into_iso_utc_strings():
    aware = datetime.datetime(2024, 5, 1, 14, 30, tzinfo=datetime.timezone(
        datetime.timedelta(hours=2)))
    naive = datetime.datetime(2024, 5, 1, 12, 30)
    value = jsonable({"a": aware, "b": (datetime.date(2024, 5, 1), datetime.time(8, 15)),
                      "n": naive})
    assert value["a"] == "2024-05-01T12:30:00+00:00"
    assert value["b"] == ["2024-05-01", "08:15:00"]
    assert value["n"] == naive.astimezone(datetime.UTC).isoformat()
    check_json_like(value)
    with pytest.raises(TypeError, match=r"status\['x'\]\[1\] is a set"):
        jsonable({"x": [1, {2}]}, "status")
