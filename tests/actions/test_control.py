"""The control loop (firmware/actions/control.py) with real action handlers on its own thread:
results published to the state reach only the handlers that monitor their node, coalesced
to the newest per node; each action's events run one at a time and in order, a slow action
holds up neither another action nor trigger evaluation; a full event queue drops and counts;
ticks drive ``on_tick`` and data timeouts and survive a failing handler; ``stop`` lets queued
events run, stops every handler (even one that hangs) and ends the thread.

The handlers are small ``ActionHandler`` subclasses that record what the loop asks of them;
everything else (feed, state, trigger engine, loop) is the firmware's own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import firmware.dsp.nodes  # noqa: F401 - registers the computing node types
from firmware.actions import control
from firmware.actions.base import ActionContext, ActionHandler, ActionNode, ActionParams
from firmware.actions.control import ControlLoop
from firmware.actions.feed import ResultFeed
from firmware.actions.triggers import TriggerEvent
from firmware.dsp.node import BuildContext
from firmware.state import ComputingResult, ComputingState
from tests.waiting import holds_for, wait_until

NODE_TYPES = {"conc": "concentration", "conc2": "concentration", "peak": "peak_finder"}


class Recorder(ActionHandler):
    """Records what the loop asks of it; ``gate`` (set by default) holds ``on_event``."""

    def __init__(self, node: ActionNode, ctx: ActionContext) -> None:
        super().__init__(node, ctx)
        self.calls: list[str] = []
        self.handled: list[TriggerEvent] = []
        self.threads: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.in_event = threading.Event()
        self.event_s = 0.0
        self.seen_updates: list[dict[str, ComputingResult]] = []
        self.tick_count = 0
        self.fail_ticks = False
        self.hang_on_stop = False

    async def start(self) -> None:
        self.calls.append("start")
        await asyncio.sleep(0.01)  # a start that yields: nothing may run before it ends

    async def stop(self) -> None:
        self.calls.append("stop")
        if self.hang_on_stop:
            await asyncio.sleep(3600)

    async def on_event(self, event: TriggerEvent) -> bool:
        self.threads.add(threading.current_thread().name)
        self.calls.append(f"event {event.kind}")
        self.in_event.set()
        while not self.gate.is_set():
            await asyncio.sleep(0.005)
        if self.event_s:
            await asyncio.sleep(self.event_s)
        self.handled.append(event)
        self.in_event.clear()
        return True

    async def on_update(self, latest: dict[str, ComputingResult]) -> None:
        self.seen_updates.append(latest)

    async def on_tick(self, now: float) -> None:
        self.tick_count += 1
        if self.fail_ticks:
            raise RuntimeError("tick boom")

    def kinds(self) -> list[str]:
        return [e.kind for e in self.handled]


class RecorderNode(ActionNode):
    type_name = "test_recorder_action"
    Handler = Recorder


class Rig:
    """A ComputingState whose results a ResultFeed hands to a ControlLoop."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.state = ComputingState()
        self.feed = ResultFeed(self.state)
        self.ctx = ActionContext(state=self.state, device_id="test", state_dir=tmp_path)
        self.handlers: list[Recorder] = []
        self.loop: ControlLoop | None = None
        self.sequence = 0

    def handler(self, node_id: str, monitored: list[str], **params: Any) -> Recorder:
        build = BuildContext(sample_rate=48_000, frame_size=4096, input_channels=1,
                             state=self.state, state_dir=self.tmp_path,
                             node_types_by_id=dict(NODE_TYPES))
        params.setdefault("triggers", [{"type": "threshold", "kind": "concentration",
                                        "above": 100.0}])
        node = RecorderNode(node_id, ActionParams.model_validate(
            {"monitored_nodes": monitored, **params}), build)
        handler = Recorder(node, self.ctx)
        self.handlers.append(handler)
        return handler

    def start(self, **options: float) -> ControlLoop:
        self.loop = ControlLoop(list(self.handlers), self.feed, **options)
        self.loop.start()
        return self.loop

    def post(self, node_id: str, ppm: float) -> None:
        """Publish one concentration result (not flushed yet)."""
        self.sequence += 1
        self.state.publish(ComputingResult(
            node_id, "concentration", time.time(), time.monotonic(), self.sequence,
            detected=True, concentration_ppm=ppm))

    def send(self, node_id: str, ppm: float, *, handler: Recorder) -> None:
        """Publish and flush one result; wait until ``handler`` evaluated it."""
        before = handler.updates
        self.post(node_id, ppm)
        self.feed.flush()
        wait_until(lambda: handler.updates > before, what=f"{node_id}={ppm} evaluated")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path)
    yield rig
    if rig.loop is not None:
        for handler in rig.handlers:
            handler.gate.set()
        rig.loop.stop(timeout=5.0)


