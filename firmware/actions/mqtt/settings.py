"""The ``mqtt`` config section: broker, credentials, TLS, topics, outbox and HA discovery.

Every option has a default, so an empty ``mqtt:`` section means "the broker on localhost,
buffered on disk while it does not answer". Cross-option checks (a TLS certificate without
its key, a password without a user name, reconnect_max_s below reconnect_min_s) fail at
config time with a message that names both options, not later at the first connection.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from firmware.strict_model import StrictModel

_TOPIC_LEVEL = re.compile(r"^[^/#+\x00]+$")


def check_topic_prefix(value: str, option: str) -> str:
    """Return ``value`` if it can start MQTT topics we publish, else raise ValueError.

    A prefix may have several levels (``site/lab``) but no wildcard (``#``, ``+``), no NUL,
    no empty level and no leading or trailing slash (those would make ``//`` or a topic that
    starts with ``/``, which brokers accept but nobody subscribes to by accident).
    """
    if not value:
        raise ValueError(f"{option} must not be empty")
    if value.startswith("/") or value.endswith("/"):
        raise ValueError(f"{option} {value!r} must not start or end with '/'")
    bad = [level for level in value.split("/") if not _TOPIC_LEVEL.match(level)]
    if bad:
        raise ValueError(
            f"{option} {value!r} has an invalid level {bad[0]!r}: expected non-empty levels "
            "without the wildcards '#' and '+'"
        )
    return value


def check_topic_level(value: str, what: str) -> str:
    """Return ``value`` if it is one topic level (no ``/``, wildcard or NUL), else raise."""
    if not _TOPIC_LEVEL.match(value):
        raise ValueError(f"{what} {value!r} cannot be used in an MQTT topic: expected a "
                         "non-empty name without '/', '#', '+'")
    return value


class TlsSettings(StrictModel):
    """TLS towards the broker (usually port 8883).

    Without ``ca_file`` the system's CA store verifies the broker. ``cert_file`` and
    ``key_file`` (both or neither) authenticate the client. ``insecure`` skips only the host
    name check (the certificate chain is still verified), for brokers reached by IP address.
    """

    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        """Expand ``~`` so files under the service user's home can be named as usual."""
        if value is None:
            return None
        try:
            return value.expanduser()
        except RuntimeError as exc:  # "~user" unknown, or no home directory
            raise ValueError(f"cannot expand '~' ({exc})") from None

    @model_validator(mode="after")
    def _consistent(self) -> TlsSettings:
        """A client certificate needs its key (and back); TLS options need TLS enabled."""
        if (self.cert_file is None) != (self.key_file is None):
            given, missing = (
                ("cert_file", "key_file") if self.cert_file is not None
                else ("key_file", "cert_file")
            )
            raise ValueError(f"tls.{given} is set but tls.{missing} is not: a client "
                             "certificate needs both the certificate and its private key")
        if not self.enabled:
            used = [name for name in ("ca_file", "cert_file", "key_file")
                    if getattr(self, name) is not None]
            if self.insecure:
                used.append("insecure")
            if used:
                raise ValueError(f"tls.{used[0]} is set but tls.enabled is false: set "
                                 "tls.enabled: true or remove the TLS options")
        return self


class DiscoverySettings(StrictModel):
    """Home Assistant MQTT discovery: where configs go and how the gas sensor is described."""

    enabled: bool = True
    prefix: str = "homeassistant"
    gas_device_class: str = Field("carbon_dioxide", pattern=r"^[a-z][a-z0-9_]*$")
    gas_name: str | None = Field(
        None, min_length=1, max_length=64,
        description="the sensor's name in Home Assistant (null: device.gas)")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        """The discovery prefix follows the same rules as our own base topic."""
        return check_topic_prefix(value, "discovery.prefix")


class MqttSettings(StrictModel):
    """One MQTT client per appliance (see ``firmware.actions.mqtt.link.MqttLink``)."""

    enabled: bool = True
    host: str = Field("localhost", min_length=1)
    port: int = Field(1883, ge=1, le=65535)
    client_id: str | None = Field(None, min_length=1, max_length=128)
    username: str | None = Field(None, min_length=1)
    password: SecretStr | None = None
    tls: TlsSettings = Field(default_factory=TlsSettings)
    keepalive_s: int = Field(30, ge=5, le=3600)
    base_topic: str = "pafw"
    measurement_interval_s: float = Field(5.0, gt=0, allow_inf_nan=False)
    reconnect_min_s: float = Field(0.5, gt=0, le=3600, allow_inf_nan=False)
    reconnect_max_s: float = Field(30.0, gt=0, le=3600, allow_inf_nan=False)
    max_inflight: int = Field(20, ge=1, le=1000)
    outbox_max_messages: int = Field(100_000, ge=1, le=10_000_000)
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)

    @field_validator("base_topic")
    @classmethod
    def _base_topic(cls, value: str) -> str:
        """Our topics are ``<base_topic>/<device id>/...``: no wildcards, no stray slashes."""
        return check_topic_prefix(value, "base_topic")

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        """Client ids are printable without spaces so they show up intact in broker logs."""
        if value is not None and not re.fullmatch(r"[\x21-\x7e]+", value):
            raise ValueError(f"client_id {value!r} must be printable ASCII without spaces")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MqttSettings:
        """Cross-option checks: backoff bounds in order, a password needs a user name."""
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError(f"reconnect_max_s ({self.reconnect_max_s:g}) must be >= "
                             f"reconnect_min_s ({self.reconnect_min_s:g})")
        if self.password is not None and self.username is None:
            raise ValueError("password is set but username is not: MQTT sends a password "
                             "only together with a user name")
        return self

    def client_id_for(self, device_id: str) -> str:
        """The configured client id, or ``pafw-<device_id>``."""
        return self.client_id or f"pafw-{device_id}"
