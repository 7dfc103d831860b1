"""Delivery (firmware/actions/mqtt/delivery.py), the MQTT link's bookkeeping, over a real
on-disk Outbox: rows handed in row order and each once per process, the in-flight window, a
PUBACK deleting its row, retained topics (latest value only, before rows, all again on every
connect, discovery first, removed configs emptied), the barrier after a reconnect with
messages in flight, a PUBACK that arrives before its mid is recorded, QoS 0, and a hand-off
that fails.

``publish`` stands in for paho's ``Client.publish`` (the socket side, which
tests/actions/mqtt/test_link.py drives against a real broker): it records each job and
returns a mid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmware.actions.mqtt.delivery import Delivery, Job
from firmware.actions.mqtt.outbox import Outbox


class Paho:
    """Records the jobs handed to it and numbers them like paho's mids."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.mids: dict[int, Job] = {}
        self.next_mid = 1
        self.before_return: Callable[[int], None] | None = None
        self.fail_on: str | None = None

    def publish(self, job: Job) -> int:
        if job.topic == self.fail_on:
            raise RuntimeError(f"paho did not queue a message to {job.topic}")
        mid, self.next_mid = self.next_mid, self.next_mid + 1
        self.jobs.append(job)
        self.mids[mid] = job
        if self.before_return is not None:
            self.before_return(mid)
        return mid

    def topics(self) -> list[str]:
        return [j.topic for j in self.jobs]

    def mid_of(self, topic: str) -> int:
        return next(mid for mid, job in self.mids.items() if job.topic == topic)


def always() -> bool:
    return True


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.sqlite3", max_messages=1000)
    yield box
    box.close()


def add_rows(outbox: Outbox, count: int, *, qos: int = 1, prefix: str = "m") -> list[int]:
    return [outbox.add(f"{prefix}/{i}", b"%d" % i, qos=qos, retain=False) for i in range(count)]


def test_rows_are_handed_in_order_and_each_only_once(outbox: Outbox) -> None:
    rows = add_rows(outbox, 5)
    delivery, paho = Delivery(outbox, window=10), Paho()
    delivery.send_some(paho.publish, always)
    assert paho.topics() == [f"m/{i}" for i in range(5)]
    assert [j.row_id for j in paho.jobs] == rows
    assert all(j.qos == 1 and j.retain is False for j in paho.jobs)
    delivery.send_some(paho.publish, always)  # nothing new: nothing is handed twice
    assert len(paho.jobs) == 5
    assert delivery.inflight == 5 and len(outbox) == 5  # rows stay until their PUBACK
    add_rows(outbox, 2, prefix="n")
    delivery.send_some(paho.publish, always)
    assert paho.topics()[5:] == ["n/0", "n/1"]


def test_a_puback_deletes_its_row_and_makes_room_in_the_window(outbox: Outbox) -> None:
    add_rows(outbox, 5)
    delivery, paho = Delivery(outbox, window=2), Paho()
    delivery.send_some(paho.publish, always)
    assert paho.topics() == ["m/0", "m/1"] and delivery.inflight == 2
    delivery.puback(paho.mid_of("m/0"))
    assert [m.topic for m in outbox.pending(10)] == ["m/1", "m/2", "m/3", "m/4"]
    delivery.send_some(paho.publish, always)
    assert paho.topics() == ["m/0", "m/1", "m/2"]
    for topic in ("m/1", "m/2"):
        delivery.puback(paho.mid_of(topic))
    delivery.send_some(paho.publish, always)
    for topic in ("m/3", "m/4"):
        delivery.puback(paho.mid_of(topic))
    assert len(outbox) == 0 and delivery.inflight == 0
    status = delivery.get_status()
    assert (status["published"], status["acked"], status["inflight"]) == (5, 5, 0)


def test_nothing_is_handed_while_may_send_is_false(outbox: Outbox) -> None:
    add_rows(outbox, 3)
    delivery, paho = Delivery(outbox, window=10), Paho()
    delivery.set_retained("pafw/d/status", b"{}")
    delivery.send_some(paho.publish, lambda: False)
    assert paho.jobs == []
    budget = iter([True, True, False])
    delivery.send_some(paho.publish, lambda: next(budget))  # asked before every job
    assert paho.topics() == ["pafw/d/status", "m/0"]


def test_retained_topics_keep_their_latest_value_and_go_before_rows(outbox: Outbox) -> None:
    add_rows(outbox, 2)
    delivery, paho = Delivery(outbox, window=10), Paho()
    delivery.set_retained("pafw/d/state/relay", b"ON")
    delivery.set_retained("pafw/d/status", b'{"n":1}')
    delivery.set_retained("pafw/d/state/relay", b"OFF")  # replaces the value, keeps its place
    assert delivery.retained_pending == 2
    delivery.send_some(paho.publish, always)
    assert [(j.topic, j.payload, j.retain, j.row_id) for j in paho.jobs[:2]] == [
        ("pafw/d/state/relay", b"OFF", True, None), ("pafw/d/status", b'{"n":1}', True, None)]
    assert paho.topics()[2:] == ["m/0", "m/1"] and delivery.retained_pending == 0
    delivery.puback(paho.mid_of("pafw/d/status"))
    assert len(outbox) == 2  # a retained value has no row to delete


