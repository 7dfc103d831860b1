"""The Modbus server against a running appliance, read by real clients: pymodbus's and
Debian's mbpoll. Values match the HTTP API, errors are Modbus exceptions, many clients and
a silent one stall nothing, writes need the flag and a listed address."""

from __future__ import annotations

import asyncio
import math
import shutil
import socket
import struct
import subprocess

import pytest
from pymodbus.client import AsyncModbusTcpClient

from firmware.modbus import encoding
from firmware.modbus.registers import (
    ACTION_BASE,
    ACTION_BLOCK,
    NODE_BASE,
    NODE_BLOCK,
    NODE_FIELDS,
)
from tests.conftest import graph_node
from tests.waiting import wait_until

CONCENTRATION = NODE_BASE + NODE_BLOCK  # the default graph's second computing node
PEAK = NODE_BASE


def _registers(client, address, count, **kw):
    reply = client.read_input_registers(address, count=count, **kw)
    assert not reply.isError(), reply
    return reply.registers


def _has_results(rig):
    state = rig.appliance.analyzer.state
    return state.get("concentration") is not None and state.get("peak_finder") is not None


def _fields_match(words, http):
    """Every value field of a node block against the HTTP API's value (None: sentinels)."""
    for field in NODE_FIELDS:
        if field.kind not in ("float32", "int32", "int16"):
            continue
        value = http[field.source]
        at = words[field.offset:field.offset + field.width]
        if field.kind == "float32":
            got = encoding.decode_float32(at, "big")
            assert math.isnan(got) if value is None else got == pytest.approx(value, rel=1e-6)
        elif field.kind == "int32":
            expected = encoding.INT32_NONE if value is None else round(value * field.scale)
            assert encoding.decode_int32(at, "big") == expected, field.name
        else:
            expected = encoding.INT16_NONE if value is None else \
                max(-32767, min(32767, round(value * field.scale)))
            assert encoding.decode_int16(at[0]) == expected, field.name


def test_node_values_match_the_http_api(make_modbus):
    rig = make_modbus()
    wait_until(lambda: _has_results(rig), what="first results")
    client = rig.client()
    matched = {}

    def same_frame_as_http():
        http = rig.get("/api/v1/results").body["results"]
        for node_id, base in (("peak_finder", PEAK), ("concentration", CONCENTRATION)):
            words = _registers(client, base, NODE_BLOCK)
            if encoding.decode_uint32(words[22:24], "big") != http[node_id]["sequence"]:
                return False
            matched[node_id] = (words, http[node_id])
        return True

    wait_until(same_frame_as_http, what="a Modbus read and an HTTP read of the same frame")
    words, http = matched["concentration"]
    ppm = http["concentration_ppm"]
    assert encoding.decode_float32(words[0:2], "big") == pytest.approx(ppm, rel=1e-6)
    assert encoding.decode_int32(words[8:10], "big") == round(ppm * 100)
    assert encoding.decode_int16(words[16]) == round(ppm)
    for node_id in ("peak_finder", "concentration"):
        _fields_match(*matched[node_id])
    assert words[21] & 0b11 == 0b11  # has a result, fresh
    words, http = matched["peak_finder"]
    assert encoding.decode_float32(words[4:6], "big") == pytest.approx(http["frequency_hz"],
                                                                       rel=1e-6)
    assert encoding.decode_int32(words[12:14], "big") == round(http["frequency_hz"] * 100)
    assert encoding.decode_float32(words[6:8], "big") == pytest.approx(http["snr_db"],
                                                                       rel=1e-6)
    assert encoding.decode_int16(words[17]) == round(http["amplitude_db"] * 100)
    assert words[20] < 50  # age in 0.1 s: a paced frame is 85 ms old at most, plus the read
    glob = _registers(client, 0, 16)
    assert glob[2:10] == [1, 2, NODE_BASE, NODE_BLOCK, 3, ACTION_BASE, ACTION_BLOCK, 0]
    heartbeat = glob[0]
    wait_until(lambda: _registers(client, 0, 1)[0] != heartbeat, what="the heartbeat to move")
    client.close()


