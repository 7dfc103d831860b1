"""The register map: which address holds what, made from a config alone.

Addresses are fixed by position, not by what happens to run: a global block at 0, one block
of ``NODE_BLOCK`` input registers per computing node from ``NODE_BASE`` (graph order), one
block of ``ACTION_BLOCK`` per action from ``ACTION_BASE``, and coils (mirrored by holding
registers at the same addresses) for the operator's writes. Adding a node moves no other
node's values; `pafw modbus map` prints this table and docs/modbus.md explains it.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware.actions.base import ActionNode
from firmware.actions.triggers import CustomTrigger, DataTimeoutTrigger
from firmware.config.models import Config
from firmware.dsp.registry import get_node_type
from firmware.errors import ConfigError

LAYOUT_VERSION = 1
GLOBAL_BASE, GLOBAL_SIZE = 0, 16
NODE_BASE, NODE_BLOCK, MAX_NODES = 100, 32, 28
ACTION_BASE, ACTION_BLOCK, MAX_ACTIONS = 1000, 16, 64
#: coils and holding registers: acknowledge-all, per-action enable, per-action acknowledge
COIL_ACK_ALL, COIL_ENABLE_BASE, COIL_ACK_BASE = 0, 100, 200
#: bits of a trigger bit field: one per trigger, in configuration order
MAX_TRIGGERS = 16


@dataclass(frozen=True)
class Field:
    """One value of a block: offset, width in registers, type and scale, what it means."""

    offset: int
    name: str
    kind: str  # float32 | int32 | int16 | uint16 | uint32 | bits
    scale: float
    unit: str
    source: str  # the ComputingResult field (or a derived value) it shows
    description: str

    @property
    def width(self) -> int:
        """Registers the value spans."""
        return 2 if self.kind in ("float32", "int32", "uint32") else 1


#: the block of one computing node (offsets within the block)
NODE_FIELDS: tuple[Field, ...] = (
    Field(0, "concentration", "float32", 1, "ppm", "concentration_ppm", "concentration"),
    Field(2, "amplitude", "float32", 1, "input units", "amplitude", "peak amplitude"),
    Field(4, "frequency", "float32", 1, "Hz", "frequency_hz", "peak frequency"),
    Field(6, "snr", "float32", 1, "dB", "snr_db", "signal-to-noise ratio"),
    Field(8, "concentration_x100", "int32", 100, "ppm", "concentration_ppm", "ppm × 100"),
    Field(10, "amplitude_x1e6", "int32", 1e6, "input units", "amplitude",
          "amplitude × 10⁶ (micro input units)"),
    Field(12, "frequency_x100", "int32", 100, "Hz", "frequency_hz", "Hz × 100"),
    Field(14, "snr_x100", "int32", 100, "dB", "snr_db", "dB × 100"),
    Field(16, "concentration_i16", "int16", 1, "ppm", "concentration_ppm", "whole ppm"),
    Field(17, "amplitude_db_x100", "int16", 100, "dB", "amplitude_db",
          "amplitude in dB × 100"),
    Field(18, "frequency_i16", "int16", 1, "Hz", "frequency_hz", "whole Hz"),
    Field(19, "snr_x100_i16", "int16", 100, "dB", "snr_db", "dB × 100"),
    Field(20, "age", "uint16", 10, "0.1 s", "age", "age of the value in 0.1 s, saturating "
          "at 65535 (also: no result yet)"),
    Field(21, "status", "bits", 1, "", "status", "node status bits (below)"),
    Field(22, "sequence", "uint32", 1, "", "sequence", "frame sequence of the result "
          "(changes with every new value)"),
    Field(24, "amplitude_db", "float32", 1, "dB", "amplitude_db", "peak amplitude in dB"),
)
#: node status bits
NODE_BITS = {0: "has a result", 1: "fresh (younger than the stale limit)",
             2: "peak detected", 3: "clamped (concentration at min_ppm/max_ppm)",
             4: "data timeout (a data_timeout trigger on this node is active)",
             5: "appliance fault (the DSP loop stopped)",
             6: "calibration due (reserved: always 0 until calibration tracking exists)",
             8: "bits 8-11: measurement-cycle phase (reserved: always 0 until cycles exist)"}

GLOBAL_FIELDS: tuple[Field, ...] = (
    Field(0, "heartbeat", "uint16", 1, "", "frames", "DSP frames processed, modulo 65536: "
          "stands still when the measurement stops"),
    Field(1, "status", "bits", 1, "", "status", "appliance status bits (below)"),
    Field(2, "layout_version", "uint16", 1, "", "", f"register layout version "
          f"({LAYOUT_VERSION})"),
    Field(3, "node_count", "uint16", 1, "", "", "computing nodes (blocks from "
          f"{NODE_BASE})"),
    Field(4, "node_base", "uint16", 1, "", "", f"address of the first node block "
          f"({NODE_BASE})"),
    Field(5, "node_block", "uint16", 1, "", "", f"registers per node block ({NODE_BLOCK})"),
    Field(6, "action_count", "uint16", 1, "", "", f"actions (blocks from {ACTION_BASE})"),
    Field(7, "action_base", "uint16", 1, "", "", f"address of the first action block "
          f"({ACTION_BASE})"),
    Field(8, "action_block", "uint16", 1, "", "", f"registers per action block "
          f"({ACTION_BLOCK})"),
    Field(9, "word_order", "uint16", 1, "", "", "0: big (high word first), 1: little"),
    Field(10, "uptime", "uint32", 1, "s", "", "seconds since the appliance started"),
    Field(12, "frames", "uint32", 1, "", "", "DSP frames processed"),
    Field(14, "overruns", "uint16", 1, "", "", "frames processed late (saturating)"),
)
GLOBAL_BITS = {0: "appliance fault (the DSP loop stopped)",
               1: "stale (no fresh result)",
               2: "unacknowledged alarm active", 3: "alarm active (acknowledged or not)",
               4: "writes enabled (modbus.writes_enabled)",
               5: "calibration due (reserved: always 0)",
               8: "bits 8-11: measurement-cycle phase (reserved: always 0)"}

ACTION_FIELDS: tuple[Field, ...] = (
    Field(0, "status", "bits", 1, "", "status", "action status bits (below)"),
    Field(1, "active_triggers", "bits", 1, "", "active", "bit i: trigger i active"),
    Field(2, "acknowledged_triggers", "bits", 1, "", "acknowledged",
          "bit i: trigger i acknowledged"),
    Field(3, "trigger_count", "uint16", 1, "", "", "triggers (bits used above)"),
    Field(4, "triggers_fired", "uint32", 1, "", "triggers", "trigger events so far"),
    Field(6, "failures", "uint32", 1, "", "failures", "failed outcomes so far"),
)
ACTION_BITS = {0: "enabled", 1: "a trigger is active", 2: "an active trigger is "
               "unacknowledged", 3: "data timeout (a data_timeout trigger is active)",
               4: "failed (a script action parked after repeated deaths)",
               5: "appliance fault"}


@dataclass(frozen=True)
class ActionEntry:
    """An action of the map: its id, type and the triggers that have a bit."""

    action_id: str
    type_name: str
    triggers: tuple[str, ...]
    timeout_triggers: tuple[tuple[str, str], ...]  # (trigger name, watched node)


@dataclass(frozen=True)
class Row:
    """One line of the printed map."""

    table: str
    address: int
    kind: str
    name: str
    meaning: str


class RegisterMap:
    """Addresses for one config's nodes and actions (in graph order)."""

    def __init__(self, nodes: list[tuple[str, str]], actions: list[ActionEntry]) -> None:
        if len(nodes) > MAX_NODES:
            raise ConfigError(f"modbus: {len(nodes)} computing nodes, the register map has "
                              f"room for {MAX_NODES}")
        if len(actions) > MAX_ACTIONS:
            raise ConfigError(f"modbus: {len(actions)} actions, the register map has room "
                              f"for {MAX_ACTIONS}")
        self.nodes = nodes  # (node id, result kind)
        self.actions = actions

    @classmethod
    def from_config(cls, config: Config) -> RegisterMap:
        """The map of ``config``'s graph: computing nodes and actions in graph order."""
        graph = config.processing.default_graph
        nodes: list[tuple[str, str]] = []
        actions: list[ActionEntry] = []
        for node_id in graph.topological_order():
            node = graph.node(node_id)
            node_cls = get_node_type(node.type)
            if node_cls is None:
                continue
            if node_cls.computing:
                nodes.append((node_id, node_cls.result_kind or ""))
            elif issubclass(node_cls, ActionNode):
                triggers = [t for t in node.params.all_triggers()
                            if not isinstance(t, CustomTrigger)]
                actions.append(ActionEntry(
                    node_id, node.type, tuple(t.name or "" for t in triggers[:MAX_TRIGGERS]),
                    tuple((t.name or "", t.node) for t in triggers
                          if isinstance(t, DataTimeoutTrigger))))
        return cls(nodes, actions)

    # ------------------------------------------------------------------ addresses
    def node_address(self, index: int) -> int:
        """First input register of the ``index``-th node's block."""
        return NODE_BASE + index * NODE_BLOCK

    def action_address(self, index: int) -> int:
        """First input register of the ``index``-th action's block."""
        return ACTION_BASE + index * ACTION_BLOCK

    def input_ranges(self) -> list[tuple[int, int]]:
        """Readable input registers as (first, end) ranges; anything else is illegal."""
        ranges = [(GLOBAL_BASE, GLOBAL_BASE + GLOBAL_SIZE)]
        if self.nodes:
            ranges.append((NODE_BASE, self.node_address(len(self.nodes))))
        if self.actions:
            ranges.append((ACTION_BASE, self.action_address(len(self.actions))))
        return ranges

    def coil_addresses(self) -> set[int]:
        """Coils (and holding registers) that exist."""
        count = len(self.actions)
        return {COIL_ACK_ALL, *range(COIL_ENABLE_BASE, COIL_ENABLE_BASE + count),
                *range(COIL_ACK_BASE, COIL_ACK_BASE + count)}

    # ------------------------------------------------------------------- printing
    def rows(self) -> list[Row]:
        """Every address with its meaning, in address order per table."""
        rows = [Row("input", GLOBAL_BASE + f.offset, f.kind, f"global.{f.name}",
                    f.description) for f in GLOBAL_FIELDS]
        for i, (node_id, kind) in enumerate(self.nodes):
            base = self.node_address(i)
            rows += [Row("input", base + f.offset, _type(f), f"{node_id}.{f.name}",
                         f"{f.description} ({kind} node)") for f in NODE_FIELDS]
        for i, action in enumerate(self.actions):
            base = self.action_address(i)
            bits = ", ".join(f"bit {b}: {n}" for b, n in enumerate(action.triggers))
            for f in ACTION_FIELDS:
                meaning = f.description
                if f.name in ("active_triggers", "acknowledged_triggers"):
                    meaning = f"{meaning} ({bits or 'no triggers'})"
                rows.append(Row("input", base + f.offset, f.kind, f"{action.action_id}."
                                f"{f.name}", meaning))
        rows.append(Row("coil", COIL_ACK_ALL, "bit", "acknowledge_all", "write 1: "
                        "acknowledge every active alarm; reads 1 while one is unacknowledged"))
        for i, action in enumerate(self.actions):
            rows.append(Row("coil", COIL_ENABLE_BASE + i, "bit", f"{action.action_id}."
                            "enabled", "reads the enabled state; write 1 enable, 0 disable"))
        for i, action in enumerate(self.actions):
            rows.append(Row("coil", COIL_ACK_BASE + i, "bit", f"{action.action_id}."
                            "acknowledge", "write 1: acknowledge its active triggers; reads "
                            "1 while one is unacknowledged"))
        return rows

    def format_text(self) -> str:
        """The map as aligned text columns."""
        lines = [f"{'table':<6} {'address':>7}  {'type':<8} {'name':<36} meaning"]
        lines += [f"{r.table:<6} {r.address:>7}  {r.kind:<8} {r.name:<36} {r.meaning}"
                  for r in self.rows()]
        lines.append("holding registers mirror the coils at the same addresses (0/1).")
        return "\n".join(lines) + "\n"

    def format_markdown(self) -> str:
        """The map as a Markdown table (docs/modbus.md's example)."""
        lines = ["| table | address | type | name | meaning |", "|---|---:|---|---|---|"]
        lines += [f"| {r.table} | {r.address} | {r.kind} | `{r.name}` | {r.meaning} |"
                  for r in self.rows()]
        lines.append("")
        lines.append("Holding registers mirror the coils at the same addresses (0 or 1).")
        return "\n".join(lines) + "\n"


def _type(field: Field) -> str:
    if field.kind in ("int32", "int16") and field.scale != 1:
        return f"{field.kind}×{field.scale:g}"
    return field.kind
