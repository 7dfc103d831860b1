"""The measurement cycle: named phases that drive relays and LEDs on a monotonic schedule.

:class:`CycleRunner` runs on its own thread, never on the DSP thread: for each cycle, inlet
and phase it drives the outputs through the HAL (so relays keep their minimum on/off times),
sets ``state.marks.phase`` (one attribute write that every node stamps on the results it
publishes from then on) and waits for the phase's end; phase ends are counted from the
cycle's start, so a late wake-up never shifts the schedule. At the end of each measure phase
it averages the phase's results (:mod:`firmware.app.cycle_average`) into ``cycle_average``
results, which the DSP thread publishes like any other result (triggers, actions, history,
MQTT measurements) and which the runner also hands to ``on_average`` (the MQTT topic).

Any fault stops the cycle safely: a relay or LED the HAL cannot drive, a fault of the
analyzer, :meth:`stop` (appliance stop, config change). Every output it drives then goes to
its safe state (off now, ignoring minimum times), the phase mark is cleared, an event is
logged and ``get_status()["reason"]`` says why. A cycle that runs its ``repeat`` count to the
end switches its outputs off normally and reports ``finished``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from firmware.actions.event_log import ActionEventLog
from firmware.app.cycle_average import CycleTap, PhaseWindow, average_node_id
from firmware.config.cycle import CycleSettings, PhaseSettings
from firmware.errors import PafwError
from firmware.hal.hal import Hal
from firmware.state import ComputingResult, ComputingState

log = logging.getLogger("pafw.cycle")

#: the id the cycle's entries carry in the event log
EVENT_SOURCE = "cycle"
#: longest wait, at a measure phase's end, for the DSP thread to finish its frame
TAP_WAIT_S = 2.0


class CycleStop(Exception):  # noqa: N818 - a signal inside the thread, not an error
    """Raised inside the runner's thread when the cycle must stop (the reason is the text)."""


