"""The DSP -> control loop hand-off: the newest result per node with exact coalescing counts,
one wake-up per drain, nothing lost or taken twice across threads."""

from __future__ import annotations

import threading

from firmware.actions.feed import ResultFeed
from firmware.state import ComputingResult, ComputingState


def result(node: str, seq: int) -> ComputingResult:
    return ComputingResult(node, "concentration", 0.0, float(seq), seq, True,
                           concentration_ppm=float(seq))


def test_drain_takes_the_newest_per_node_and_counts_the_rest():
    state = ComputingState()
    feed = ResultFeed(state)
    for seq in range(20):
        state.publish(result("c", seq))
    state.publish(result("p", 0))
    fresh = feed.drain()
    assert [(f.result.node_id, f.result.sequence, f.skipped) for f in fresh] == [
        ("c", 19, 19), ("p", 0, 0)]
    assert feed.posted == 21 and feed.taken == 21
    assert feed.drain() == [], "nothing new: nothing taken twice"
    state.publish(result("p", 1))
    assert [(f.result.sequence, f.skipped) for f in feed.drain()] == [(1, 0)]


def test_state_counts_what_each_node_published():
    state = ComputingState()
    for seq in range(3):
        state.publish(result("a", seq))
    state.publish(result("b", 0))
    assert state.published() == {"a": 3, "b": 1}
    assert state.updates == 4 and state.get("a").sequence == 2


def test_wake_is_scheduled_once_until_drained():
    wakes = []
    state = ComputingState()
    feed = ResultFeed(state)
    feed.flush()
    assert wakes == [], "not connected yet: nothing to wake"
    feed.connect(lambda: wakes.append(1))
    for seq in range(10):
        state.publish(result("c", seq))
        feed.flush()
    assert len(wakes) == 1
    assert [f.skipped for f in feed.drain()] == [9]
    state.publish(result("c", 10))
    feed.flush()
    assert len(wakes) == 2


def test_nothing_is_lost_or_taken_twice_across_threads():
    """A producer publishing and flushing while a consumer drains on each wake-up: every
    result is taken once or counted as skipped, and the last one is taken."""
    state = ComputingState()
    feed = ResultFeed(state)
    woken = threading.Event()
    feed.connect(woken.set)
    taken: list[int] = []
    skipped = 0
    done = threading.Event()

    def consume() -> None:
        nonlocal skipped
        while not (done.is_set() and not woken.is_set()):
            if woken.wait(0.05):
                woken.clear()
                for fresh in feed.drain():
                    taken.append(fresh.result.sequence)
                    skipped += fresh.skipped

    consumer = threading.Thread(target=consume)
    consumer.start()
    for seq in range(50_000):
        state.publish(result("c", seq))
        feed.flush()
    done.set()
    consumer.join(60)
    assert not consumer.is_alive()  # else both threads would drain at once
    for fresh in feed.drain():
        taken.append(fresh.result.sequence)
        skipped += fresh.skipped
    assert taken == sorted(set(taken)), "taken in order, none twice"
    assert taken[-1] == 49_999
    assert len(taken) + skipped == 50_000
    assert len(taken) > 1, "the consumer took results while the producer ran"