def test_results_reach_only_their_handlers_and_events_run_in_order(rig: Rig) -> None:
    a = rig.handler("a", ["conc"])
    b = rig.handler("b", ["conc2"])
    rig.start()
    assert a.calls == ["start"] and b.calls == ["start"]
    rig.send("conc", 50.0, handler=a)
    rig.send("conc", 150.0, handler=a)
    rig.send("conc", 20.0, handler=a)
    wait_until(lambda: len(a.handled) == 2, what="trigger and clear handled")
    assert a.kinds() == ["trigger", "clear"]
    assert a.calls == ["start", "event trigger", "event clear"]
    assert a.threads == {"control"}  # never on the caller's (the DSP) thread
    assert (a.updates, a.successes, a.failures) == (3, 2, 0)
    assert [sorted(u) for u in a.seen_updates] == [["conc"]] * 3
    assert a.seen_updates[-1]["conc"].concentration_ppm == 20.0
    assert b.updates == 0 and b.handled == [] and b.seen_updates == []
    status = rig.loop.get_status() if rig.loop else {}
    assert status["running"] is True and status["batches"] == 3
    assert status["results_posted"] == 3 and status["ahead_batches"] == 0
    assert status["actions"]["a"]["triggers"] == 1 and status["actions"]["b"]["updates"] == 0


def test_results_posted_before_start_are_taken_coalesced_to_the_newest(rig: Rig) -> None:
    a = rig.handler("a", ["conc", "conc2"])
    for ppm in (150.0, 20.0, 170.0, 30.0):
        rig.post("conc", ppm)
    rig.post("conc2", 500.0)
    rig.post("peak", 1.0)  # not monitored: neither evaluated nor counted as coalesced
    rig.start()
    wait_until(lambda: a.updates == 2, what="the batch evaluated")
    wait_until(lambda: len(a.handled) == 1, what="the conc2 trigger handled")
    assert a.coalesced == 3  # three older conc results never reached the trigger engine
    assert a.kinds() == ["trigger"] and a.handled[0].source_node_id == "conc2"
    assert a.latest["conc"].concentration_ppm == 30.0
    holds_for(lambda: len(a.handled) == 1, 0.3, "no event from the coalesced conc results")


def test_a_slow_action_holds_up_neither_others_nor_evaluation(rig: Rig) -> None:
    slow = rig.handler("slow", ["conc"])
    fast = rig.handler("fast", ["conc"])
    slow.gate.clear()
    rig.start()
    rig.send("conc", 150.0, handler=slow)
    rig.send("conc", 20.0, handler=slow)
    wait_until(lambda: fast.kinds() == ["trigger", "clear"], what="the fast action's events")
    assert slow.in_event.is_set() and slow.handled == []
    rig.send("conc", 160.0, handler=slow)  # evaluation goes on while the slow one waits
    wait_until(lambda: fast.kinds() == ["trigger", "clear", "trigger"])
    assert slow.updates == 3 and slow.triggers == 1  # counted when it starts acting on it
    slow.gate.set()
    wait_until(lambda: len(slow.handled) == 3, what="the slow action catching up")
    assert slow.kinds() == ["trigger", "clear", "trigger"]  # its own order kept


