"""Cross-checks of the signal chain: do the settings of different nodes agree?

Each node's parameters can be valid while the chain as a whole cannot work: a band-pass at
5000 Hz in front of a peak finder searching 2100-2700 Hz detects nothing, ever, and no single
node can tell. These checks walk each detector's upstream chain (as configured, before any
fusion) and compare frequencies:

- errors (the chain can never detect): a detector's search band (a peak finder's
  ``frequency_min``..``frequency_max``, a lock-in's ``reference_frequency``) entirely outside
  the pass band of a filter upstream (band-pass, low-pass, high-pass) or entirely inside the
  stop band of a band-stop;
- warnings (it works, but not as meant): a search band only partly passed by a filter; a
  frequency-deviation trigger expecting a frequency its peak finder never searches; the
  simulator's resonance outside the search band of the graph's detectors.

Each problem names the node and parameter; ``loader.load_config`` locates it in the file.
Nyquist limits need the stream's sample rate and are checked when the graph is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from firmware.config.processing import NodeSettings, ProcessingSettings
    from firmware.dsp.sources.settings import AcquisitionSettings

Band = tuple[float, float]


@dataclass(frozen=True)
class ChainProblem:
    """One disagreement: the node (by index and id), the parameter, and whether the chain can
    never work (``error``) or works badly (a warning)."""

    index: int
    node_id: str
    #: the parameter's key path under the node's ``parameters``
    key: tuple[str | int, ...]
    message: str
    error: bool


def _hz(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:g}"


def _band(band: Band) -> str:
    low, high = band
    if low == high:
        return f"{_hz(low)} Hz"
    if math.isinf(high):
        return f"above {_hz(low)} Hz"
    return f"{_hz(low)}-{_hz(high)} Hz"


def _search_band(node: NodeSettings) -> tuple[Band, tuple[str, ...]] | None:
    """What a detector listens to, and the parameter that sets it."""
    params = node.params
    if node.type == "peak_finder":
        key = "center_frequency" if params.center_frequency is not None else "frequency_min"
        return (params.frequency_min, params.frequency_max), (key,)
    if node.type == "lockin":
        return (params.reference_frequency, params.reference_frequency), \
            ("reference_frequency",)
    return None


def _filter_bands(node: NodeSettings) -> tuple[str, Band] | None:
    """("pass" or "stop", band) of a filter node."""
    params = node.params
    if params.band == "lowpass":
        return "pass", (0.0, params.cutoff_hz)
    if params.band == "highpass":
        return "pass", (params.cutoff_hz, math.inf)
    low, high = params.band_edges()
    if low is None or high is None:
        return None
    return ("pass" if params.band == "bandpass" else "stop"), (low, high)


def _passed(search: Band, kind: str, band: Band) -> float:
    """Fraction (0..1) of ``search`` the filter lets through (a single frequency: 0 or 1)."""
    low, high = search
    if kind == "pass":
        inside = max(0.0, min(high, band[1]) - max(low, band[0]))
        if high == low:
            return 1.0 if band[0] <= low <= band[1] else 0.0
    else:
        blocked = max(0.0, min(high, band[1]) - max(low, band[0]))
        if high == low:
            return 0.0 if band[0] <= low <= band[1] else 1.0
        inside = (high - low) - blocked
    return inside / (high - low)


def _filter_problems(processing: ProcessingSettings, index: int,
                     node: NodeSettings) -> list[ChainProblem]:
    found = _search_band(node)
    if found is None:
        return []
    search, key = found
    graph = processing.default_graph
    problems = []
    for upstream_id in graph.upstream_chain(node.id):
        upstream = graph.node(upstream_id)
        if upstream.type != "filter":
            continue
        bands = _filter_bands(upstream)
        if bands is None:
            continue
        kind, band = bands
        passed = _passed(search, kind, band)
        what = (f"{node.type} {node.id!r} listens to {_band(search)}, but the {kind} band of "
                f"the {upstream.params.band} filter {upstream_id!r} upstream is {_band(band)}")
        if passed <= 0.0:
            problems.append(ChainProblem(
                index, node.id, key, f"{what}: no signal it searches reaches it, so it can "
                f"never detect; put the filter and the search band on the same resonance",
                error=True))
        elif passed < 1.0:
            problems.append(ChainProblem(
                index, node.id, key, f"{what}: {100 * (1 - passed):.0f} % of the search band "
                f"is attenuated, a peak there is found weakened or not at all", error=False))
    return problems


def _trigger_problems(processing: ProcessingSettings, index: int,
                      node: NodeSettings) -> list[ChainProblem]:
    """Frequency-deviation triggers expecting a frequency their peak finders never search."""
    params: Any = node.params
    all_triggers = getattr(params, "all_triggers", None)
    if all_triggers is None:
        return []
    graph = processing.default_graph
    detectors = {n.id: n for n in graph.nodes if n.type == "peak_finder"}
    watched = [detectors[i] for i in (params.monitored_nodes or detectors) if i in detectors]
    problems = []
    for k, trigger in enumerate(all_triggers()):
        if getattr(trigger, "type", None) != "frequency_deviation":
            continue
        for detector in watched:
            if trigger.node is not None and trigger.node != detector.id:
                continue
            low, high = detector.params.frequency_min, detector.params.frequency_max
            nearest = min(max(trigger.expected_hz, low), high)
            if abs(nearest - trigger.expected_hz) > trigger.max_deviation_hz:
                problems.append(ChainProblem(
                    index, node.id, ("triggers", k, "expected_hz"),
                    f"trigger {trigger.name or k!r} expects {_hz(trigger.expected_hz)} Hz "
                    f"+/- {_hz(trigger.max_deviation_hz)} Hz, but peak_finder "
                    f"{detector.id!r} searches {_band((low, high))}: every detection is a "
                    f"deviation, so it fires as soon as a peak is found", error=False))
    return problems


def _simulator_problems(processing: ProcessingSettings,
                        acquisition: AcquisitionSettings) -> list[ChainProblem]:
    """The simulated resonance should be where the detectors listen (a demo that detects
    nothing looks like a broken analyzer)."""
    if acquisition.source != "simulator":
        return []
    resonance = acquisition.simulator.resonance_hz
    problems = []
    for index, node in enumerate(processing.default_graph.nodes):
        found = _search_band(node)
        if found is None or node.type != "peak_finder":
            continue
        (low, high), key = found
        if not low <= resonance <= high:
            problems.append(ChainProblem(
                index, node.id, key, f"the simulator's resonance (acquisition.simulator."
                f"resonance_hz: {_hz(resonance)} Hz) is outside the search band "
                f"{_band((low, high))} of peak_finder {node.id!r}", error=False))
    return problems


def chain_problems(processing: ProcessingSettings,
                   acquisition: AcquisitionSettings) -> list[ChainProblem]:
    """Every disagreement between the nodes of the signal chain (see the module doc)."""
    problems: list[ChainProblem] = []
    for index, node in enumerate(processing.default_graph.nodes):
        problems += _filter_problems(processing, index, node)
        problems += _trigger_problems(processing, index, node)
    problems += _simulator_problems(processing, acquisition)
    return problems