def test_every_retained_value_goes_again_on_connect_discovery_first(outbox: Outbox) -> None:
    delivery, paho = Delivery(outbox, window=10), Paho()
    delivery.set_retained("pafw/d/availability", b"online")
    delivery.set_discovery([("ha/sensor/d/gas/config", b"{gas}"),
                            ("ha/sensor/d/freq/config", b"{freq}")])
    delivery.send_some(paho.publish, always)
    for mid in list(paho.mids):
        delivery.puback(mid)
    paho.jobs.clear()
    delivery.connected()
    delivery.send_some(paho.publish, always)
    assert paho.topics() == ["ha/sensor/d/gas/config", "ha/sensor/d/freq/config",
                             "pafw/d/availability"]
    assert delivery.get_status()["discovery_entities"] == 2


def test_discovery_configs_that_disappear_are_emptied(outbox: Outbox) -> None:
    delivery, paho = Delivery(outbox, window=10), Paho()
    delivery.set_discovery([("ha/a/config", b"A"), ("ha/b/config", b"B")])
    delivery.send_some(paho.publish, always)
    for mid in list(paho.mids):
        delivery.puback(mid)
    assert delivery.get_status()["discovery_published"] == 2
    paho.jobs.clear()
    delivery.set_discovery([("ha/b/config", b"B2")])
    delivery.send_some(paho.publish, always)
    assert {j.topic: j.payload for j in paho.jobs} == {"ha/a/config": b"", "ha/b/config": b"B2"}
    assert delivery.get_status()["discovery_entities"] == 1


def test_resend_discovery_puts_the_configs_first(outbox: Outbox) -> None:
    delivery, paho = Delivery(outbox, window=10), Paho()
    delivery.set_discovery([("ha/a/config", b"A")])
    delivery.send_some(paho.publish, always)
    delivery.set_retained("pafw/d/status", b"s")
    delivery.resend_discovery()
    delivery.send_some(paho.publish, always)
    assert paho.topics() == ["ha/a/config", "ha/a/config", "pafw/d/status"]


def test_after_a_reconnect_with_messages_in_flight_new_ones_wait_for_a_puback(
        outbox: Outbox) -> None:
    add_rows(outbox, 4)
    delivery, paho = Delivery(outbox, window=2), Paho()
    delivery.send_some(paho.publish, always)
    assert paho.topics() == ["m/0", "m/1"]
    delivery.connected()  # paho will retransmit m/0 and m/1 itself
    delivery.send_some(paho.publish, always)
    assert paho.topics() == ["m/0", "m/1"], "nothing may overtake the retransmissions"
    assert delivery.get_status()["resumed_inflight"] == 2
    delivery.puback(paho.mid_of("m/0"))  # the first PUBACK of the new connection
    delivery.send_some(paho.publish, always)
    assert paho.topics() == ["m/0", "m/1", "m/2"]


def test_a_reconnect_with_nothing_in_flight_raises_no_barrier(outbox: Outbox) -> None:
    add_rows(outbox, 2)
    delivery, paho = Delivery(outbox, window=10), Paho()
    delivery.connected()
    delivery.send_some(paho.publish, always)
    assert paho.topics() == ["m/0", "m/1"]
    assert delivery.get_status()["resumed_inflight"] == 0


def test_a_puback_before_the_mid_is_recorded_still_completes_the_row(outbox: Outbox) -> None:
    add_rows(outbox, 2)
    delivery, paho = Delivery(outbox, window=10), Paho()
    paho.before_return = delivery.puback  # paho's thread is faster than publish() returning
    delivery.send_some(paho.publish, always)
    assert paho.topics() == ["m/0", "m/1"]
    assert delivery.inflight == 0 and len(outbox) == 0
    assert delivery.get_status()["acked"] == 2


def test_qos0_rows_are_done_once_handed(outbox: Outbox) -> None:
    add_rows(outbox, 3, qos=0)
    delivery, paho = Delivery(outbox, window=10), Paho()
    delivery.send_some(paho.publish, always)
    assert [j.qos for j in paho.jobs] == [0, 0, 0]
    assert delivery.inflight == 0 and len(outbox) == 0


def test_a_row_whose_hand_off_failed_is_handed_again(outbox: Outbox) -> None:
    add_rows(outbox, 3)
    delivery, paho = Delivery(outbox, window=10), Paho()
    paho.fail_on = "m/1"
    with pytest.raises(RuntimeError, match="did not queue"):
        delivery.send_some(paho.publish, always)
    assert paho.topics() == ["m/0"] and delivery.inflight == 1
    paho.fail_on = None
    delivery.send_some(paho.publish, always)
    assert paho.topics() == ["m/0", "m/1", "m/2"]
    assert delivery.get_status()["published"] == 3


def test_a_new_process_starts_again_from_the_first_row_left(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path, max_messages=100) as box:
        add_rows(box, 3)
        first, paho = Delivery(box, window=10), Paho()
        first.send_some(paho.publish, always)
        first.puback(paho.mid_of("m/0"))  # m/1 and m/2 handed, never acknowledged
    with Outbox(path, max_messages=100) as box:
        again, paho = Delivery(box, window=10), Paho()
        again.send_some(paho.publish, always)
        assert paho.topics() == ["m/1", "m/2"]


def test_a_puback_after_the_outbox_closed_is_not_an_error(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3", max_messages=100)
    add_rows(box, 1)
    delivery, paho = Delivery(box, window=10), Paho()
    delivery.send_some(paho.publish, always)
    box.close()  # stop() closed it while the PUBACK was on its way
    delivery.puback(paho.mid_of("m/0"))
    assert delivery.inflight == 0 and delivery.get_status()["acked"] == 1
    with Outbox(tmp_path / "outbox.sqlite3", max_messages=100) as reopened:
        assert len(reopened) == 1  # sent again by the next start
