"""``web:``: the HTTP API and dashboard served by `pafw run`.

The one section the config package owns itself: web/ is a view of the running appliance and
sits above app/ and config/, so its settings live here, where the root model composes them
without an import running back up the layers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from firmware.strict_model import StrictModel


class WebSettings(StrictModel):
    """Where the server listens, who may read and write, and what a client may cost."""

    enabled: bool = True
    bind: str = Field("127.0.0.1", min_length=1,
                      description="address to listen on; 0.0.0.0 or :: to serve the LAN")
    port: int = Field(8080, ge=0, le=65535, description="0: any free port (tests)")
    read_access: Literal["loopback", "lan"] = Field(
        "loopback", description="who may read without the token: loopback only, or also "
        "private/link-local addresses")
    token: str | None = Field(None, description="bearer token for write operations; "
                              "unset or empty: writes are disabled")
    allowed_hosts: list[str] = Field(
        default_factory=list, description="extra host names browsers may use (besides "
        "addresses, localhost and this machine's host name): a DNS name of the appliance")
    max_connections: int = Field(300, ge=4, le=10_000)
    max_streams: int = Field(250, ge=1, le=10_000)
    max_head_bytes: int = Field(16384, ge=1024, le=1_048_576)
    max_body_bytes: int = Field(16384, ge=256, le=1_048_576)
    request_timeout_s: float = Field(10.0, gt=0, le=300, description="a request must "
                                     "arrive, and its answer be taken, within this")
    idle_timeout_s: float = Field(30.0, gt=0, le=3600)
    stream_interval_s: float = Field(0.25, ge=0.05, le=10,
                                     description="results events at most this often")
    status_interval_s: float = Field(1.0, ge=0.2, le=60)
    stream_buffer_bytes: int = Field(65536, ge=4096, le=16_777_216,
                                     description="unsent bytes a stream client may hold up "
                                     "before it is dropped")
    trend_hours: float = Field(24.0, gt=0, le=168,
                               description="trend kept (in memory and in the state dir)")

    @field_validator("token", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        """``token: ""`` (an unset environment variable) means no token."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("the token must be at least 16 characters (e.g. `openssl rand "
                             "-hex 24`)")
        return value
