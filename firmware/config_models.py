"""The configuration's models: one pydantic model per section, validated as a whole.

``Config`` is the root. Node ``parameters`` are validated against the registered node type's
``Params`` model (``NodeSettings.params`` holds the result) and ``GraphSettings`` checks the
graph's shape (``config_graph``), so ``Config.model_validate`` alone rejects every invalid
config; ``config.load_config`` adds the file positions to the messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from firmware.actions.mqtt_settings import MqttSettings
from firmware.config_chain import chain_problems
from firmware.config_graph import did_you_mean, graph_problems, topological_order, upstream_chain
from firmware.dsp.registry import node_types
from firmware.dsp.source_settings import AcquisitionSettings
from firmware.hal.settings import HalSettings
from firmware.strict_model import StrictModel
from firmware.web.settings import WebSettings


class DeviceSettings(StrictModel):
    """Who this analyzer is: ``id`` names MQTT topics and state files, ``name`` is for people,
    ``gas`` is what it measures (named on the dashboard and to Home Assistant)."""

    id: str = Field("pafw-sim", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = Field("Photoacoustic analyzer", min_length=1)
    gas: str = Field("CO2", min_length=1, max_length=64,
                     description="the measured gas, e.g. CO2, CH4, NH3")


class NodeSettings(StrictModel):
    """One processing node: ``parameters`` is the raw mapping, ``params`` its validated model."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    type: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    _params: StrictModel | None = PrivateAttr(None)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        """Reject a type no module registered, suggesting the closest registered name."""
        known = sorted(node_types())
        if value not in known:
            raise PydanticCustomError(
                "unknown_node_type",
                f"unknown node type {value!r}{did_you_mean(value, known)} "
                f"(registered types: {', '.join(known)})",
            )
        return value

    @field_validator("parameters", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        """``parameters:`` left empty in YAML is null: read it as no parameters."""
        return {} if value is None else value

    @field_validator("parameters")
    @classmethod
    def _valid_parameters(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Validate against the type's ``Params``; pydantic nests the raised errors' locs."""
        node_cls = node_types().get(info.data.get("type", ""))
        if node_cls is not None:
            node_cls.Params.model_validate(value)  # its errors land under "parameters"
        return value

    @model_validator(mode="after")
    def _keep_params(self) -> NodeSettings:
        """Keep the validated ``Params`` (cannot fail: ``_valid_parameters`` passed)."""
        self._params = node_types()[self.type].Params.model_validate(self.parameters)
        return self

    @property
    def params(self) -> Any:
        """The validated ``Params`` instance of this node's type (e.g. ``FilterParams``)."""
        return self._params

    @classmethod
    def config_submodel(cls, key: str, data: Any) -> type[StrictModel] | None:
        """The model that validates ``data[key]`` when it is not the field's own annotation."""
        if key == "parameters" and isinstance(data, dict) and isinstance(data.get("type"), str):
            node_cls = node_types().get(data["type"])
            return None if node_cls is None else node_cls.Params
        return None


class ConnectionSettings(StrictModel):
    """An edge ``from`` -> ``to``: the output of ``from`` is the input of ``to``."""

    from_: str = Field(alias="from")
    to: str


DEFAULT_GRAPH: dict[str, Any] = {
    "nodes": [
        {"id": "input", "type": "input"},
        {"id": "bandpass", "type": "filter", "parameters": {
            "family": "butterworth", "band": "bandpass", "order": 4,
            "center_frequency": 2000.0, "bandwidth": 600.0}},
        {"id": "gain", "type": "gain", "parameters": {"gain_db": 0.0}},
        {"id": "differential", "type": "differential"},
        {"id": "peak_finder", "type": "peak_finder", "parameters": {
            "fft_size": 4096, "center_frequency": 2000.0, "bandwidth": 600.0,
            "window": "hann", "detection_threshold_db": 12.0, "coherence_frames": 5,
            "smoothing": 1.0}},
        {"id": "concentration", "type": "concentration", "parameters": {
            "source_node": "peak_finder", "polynomial_coefficients": [0.0, 50000.0],
            "amplitude_unit": "linear", "temperature_coefficient_per_c": 0.0,
            "reference_temperature_c": 25.0, "min_ppm": 0.0, "max_ppm": 20000.0,
            "max_input_age_s": 2.0}},
    ],
    "connections": [
        {"from": "input", "to": "bandpass"},
        {"from": "bandpass", "to": "gain"},
        {"from": "gain", "to": "differential"},
        {"from": "differential", "to": "peak_finder"},
        {"from": "peak_finder", "to": "concentration"},
    ],
}
"""The graph of the packaged default_config.yaml (a test keeps the two equal)."""


