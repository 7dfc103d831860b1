"""The control loop: one asyncio thread running every action's control-side half.

One *evaluator* task drains the ResultFeed when the DSP thread wakes it (the newest result
per node, with how many were coalesced), feeds each action's trigger engine with its
monitored nodes and queues the resulting events; the updates (``on_update``) follow once
those events are done, or after ``UPDATE_DEFER_S``. Per action an *actor* task runs those
events one at a time, in order: a slow webhook delays that action's own events, never another
action, never trigger evaluation, never the DSP thread. A ticker drives data timeouts,
repeats and ``on_tick``: every ``tick_s`` while an action needs it (``needs_fast_ticks``),
else every ``slow_tick_s``.

After a drain the evaluator lets ``min_gap_s`` pass before the next one (the appliance sets
half a frame's duration): at real-time frame rates every result is evaluated as it comes.
When a drain finds a node that published at least ``AHEAD_PACE`` times as many results since
the previous drain as real time allows (``frame_s`` each, and at least ``AHEAD_MIN_RESULTS``),
the DSP loop runs ahead of real time (analyze, a replay, the bench); the evaluator then waits
``ahead_gap_s`` instead, until a drain finds it back at real-time pace. A catch-up burst after
a stall (an audio overrun) does not count: its frames are spread over the stall. Every batch
costs the same round trips to each action's worker (and GIL hand-overs with the DSP thread)
however many results it coalesces, so a DSP loop far faster than real time is met with a few
coalesced batches a second instead of a control thread competing with it for the GIL.
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
from firmware.actions.feed import FreshResult, ResultFeed
from firmware.actions.timer_grid import next_multiple
from firmware.actions.triggers import TriggerEvent

log = logging.getLogger("pafw.control")

EVENT_QUEUE_SIZE = 1000
#: a node publishing this many times faster than real time between two drains runs ahead
AHEAD_PACE = 2.0
#: ... and at least this many results (a burst of two frames at once is not a pace)
AHEAD_MIN_RESULTS = 3
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
                 frame_s: float | None = None, ahead_gap_s: float = 1.0,
                 slow_tick_s: float = 1.0) -> None:
        self.handlers = handlers
        self.feed = feed
        self.tick_s = tick_s
        self.slow_tick_s = slow_tick_s
        self.min_gap_s = min_gap_s
        self.ahead_gap_s = max(ahead_gap_s, min_gap_s)
        #: the real-time period of the results (None: never considered ahead)
        self.frame_s = frame_s
        self._last_drain = time.monotonic()
        #: batches after which the DSP loop was found running ahead of real time
        self.ahead_batches = 0
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
        if self._lanes:  # without actions the DSP thread is never asked to flush
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
            now = time.monotonic()
            ahead = self._runs_ahead(batch, now - self._last_drain)
            self._last_drain = now
            updated = []
            acting: list[_Lane] = []
            for lane in self._lanes:
                handler = lane.handler
                monitored = handler.monitored
                mine = [fresh for fresh in batch if fresh.result.node_id in monitored]
                if not mine:
                    continue
                handler.coalesced += sum(fresh.skipped for fresh in mine)
                events = handler.evaluate([fresh.result for fresh in mine], now)
                if events:
                    lane.queue_events(events)
                    acting.append(lane)
                updated.append(handler)
            waited = await self._let_events_finish(acting) if acting else 0.0
            for handler in updated:
                await handler.run_update()
            gap = self.min_gap_s
            if ahead:
                gap = self.ahead_gap_s
                self.ahead_batches += 1
            await asyncio.sleep(max(0.0, gap - waited))

    def _runs_ahead(self, batch: list[FreshResult], elapsed_s: float) -> bool:
        """Whether a node of ``batch`` published results faster than real time allows
        (``AHEAD_PACE`` times, ``AHEAD_MIN_RESULTS`` at least) over the ``elapsed_s`` since
        the previous drain."""
        if self.frame_s is None:
            return False
        most = max(fresh.skipped for fresh in batch) + 1
        return most >= AHEAD_MIN_RESULTS and most >= AHEAD_PACE * elapsed_s / self.frame_s

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
            "ahead_batches": self.ahead_batches,
            "results_posted": self.feed.posted,
            "tick_lag_max_ms": round(self.tick_lag_max_s * 1e3, 3),
            "actions": {h.node_id: h.get_status() for h in self.handlers},
        }