class CycleRunner:
    """Runs ``settings`` on ``hal``, stamping phases on ``state``'s results.

    ``nodes`` maps each averaged node to its result kind; ``fault`` reports the analyzer's
    fault (polled while waiting); ``ready`` says when the first phase may begin (the
    appliance waits for the DSP thread's first frame, so a slow start of the audio source
    does not eat into the first measure phase); ``on_average`` receives each measure
    phase's averages (on the runner's thread: it must not block long); ``poll_s`` bounds
    how late a fault or a stop is noticed and how often the tap is drained.
    """

    def __init__(self, settings: CycleSettings, *, hal: Hal | None, state: ComputingState,
                 nodes: Mapping[str, str], events: ActionEventLog | None = None,
                 fault: Callable[[], str | None] = lambda: None,
                 ready: Callable[[], bool] = lambda: True,
                 on_average: Callable[[list[ComputingResult]], None] | None = None,
                 poll_s: float = 0.05, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._hal = hal
        self._state = state
        self._nodes = dict(nodes)
        self._events = events
        self._fault = fault
        self._ready = ready
        self._on_average = on_average
        self._poll_s = poll_s
        self._clock = clock
        self.tap = CycleTap(state, self._nodes, settings.measure_phases)
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._status: dict[str, Any] = {
            "state": "idle", "reason": None, "cycle": 0, "inlet": None, "phase": None,
            "measure": False, "phase_index": None, "phase_duration_s": None,
            "phase_ends": None, "cycles_completed": 0, "averages_published": 0,
        }
        self._phase_ends: float | None = None
        self._latest: dict[str, dict[str, Any]] = {}
        self._sequence = 0
        self._window: PhaseWindow | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the cycle on its own thread (at its first phase)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="cycle", daemon=True)
        self._thread.start()

    def stop(self, reason: str = "stopped", timeout: float = 5.0) -> None:
        """Stop the cycle safely (outputs off now) and wait for its thread; idempotent."""
        self.halt(reason)
        if self._thread is not None:
            self._thread.join(timeout)

    def halt(self, reason: str) -> None:
        """Ask the cycle to stop without waiting (signal handlers, fatal paths): it switches
        nothing on any more and puts its outputs safe within ``poll_s``; never raises."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        self._set(state="running")
        self._record("cycle_started", {"phases": [p.name for p in self.settings.phases],
                                       "inlets": [i.name for i in self.settings.inlets],
                                       "repeat": self.settings.repeat})
        try:
            self._set(state="waiting")
            while not self._ready():
                self._stop.wait(self._poll_s)
                self._check()
            self._set(state="running")
            start = self._clock()
            offset = 0.0
            cycle = 0
            while self.settings.repeat is None or cycle < self.settings.repeat:
                cycle += 1
                inlets: list[tuple[str | None, str | None]] = [
                    (i.name, i.valve) for i in self.settings.inlets] or [(None, None)]
                for inlet, valve in inlets:
                    self._set(cycle=cycle, inlet=inlet)
                    for index, phase in enumerate(self.settings.phases):
                        offset += phase.duration_s
                        self._run_phase(index, phase, cycle, valve, inlet, start + offset)
                self._set(cycles_completed=cycle)
        except CycleStop as stop:
            self._end_safely(str(stop))
            return
        except Exception as exc:  # a HAL error or a bug: the outputs go safe either way
            reason = str(exc) if isinstance(exc, PafwError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, PafwError):
                log.exception("measurement cycle crashed")
            self._end_safely(reason, faulted=True)
            return
        self._finish()

    def _run_phase(self, index: int, phase: PhaseSettings, cycle: int, valve: str | None,
                   inlet: str | None, ends: float) -> None:
        self._check()
        self._drive(phase, valve)
        began = self._clock()
        frames = self._mark(phase.name)
        if self._window is not None:  # the measure phase before this one
            self._close_window(self._window, frames)
        window = (PhaseWindow(phase.name, inlet, cycle, self._nodes, began)
                  if phase.measure else None)
        self._window = window
        self._phase_ends = ends
        self._set(phase=phase.name, measure=phase.measure, phase_index=index,
                  phase_duration_s=phase.duration_s, phase_ends=time.time() + ends - began)
        log.info("cycle %d%s: phase %s for %.3g s", cycle,
                 f" inlet {inlet}" if inlet else "", phase.name, ends - began)
        self.tap.drain()  # results of an earlier phase, left over
        while True:
            now = self._clock()
            if now >= ends:
                break
            self._stop.wait(min(self._poll_s, ends - now))
            self._check()
            if window is not None:
                window.add(self.tap.drain())

    def _mark(self, phase: str | None) -> int:
        """Stamp ``phase`` on every result from now on; returns the tap's frame count then."""
        frames = self.tap.frames
        self._state.marks.phase = phase
        return frames

    def _close_window(self, window: PhaseWindow, frames: int) -> None:
        """Average a measure phase once the next phase's mark is set (no new result gets
        its name) and the DSP thread has finished the frame it was on then: every result
        stamped with it has been taken."""
        self._window = None
        deadline = self._clock() + TAP_WAIT_S
        while self.tap.frames <= frames and self._clock() < deadline:
            if self._stop.wait(0.005):
                return
        window.add(self.tap.drain())
        self._sequence += 1
        averages = window.averages(self._sequence, self._clock())
        for result in averages:
            self.tap.publish_later(result)
            self._latest[result.node_id] = result.to_dict()
        self._set(averages_published=self._status["averages_published"] + len(averages))
        self._record("cycle_average", {
            "cycle": window.cycle, "inlet": window.inlet, "phase": window.phase,
            "results": {r.node_id: {"concentration_ppm": r.to_dict()["concentration_ppm"],
                                    "amplitude": r.to_dict()["amplitude"],
                                    "n": r.average.n if r.average else 0}
                        for r in averages}})
        if self._on_average is not None:
            try:
                self._on_average(averages)
            except Exception:  # a consumer's failure never stops the cycle
                log.exception("cycle average consumer failed")

    def _check(self) -> None:
        """Raise CycleStop when asked to stop or when the analyzer has a fault."""
        if self._stop.is_set():
            raise CycleStop(self._stop_reason or "stopped")
        fault = self._fault()
        if fault is not None:
            raise CycleStop(f"analyzer fault: {fault}")

    def _drive(self, phase: PhaseSettings, valve: str | None) -> None:
        """Every output the cycle drives to this phase's state (unnamed ones off)."""
        if self._hal is None:
            return
        for name in self.settings.driven_relays():
            relay = self._hal.relay(name)
            on = phase.relays.get(name, False) or name == valve
            if on:
                relay.on()
            else:
                relay.off()
        for name in self.settings.driven_leds():
            led = self._hal.led(name)
            state = phase.leds.get(name, "off")
            if state == "blink":
                led.blink()
            elif state == "heartbeat":
                led.heartbeat()
            elif state == "on":
                led.on()
            else:
                led.off()

    def _end_safely(self, reason: str, *, faulted: bool = False) -> None:
        """Outputs safe, mark cleared, event logged, status says why (a measure phase cut
        short gives no average)."""
        self._state.marks.phase = None
        self._window = None
        self._safe_outputs()
        self._phase_ends = None
        stopped_by_request = self._stop.is_set() and not faulted
        level = logging.INFO if stopped_by_request else logging.ERROR
        log.log(level, "measurement cycle stopped, outputs safe: %s", reason)
        self._record("cycle_stopped", {"reason": reason, "faulted": not stopped_by_request})
        # the state last: whoever sees it sees the event and the safe outputs too
        self._set(state="stopped" if stopped_by_request else "faulted", reason=reason,
                  phase=None, measure=False, phase_index=None, phase_ends=None)

    def _safe_outputs(self) -> None:
        if self._hal is None:
            return
        outputs: list[Any] = [*(self._hal.relays.get(n) for n in self.settings.driven_relays()),
                              *(self._hal.leds.get(n) for n in self.settings.driven_leds())]
        for output in outputs:
            if output is None:
                continue
            try:
                output.safe_off()
            except Exception:
                log.exception("cycle: %r could not be switched off", output)

    def _finish(self) -> None:
        """The last cycle ended: its last average, outputs off (minimum times kept), state
        ``finished``."""
        frames = self._mark(None)
        if self._window is not None:
            self._close_window(self._window, frames)
        try:
            if self._hal is not None:
                for name in self.settings.driven_relays():
                    self._hal.relay(name).off()
                for name in self.settings.driven_leds():
                    self._hal.led(name).off()
        except Exception as exc:
            self._end_safely(str(exc), faulted=True)
            return
        self._phase_ends = None
        self._record("cycle_finished", {"cycles": self._status["cycles_completed"]})
        self._set(state="finished", phase=None, measure=False, phase_index=None,
                  phase_ends=None)

    # -- status --------------------------------------------------------------------------

    def _set(self, **changes: Any) -> None:
        with self._lock:
            self._status = {**self._status, **changes}

    def _record(self, kind: str, data: dict[str, Any]) -> None:
        if self._events is not None:
            self._events.record(EVENT_SOURCE, kind, data)

    def latest_averages(self) -> dict[str, dict[str, Any]]:
        """The newest cycle_average of each averaged node and inlet, as result dicts."""
        return dict(self._latest)

    def inlet_names(self) -> list[str | None]:
        """The inlets' names in order, or ``[None]`` for a cycle without inlets."""
        return [i.name for i in self.settings.inlets] or [None]

    def average_node_ids(self) -> list[str]:
        """Every node id the cycle's averages are published under."""
        return [average_node_id(n, i) for n in self._nodes for i in self.inlet_names()]

    def get_status(self) -> dict[str, Any]:
        """State, reason, cycle, inlet, phase, seconds left in it, counters, latest averages."""
        with self._lock:
            status = dict(self._status)
        ends = self._phase_ends
        status["time_left_s"] = (None if ends is None
                                 else round(max(0.0, ends - self._clock()), 3))
        status["phases"] = [{"name": p.name, "duration_s": p.duration_s,
                             "measure": p.measure} for p in self.settings.phases]
        status["inlets"] = [i.name for i in self.settings.inlets]
        status["repeat"] = self.settings.repeat
        status["nodes"] = list(self._nodes)
        status["tap_dropped"] = self.tap.dropped
        status["averages"] = self.latest_averages()
        return status
