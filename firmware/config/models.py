"""The configuration's models: one pydantic model per section, validated as a whole.

``Config`` is the root. Node ``parameters`` are validated against the registered node type's
``Params`` model (``NodeSettings.params`` holds the result) and ``GraphSettings`` checks the
graph's shape (``config.graph``), so ``Config.model_validate`` alone rejects every invalid
config; ``loader.load_config`` adds the file positions to the messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from firmware.actions.mqtt.settings import MqttSettings
from firmware.calibration.settings import CalibrationSettings
from firmware.config.chain import chain_problems
from firmware.config.cycle import CycleSettings, cycle_problems
from firmware.config.modbus import ModbusSettings
from firmware.config.processing import NodeSettings, ProcessingSettings, node_types
from firmware.config.selftest import SelftestSettings
from firmware.config.web import WebSettings
from firmware.dsp.sources.settings import AcquisitionSettings
from firmware.hal.settings import HalSettings
from firmware.strict_model import StrictModel


class DeviceSettings(StrictModel):
    """Who this analyzer is: ``id`` names MQTT topics and state files, ``name`` is for people,
    ``gas`` is what it measures (named on the dashboard and to Home Assistant)."""

    id: str = Field("pafw-sim", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = Field("Photoacoustic analyzer", min_length=1)
    gas: str = Field("CO2", min_length=1, max_length=64,
                     description="the measured gas, e.g. CO2, CH4, NH3")


class PathsSettings(StrictModel):
    """Writable directories; ``~`` is expanded and a relative path is taken from the working
    directory of the command that loads the config (so `pafw run`, `pafw config check` and
    `pafw script check` started in the same place mean the same directory, and a worker's
    own working directory never changes it)."""

    state_dir: Path = Path("~/.local/state/pafw")
    scripts_dir: Path = Path("~/.local/state/pafw/user_scripts")
    cache_dir: Path = Path("~/.local/state/pafw/numba-cache")

    @field_validator("state_dir", "scripts_dir", "cache_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        """Expand ``~``; an empty path would silently mean the working directory."""
        if str(value) in ("", "."):
            raise ValueError("expected a directory path, not an empty string")
        try:
            return value.expanduser().absolute()
        except RuntimeError as exc:  # "~user" unknown, or no home directory
            raise ValueError(f"cannot expand '~' ({exc})") from None


class ScriptsSettings(StrictModel):
    """How customer scripts (python_action nodes) are run."""

    worker_user: str | None = Field(
        "nobody", description="workers run as this user when worker_uid_base is null and "
                              "the appliance may switch users"
    )
    worker_uid_base: int | None = Field(
        1_900_000_000, ge=1000, le=4_294_000_000,
        description="each action's worker runs as a uid and gid of its own from this base "
                    "(when the appliance is root or holds CAP_SETUID/CAP_SETGID); null: "
                    "all workers run as worker_user")
    data_dir: Path = Field(
        Path("/var/lib/pafw-worker"),
        description="where actions granted capabilities.data_mb keep their data (one "
                    "directory per action), when workers run as uids of their own: it must be "
                    "reachable by them, unlike the state directory; otherwise "
                    "<state_dir>/python_actions/data")
    hot_reload: bool = Field(True, description="reload a script when its file changes")
    debounce_s: float = Field(0.15, gt=0, le=10)


class LoggingSettings(StrictModel):
    """Log verbosity and line format (json for log collectors)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class Config(StrictModel):
    """The whole configuration; every section has a default, so ``{}`` is a valid config."""

    device: DeviceSettings = Field(default_factory=DeviceSettings)
    acquisition: AcquisitionSettings = Field(default_factory=AcquisitionSettings)
    processing: ProcessingSettings = Field(default_factory=ProcessingSettings)
    paths: PathsSettings = Field(default_factory=PathsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    hal: HalSettings = Field(default_factory=HalSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    scripts: ScriptsSettings = Field(default_factory=ScriptsSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    modbus: ModbusSettings = Field(default_factory=ModbusSettings)
    calibration: CalibrationSettings = Field(default_factory=CalibrationSettings)
    cycle: CycleSettings = Field(default_factory=CycleSettings)
    selftest: SelftestSettings = Field(default_factory=SelftestSettings)
    values: dict[str, Any] = Field(
        default_factory=dict,
        description="named values (YAML anchors, ``name: &name 2000.0``) that node parameters "
        "and other sections refer to with ``*name``: a value set once, used everywhere; the "
        "section itself configures nothing")

    @model_validator(mode="after")
    def _nodes_match_sections(self) -> Config:
        """Node parameters that name things of other sections (a relay of ``hal.relays``,
        MQTT being enabled), and nodes whose settings make the signal chain unable to detect
        (``config.chain``), are checked here, each error located at the parameter."""
        details: list[InitErrorDetails] = []
        loc: tuple[str | int, ...]
        for index, node in enumerate(self.processing.default_graph.nodes):
            cross_check = getattr(node.params, "cross_check", None)
            if cross_check is None:
                continue
            for key, message in cross_check(self):
                loc = ("processing", "default_graph", "nodes", index, "parameters", key)
                details.append(InitErrorDetails(type=PydanticCustomError("reference", message),
                                                loc=loc, input=node.parameters.get(key)))
        # warnings are reported by config.loader.load_config
        for problem in chain_problems(self.processing, self.acquisition):
            if problem.error:
                loc = ("processing", "default_graph", "nodes", problem.index, "parameters",
                       *problem.key)
                details.append(InitErrorDetails(type=PydanticCustomError("graph",
                                                                         problem.message),
                                                loc=loc, input=None))
        if details:
            raise ValidationError.from_exception_data("Config", details)
        return self

    @model_validator(mode="after")
    def _cycle_names(self) -> Config:
        """The cycle's relays, LEDs and nodes exist in ``hal`` and the graph (config.cycle),
        and no action node switches an output the cycle drives; each error located at the
        key that names the thing."""
        if not self.cycle.enabled:
            return self
        types = node_types()
        kinds = {n.id: getattr(types.get(n.type), "result_kind", None) or n.type
                 for n in self.processing.default_graph.nodes}
        details = [InitErrorDetails(type=PydanticCustomError("reference", message), loc=loc,
                                    input=value)
                   for loc, message, value in cycle_problems(self.cycle, self.hal.relays,
                                                             self.hal.leds, kinds)]
        driven = {"relay": set(self.cycle.driven_relays()), "led": set(self.cycle.driven_leds())}
        for index, node in enumerate(self.processing.default_graph.nodes):
            for key, names in driven.items():
                name = getattr(node.params, key, None)
                if isinstance(name, str) and name in names:
                    message = (f"{'relay' if key == 'relay' else 'LED'} {name!r} is driven by "
                               "the measurement cycle (cycle section): an action may not "
                               "switch it too")
                    loc = ("processing", "default_graph", "nodes", index, "parameters", key)
                    details.append(InitErrorDetails(
                        type=PydanticCustomError("reference", message), loc=loc, input=name))
        if details:
            raise ValidationError.from_exception_data("Config", details)
        return self

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        """A section left empty (``logging:`` with everything commented out) means defaults."""
        if isinstance(data, dict):
            return {k: {} if v is None and k in cls.model_fields else v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _calibration_node(self) -> Config:
        """``calibration.node`` names a concentration node of the graph."""
        wanted = self.calibration.node
        if wanted is None:
            return self
        kinds = {n.id: n.type for n in self.processing.default_graph.nodes}
        if kinds.get(wanted) != "concentration":
            found = sorted(i for i, t in kinds.items() if t == "concentration")
            raise ValueError(f"calibration.node {wanted!r} is not a concentration node of the "
                             f"graph (concentration nodes: {', '.join(found) or 'none'})")
        return self

    def node(self, node_id: str) -> NodeSettings:
        """The graph node with ``node_id`` (KeyError if there is none)."""
        return self.processing.default_graph.node(node_id)
