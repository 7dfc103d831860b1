"""The DSP -> control loop hand-off: bounded, counted drops, one wake-up per drain."""

from __future__ import annotations

import threading

from firmware.actions.feed import ResultFeed, newest_per_node
from firmware.state import ComputingResult, ComputingState


def result(node: str, seq: int) -> ComputingResult:
    return ComputingResult(node, "concentration", 0.0, float(seq), seq, True,
                           concentration_ppm=float(seq))


def test_full_feed_drops_oldest_and_counts():
    feed = ResultFeed(capacity=8)
    for seq in range(20):
        feed.post(result("c", seq))
    assert [r.sequence for r in feed.drain()] == list(range(12, 20))
    assert feed.dropped == 12 and feed.posted == 20
    assert feed.drain() == []


def test_wake_is_scheduled_once_until_drained():
    wakes = []
    feed = ResultFeed(capacity=64)
    feed.connect(lambda: wakes.append(1))
    feed.flush()
    assert wakes == [], "nothing waits: no wake-up"
    for seq in range(10):
        feed.post(result("c", seq))
        feed.flush()
    assert len(wakes) == 1
    assert len(feed.drain()) == 10
    feed.post(result("c", 10))
    feed.flush()
    assert len(wakes) == 2


def test_state_publishes_into_an_attached_feed():
    state = ComputingState()
    feed = ResultFeed()
    state.attach(feed.post)
    state.publish(result("c", 1))
    assert [r.sequence for r in feed.drain()] == [1]
    assert state.get("c").sequence == 1


def test_nothing_is_lost_or_stuck_across_threads():
    """A producer posting while a consumer drains on each wake-up: everything arrives."""
    feed = ResultFeed(capacity=100_000)
    woken = threading.Event()
    feed.connect(woken.set)
    taken: list[ComputingResult] = []
    done = threading.Event()

    def consume():
        while not (done.is_set() and not woken.is_set()):
            if woken.wait(0.05):
                woken.clear()
                taken.extend(feed.drain())

    consumer = threading.Thread(target=consume)
    consumer.start()
    for seq in range(20_000):
        feed.post(result("c", seq))
        feed.flush()
    done.set()
    consumer.join(60)
    assert not consumer.is_alive()  # else both threads would drain, and the order mix
    taken.extend(feed.drain())
    assert [r.sequence for r in taken] == list(range(20_000))
    assert feed.dropped == 0


def test_newest_per_node_coalesces():
    newest = newest_per_node([result("a", 1), result("b", 1), result("a", 2)])
    assert newest["a"].sequence == 2 and newest["b"].sequence == 1