def test_a_full_event_queue_drops_and_counts(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(control, "EVENT_QUEUE_SIZE", 2)
    a = rig.handler("a", ["conc"])
    a.gate.clear()
    rig.start()
    rig.send("conc", 150.0, handler=a)
    wait_until(a.in_event.is_set, what="the first event being acted on")
    for ppm in (20.0, 150.0, 20.0, 150.0, 20.0):  # five more crossings: two fit the queue
        rig.send("conc", ppm, handler=a)
    assert a.event_drops == 3
    assert rig.loop is not None and rig.loop.get_status()["actions"]["a"]["event_drops"] == 3
    a.gate.set()
    wait_until(lambda: len(a.handled) == 3, what="the queued events")
    holds_for(lambda: len(a.handled) == 3, 0.3, "nothing beyond the queue's capacity runs")
    assert a.kinds() == ["trigger", "clear", "trigger"]


def publish_paced(rig: Rig, count: int, pause_s: float) -> None:
    """Publish ``count`` conc results from a thread of its own (as the DSP thread does),
    flushing after each and sleeping ``pause_s`` between them (no catch-up bursts)."""
    def produce() -> None:
        for i in range(count):
            rig.post("conc", float(i))
            rig.feed.flush()
            time.sleep(pause_s)

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join(120)


def test_a_dsp_loop_far_ahead_of_real_time_meets_few_coalesced_batches(rig: Rig) -> None:
    a = rig.handler("a", ["conc"])
    loop = rig.start(frame_s=0.02, min_gap_s=0.01, ahead_gap_s=0.3)
    start = time.monotonic()
    publish_paced(rig, 3000, 0.0002)  # at least 30 results per min_gap: far ahead
    elapsed = time.monotonic() - start
    wait_until(lambda: a.latest.get("conc") is not None
               and a.latest["conc"].sequence == rig.sequence, what="the last result taken")
    assert loop.ahead_batches >= 1
    # a batch per min_gap would be at least 50 in 0.5 s; ahead, one per ahead_gap
    assert loop.batches <= elapsed / 0.3 + 3
    assert a.updates + a.coalesced == 3000, "every result evaluated or counted coalesced"


def test_at_real_time_pace_every_result_is_evaluated(rig: Rig) -> None:
    a = rig.handler("a", ["conc"])
    loop = rig.start(frame_s=0.02, min_gap_s=0.01, ahead_gap_s=0.3)
    publish_paced(rig, 25, 0.02)
    wait_until(lambda: a.updates + a.coalesced == 25, what="the results taken")
    assert loop.ahead_batches == 0
    assert a.updates >= 20, "a loaded machine may coalesce a few, never the pace"


def test_ticks_drive_on_tick_and_data_timeouts(rig: Rig) -> None:
    a = rig.handler("a", ["conc"], triggers=[{"type": "data_timeout", "node": "conc",
                                              "timeout_s": 0.2}])
    loop = rig.start(tick_s=0.02)
    wait_until(lambda: a.kinds() == ["trigger"], what="the data timeout fired by a tick")
    assert a.handled[0].trigger_type == "data_timeout"
    assert a.tick_count >= 1 and loop.ticks >= 1
    rig.send("conc", 400.0, handler=a)  # fresh data clears it
    wait_until(lambda: a.kinds() == ["trigger", "clear"], what="the clear on fresh data")
    assert loop.get_status()["tick_lag_max_ms"] >= 0.0


class Unhurried(Recorder):
    """An action whose ticks may come slowly (as a python action without data timeouts)."""

    def needs_fast_ticks(self) -> bool:
        return False


def test_the_loop_ticks_slowly_while_no_action_needs_fast_ticks(rig: Rig) -> None:
    slow = rig.handler("slow", ["conc"])
    slow.__class__ = Unhurried
    loop = rig.start(tick_s=0.02, slow_tick_s=0.25)
    assert loop.tick_period() == 0.25
    before = slow.tick_count
    time.sleep(0.6)
    assert slow.tick_count - before <= 4, "ticks every 0.25 s, not every 0.02 s"
    assert slow.tick_count >= 1


def test_one_action_needing_fast_ticks_gets_them(rig: Rig) -> None:
    slow = rig.handler("slow", ["conc"])
    slow.__class__ = Unhurried
    fast = rig.handler("fast", ["conc"])
    loop = rig.start(tick_s=0.02, slow_tick_s=0.25)
    assert loop.tick_period() == 0.02
    wait_until(lambda: fast.tick_count >= 10 and slow.tick_count >= 10,
               what="ten ticks at 0.02 s for both")


def test_a_failing_tick_is_recorded_and_ticking_goes_on(rig: Rig) -> None:
    bad = rig.handler("bad", ["conc"])
    good = rig.handler("good", ["conc"])
    bad.fail_ticks = True
    rig.start(tick_s=0.02)
    wait_until(lambda: bad.tick_count >= 3 and good.tick_count >= 3, what="three ticks each")
    assert bad.last_error == "RuntimeError: tick boom"
    assert good.last_error is None
    rig.send("conc", 150.0, handler=bad)
    wait_until(lambda: bad.kinds() == ["trigger"] and good.kinds() == ["trigger"])


def test_stop_lets_queued_events_run_then_stops_every_handler(rig: Rig) -> None:
    a = rig.handler("a", ["conc"])
    b = rig.handler("b", ["conc2"])
    a.gate.clear()
    loop = rig.start()
    rig.send("conc", 150.0, handler=a)
    rig.send("conc", 20.0, handler=a)
    rig.send("conc", 150.0, handler=a)
    wait_until(a.in_event.is_set)
    stopper = threading.Thread(target=loop.stop, kwargs={"timeout": 20.0})
    stopper.start()
    holds_for(lambda: "stop" not in a.calls, 0.2, "no stop while events wait")
    a.gate.set()
    stopper.join(30)
    assert not stopper.is_alive()
    assert a.kinds()[:2] == ["trigger", "clear"]  # the waiting one ran before the stop
    assert a.calls[-1] == "stop" and b.calls == ["start", "stop"]
    assert loop.get_status()["running"] is False
    loop.stop()  # idempotent
    rig.loop = None


def test_stop_lets_the_last_queued_event_finish(rig: Rig) -> None:
    a = rig.handler("a", ["conc"])
    a.gate.clear()
    a.event_s = 0.5
    loop = rig.start()
    rig.send("conc", 150.0, handler=a)
    rig.send("conc", 20.0, handler=a)
    wait_until(a.in_event.is_set)
    stopper = threading.Thread(target=loop.stop, kwargs={"timeout": 20.0})
    stopper.start()
    a.gate.set()
    stopper.join(30)
    rig.loop = None
    assert a.kinds() == ["trigger", "clear"] and a.successes == 2


def test_a_handler_that_hangs_in_stop_cannot_hold_the_loop(rig: Rig, caplog) -> None:
    hangs = rig.handler("hangs", ["conc"])
    other = rig.handler("other", ["conc"])
    hangs.hang_on_stop = True
    loop = rig.start()
    caplog.set_level(logging.WARNING, logger="pafw.control")
    loop.stop(timeout=2.0)
    rig.loop = None
    assert other.calls == ["start", "stop"]
    assert loop.get_status()["running"] is False
    assert any("action hangs did not stop cleanly" in r.getMessage() for r in caplog.records)


def test_stop_before_start_does_nothing(rig: Rig) -> None:
    a = rig.handler("a", ["conc"])
    loop = ControlLoop([a], rig.feed)
    loop.stop()
    assert a.calls == [] and loop.get_status()["running"] is False


def test_status_lists_every_action(rig: Rig) -> None:
    rig.handler("a", ["conc"])
    rig.handler("b", ["conc2"])
    status = rig.start().get_status()
    assert set(status) == {"running", "ticks", "batches", "ahead_batches", "results_posted",
                           "tick_lag_max_ms", "actions"}
    assert sorted(status["actions"]) == ["a", "b"]
    assert status["actions"]["a"]["type"] == "test_recorder_action"



def test_an_event_is_acted_on_first_and_recorded_before_its_outcome(rig: Rig) -> None:
    """The journal line and the records of an event (a file append, a log write) wait until
    the action has started on it and waits for its first I/O; they still land before the
    outcome, for an action that waits and for one that finishes at once."""
    waits = rig.handler("waits", ["conc"])
    waits.event_s = 0.05
    at_once = rig.handler("at_once", ["conc"])
    kinds_at_entry: list[list[str]] = []
    for handler in (waits, at_once):
        acting = handler.on_event

        async def on_event(event: TriggerEvent, handler: Recorder = handler,
                           acting: Any = acting) -> bool:
            kinds_at_entry.append([e.kind for e in handler.history.recent()])
            if handler is at_once:
                return True  # no await: done before the loop runs anything else
            return await acting(event)

        handler.on_event = on_event  # type: ignore[method-assign]
    rig.start()
    rig.send("conc", 150.0, handler=waits)
    wait_until(lambda: waits.successes == 1 and at_once.successes == 1, what="both acted")
    assert all("trigger" not in kinds for kinds in kinds_at_entry), kinds_at_entry
    for handler in (waits, at_once):
        kinds = [e.kind for e in handler.history.recent()]
        assert kinds[-2:] == ["trigger", "outcome"], (handler.node_id, kinds)
        assert [e.kind for e in rig.ctx.events.entries() if e.action_id == handler.node_id
                ][-2:] == ["trigger", "outcome"]


def test_updates_follow_the_events_of_their_batch_unless_an_action_is_slow(rig: Rig) -> None:
    """An event's round trips get the loop first; the batch's updates go out after them, or
    after the bound when the action takes longer."""
    quick = rig.handler("quick", ["conc"])
    quick.event_s = 0.003  # waits like a worker's answer
    order: list[str] = []
    acting, updating = quick.on_event, quick.on_update

    async def on_event(event: TriggerEvent) -> bool:
        done = await acting(event)
        order.append("event done")
        return done

    async def on_update(latest: dict[str, ComputingResult]) -> None:
        order.append("update")
        await updating(latest)

    quick.on_event = on_event  # type: ignore[method-assign]
    quick.on_update = on_update  # type: ignore[method-assign]
    slow = rig.handler("slow", ["conc2"])
    slow.gate.clear()
    rig.start()
    rig.send("conc", 150.0, handler=quick)
    wait_until(lambda: "update" in order, what="the quick action's update")
    assert order[:2] == ["event done", "update"]
    rig.send("conc2", 150.0, handler=slow)
    # the slow action's event hangs; its update still arrives, after the bound
    wait_until(lambda: len(slow.seen_updates) == 1, what="the slow action's update")
    assert slow.in_event.is_set() and slow.handled == []
