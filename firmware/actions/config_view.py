"""What an action node may read of the whole configuration when it checks itself against the
other sections (``cross_check``): the HAL's outputs, MQTT and the scripts directory.

A protocol, not the config's root model: actions/ sits below the config package (which
composes every package's settings), so it names only the sections it reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from firmware.actions.mqtt.settings import MqttSettings
from firmware.hal.settings import HalSettings


class ScriptPaths(Protocol):
    """The ``paths`` section as a python_action sees it."""

    @property
    def scripts_dir(self) -> Path: ...


class ConfigView(Protocol):
    """The sections an action node's ``cross_check`` reads (the root config satisfies it)."""

    @property
    def hal(self) -> HalSettings: ...

    @property
    def mqtt(self) -> MqttSettings: ...

    @property
    def paths(self) -> ScriptPaths: ...
