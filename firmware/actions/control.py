"""The control loop: one asyncio thread running every action's control-side half.

One *evaluator* task drains the ResultFeed when the DSP thread wakes it, coalesces the batch
to the newest result per node, feeds each action's trigger engine with its monitored nodes
and queues the resulting events; the updates (``on_update``) follow once those events are
done, or after ``UPDATE_DEFER_S``. Per action an *actor* task runs those events one at a time,
in order: a slow webhook delays that action's own events, never another action, never trigger
evaluation, never the DSP thread. After a drain the evaluator lets ``min_gap_s`` pass before
the next one (the appliance sets half a frame's duration), so a DSP loop running far faster
than real time (analyze, bench) is met with coalesced batches instead of a busy control
thread competing for the GIL; at real-time frame rates every result is evaluated. A ticker
drives data timeouts, repeats and ``on_tick``: every ``tick_s`` while an action needs it
(``needs_fast_ticks``), else every ``slow_tick_s``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from firmware.actions.base import ActionHandler
from firmware.actions.feed import ResultFeed, newest_per_node
from firmware.actions.timer_grid import next_multiple
from firmware.actions.triggers import TriggerEvent

log = logging.getLogger("pafw.control")

EVENT_QUEUE_SIZE = 1000
#: the longest updates wait for the events of the same batch to finish (a slow action's)
UPDATE_DEFER_S = 0.01


class _Lane:
    """The tasks and queues of one action."""

    def __init__(self, handler: ActionHandler) -> None:
        self.handler = handler
        self.events: asyncio.Queue[TriggerEvent] = asyncio.Queue(EVENT_QUEUE_SIZE)

    def queue_events(self, events: list[TriggerEvent]) -> None:
        for event in events:
            try:
                self.events.put_nowait(event)
            except asyncio.QueueFull:
                self.handler.event_drops += 1


class ControlLoop:
    """Runs the handlers on a private event loop in a daemon thread."""

    def __init__(self, handlers: list[ActionHandler], feed: ResultFeed, *,
                 tick_s: float = 0.1, min_gap_s: float = 0.02,
                 slow_tick_s: float = 1.0) -> None:
        self.handlers = handlers
        self.feed = feed
        self.tick_s = tick_s
        self.slow_tick_s = slow_tick_s
        self.min_gap_s = min_gap_s
        self._wake: asyncio.Event | None = None
        self.batches = 0
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._lanes: list[_Lane] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._started = threading.Event()
        self.ticks = 0
        self.tick_lag_max_s = 0.0

    # --------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the thread, then every handler (``start`` awaited before the first event)."""
        self._thread = threading.Thread(target=self._run, name="control", daemon=True)
        self._thread.start()
        self._started.wait()
        self.call(self._start_all()).result(timeout=30)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        self.loop.run_forever()
        self.loop.close()

    async def _start_all(self) -> None:
        wake = self._wake = asyncio.Event()
        for handler in self.handlers:
            lane = _Lane(handler)
            self._lanes.append(lane)
            await handler.start()
            self._tasks.append(asyncio.create_task(self._act(lane)))
        self.feed.connect(self._waker(wake))
        wake.set()  # results published before the start are taken now
        self._tasks.append(asyncio.create_task(self._evaluate(wake)))
        self._tasks.append(asyncio.create_task(self._tick()))

    def _waker(self, wake: asyncio.Event) -> Callable[[], None]:
        loop = self.loop

        def wake_up() -> None:  # DSP thread: schedule, never wait
            loop.call_soon_threadsafe(wake.set)

        return wake_up

    def stop(self, timeout: float = 10.0) -> None:
        """Let queued events run (bounded by ``timeout``), stop every handler, end the thread."""
        if self._thread is None:
            return
        try:
            self.call(self._stop_all(timeout)).result(timeout=timeout + 5)
        except Exception as exc:  # stopping must finish whatever a handler does
            log.warning("control loop stop: %s", exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self._thread = None

    async def _stop_all(self, timeout: float) -> None:
        # every queued event runs to its outcome (the last one too: not only picked up)
        drained = asyncio.gather(*(lane.events.join() for lane in self._lanes))
        try:
            await asyncio.wait_for(drained, timeout=timeout / 2)
        except TimeoutError:
            log.warning("control loop stop: actions still busy after %.1f s, cancelled",
                        timeout / 2)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for lane in self._lanes:
            try:
                await asyncio.wait_for(lane.handler.stop(), timeout=max(0.5, timeout / 4))
            except Exception as exc:
                log.warning("action %s did not stop cleanly: %s", lane.handler.node_id, exc)

    def call(self, coro: Any) -> Future[Any]:
        """Run a coroutine on the control loop from another thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    # ------------------------------------------------------------------------- tasks
    async def _evaluate(self, wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            wake.clear()
            batch = self.feed.drain()
            if not batch:
                continue
            self.batches += 1
            newest = newest_per_node(batch)
            now = time.monotonic()
            updated = []
            acting: list[_Lane] = []
            for lane in self._lanes:
                handler = lane.handler
                mine = [r for r in newest.values() if r.node_id in handler.monitored]
                if not mine:
                    continue
                handler.coalesced += sum(r.node_id in handler.monitored
                                         for r in batch) - len(mine)
                events = handler.evaluate(mine, now)
                if events:
                    lane.queue_events(events)
                    acting.append(lane)
                updated.append(handler)
            waited = await self._let_events_finish(acting) if acting else 0.0
            for handler in updated:
                await handler.run_update()
            await asyncio.sleep(max(0.0, self.min_gap_s - waited))

    async def _let_events_finish(self, acting: list[_Lane]) -> float:
        """Give the events just queued the loop to themselves, up to ``UPDATE_DEFER_S``;
        returns the seconds waited.

        An event's latency is its action's round trips (a Python worker's answer, a
        webhook's reply) and the loop's turns between them; delivering updates (a dict of
        every monitored result per action, serialised for a worker) in the middle of those
        turns put them on every event's path. Updates only refresh what the actions see, so
        they go out once the events are done, or after the bound when an action is slow.
        """
        start = time.monotonic()
        joins = [asyncio.ensure_future(lane.events.join()) for lane in acting]
        _done, pending = await asyncio.wait(joins, timeout=UPDATE_DEFER_S)
        for join in pending:
            join.cancel()
        return time.monotonic() - start

    async def _act(self, lane: _Lane) -> None:
        while True:
            event = await lane.events.get()
            try:
                await lane.handler.run_event(event)
            finally:
                lane.events.task_done()  # a stop waits for the event's outcome, not its pickup

    def tick_period(self) -> float:
        """``tick_s`` while an action needs fast ticks, else ``slow_tick_s``."""
        if any(lane.handler.needs_fast_ticks() for lane in self._lanes):
            return self.tick_s
        return max(self.tick_s, self.slow_tick_s)

    async def _tick(self) -> None:
        # on the timer grid: the python actions' watchdogs come due at the same instants
        next_tick = next_multiple(self.tick_s, time.monotonic())
        while True:
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            now = time.monotonic()
            lag = now - next_tick
            if lag > self.tick_lag_max_s:
                self.tick_lag_max_s = lag
            # after a stall, no burst of ticks; a period that changed applies from now on
            next_tick = next_multiple(self.tick_period(), now if lag > 1.0 else next_tick)
            self.ticks += 1
            for lane in self._lanes:
                lane.queue_events(lane.handler.tick_events(now))
                try:
                    await lane.handler.on_tick(now)
                except Exception as exc:
                    lane.handler.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("action %s failed on tick: %s", lane.handler.node_id,
                                lane.handler.last_error)

    def get_status(self) -> dict[str, Any]:
        """Loop health and every action's status."""
        return {
            "running": self._thread is not None,
            "ticks": self.ticks,
            "batches": self.batches,
            "results_posted": self.feed.posted,
            "queue_drops": self.feed.dropped,
            "tick_lag_max_ms": round(self.tick_lag_max_s * 1e3, 3),
            "actions": {h.node_id: h.get_status() for h in self.handlers},
        }
