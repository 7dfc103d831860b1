"""Test helpers: a private Mosquitto on a free loopback port, and a recording subscriber.

``Broker`` writes its own config (listener on 127.0.0.1 only, anonymous, persistence in its
work dir so retained messages and persistent sessions survive ``stop()``/``start()``) and
keeps its port across restarts. It never touches the system broker or any non-loopback
address.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

HOST = "127.0.0.1"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Broker:
    """A Mosquitto process of our own; ``stop()`` and ``start()`` keep the same port."""

    def __init__(self, workdir: Path, *, port: int | None = None,
                 users: dict[str, str] | None = None, tls: bool = False) -> None:
        self.host = HOST
        self.port = port or free_port()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf = self.workdir / "mosquitto.conf"
        self.log = self.workdir / "mosquitto.log"
        self.ca_file = self.workdir / "ca.crt"
        access = ["allow_anonymous true"]
        if users:
            passwords = self.workdir / "passwords"
            passwords.touch(mode=0o600)
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password],
                               check=True, capture_output=True)
            access = ["allow_anonymous false", f"password_file {passwords}"]
        if tls:
            self._make_certificates()
            access += [f"cafile {self.ca_file}", f"certfile {self.workdir / 'server.crt'}",
                       f"keyfile {self.workdir / 'server.key'}"]
        self.conf.write_text("\n".join([
            f"listener {self.port} {HOST}",
            *access,
            f"user {pwd.getpwuid(os.getuid()).pw_name}",  # root would otherwise switch user
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 0",
            "max_queued_messages 100000",
            f"log_dest file {self.log}",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "connection_messages true", "",
        ]))
        self.proc: subprocess.Popen[bytes] | None = None

    def _make_certificates(self) -> None:
        """A throw-away CA and a server certificate for 127.0.0.1 (openssl CLI)."""
        d = self.workdir
        ext = d / "server.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                       "keyUsage=critical,digitalSignature,keyEncipherment\n"
                       "authorityKeyIdentifier=keyid,issuer\n")
        for cmd in (
            f"req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=pafw-test-ca "
            f"-addext keyUsage=critical,keyCertSign,cRLSign -keyout {d}/ca.key -out {d}/ca.crt",
            f"req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout {d}/server.key "
            f"-out {d}/server.csr",
            f"x509 -req -days 2 -in {d}/server.csr -CA {d}/ca.crt -CAkey {d}/ca.key "
            f"-CAcreateserial -extfile {ext} -out {d}/server.crt",
        ):
            subprocess.run(["openssl", *cmd.split()], check=True, capture_output=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> Broker:
        """Start Mosquitto and wait until it accepts TCP connections."""
        if self.running:
            return self
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err}"
                                   f"{self.log.read_text() if self.log.exists() else ''}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {HOST}:{self.port} in {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Mosquitto saves its persistence file), SIGKILL if it hangs."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case it was paused
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: nothing is saved, unread packets in its sockets are lost."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self.stop()

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing is answered."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Received:
    """One message as the subscriber saw it."""

    topic: str
    payload: bytes
    retain: bool
    dup: bool
    qos: int

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """An independent paho client that records every message on ``topics``.

    ``persistent=True`` uses a fixed client id and clean_session=False, so the broker keeps
    the subscription and queues messages across broker restarts and reconnects.
    """

    def __init__(self, broker: Broker, topics: Iterable[str], *, persistent: bool = False,
                 client_id: str = "pafw-test-subscriber",
                 credentials: tuple[str, str] | None = None) -> None:
        self.topics = list(topics)
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=not persistent)
        self.client.reconnect_delay_set(0.1, 0.5)
        if credentials:
            self.client.username_pw_set(*credentials)
        if broker.ca_file.exists():
            self.client.tls_set(ca_certs=str(broker.ca_file))
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.on_disconnect = lambda *_a: self.subscribed.clear()
        self.client.on_message = self._on_message
        self.client.connect_async(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("test subscriber did not subscribe within 10 s")

    def _on_connect(self, client: paho.Client, *_args: Any) -> None:
        self.subscribed.clear()
        client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain),
                                          bool(msg.dup), msg.qos))
            self._cond.notify_all()

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float) -> bool:
        """Wait until ``predicate(messages)`` holds; returns its final value."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(list(self.messages)), timeout)

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
