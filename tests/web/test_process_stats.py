"""The appliance process's figures (firmware/web/process_stats.py): resident memory that follows
what the process touches, the thread count, CPU percent between two samples, and a status of
the documented ``ProcessStatus`` shape."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
from jsonschema import Draft202012Validator

from firmware.web.openapi import component_schemas
from firmware.web.process_stats import ProcessSampler, rss_bytes
from tests.waiting import wait_until


def proc_status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


def test_rss_is_this_process_resident_memory() -> None:
    rss = rss_bytes()
    assert isinstance(rss, int) and rss > 0
    # /proc/self/status says the same in KiB (within what this test allocates meanwhile)
    assert abs(rss - proc_status_kib("VmRSS") * 1024) < 8 * 2**20


def test_rss_grows_with_touched_memory() -> None:
    before = rss_bytes()
    assert before is not None
    block = np.ones(64 * 2**20, dtype=np.uint8)  # 64 MiB, every page written
    try:
        after = rss_bytes()
        assert after is not None and after - before > 48 * 2**20
    finally:
        del block


def test_threads_are_counted() -> None:
    sampler = ProcessSampler()
    release = threading.Event()
    extra = [threading.Thread(target=release.wait) for _ in range(8)]
    for thread in extra:
        thread.start()
    try:
        during = sampler.get_status()["threads"]
        assert during >= 9  # the main thread and the eight
    finally:
        release.set()
        for thread in extra:
            thread.join()
    # other tests' threads may come and go; the eight are gone for sure
    wait_until(lambda: sampler.get_status()["threads"] <= during - 8,
               what="the count to drop by the eight threads that ended")


def test_cpu_percent_is_unknown_until_sampled_then_measured() -> None:
    sampler = ProcessSampler()
    assert sampler.get_status()["cpu_percent"] is None
    # busy until the process has used CPU time and more than the minimum interval has passed
    cpu0, wall0 = time.process_time(), time.monotonic()
    while time.process_time() - cpu0 < 0.1 or time.monotonic() - wall0 < 0.1:
        sum(range(1000))
    sampler.sample()
    busy = sampler.cpu_percent
    assert busy is not None and busy > 0
    assert busy <= 100.0 * (os.cpu_count() or 1) + 1.0


def test_status_has_the_documented_shape() -> None:
    sampler = ProcessSampler()
    time.sleep(0.06)
    sampler.sample()
    status = sampler.get_status()
    schema = {"$ref": "#/components/schemas/ProcessStatus",
              "components": {"schemas": component_schemas()}}
    Draft202012Validator(schema).validate(status)
    assert len(status["load_average"]) == 3
    assert all(isinstance(v, float) and v >= 0 for v in status["load_average"])
