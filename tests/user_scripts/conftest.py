"""Fixtures of the example-script tests: the private Mosquitto broker of the action tests."""

from tests.actions.conftest import mosquitto

__all__ = ["mosquitto"]
