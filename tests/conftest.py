"""Shared fixtures: configs derived from the shipped default, isolated state directories."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from firmware.config.loader import ConfigDocument, default_config_text, load_config
from tests.mqtt_broker import MOSQUITTO, Broker

# `pafw run` in a test listens on any free port, never on the default 8080 (tests run side by
# side); configs of their own that omit `web:` set it themselves.
os.environ.setdefault("PAFW_WEB_PORT", "0")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def state_env(tmp_path: Path) -> dict[str, str]:
    """Environment that points every firmware path into the test's tmp dir, and MQTT at a
    loopback port where no broker listens (messages wait in the outbox)."""
    return {
        "PAFW_STATE_DIR": str(tmp_path / "state"),
        "PAFW_SCRIPTS_DIR": str(tmp_path / "state" / "user_scripts"),
        "PAFW_CACHE_DIR": str(tmp_path.parent / "numba-cache"),
        "PAFW_MQTT_HOST": "127.0.0.1",
        "PAFW_MQTT_PORT": str(free_port()),
        "PAFW_WEB_PORT": "0",
    }


@pytest.fixture
def make_doc(state_env: dict[str, str]) -> Callable[..., ConfigDocument]:
    """Build a config from the default one, changed by a function of its YAML dict."""

    def build(change: Callable[[dict[str, Any]], None] | None = None) -> ConfigDocument:
        data = yaml.safe_load(default_config_text())
        if change is not None:
            change(data)
        return load_config(text=yaml.safe_dump(data, sort_keys=False), env=state_env)

    return build


def graph_node(data: dict[str, Any], node_id: str) -> dict[str, Any]:
    """The node dict with ``node_id`` in a config's YAML dict."""
    for node in data["processing"]["default_graph"]["nodes"]:
        if node["id"] == node_id:
            return node
    raise KeyError(node_id)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A started Mosquitto on a free 127.0.0.1 port; stopped (even if paused) afterwards."""
    if shutil.which(MOSQUITTO) is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed (./dev test installs it)")
        pytest.skip("mosquitto is not installed (./dev test installs it)")
    broker = Broker(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.stop()