def test_little_word_order_swaps_the_words_of_32_bit_values(make_modbus):
    rig = make_modbus(word_order="little")
    wait_until(lambda: _has_results(rig), what="first results")
    client = rig.client()
    words = _registers(client, PEAK, NODE_BLOCK)
    assert encoding.decode_float32(words[4:6], "little") == pytest.approx(2000, abs=50)
    assert _registers(client, 9, 1) == [1]
    client.close()


def test_bad_addresses_functions_and_units_get_modbus_exceptions(make_modbus):
    rig = make_modbus()
    client = rig.client()
    for address, count in ((16, 1), (50, 2), (CONCENTRATION + NODE_BLOCK - 1, 2),
                           (ACTION_BASE + 3 * ACTION_BLOCK, 1), (60000, 10)):
        reply = client.read_input_registers(address, count=count)
        assert reply.isError() and reply.exception_code == 2, (address, count)
    reply = client.read_coils(1, count=1)
    assert reply.isError() and reply.exception_code == 2
    reply = client.read_holding_registers(99, count=2)
    assert reply.isError() and reply.exception_code == 2
    reply = client.read_discrete_inputs(0, count=1)  # not served
    assert reply.isError() and reply.exception_code == 1 and reply.function_code == 0x82
    reply = client.read_input_registers(0, count=1, device_id=7)  # another unit
    assert reply.isError() and reply.exception_code == 0x0B
    client.close()
    # a function code nobody defines: code | 0x80 and ILLEGAL FUNCTION, the server goes on
    with socket.create_connection(("127.0.0.1", rig.modbus_port), timeout=10) as raw:
        raw.sendall(struct.pack(">HHHBB", 9, 0, 2, 1, 0x41))
        answer = raw.recv(64)
    assert answer[7:9] == bytes([0xC1, 0x01])
    client = rig.client()
    assert _registers(client, 2, 1) == [1]
    client.close()
    status = rig.modbus.get_status()
    assert status["errors"] >= 9 and status["requests"] >= 10


async def _poll_many(port, clients, reads):
    async def one():
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=30)
        await client.connect()
        try:
            values = []
            for _ in range(reads):
                reply = await client.read_input_registers(0, count=16)
                assert not reply.isError(), reply
                values.append(reply.registers[12:14])
            return values
        finally:
            client.close()

    return await asyncio.gather(*(one() for _ in range(clients)))


def test_fifty_clients_and_a_silent_one_stall_nothing(make_modbus):
    rig = make_modbus()
    silent = socket.create_connection(("127.0.0.1", rig.modbus_port), timeout=10)
    half = socket.create_connection(("127.0.0.1", rig.modbus_port), timeout=10)
    half.sendall(struct.pack(">HHH", 1, 0, 6))  # half a request header, then nothing
    try:
        frames = rig.appliance.analyzer.frames
        answers = asyncio.run(_poll_many(rig.modbus_port, 50, 5))
        assert len(answers) == 50 and all(len(a) == 5 for a in answers)
        wait_until(lambda: rig.appliance.analyzer.frames > frames + 5,
                   what="DSP frames advancing")
        client = rig.client()
        assert _registers(client, 2, 1) == [1]
        client.close()
        assert rig.modbus.get_status()["connections_total"] >= 52
    finally:
        silent.close()
        half.close()


def test_a_silent_connection_is_closed_after_the_idle_timeout(make_modbus):
    rig = make_modbus(idle_timeout_s=0.5)
    silent = socket.create_connection(("127.0.0.1", rig.modbus_port), timeout=30)
    try:
        assert silent.recv(1) == b""  # closed by the server
        assert rig.modbus.get_status()["idle_closed"] >= 1
    finally:
        silent.close()


def _low_alarm(data):
    graph_node(data, "alarm_relay")["parameters"]["triggers"][0]["above"] = 1.0
    graph_node(data, "status_led")["parameters"]["triggers"][0]["above"] = 1.0


@pytest.mark.parametrize("settings", [
    {},  # writes off
    {"writes_enabled": True},  # nobody listed
    {"writes_enabled": True, "write_allowed_clients": ["10.1.2.3"]},  # somebody else
    {"write_allowed_clients": ["127.0.0.1"]},  # listed, but writes off
])
def test_writes_are_refused_unless_enabled_and_the_client_is_listed(make_modbus, settings):
    rig = make_modbus(**settings)
    client = rig.client()
    for reply in (client.write_coil(0, True), client.write_coil(101, False),
                  client.write_register(101, 0), client.write_coils(100, [False, False])):
        assert reply.isError() and reply.exception_code == 1, reply
    assert all(h.enabled for h in rig.appliance.handlers)
    assert rig.modbus.get_status()["refused_writes"] == 4
    client.close()


