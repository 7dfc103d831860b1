"""The processing section: the graph's nodes (parameters validated against the registered
node type's ``Params``), its connections (checked to be a forest hanging from ``input`` nodes,
``config.graph``) and the default graph of the packaged config.

Every node type is known the first time a node is validated: ``node_types`` imports both
node packages then (not at import time, so `pafw status`, which reads only ``paths``, does
not load numba and scipy).
"""

from __future__ import annotations

import builtins  # NodeSettings has a field named ``type``
from typing import TYPE_CHECKING, Any

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from firmware.config.graph import did_you_mean, graph_problems, topological_order, upstream_chain
from firmware.dsp import registry
from firmware.strict_model import StrictModel

if TYPE_CHECKING:
    from firmware.dsp.node import Node


def node_types() -> dict[str, type[Node]]:
    """Every node type a config may name, by name (registering them on first use)."""
    # importing the node packages registers their types (a no-op after the first call)
    import firmware.actions.nodes
    import firmware.dsp.nodes  # noqa: F401

    return registry.node_types()


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
    def config_submodel(cls, key: str, data: Any) -> builtins.type[StrictModel] | None:
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
