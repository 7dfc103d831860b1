"""What a PythonAction may do besides reading data: its YAML grant and the checks the host
makes before acting on a script's request.

The worker holds no GPIO, MQTT or file handle of the appliance: every side effect is a
request to the host, answered only if the node's ``capabilities`` grant it. A refused request
raises ``PermissionError`` in the script with a message naming what was asked and what is
granted, and is counted.
"""

from __future__ import annotations

from paho.mqtt.client import topic_matches_sub
from pydantic import Field, field_validator

from firmware.strict_model import StrictModel


class Capabilities(StrictModel):
    """Side effects granted to one python_action (nothing by default)."""

    mqtt_publish: list[str] = Field(
        default_factory=list, description="MQTT topic filters the script may publish to"
    )
    relays: list[str] = Field(default_factory=list, description="names from hal.relays")
    leds: list[str] = Field(default_factory=list, description="names from hal.leds")
    data_mb: int = Field(
        0, ge=0, le=100_000,
        description="a persistent data directory of this size for the script (its working "
                    "directory: relative paths land there); 0: none")
    network: bool | list[str] = Field(
        False, description="outbound TCP from the worker: a list of 'host:port' it may reach "
                           "(enforced by the kernel), or true for any host (not recommended)")

    @field_validator("mqtt_publish")
    @classmethod
    def _valid_filters(cls, filters: list[str]) -> list[str]:
        for topic_filter in filters:
            levels = topic_filter.split("/")
            if not topic_filter or "\0" in topic_filter or any(
                ("#" in level and (level != "#" or i != len(levels) - 1))
                or ("+" in level and level != "+")
                for i, level in enumerate(levels)
            ):
                raise ValueError(f"{topic_filter!r} is not a valid MQTT topic filter")
        return filters

    @field_validator("network")
    @classmethod
    def _valid_destinations(cls, network: bool | list[str]) -> bool | list[str]:
        if isinstance(network, bool):
            return network
        if not network:
            raise ValueError("an empty host list grants nothing: write network: false")
        for entry in network:
            host, sep, port = entry.rpartition(":")
            if not sep or not host.strip("[]") or not port.isdigit() or \
                    not 1 <= int(port) <= 65535:
                raise ValueError(f"{entry!r} is not host:port (e.g. smtp.example.com:587, "
                                 f"192.0.2.10:8080, [2001:db8::1]:443)")
            if any(c.isspace() or c in "/;{}\"'" for c in host):
                raise ValueError(f"{entry!r}: {host!r} is not a host name or address")
        return network

    @property
    def network_hosts(self) -> list[str]:
        """The granted host:port list (empty for false, and for true: any host)."""
        return [] if isinstance(self.network, bool) else list(self.network)


class Grants:
    """The checks, with counters for status."""

    def __init__(self, action_id: str, capabilities: Capabilities) -> None:
        self.action_id = action_id
        self.capabilities = capabilities
        self.denied = 0
        self.last_denied: str | None = None

    def _deny(self, message: str) -> PermissionError:
        self.denied += 1
        self.last_denied = message
        return PermissionError(message)

    def check_publish(self, topic: str) -> None:
        """PermissionError unless ``topic`` matches a granted filter."""
        granted = self.capabilities.mqtt_publish
        if not any(topic_matches_sub(f, topic) for f in granted):
            raise self._deny(
                f"publishing to {topic!r} is not granted to action {self.action_id!r} "
                f"(capabilities.mqtt_publish: {granted or 'none'})")

    def check_relay(self, name: str) -> None:
        """PermissionError unless relay ``name`` is granted."""
        if name not in self.capabilities.relays:
            raise self._deny(
                f"relay {name!r} is not granted to action {self.action_id!r} "
                f"(capabilities.relays: {self.capabilities.relays or 'none'})")

    def check_led(self, name: str) -> None:
        """PermissionError unless LED ``name`` is granted."""
        if name not in self.capabilities.leds:
            raise self._deny(
                f"LED {name!r} is not granted to action {self.action_id!r} "
                f"(capabilities.leds: {self.capabilities.leds or 'none'})")
