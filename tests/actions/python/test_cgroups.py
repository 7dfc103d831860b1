"""Worker cgroups: the delegated v2 subtree is prepared without touching the rest of the
system, and what the kernel reports is read back as figures."""

from __future__ import annotations

from pathlib import Path

from firmware.actions.python import cgroups


def fake_cgroup(path: Path, *, procs: str) -> Path:
    """A directory laid out like a cgroup v2 directory (plain files: no kernel behind)."""
    path.mkdir(parents=True)
    (path / "cgroup.controllers").write_text("cpu memory pids hugetlb\n")
    (path / "cgroup.subtree_control").write_text("")
    (path / "cgroup.procs").write_text(procs)
    return path


def test_a_delegated_cgroup_moves_its_own_processes_to_a_leaf(tmp_path):
    base = fake_cgroup(tmp_path / "pafw.service", procs="4242\n")
    found, _enabled, why = cgroups._prepare_v2(base)
    assert found == base and why == ""
    assert (base / "supervisor" / "cgroup.procs").read_text() == "4242"
    assert (base / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"


def test_the_root_cgroup_is_never_emptied_into_a_leaf(tmp_path):
    root = fake_cgroup(tmp_path / "root", procs="1\n2\n3\n")
    cgroups._prepare_v2(root, is_root=True)
    assert not (root / "supervisor").exists()
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"


def test_stats_read_the_v2_files(tmp_path):
    path = tmp_path / "worker-x"
    path.mkdir()
    (path / "cgroup.procs").write_text("77\n")
    (path / "memory.max").write_text("67108864\n")
    (path / "memory.current").write_text("1048576\n")
    (path / "memory.peak").write_text("2097152\n")
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (path / "cpu.max").write_text("50000 100000\n")
    (path / "cpu.stat").write_text("usage_usec 1500000\nnr_throttled 12\n"
                                   "throttled_usec 250000\n")
    group = cgroups.WorkerCgroup(name="worker-x", limits=cgroups.Limits(64 << 20, 8, 50),
                                 v2=path)
    assert group.stats() == {"memory_bytes": 1 << 20, "memory_peak_bytes": 2 << 20,
                             "oom_kills": 1, "cpu_s": 1.5, "throttled_s": 0.25,
                             "throttled_periods": 12, "tasks": 1}
    assert group.enforced() == ["memory", "cpu"]
    assert (group.oom_kills(), group.cpu_s()) == (1, 1.5), "the watchdog's two reads"


def test_stats_read_the_v1_files(tmp_path):
    dirs = {name: tmp_path / name / "worker-x" for name in ("memory", "pids", "cpu", "cpuacct")}
    for path in dirs.values():
        path.mkdir(parents=True)
        (path / "cgroup.procs").write_text("77\n78\n")
    (dirs["memory"] / "memory.usage_in_bytes").write_text("1048576\n")
    (dirs["memory"] / "memory.max_usage_in_bytes").write_text("2097152\n")
    (dirs["memory"] / "memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (dirs["cpu"] / "cpu.stat").write_text("nr_periods 40\nnr_throttled 3\n"
                                          "throttled_time 500000000\n")
    (dirs["cpuacct"] / "cpuacct.usage").write_text("2500000000\n")
    group = cgroups.WorkerCgroup(name="worker-x", limits=cgroups.Limits(64 << 20, 8, 50),
                                 v1=dirs)
    assert group.stats() == {"memory_bytes": 1 << 20, "memory_peak_bytes": 2 << 20,
                             "oom_kills": 2, "cpu_s": 2.5, "throttled_s": 0.5,
                             "throttled_periods": 3, "tasks": 2}
    assert (group.oom_kills(), group.cpu_s()) == (2, 2.5), "the watchdog's two reads"
