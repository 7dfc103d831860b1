"""MqttLink: the appliance's one MQTT client, with a durable outbox and HA discovery.

Topics, under ``<base_topic>/<device_id>/``:

=====================  =========  ======  ==============================================
topic                  retained   QoS     payload
=====================  =========  ======  ==============================================
``measurements``       no         1       JSON ``{"seq", "ts", "time", "results": ...}``
``events``             no         1       JSON ``{"seq", "ts", "time", ...event...}``
``status``             yes        1       JSON status dict (``ts``/``time`` added;
                                          ``version`` and ``release``: the build it runs)
``state/<name>``       yes        1       string (``ON``/``OFF``) or JSON
``availability``       yes        1       ``online`` on every connect, ``offline`` on a
                                          clean stop and as the LWT (process death)
=====================  =========  ======  ==============================================

``seq`` is one per-device counter shared by measurements and events, persisted in the outbox:
it increases across restarts, so consumers can detect gaps and deduplicate.

**Delivery** (details and reasoning in :mod:`firmware.actions.mqtt.delivery`).
Measurements and events are written to the :class:`Outbox` (SQLite, fsynced) before anything
else happens and deleted only on the broker's PUBACK, so a broker outage or a ``kill -9``
loses nothing. Retained topics keep only their latest value in memory and are re-sent on
every connect. One sender thread hands messages to paho, only while connected and at most
``max_inflight`` at a time. Each outbox row is handed to paho once per process (clean
session; paho itself retransmits what was in flight at a reconnect, and new messages wait
until those are out), so a subscriber sees every message once and in order, except QoS 1's
own window: a message whose PUBACK was lost with the broker or the process comes again,
with the same ``seq``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from firmware.actions.mqtt.delivery import Delivery, Job
from firmware.actions.mqtt.discovery import DiscoveryEntities, discovery_messages
from firmware.actions.mqtt.outbox import Outbox, OutboxError
from firmware.actions.mqtt.payload import encode_json, json_safe, stamped
from firmware.actions.mqtt.settings import MqttSettings, check_topic_level
from firmware.errors import ActionError

log = logging.getLogger("pafw.mqtt")
OUTBOX_FILE = "mqtt-outbox.sqlite3"
__all__ = ["OUTBOX_FILE", "MqttError", "MqttLink", "encode_json", "json_safe"]


class MqttError(ActionError):
    """Raised when the MQTT link cannot be built or used as asked (TLS files, names)."""


class MqttLink:
    """One MQTT connection per appliance; every public method is thread-safe and non-blocking.

    Example (no broker needed: messages wait in the outbox)::

        >>> import tempfile, pathlib
        >>> link = MqttLink(MqttSettings(port=1), device_id="lab1",
        ...                 state_dir=pathlib.Path(tempfile.mkdtemp()), software_version="0")
        >>> link.publish_measurement({"results": {}})
        1
        >>> link.get_status()["outbox"]["pending"]
        1
        >>> link.stop()
    """

    def __init__(self, settings: MqttSettings, *, device_id: str, state_dir: Path,
                 software_version: str, device_name: str | None = None,
                 gas: str = "CO2") -> None:
        try:
            check_topic_level(device_id, "device id")
        except ValueError as exc:
            raise MqttError(str(exc)) from None
        self.settings = settings
        self.device_id = device_id
        self.device_name = device_name or device_id
        #: the measured gas (device.gas): the sensor's name unless discovery.gas_name is set
        self.gas = gas
        self.software_version = software_version
        self.root = f"{settings.base_topic}/{device_id}"
        self.availability_topic = f"{self.root}/availability"
        self.ha_status_topic = f"{settings.discovery.prefix}/status"
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._counts = {"connects": 0, "disconnects": 0, "lost": 0}
        self._last_error: str | None = None
        self._state = "new"
        self._sender: threading.Thread | None = None
        self._outbox: Outbox | None = None
        self._delivery: Delivery | None = None
        self._client: paho.Client | None = None
        if settings.enabled:
            try:
                self._outbox = Outbox(Path(state_dir) / OUTBOX_FILE,
                                      max_messages=settings.outbox_max_messages)
                self._client = self._make_client()
            except OutboxError as exc:
                raise MqttError(str(exc)) from None
            except BaseException:
                self._outbox.close()  # type: ignore[union-attr]
                raise
            self._delivery = Delivery(self._outbox, window=settings.max_inflight)
            self._delivery.set_retained(self.availability_topic, b"online")

    def _make_client(self) -> paho.Client:
        s = self.settings
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id_for(
            self.device_id), clean_session=True, protocol=paho.MQTTv311)
        client.suppress_exceptions = True  # a bug in a callback must not kill paho's thread
        client.on_log = _paho_log
        if s.username is not None:
            client.username_pw_set(
                s.username, s.password.get_secret_value() if s.password else None)
        if s.tls.enabled:
            for name in ("ca_file", "cert_file", "key_file"):
                path = getattr(s.tls, name)
                if path is not None and not path.is_file():
                    raise MqttError(f"mqtt.tls.{name}: {path} does not exist or is not a file")
            try:
                client.tls_set(ca_certs=_str(s.tls.ca_file), certfile=_str(s.tls.cert_file),
                               keyfile=_str(s.tls.key_file))
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise MqttError(f"mqtt.tls: cannot load the TLS files: {exc}") from None
            client.tls_insecure_set(s.tls.insecure)
        client.will_set(self.availability_topic, b"offline", qos=1, retain=True)
        client.reconnect_delay_set(s.reconnect_min_s, s.reconnect_max_s)  # type: ignore[arg-type]
        client.max_inflight_messages_set(0)  # unlimited in paho: Delivery keeps the window
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background (never waits for the broker); idempotent."""
        with self._lock:
            if self._state != "new" or self._client is None:
                return
            self._state = "running"
        self._client.connect_async(self.settings.host, self.settings.port,
                                   keepalive=self.settings.keepalive_s)
        self._client.loop_start()
        self._sender = threading.Thread(target=self._run_sender, name="pafw-mqtt-sender",
                                        daemon=True)
        self._sender.start()

    def stop(self, timeout: float = 3.0) -> None:
        """Publish ``offline``, disconnect cleanly and close the outbox; idempotent.

        While connected, the latest retained values (a last relay state, say) are sent and
        in-flight messages get their PUBACK first, within ``timeout`` seconds in all, so the
        next start does not send again what the broker already has. Outbox rows not handed
        to the broker yet stay for the next start.
        """
        with self._lock:
            if self._state == "stopped":
                return
            was_running, self._state = self._state == "running", "stopped"
        client, delivery = self._client, self._delivery
        deadline = time.monotonic() + timeout

        def wait(condition: Callable[[], bool], until: float) -> None:
            while not condition() and self.connected and time.monotonic() < until:
                time.sleep(0.01)

        if was_running and delivery is not None:
            self._wake.set()
            wait(lambda: delivery.retained_pending == 0, deadline - timeout / 2)
        self._stopping.set()
        self._wake.set()
        if self._sender is not None:
            self._sender.join(timeout)
        if was_running and client is not None and delivery is not None:
            wait(lambda: delivery.inflight == 0, deadline)
            if self.connected:
                info = client.publish(self.availability_topic, b"offline", qos=1, retain=True)
                with contextlib.suppress(RuntimeError, ValueError):  # not queued: give up
                    info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            client.disconnect()
            client.loop_stop()
        self._connected.clear()
        if self._outbox is not None:
            self._outbox.close()

    @property
    def connected(self) -> bool:
        """True while a CONNACK-accepted connection is up."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until connected (tests, bench); returns False on timeout."""
        return self._connected.wait(timeout)

    # -- publishing (any thread) ------------------------------------------------------------

    def publish_measurement(self, payload: Mapping[str, Any]) -> int | None:
        """Queue a measurement (QoS 1, durable); returns its ``seq`` (None if not stored)."""
        return self._publish_sequenced(f"{self.root}/measurements", payload)

    def publish_event(self, payload: Mapping[str, Any]) -> int | None:
        """Queue an event (QoS 1, durable); returns its ``seq`` (None if not stored)."""
        return self._publish_sequenced(f"{self.root}/events", payload)

    def publish_status(self, payload: Mapping[str, Any]) -> None:
        """Publish the retained status JSON (latest value wins); adds ``ts``/``time``."""
        self._set_retained(f"{self.root}/status", encode_json(stamped(payload)))

    def publish_state(self, name: str, value: Any) -> None:
        """Publish retained ``state/<name>``: a string as is (``ON``), anything else as JSON."""
        try:
            check_topic_level(name, "state name")
        except ValueError as exc:
            raise MqttError(str(exc)) from None
        data = value.encode() if isinstance(value, str) else encode_json(value)
        self._set_retained(f"{self.root}/state/{name}", data)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish ``payload`` on any concrete ``topic`` (QoS 1). Used for PythonAction grants,
        which the caller checks. Retained messages keep only their latest value and are
        re-sent on connect; the others go through the durable outbox, in order."""
        if not topic or "#" in topic or "+" in topic or "\0" in topic or len(topic) > 65535:
            raise MqttError(f"cannot publish to {topic!r}: expected a topic without wildcards")
        if retain:
            self._set_retained(topic, payload)
            return
        if self._outbox is None:
            return
        try:
            self._outbox.add(topic, payload, qos=1, retain=False)
        except OutboxError as exc:
            with self._lock:
                self._counts["lost"] += 1
                self._last_error = str(exc)
            log.error("MQTT message to %s lost: %s", topic, exc)
            return
        self._wake.set()

    def set_discovery(self, entities: DiscoveryEntities) -> None:
        """Announce ``entities`` to Home Assistant (retained configs, re-sent on HA restart).

        Entities announced before but absent now get an empty retained config, which makes
        Home Assistant remove them.
        """
        d = self.settings.discovery
        if not d.enabled or self._delivery is None:
            return
        messages = discovery_messages(
            entities, device_id=self.device_id, device_name=self.device_name,
            base_topic=self.settings.base_topic, prefix=d.prefix,
            gas_device_class=d.gas_device_class, gas_name=d.gas_name or self.gas,
            software_version=self.software_version)
        self._delivery.set_discovery([(topic, encode_json(cfg)) for topic, cfg in messages])
        self._wake.set()

    def _publish_sequenced(self, topic: str, payload: Mapping[str, Any]) -> int | None:
        if self._outbox is None:
            return None
        body = stamped(payload)
        try:
            seq, _row = self._outbox.add_sequenced(
                topic, lambda seq: encode_json({"seq": seq, **body}), qos=1, retain=False)
        except OutboxError as exc:  # disk full, closed after stop(): count, never raise
            with self._lock:
                self._counts["lost"] += 1
                self._last_error = str(exc)
            log.error("MQTT message to %s lost: %s", topic, exc)
            return None
        self._wake.set()
        return seq

    def _set_retained(self, topic: str, payload: bytes) -> None:
        if self._delivery is not None:
            self._delivery.set_retained(topic, payload)
            self._wake.set()

    # -- paho callbacks (paho's network thread) ---------------------------------------------

    def _on_connect(self, client: paho.Client, _userdata: Any, _flags: Any, reason_code: Any,
                    _properties: Any) -> None:
        if reason_code.is_failure:  # paho retries with backoff; log each new reason once
            self._report_error(f"broker {self._broker} refused the connection: {reason_code}")
            return
        with self._lock:
            self._counts["connects"] += 1
        self._delivery.connected()  # type: ignore[union-attr]
        if self.settings.discovery.enabled:
            client.subscribe(self.ha_status_topic, qos=1)
        log.info("MQTT connected to %s", self._broker)
        self._connected.set()
        self._wake.set()

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        exc = sys.exc_info()[1]  # paho calls this inside its ``except OSError`` block
        self._report_error(f"cannot connect to {self._broker}: {exc or 'failed'}")

    def _report_error(self, error: str) -> None:
        """Record ``error`` for get_status; log it unless it repeats the previous one."""
        with self._lock:
            repeated, self._last_error = error == self._last_error, error
        log.log(logging.DEBUG if repeated else logging.WARNING, "MQTT %s (retrying)", error)

    def _on_disconnect(self, _client: paho.Client, _userdata: Any, _flags: Any,
                       reason_code: Any, _properties: Any) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if not was:  # a refused or failed attempt: already reported
            return
        with self._lock:
            self._counts["disconnects"] += 1
            if reason_code.is_failure and not self._stopping.is_set():
                self._last_error = f"connection to {self._broker} lost: {reason_code}"
        level = logging.WARNING if reason_code.is_failure else logging.INFO
        log.log(level, "MQTT disconnected from %s (%s)", self._broker, reason_code)

    def _on_publish(self, _client: paho.Client, _userdata: Any, mid: int, _reason: Any,
                    _properties: Any) -> None:
        self._delivery.puback(mid)  # type: ignore[union-attr]
        self._wake.set()

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic == self.ha_status_topic and msg.payload.strip().lower() == b"online":
            self._delivery.resend_discovery()  # type: ignore[union-attr]
            self._wake.set()

    # -- sender thread ---------------------------------------------------------------------

    def _run_sender(self) -> None:
        """Wake on new messages, PUBACKs and connects; hand what Delivery allows to paho."""
        delivery = self._delivery
        assert delivery is not None
        while not self._stopping.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                delivery.send_some(self._hand_to_paho, self._may_send)
            except Exception as exc:  # keep sending; the error shows in get_status
                with self._lock:
                    self._last_error = f"MQTT sender: {exc!r}"
                log.exception("MQTT sender failed; retrying")
                time.sleep(0.5)

    def _may_send(self) -> bool:
        return self._connected.is_set() and not self._stopping.is_set()

    def _hand_to_paho(self, job: Job) -> int:
        info = self._client.publish(  # type: ignore[union-attr]
            job.topic, job.payload, qos=job.qos, retain=job.retain)
        # NO_CONN: the connection just dropped; paho keeps the message and sends it later
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise MqttError(f"paho did not queue a message to {job.topic}: {info.rc}")
        return info.mid

    # -- status -------------------------------------------------------------------------------

    @property
    def _broker(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def get_status(self) -> dict[str, Any]:
        """Status dict (see docs/status.md): connection, counters, outbox, discovery."""
        outbox = self._outbox.get_status() if self._outbox is not None else None
        delivery = self._delivery.get_status() if self._delivery is not None else {}
        with self._lock:
            return {
                "enabled": self.settings.enabled,
                "connected": self._connected.is_set(),
                "broker": self._broker,
                "client_id": self.settings.client_id_for(self.device_id),
                **self._counts,
                **delivery,
                "last_error": self._last_error,
                "outbox": outbox,
            }


def _paho_log(_client: paho.Client, _userdata: Any, level: int, buf: str) -> None:
    """paho's errors and warnings to our log; its per-packet chatter only at debug."""
    if buf.startswith("Caught exception"):  # a bug in one of our callbacks
        log.error("paho: %s", buf)
    elif level in (paho.MQTT_LOG_ERR, paho.MQTT_LOG_WARNING) and not buf.startswith(
            "Client is not connected"):  # socket errors; the disconnect is logged as well
        log.warning("paho: %s", buf)
    else:
        log.debug("paho: %s", buf)


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
