"""Fixtures for action tests: a private Mosquitto broker per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mqtt_broker import MOSQUITTO, Broker


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
