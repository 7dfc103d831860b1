"""``cycle:``: the measurement cycle, named phases that drive relays and LEDs on a schedule.

A cycle is a list of phases run in order (``purge`` with the pump on, ``settle``,
``measure``, ``idle``, ...), each with a duration and the state of the outputs it drives;
``repeat`` runs it a number of times (null: until the appliance stops). With ``inlets``, the
phases run once per inlet (gas sample point) in turn, with that inlet's valve relay on for
all of them and every other inlet's valve off. Results carry the phase they were captured in;
each measure phase ends with a ``cycle_average`` result per averaged node (mean, std, n).

Kept in the config package (the runner, ``app/cycle.py``, sits above it) and free of any
import of hal/: the names of relays and LEDs are checked against the ``hal`` section by
:func:`cycle_problems`, which the root model calls, so each error is located at its key.
Example::

    cycle:
      enabled: true
      repeat: null                 # null: forever
      phases:
        - {name: purge, duration_s: 30, relays: {pump: true}}
        - {name: settle, duration_s: 10}
        - {name: measure, duration_s: 60, measure: true, leds: {busy: blink}}
        - {name: idle, duration_s: 20}
      inlets:
        - {name: room, valve: valve_a}
        - {name: outdoor, valve: valve_b}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from firmware.strict_model import StrictModel

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


def _led_word(value: object) -> object:
    """YAML reads ``on``/``off``/``true`` as booleans: they mean on and off."""
    if value is True:
        return "on"
    if value is False:
        return "off"
    return value


#: a LED's state during a phase: on, off, or one of its patterns
LedState = Annotated[Literal["on", "off", "blink", "heartbeat"], BeforeValidator(_led_word)]


class PhaseSettings(StrictModel):
    """One phase: its name (stamped on every result captured in it), how long it lasts, and
    the outputs it drives. A driven output not named here is off during this phase."""

    name: Identifier
    duration_s: float = Field(gt=0, allow_inf_nan=False)
    measure: bool = Field(False, description="results of this phase are averaged into a "
                          "cycle_average at its end")
    relays: dict[str, bool] = Field(default_factory=dict, description="relay name: on")
    leds: dict[str, LedState] = Field(default_factory=dict,
                                      description="LED name: on, off, blink or heartbeat")


class InletSettings(StrictModel):
    """One gas sample point: its name (carried by its cycle averages) and its valve relay."""

    name: Identifier
    valve: str = Field(min_length=1, description="the relay (hal.relays) that opens it")


class CycleSettings(StrictModel):
    """The ``cycle`` section; off unless ``enabled``."""

    enabled: bool = False
    repeat: int | None = Field(None, ge=1, description="cycles to run; null: until stopped")
    nodes: list[str] = Field(
        default_factory=list, description="computing nodes averaged over each measure phase; "
        "empty: every concentration node, or every peak/lockin node if there is none")
    phases: list[PhaseSettings] = Field(default_factory=list)
    inlets: list[InletSettings] = Field(default_factory=list)

    @field_validator("phases", "inlets")
    @classmethod
    def _names_unique(cls, value: list[PhaseSettings] | list[InletSettings],
                      info: ValidationInfo) -> list[PhaseSettings] | list[InletSettings]:
        names = [item.name for item in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            what = "phase" if info.field_name == "phases" else "inlet"
            raise ValueError(f"{what} names must be unique, {', '.join(dupes)} appear more "
                             "than once")
        return value

    @model_validator(mode="after")
    def _has_measure_phase(self) -> CycleSettings:
        if self.enabled and not any(p.measure for p in self.phases):
            names = ", ".join(p.name for p in self.phases) or "none"
            raise ValueError(f"an enabled cycle needs a phase with 'measure: true' (phases: "
                             f"{names})")
        return self

    @property
    def measure_phases(self) -> frozenset[str]:
        """The names of the phases whose results are averaged."""
        return frozenset(p.name for p in self.phases if p.measure)

    def driven_relays(self) -> list[str]:
        """Every relay the cycle drives (phases and inlet valves), in first-use order."""
        names = [n for p in self.phases for n in p.relays] + [i.valve for i in self.inlets]
        return list(dict.fromkeys(names))

    def driven_leds(self) -> list[str]:
        """Every LED the cycle drives, in first-use order."""
        return list(dict.fromkeys(n for p in self.phases for n in p.leds))


Location = tuple[str | int, ...]


def cycle_problems(cycle: CycleSettings, relays: Mapping[str, object],
                   leds: Mapping[str, object],
                   node_kinds: Mapping[str, str]) -> Iterator[tuple[Location, str, str]]:
    """Names the cycle uses that the rest of the config lacks: ``(key path, message, the
    name)``.

    ``relays``/``leds`` are the ``hal`` section's outputs, ``node_kinds`` the graph's
    computing nodes (id -> result kind).

    >>> c = CycleSettings.model_validate({"phases": [
    ...     {"name": "m", "duration_s": 1, "measure": True, "relays": {"pmp": True}}]})
    >>> list(cycle_problems(c, {"pump": None}, {}, {}))
    [(('cycle', 'phases', 0, 'relays', 'pmp'), "no relay 'pmp' in hal.relays (known: pump)", \
'pmp')]
    """
    for index, phase in enumerate(cycle.phases):
        for name in phase.relays:
            if name not in relays:
                yield (("cycle", "phases", index, "relays", name),
                       _unknown("relay", name, relays), name)
        for name in phase.leds:
            if name not in leds:
                yield ("cycle", "phases", index, "leds", name), _unknown("LED", name, leds), name
    for index, inlet in enumerate(cycle.inlets):
        if inlet.valve not in relays:
            yield (("cycle", "inlets", index, "valve"), _unknown("relay", inlet.valve, relays),
                   inlet.valve)
        for p_index, phase in enumerate(cycle.phases):
            if inlet.valve in phase.relays:
                yield (("cycle", "phases", p_index, "relays", inlet.valve),
                       f"relay {inlet.valve!r} is the valve of inlet {inlet.name!r}: the "
                       "cycle opens it for that inlet's phases, a phase may not set it too",
                       inlet.valve)
    averaged = ("concentration", "peak", "lockin")
    for index, node in enumerate(cycle.nodes):
        kind = node_kinds.get(node)
        if kind not in averaged:
            known = ", ".join(sorted(n for n, k in node_kinds.items() if k in averaged))
            what = "not in the graph" if kind is None else f"a {kind} node"
            yield (("cycle", "nodes", index),
                   f"node {node!r} is {what}; a cycle averages concentration, peak or lockin "
                   f"nodes ({known or 'none in the graph'})", node)


def _unknown(kind: str, name: str, known: Mapping[str, object]) -> str:
    section = "hal.relays" if kind == "relay" else "hal.leds"
    listed = ", ".join(sorted(known)) or "none configured"
    return f"no {kind} {name!r} in {section} (known: {listed})"
