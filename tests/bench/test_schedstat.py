"""CPU time of threads and processes from the kernel's schedstat files: a busy thread's run
time grows, a child process's CPU is counted over all its threads, and what is gone reads as
nothing (None or 0.0) rather than raising."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from firmware.bench.schedstat import process_cpu_s, schedstat, thread_schedstat_path


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_named_threads_run_time_grows_while_it_works() -> None:
    go, measured = threading.Event(), threading.Event()
    worker = threading.Thread(target=lambda: (go.wait(), busy(0.2), measured.wait()),
                              name="schedstat-test")
    worker.start()
    try:
        path = thread_schedstat_path("schedstat-test")
        assert path is not None
        before = schedstat(path)
        go.set()
        time.sleep(0.3)
        after = schedstat(path)
        assert before is not None and after is not None
        assert after[0] - before[0] > 0.1, "the busy 0.2 s is on the thread's run time"
    finally:
        measured.set()
        worker.join()
    assert thread_schedstat_path("no-such-thread") is None
    assert schedstat(None) is None and schedstat("/proc/self/task/0/schedstat") is None


def test_a_child_process_cpu_and_a_gone_one() -> None:
    child = subprocess.Popen([sys.executable, "-c",
                              "import time\nend = time.perf_counter() + 0.3\n"
                              "while time.perf_counter() < end: pass\ntime.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while process_cpu_s(child.pid) < 0.2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_cpu_s(child.pid) >= 0.2
    finally:
        child.kill()
        child.wait()
    assert process_cpu_s(child.pid) == 0.0
