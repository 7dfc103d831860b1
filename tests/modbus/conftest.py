"""A running appliance (simulator paced in real time) with its web server and its Modbus
server on free loopback ports, as tests/web/conftest.py starts the web one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient

from firmware.app.appliance import Appliance
from firmware.config.loader import ConfigDocument
from firmware.modbus.server import ModbusServer
from firmware.web.server import WebServer
from tests.web.conftest import WebRig, fast_web


@dataclass
class ModbusRig(WebRig):
    """The appliance, its web server, its Modbus server, and clients of both."""

    modbus: ModbusServer

    @property
    def modbus_port(self) -> int:
        assert self.modbus.port is not None
        return self.modbus.port

    def client(self) -> ModbusTcpClient:
        client = ModbusTcpClient("127.0.0.1", port=self.modbus_port, timeout=10, retries=0)
        assert client.connect()
        return client


@pytest.fixture
def make_modbus(make_doc: Callable[..., ConfigDocument]) -> Iterator[Callable[..., ModbusRig]]:
    """Start an appliance + web + Modbus server from the default config changed by
    ``change``; ``modbus`` settings go into the modbus section."""
    started: list[ModbusRig] = []

    def build(change: Callable[[dict[str, Any]], None] | None = None,
              **modbus: Any) -> ModbusRig:
        def edit(data: dict[str, Any]) -> None:
            fast_web(data)
            data["modbus"] = {"enabled": True, "port": 0, **modbus}
            if change is not None:
                change(data)

        doc = make_doc(edit)
        appliance = Appliance(doc, realtime=True)
        server = WebServer(appliance, doc.config.web, appliance.operations)
        modbus_server = ModbusServer(appliance, doc.config.modbus, appliance.operations)
        rig = ModbusRig(appliance, server, modbus_server)
        started.append(rig)
        appliance.start()
        server.start()
        modbus_server.start()
        assert modbus_server.port is not None, modbus_server.bind_error
        return rig

    yield build
    for rig in reversed(started):
        rig.modbus.stop()
        rig.server.stop()
        rig.appliance.stop()