class GraphSettings(StrictModel):
    """Nodes and connections; checked to be a forest hanging from ``input`` nodes."""

    nodes: list[NodeSettings]
    connections: list[ConnectionSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _well_formed(self) -> GraphSettings:
        """Every graph problem as its own error, located at the node or connection."""
        problems = graph_problems(
            [(n.id, n.type) for n in self.nodes], [(c.from_, c.to) for c in self.connections]
        )
        if problems:
            raise ValidationError.from_exception_data(
                "GraphSettings",
                [InitErrorDetails(type=PydanticCustomError("graph", message), loc=loc,
                                  input=value) for loc, message, value in problems],
            )
        return self

    def node(self, node_id: str) -> NodeSettings:
        """The node with ``node_id`` (KeyError if there is none)."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(f"no node {node_id!r} in the graph")

    def parent_map(self) -> dict[str, str]:
        """Node id -> the id of the node feeding it (input nodes have no entry)."""
        return {c.to: c.from_ for c in self.connections}

    def topological_order(self) -> list[str]:
        """Node ids, every node after its input, otherwise in the order of the file."""
        return topological_order([n.id for n in self.nodes], self.parent_map())

    def upstream_chain(self, node_id: str) -> list[str]:
        """Ids from the input node down to ``node_id``'s parent, ``node_id`` excluded."""
        self.node(node_id)
        return upstream_chain(node_id, self.parent_map())


class ProcessingSettings(StrictModel):
    """The processing graph and how often the running appliance reports its status."""

    status_interval_s: float = Field(5.0, gt=0, allow_inf_nan=False)
    fuse_linear_chains: bool = Field(
        True,
        description="run a differential/mixer before the filters and gains that only feed it "
        "(same result to rounding, half the filtering for a stereo pair)",
    )
    default_graph: GraphSettings = Field(
        default_factory=lambda: GraphSettings.model_validate(DEFAULT_GRAPH)
    )


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
    values: dict[str, Any] = Field(
        default_factory=dict,
        description="named values (YAML anchors, ``name: &name 2000.0``) that node parameters "
        "and other sections refer to with ``*name``: a value set once, used everywhere; the "
        "section itself configures nothing")

    @model_validator(mode="after")
    def _nodes_match_sections(self) -> Config:
        """Node parameters that name things of other sections (a relay of ``hal.relays``,
        MQTT being enabled), and nodes whose settings make the signal chain unable to detect
        (``config_chain``), are checked here, each error located at the parameter."""
        details: list[InitErrorDetails] = []
        for index, node in enumerate(self.processing.default_graph.nodes):
            cross_check = getattr(node.params, "cross_check", None)
            if cross_check is None:
                continue
            for key, message in cross_check(self):
                loc = ("processing", "default_graph", "nodes", index, "parameters", key)
                details.append(InitErrorDetails(type=PydanticCustomError("reference", message),
                                                loc=loc, input=node.parameters.get(key)))
        for problem in chain_problems(self):  # warnings are reported by config.load_config
            if problem.error:
                loc = ("processing", "default_graph", "nodes", problem.index, "parameters",
                       *problem.key)
                details.append(InitErrorDetails(type=PydanticCustomError("graph",
                                                                         problem.message),
                                                loc=loc, input=None))
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

    def node(self, node_id: str) -> NodeSettings:
        """The graph node with ``node_id`` (KeyError if there is none)."""
        return self.processing.default_graph.node(node_id)
