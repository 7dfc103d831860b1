"""`pafw bench footprint` in a short form: a real `pafw run` with one script action is started
cold then warm, its READY and first result are seen, its memory and its worker's are read,
and imports are measured in fresh interpreters (the values are the bench's business)."""

from __future__ import annotations

import json
import subprocess
import sys

from firmware.bench.footprint import format_footprint_report, measure_imports, run_footprint_bench


def test_a_real_appliance_and_its_worker_are_measured(tmp_path) -> None:
    figures = run_footprint_bench(settle_s=1.0, warm_runs=1, python_actions=1, imports=False,
                                  cache_dir=tmp_path.parent / "numba-cache")
    app = figures["appliance"]
    assert 0 < app["uss_mb"] <= app["rss_mb"] <= app["peak_rss_mb"]
    assert 0 < app["anon_mb"] <= app["rss_mb"]
    (worker,) = figures["workers"]  # the one script action's worker process
    assert 0 < worker["uss_mb"] <= worker["rss_mb"]
    assert figures["total_rss_mb"] == round(app["rss_mb"] + worker["rss_mb"], 1)
    for start in (figures["start"]["cold"], figures["start"]["warm"]):
        # READY is sent once the first frame went through the graph, never before it
        assert start["ready_s"] > 0 and start["first_result_s"] > 0
    assert figures["start"]["warm"]["runs"] == 1
    report = format_footprint_report(figures)
    assert "worker" in report and "READY" in report and "imports" not in report


def test_imports_are_measured_in_fresh_interpreters() -> None:
    rows = measure_imports(("yaml", "firmware_no_such_module"), runs=1)
    assert rows[0]["module"] == "yaml" and rows[0]["installed"]
    assert rows[0]["import_ms"] > 0 and rows[0]["rss_mb"] > 0
    assert rows[1] == {"module": "firmware_no_such_module", "installed": False}


def test_the_bench_process_maps_no_compiler() -> None:
    """The bench must not share the appliance's LLVM pages (USS and page-out would lie)."""
    probe = ("import sys, firmware.cli, firmware.bench.footprint;"
             "print(sorted(m for m in ('numba', 'llvmlite', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout.replace("'", '"')) == []
