"""Delivery: which message goes to paho next, and what each PUBACK completes.

This is the bookkeeping half of :class:`~firmware.actions.mqtt.link.MqttLink`, kept free of
sockets so its rules can be read in one place:

- **Durable rows.** Measurements and events sit in the :class:`Outbox` until their PUBACK.
  Rows are handed to paho in row order, each at most ONCE per process: ``_cursor`` is the
  last row handed, and the next ones are read after it.
- **paho owns what it was handed.** paho keeps every QoS 1 message it was given until its
  PUBACK, across reconnects, and retransmits it itself after the next CONNACK, with the same
  mid (so the PUBACK still finds its row). Re-sending those rows from the outbox as well
  would deliver them twice, so we never do; with a clean session the broker keeps nothing
  of ours either. Only a new process (after a stop or ``kill -9``) starts again from the
  first row left in the outbox.
- **Barrier.** paho calls ``on_connect`` *before* it retransmits, so when messages are still
  in flight at a reconnect nothing new is handed until the first PUBACK of the new
  connection arrives: by then the retransmissions are on the wire, and new messages follow
  them in order.
- **Window.** At most ``window`` messages are handed and unacknowledged at once (paho's own
  limit is off); each PUBACK makes room for the next.
- **Retained topics** (status, states, availability, discovery) keep only their latest value
  in memory, go before rows (they are few and small), and are all re-sent on every connect.
- **Early PUBACK.** A PUBACK can be processed by paho's thread before the sender has recorded
  the mid that ``publish()`` returned; it is parked in ``_early_acks`` and matched then.

What remains is QoS 1's own window: a message the broker accepted, whose PUBACK was lost
with the connection or the process, is delivered again (with the same ``seq``).

Locking: ``_lock`` is held for bookkeeping only, never while calling paho or SQLite, so
paho's thread (which holds its own mutex in ``on_publish``) and the sender cannot deadlock.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from firmware.actions.mqtt.outbox import Outbox, OutboxError, OutboxMessage

log = logging.getLogger("pafw.mqtt")


@dataclass(frozen=True, slots=True)
class Job:
    """A message for paho; ``row_id`` is its outbox row, None for a retained topic."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    row_id: int | None


#: Hands a job to paho and returns its mid (raises if paho did not queue it).
PublishFn = Callable[[Job], int]


class Delivery:
    """Thread-safe send queue over an :class:`Outbox` plus the latest retained values."""

    def __init__(self, outbox: Outbox, *, window: int) -> None:
        self.outbox = outbox
        self.window = window
        self._lock = threading.Lock()
        self._handed: dict[int, Job] = {}  # paho mid -> job waiting for its PUBACK
        self._early_acks: set[int] = set()
        self._cursor = 0
        self._sending = False  # between "picked a job" and "recorded its mid"
        self._barrier = False
        self._retained: dict[str, bytes] = {}
        self._dirty: dict[str, None] = {}  # retained topics to (re)send, in this order
        self._discovery: list[str] = []
        self._counts = {"published": 0, "acked": 0, "resumed_inflight": 0,
                        "discovery_published": 0}

    # -- what to send --------------------------------------------------------------------

    def set_retained(self, topic: str, payload: bytes) -> None:
        """Remember the latest value of a retained topic and queue it."""
        with self._lock:
            self._retained[topic] = payload
            self._dirty[topic] = None

    def set_discovery(self, configs: list[tuple[str, bytes]]) -> None:
        """Replace the discovery configs; configs that disappeared get an empty payload."""
        topics = [topic for topic, _ in configs]
        with self._lock:
            for gone in set(self._discovery) - set(topics):
                self._retained[gone] = b""
                self._dirty[gone] = None
            self._discovery = topics
            for topic, payload in configs:
                self._retained[topic] = payload
                self._dirty[topic] = None

    def resend_discovery(self) -> None:
        """Queue every discovery config again, first (Home Assistant restarted)."""
        with self._lock:
            self._dirty = dict.fromkeys([*self._discovery, *self._dirty])

    # -- connection events (paho's thread) --------------------------------------------------

    def connected(self) -> None:
        """A connection was accepted: resend all retained values, maybe raise the barrier."""
        with self._lock:
            self._barrier = bool(self._handed) or self._sending
            self._counts["resumed_inflight"] += len(self._handed)
            order = [*self._discovery, *self._retained]  # discovery configs first
            self._dirty = dict.fromkeys(order)

    def puback(self, mid: int) -> None:
        """The broker acknowledged ``mid``: delete its row, make room in the window."""
        with self._lock:
            self._barrier = False  # paho's retransmissions are out: new jobs may follow
            job = self._handed.pop(mid, None)
            if job is None:
                self._early_acks.add(mid)
                return
            self._count_ack(job)
        self._remove_row(job.row_id)

    # -- the sender thread ----------------------------------------------------------------

    def send_some(self, publish: PublishFn, may_send: Callable[[], bool]) -> None:
        """Hand jobs to ``publish`` while ``may_send()`` and the window has room."""
        rows: deque[OutboxMessage] = deque()
        while may_send():
            with self._lock:
                if self._barrier or len(self._handed) >= self.window:
                    return
                job = None
                if self._dirty:
                    topic = next(iter(self._dirty))
                    del self._dirty[topic]
                    job = Job(topic, self._retained[topic], 1, True, None)
                self._sending = True
            try:
                if job is None:
                    if not rows:
                        rows.extend(self.outbox.pending(self.window, after=self._cursor))
                    if not rows:
                        return
                    m = rows.popleft()
                    job = Job(m.topic, m.payload, m.qos, m.retain, m.row_id)
                self._record(job, publish(job))
            finally:
                with self._lock:
                    self._sending = False

    def _record(self, job: Job, mid: int) -> None:
        with self._lock:
            self._counts["published"] += 1
            if job.row_id is not None:
                self._cursor = job.row_id
            if job.qos > 0 and mid not in self._early_acks:
                self._handed[mid] = job
                return
            self._early_acks.discard(mid)
            self._count_ack(job)
        self._remove_row(job.row_id)

    def _count_ack(self, job: Job) -> None:
        self._counts["acked"] += 1
        if job.row_id is None and job.topic in self._discovery:
            self._counts["discovery_published"] += 1

    def _remove_row(self, row_id: int | None) -> None:
        if row_id is None:
            return
        try:
            self.outbox.remove(row_id)
        except OutboxError as exc:  # closed by stop(): the row is sent again next start
            log.debug("MQTT outbox: %s", exc)

    # -- status -------------------------------------------------------------------------------

    @property
    def inflight(self) -> int:
        """Messages handed to paho and not acknowledged yet."""
        return len(self._handed)

    @property
    def retained_pending(self) -> int:
        """Retained topics whose latest value is not handed to paho yet."""
        return len(self._dirty)

    def get_status(self) -> dict[str, Any]:
        """Counters: published, acked, resumed_inflight, discovery_published; inflight."""
        with self._lock:
            return {**self._counts, "inflight": len(self._handed),
                    "discovery_entities": len(self._discovery)}
