"""The live register image: the map's addresses filled from the running appliance.

Read the way the web API reads: ComputingState's immutable results (a dict copy, no lock the
DSP thread takes), the actions' published state, the analyzer's counters. An image is built
at most once per new result or 100 ms and shared by every request until then, so a 32-bit
value and its neighbours come from one snapshot and 20 polling clients cost one build.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from firmware.actions.base import ActionHandler
from firmware.actions.triggers import DataTimeoutTrigger
from firmware.config.modbus import ModbusSettings
from firmware.modbus import encoding
from firmware.modbus.registers import (
    ACTION_BLOCK,
    ACTION_FIELDS,
    COIL_ACK_ALL,
    COIL_ACK_BASE,
    COIL_ENABLE_BASE,
    GLOBAL_FIELDS,
    GLOBAL_SIZE,
    LAYOUT_VERSION,
    NODE_BLOCK,
    NODE_FIELDS,
    Field,
    RegisterMap,
)
from firmware.state import ComputingResult

if TYPE_CHECKING:
    from firmware.app.appliance import Appliance

#: an image is rebuilt when a new result arrives or after this long (ages advance)
MAX_IMAGE_AGE_S = 0.1


def alarm_triggers(handler: ActionHandler) -> set[str]:
    """Triggers that mean an alarm (data timeouts mean stale data, not an alarm)."""
    return {t.name or "" for t in handler.params.all_triggers()
            if not isinstance(t, DataTimeoutTrigger)}


class RegisterImage:
    """Input registers and coil states of one appliance, as the map lays them out."""

    def __init__(self, appliance: Appliance, register_map: RegisterMap,
                 settings: ModbusSettings) -> None:
        self.appliance = appliance
        self.map = register_map
        self.settings = settings
        self.order = settings.word_order
        by_id = {h.node_id: h for h in appliance.handlers}
        #: the map's actions and their handlers (None: not running, e.g. failed to build)
        self.handlers: list[ActionHandler | None] = [by_id.get(a.action_id)
                                                     for a in register_map.actions]
        self._alarms = [alarm_triggers(h) if h is not None else set() for h in self.handlers]
        analyzer = appliance.analyzer
        frame_s = analyzer.frame_size / analyzer.sample_rate
        #: older than this, a result is not fresh (the web API's health uses the same)
        self.stale_s = max(5 * frame_s, 2.0)
        self._key: tuple[int, int] = (-1, -1)
        self._registers: dict[int, int] = {}
        self.builds = 0

    # ------------------------------------------------------------------- registers
    def input_registers(self) -> dict[int, int]:
        """Address -> value of every readable input register (a shared, unchanging dict:
        callers only read it)."""
        key = (self.appliance.analyzer.state.updates, int(time.monotonic() / MAX_IMAGE_AGE_S))
        if key != self._key:
            self._registers = self._build()
            self._key = key
            self.builds += 1
        return self._registers

    def _build(self) -> dict[int, int]:
        appliance = self.appliance
        analyzer = appliance.analyzer
        now = time.monotonic()
        fault = analyzer.fault is not None
        out: dict[int, int] = {}
        results = analyzer.state.snapshot()
        fresh_any = False
        for i, (node_id, _kind) in enumerate(self.map.nodes):
            result = results.get(node_id)
            fresh = result is not None and result.age_s(now) <= self.stale_s
            fresh_any = fresh_any or fresh
            base = self.map.node_address(i)
            for offset in range(NODE_BLOCK):
                out[base + offset] = 0
            for field in NODE_FIELDS:
                self._put(out, base, field, self._node_value(field, result, now))
            out[base + 21] = self._node_bits(node_id, result, fresh, fault)
        unacked = active = False
        for i, handler in enumerate(self.handlers):
            base = self.map.action_address(i)
            for offset in range(ACTION_BLOCK):
                out[base + offset] = 0
            if handler is None:
                continue
            names = self.map.actions[i].triggers
            on = set(handler.engine.active)
            acked = set(handler.acknowledged) & on
            alarms = on & self._alarms[i] if handler.enabled else set()
            active = active or bool(alarms)
            unacked = unacked or bool(alarms - acked)
            timeouts = {name for name, _node in self.map.actions[i].timeout_triggers}
            bits = (handler.enabled << 0 | bool(on) << 1 | bool(on - acked) << 2
                    | bool(on & timeouts) << 3 | handler.failed << 4 | fault << 5)
            values: dict[str, float | int] = {
                "status": bits,
                "active_triggers": _bitmap(names, on),
                "acknowledged_triggers": _bitmap(names, acked),
                "trigger_count": len(names),
                "triggers_fired": handler.triggers, "failures": handler.failures}
            for field in ACTION_FIELDS:
                self._put(out, base, field, values[field.name])
        status = (fault << 0 | (not fresh_any) << 1 | unacked << 2 | active << 3
                  | self.settings.writes_enabled << 4)
        globals_: dict[str, float | int] = {
            "heartbeat": analyzer.frames & 0xFFFF, "status": status,
            "layout_version": LAYOUT_VERSION, "node_count": len(self.map.nodes),
            "node_base": self.map.node_address(0), "node_block": NODE_BLOCK,
            "action_count": len(self.map.actions),
            "action_base": self.map.action_address(0), "action_block": ACTION_BLOCK,
            "word_order": 0 if self.order == "big" else 1,
            "uptime": int(now - appliance.started_monotonic), "frames": analyzer.frames,
            "overruns": analyzer.overruns}
        for offset in range(GLOBAL_SIZE):
            out[offset] = 0
        for field in GLOBAL_FIELDS:
            self._put(out, 0, field, globals_[field.name])
        return out

    def _node_value(self, field: Field, result: ComputingResult | None,
                    now: float) -> float | None:
        if result is None:
            return None
        if field.source == "age":
            return result.age_s(now)
        if field.source == "sequence":
            return result.sequence
        if field.source == "status":
            return 0
        value = getattr(result, field.source)
        return float(value) if value is not None else None

    def _node_bits(self, node_id: str, result: ComputingResult | None, fresh: bool,
                   fault: bool) -> int:
        timeout = False
        for handler, action in zip(self.handlers, self.map.actions, strict=True):
            if handler is None:
                continue
            names = [name for name, node in action.timeout_triggers if node == node_id]
            if names and set(names) & set(handler.engine.active):
                timeout = True
        return ((result is not None) << 0 | fresh << 1
                | bool(result is not None and result.detected) << 2
                | bool(result is not None and result.clamped) << 3
                | timeout << 4 | fault << 5)

    def _put(self, out: dict[int, int], base: int, field: Field,
             value: float | int | None) -> None:
        address = base + field.offset
        kind = field.kind
        if kind == "float32":
            out[address], out[address + 1] = encoding.float32(value, self.order)
        elif kind == "int32":
            out[address], out[address + 1] = encoding.int32(value, field.scale, self.order)
        elif kind == "int16":
            out[address] = encoding.int16(value, field.scale)
        elif kind == "uint32":
            number = 0 if value is None or (isinstance(value, float) and math.isnan(value)) \
                else int(value)
            out[address], out[address + 1] = encoding.uint32(number, self.order)
        elif kind == "uint16":
            out[address] = encoding.uint16(value, field.scale)
        else:  # bits
            out[address] = int(value or 0) & 0xFFFF

    # ------------------------------------------------------------------------ coils
    def coil(self, address: int) -> bool:
        """A coil's state (holding registers read the same as 0/1)."""
        if address == COIL_ACK_ALL:
            return any(h is not None and h.enabled and h.unacknowledged_active
                       for h in self.handlers)
        if COIL_ENABLE_BASE <= address < COIL_ENABLE_BASE + len(self.handlers):
            handler = self.handlers[address - COIL_ENABLE_BASE]
            return handler is not None and handler.enabled
        handler = self.handlers[address - COIL_ACK_BASE]
        return handler is not None and bool(handler.unacknowledged_active)


def _bitmap(names: tuple[str, ...], on: set[str]) -> int:
    return sum(1 << i for i, name in enumerate(names) if name in on)