def test_allowed_writes_disable_enable_and_acknowledge(make_modbus):
    rig = make_modbus(_low_alarm, writes_enabled=True, write_allowed_clients=["127.0.0.1"])
    handlers = {h.node_id: h for h in rig.appliance.handlers}
    relay = handlers["alarm_relay"]
    client = rig.client()
    reply = client.write_coil(101, False)  # action 1 (alarm_relay) disabled
    assert not reply.isError() and reply.bits[0] is False
    wait_until(lambda: not relay.enabled, what="alarm_relay disabled")
    assert client.read_coils(100, count=3).bits[:3] == [True, False, True]
    wait_until(lambda: _registers(client, ACTION_BASE + ACTION_BLOCK, 1)[0] & 1 == 0,
               what="the enabled bit to clear")
    reply = client.write_register(101, 1)  # enabled again, through a holding register
    assert not reply.isError() and reply.registers == [1]
    wait_until(lambda: relay.enabled, what="alarm_relay enabled")
    reply = client.write_register(101, 2)
    assert reply.isError() and reply.exception_code == 3

    wait_until(lambda: relay.unacknowledged_active, what="the low alarm")
    wait_until(lambda: client.read_coils(201, count=1).bits[0], what="the ack coil to read 1")
    wait_until(lambda: _registers(client, ACTION_BASE + ACTION_BLOCK + 1, 1)[0] & 1,
               what="high_gas's active bit")
    assert not client.write_coil(201, True).isError()  # acknowledge alarm_relay
    wait_until(lambda: not relay.unacknowledged_active, what="alarm_relay acknowledged")
    # the register image follows within one result or 100 ms
    wait_until(lambda: (block := _registers(client, ACTION_BASE + ACTION_BLOCK, 3))[2] & 1
               and block[0] & 0b110 == 0b010, what="acknowledged, none unacknowledged")
    assert not client.write_coil(0, True).isError()  # everything else
    wait_until(lambda: not any(h.unacknowledged_active for h in handlers.values()
                               if h.enabled), what="every alarm acknowledged")
    assert not client.write_coil(0, True).isError()  # nothing left: still fine
    wait_until(lambda: _registers(client, 1, 1)[0] & 0b1100 == 0b1000,
               what="alarm active, none unacknowledged")
    status = rig.modbus.get_status()
    assert status["refused_writes"] == 0 and status["writes"] >= 5
    client.close()


@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="Debian's mbpoll is not installed")
def test_debians_mbpoll_reads_the_same_registers(make_modbus):
    rig = make_modbus()
    wait_until(lambda: _has_results(rig), what="first results")
    out = subprocess.run(["mbpoll", "-m", "tcp", "-a", "1", "-0", "-r", "2", "-c", "4",
                          "-t", "3", "-1", "-o", "5", "-p", str(rig.modbus_port),
                          "127.0.0.1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    values = dict(line.strip("[ ").split("]:") for line in out.stdout.splitlines()
                  if line.startswith("["))
    assert {k: int(v) for k, v in values.items()} == {"2": 1, "3": 2, "4": NODE_BASE,
                                                      "5": NODE_BLOCK}
    out = subprocess.run(["mbpoll", "-m", "tcp", "-a", "1", "-0", "-r", str(PEAK + 4),
                          "-t", "3:float", "-B", "-1", "-o", "5", "-p", str(rig.modbus_port),
                          "127.0.0.1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    line = next(line for line in out.stdout.splitlines() if line.startswith("["))
    assert float(line.split(":")[1]) == pytest.approx(2000, abs=50)  # the resonance
    out = subprocess.run(["mbpoll", "-m", "tcp", "-a", "1", "-0", "-r", "50", "-t", "3",
                          "-1", "-o", "5", "-p", str(rig.modbus_port), "127.0.0.1"],
                         capture_output=True, text=True, timeout=60)
    assert "Illegal data address" in out.stdout + out.stderr
