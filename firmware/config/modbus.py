"""``modbus:``: the optional Modbus TCP server of `pafw run` (docs/modbus.md).

Owned by the config package for the reason ``config/web.py`` is: modbus/ is a view of the
running appliance, a peer of web/ above app/ and config/, so the root model composes its
section from here without an import running back up the layers.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator

from firmware.strict_model import StrictModel


class ModbusSettings(StrictModel):
    """Where the server listens, which unit id it answers, how 32-bit values are ordered and
    who may write (nobody unless ``writes_enabled`` and the client's address is listed)."""

    enabled: bool = Field(False, description="serve Modbus TCP (off unless asked for)")
    bind: str = Field("127.0.0.1", min_length=1,
                      description="address to listen on; 0.0.0.0 to serve the plant network")
    port: int = Field(5020, ge=0, le=65535,
                      description="5020: no root needed (502 needs CAP_NET_BIND_SERVICE); "
                      "0: any free port (tests)")
    unit_id: int = Field(1, ge=0, le=255, description="the unit (slave) id answered; "
                         "requests for another id get exception 0x0B")
    word_order: Literal["big", "little"] = Field(
        "big", description="32-bit values: big = high word first (registers n, n+1 = "
        "high, low), little = low word first; bytes in a register are always big-endian")
    writes_enabled: bool = Field(False, description="accept coil and holding-register "
                                 "writes (acknowledge, enable/disable) at all")
    write_allowed_clients: list[str] = Field(
        default_factory=list, description="client IP addresses whose writes are accepted "
        "(with writes_enabled); every other client's write gets exception 0x01")
    max_connections: int = Field(100, ge=1, le=10_000,
                                 description="beyond: new connections are closed at once")
    idle_timeout_s: float = Field(120.0, gt=0, le=86_400,
                                  description="a connection silent this long is closed")

    @field_validator("write_allowed_clients")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        """Each entry is an IP address, kept in its normalised form (an IPv4-mapped IPv6
        address as the IPv4 address it is: the server compares clients that way)."""
        out = []
        for entry in value:
            try:
                address = ipaddress.ip_address(entry.strip())
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address (e.g. 192.168.1.20)") \
                    from None
            mapped = getattr(address, "ipv4_mapped", None)
            out.append(str(mapped or address))
        return out
