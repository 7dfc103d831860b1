"""A calibration record: what was measured, the fit, and what it is valid for.

Versioned JSON (``schema``): when, who, the gases and cylinder concentrations of each point,
the points' averaged readings and spreads, the fit, the firmware version, and the signal
chain it was measured through (the settings of every node from the input to the calibrated
node and its compensation, with their SHA-256). A record made through another signal chain
is refused: its coefficients would not mean the same thing.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from firmware.calibration.errors import CalibrationError
from firmware.calibration.fit import FitResult
from firmware.dsp.graph import NodeSpec
from firmware.state import iso_utc

RECORD_SCHEMA = 1
#: compensation settings of the concentration node that change what the fit's input means
CHAIN_KEYS = ("source_node", "amplitude_unit", "temperature_coefficient_per_c",
              "reference_temperature_c", "pressure_coefficient_per_hpa",
              "reference_pressure_hpa")


def signal_chain(specs: Sequence[NodeSpec], node_id: str, *, sample_rate: int,
                 frame_size: int) -> dict[str, Any]:
    """The settings a calibration of ``node_id`` depends on: the stream's format, each node
    from the input down to the node's amplitude source, and the node's compensation keys."""
    by_id = {s.node_id: s for s in specs}
    node = by_id[node_id]
    params = node.params.model_dump(mode="json")
    source = params.get("source_node") or node.parent
    chain: list[dict[str, Any]] = []
    current = source
    while current is not None:
        spec = by_id[current]
        chain.append({"id": spec.node_id, "type": spec.type_name,
                      "parameters": spec.params.model_dump(mode="json")})
        current = spec.parent
    chain.reverse()
    return {
        "sample_rate": sample_rate,
        "frame_size": frame_size,
        "nodes": chain,
        "calibrated_node": {"id": node_id,
                            **{k: params.get(k) for k in CHAIN_KEYS if k in params}},
    }


def chain_fingerprint(chain: dict[str, Any]) -> str:
    """SHA-256 of the chain's canonical JSON."""
    text = json.dumps(chain, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def new_record_id(now: float | None = None) -> str:
    """A sortable, unique id: UTC time plus a random suffix."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class CalibrationPoint:
    """One averaged point: its gas, the cylinder's concentration and the window's readings."""

    concentration_ppm: float
    gas: str
    cylinder: str | None
    measured_at: float
    duration_s: float
    readings: dict[str, Any]

    @property
    def amplitude(self) -> float:
        """The compensated mean amplitude the fit uses."""
        return float(self.readings["amplitude"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {"concentration_ppm": self.concentration_ppm, "gas": self.gas,
                "cylinder": self.cylinder, "measured_at": iso_utc(self.measured_at),
                "measured_epoch": self.measured_at, "duration_s": round(self.duration_s, 3),
                "readings": dict(self.readings)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationPoint:
        """Inverse of ``to_dict``."""
        return cls(float(data["concentration_ppm"]), str(data["gas"]),
                   None if data.get("cylinder") is None else str(data["cylinder"]),
                   float(data["measured_epoch"]), float(data["duration_s"]),
                   dict(data["readings"]))


@dataclass(frozen=True)
class CalibrationRecord:
    """A stored calibration (see the module's docstring)."""

    id: str
    created: float
    operator: str
    node_id: str
    gas: str
    points: tuple[CalibrationPoint, ...]
    fit: FitResult
    firmware_version: str
    chain: dict[str, Any]
    fingerprint: str
    note: str = ""
    schema: int = field(default=RECORD_SCHEMA)

    @property
    def coefficients(self) -> list[float]:
        """The fit's coefficients, c0 first."""
        return list(self.fit.coefficients)

    def to_dict(self) -> dict[str, Any]:
        """The record's JSON document."""
        return {
            "schema": self.schema, "id": self.id, "created": iso_utc(self.created),
            "created_epoch": self.created, "operator": self.operator, "node_id": self.node_id,
            "gas": self.gas, "note": self.note,
            "points": [p.to_dict() for p in self.points], "fit": self.fit.to_dict(),
            "firmware_version": self.firmware_version,
            "signal_chain": {"fingerprint": self.fingerprint, "settings": self.chain},
        }

    def summary(self) -> dict[str, Any]:
        """The few fields a list shows."""
        return {"id": self.id, "created": iso_utc(self.created), "operator": self.operator,
                "node_id": self.node_id, "degree": self.fit.degree,
                "points": len(self.points), "coefficients": self.coefficients,
                "r_squared": self.fit.r_squared,
                "concentration_range": list(self.fit.concentration_range)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationRecord:
        """Parse a record; CalibrationError names what is wrong with it."""
        try:
            schema = int(data["schema"])
            if schema > RECORD_SCHEMA:
                raise CalibrationError(
                    f"calibration record schema {schema} is newer than this firmware's "
                    f"{RECORD_SCHEMA}")
            chain = data["signal_chain"]
            return cls(
                id=str(data["id"]), created=float(data["created_epoch"]),
                operator=str(data["operator"]), node_id=str(data["node_id"]),
                gas=str(data["gas"]), note=str(data.get("note", "")),
                points=tuple(CalibrationPoint.from_dict(p) for p in data["points"]),
                fit=FitResult.from_dict(data["fit"]),
                firmware_version=str(data["firmware_version"]),
                chain=dict(chain["settings"]), fingerprint=str(chain["fingerprint"]),
                schema=schema)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            if isinstance(exc, CalibrationError):
                raise
            raise CalibrationError(f"malformed calibration record: {type(exc).__name__} "
                                   f"{exc}") from None
