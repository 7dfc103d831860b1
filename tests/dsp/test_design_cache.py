"""Designed coefficients kept on disk: a warm start loads them and never imports scipy; a bad
cache file is designed again; without a directory nothing is written."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.signal

from firmware.dsp import design_cache
from firmware.dsp.design_cache import DESIGNS_DIR, cached_design, design_key, use_design_cache


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(design_cache, "_memory", {})
    monkeypatch.setattr(design_cache, "_directory", None)


def test_a_design_is_stored_then_loaded_instead_of_designed(tmp_path, monkeypatch):
    use_design_cache(tmp_path)
    calls = []

    def design():
        calls.append(1)
        return np.arange(6.0).reshape(1, 6)

    first = cached_design("sos", {"order": 2}, design)
    (stored,) = (tmp_path / DESIGNS_DIR).iterdir()
    assert stored.name == design_key("sos", {"order": 2}) + ".npy"
    monkeypatch.setattr(design_cache, "_memory", {})  # as a new process would start
    again = cached_design("sos", {"order": 2}, lambda: pytest.fail("designed again"))
    assert calls == [1] and np.array_equal(first, again) and again.dtype == np.float64
    again[0, 0] = 99.0  # the caller's copy: the cache keeps its own
    assert cached_design("sos", {"order": 2}, design)[0, 0] == 0.0
    other = cached_design("sos", {"order": 3}, lambda: np.ones((1, 6)))
    assert np.array_equal(other, np.ones((1, 6))), "other parameters, another design"


def test_a_damaged_cache_file_is_designed_again_and_rewritten(tmp_path):
    use_design_cache(tmp_path)
    path = tmp_path / DESIGNS_DIR / (design_key("window", {"n": 4}) + ".npy")
    path.parent.mkdir()
    path.write_bytes(b"not an array")
    assert np.array_equal(cached_design("window", {"n": 4}, lambda: np.ones(4)), np.ones(4))
    assert np.array_equal(np.load(path), np.ones(4))


def test_without_a_directory_designs_stay_in_memory(tmp_path):
    cached_design("window", {"n": 4}, lambda: np.ones(4))
    assert list(tmp_path.iterdir()) == []


def test_a_warm_start_builds_the_graph_and_runs_a_frame_without_scipy(state_env, tmp_path):
    """The appliance's import and start-up path: with the design cache warm, the filter's
    sections and the window come from disk and scipy is never imported (nor the Modbus
    server, off by default, nor the Python-action worker machinery without a python_action);
    the stored designs are scipy's."""
    probe = textwrap.dedent("""
        import os, sys
        from firmware.config.loader import load_config
        from firmware.service.run import Service
        service = Service(load_config(None, env=os.environ), realtime=False)
        analyzer = service.analyzer
        analyzer.warm_up()
        with analyzer.source:
            analyzer.process_frame(analyzer.source.read())
        print(sorted(m for m in ("scipy", "firmware.web.server", "firmware.modbus.server",
                                 "firmware.actions.python.supervisor",
                                 "firmware.actions.python.confinement") if m in sys.modules))
        service.appliance.stop()
    """)
    env = {**state_env, "PAFW_CACHE_DIR": str(tmp_path / "cache")}
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                             text=True, timeout=900)
        assert out.returncode == 0, out.stderr
        runs.append(out.stdout.strip())
    assert runs == ["['firmware.web.server', 'scipy']", "['firmware.web.server']"]
    stored = [np.load(p) for p in sorted((tmp_path / "cache" / DESIGNS_DIR).iterdir())]
    sos = scipy.signal.iirfilter(4, [1700.0, 2300.0], btype="bandpass", ftype="butter",
                                 output="sos", fs=48000.0)
    window = scipy.signal.get_window("hann", 4096, fftbins=True)
    assert sorted(a.shape for a in stored) == sorted([sos.shape, window.shape])
    for array in stored:
        assert np.array_equal(array, sos if array.shape == sos.shape else window)
