"""Building and running the processing graph from configs."""

from __future__ import annotations

import os
import subprocess
import sys
import wave

import numpy as np
import pytest

from firmware.app.analyzer import Analyzer, check_graph
from firmware.dsp.frame import Frame
from firmware.errors import ConfigError
from tests.conftest import graph_node


def test_default_graph_runs_and_reports_timing(make_doc):
    analyzer = Analyzer(make_doc(), realtime=False)
    analyzer.warm_up()
    analyzer.run(max_frames=10)
    analyzer.stop()
    assert analyzer.fault is None
    status = analyzer.get_status()
    nodes = status["graph"]["nodes"]
    # fused: the differential runs before the per-channel filter and gain (dsp/fusion.py)
    assert list(nodes) == ["input", "differential", "bandpass", "gain", "peak_finder",
                           "concentration", "mqtt", "alarm_relay", "status_led"]
    assert status["graph"]["fused"] == ["differential moved before bandpass, gain"]
    for node in nodes.values():
        timing = node["timing"]
        if node["type"].endswith("_action"):
            assert timing is None, "action nodes do no work on the DSP thread"
            continue
        if node["type"] in ("input", "gain"):  # the frame itself, a 0 dB gain: routed around
            assert timing is None
            continue
        assert timing["count"] == 10  # warm-up ran on a throwaway copy of the graph
        assert 0 < timing["p50_us"] <= timing["p99_us"] <= timing["max_us"]
    assert status["results"]["concentration"]["concentration_ppm"] > 0


def test_stereo_only_node_fed_one_channel_is_located_config_error(make_doc):
    def double_differential(data):
        graph = data["processing"]["default_graph"]
        graph["nodes"].append({"id": "diff2", "type": "differential", "parameters": {}})
        graph["connections"].append({"from": "differential", "to": "diff2"})

    with pytest.raises(ConfigError, match=r":\d+:\d+: .*'diff2'.*needs a stereo input"):
        check_graph(make_doc(double_differential))


def test_filter_edge_above_nyquist_is_located_config_error(make_doc):
    def too_high(data):  # the peak finder follows: only the build can tell (Nyquist)
        graph_node(data, "bandpass")["parameters"]["center_frequency"] = 23900.0
        graph_node(data, "peak_finder")["parameters"].update(center_frequency=23800.0,
                                                             bandwidth=300.0)

    with pytest.raises(ConfigError, match=r":\d+:\d+: processing\.default_graph\.nodes"
                       r"\[bandpass\]\.parameters\.center_frequency: .*'bandpass'.*Nyquist"):
        check_graph(make_doc(too_high))


def test_concentration_needs_an_amplitude_source(make_doc):
    def wrong_source(data):
        graph_node(data, "concentration")["parameters"]["source_node"] = "gain"

    with pytest.raises(ConfigError, match=r"source_node 'gain' is a gain node"):
        check_graph(make_doc(wrong_source))


def test_lockin_and_channel_nodes(make_doc):
    def lockin_branch(data):
        graph = data["processing"]["default_graph"]
        graph["nodes"] += [
            {"id": "mix", "type": "channel_mixer", "parameters": {"strategy": "subtract"}},
            {
                "id": "li",
                "type": "lockin",
                "parameters": {"reference_frequency": 2000.0, "time_constant_s": 0.02},
            },
            {
                "id": "conc_li",
                "type": "concentration",
                "parameters": {"polynomial_coefficients": [0.0, 50000.0]},
            },
            {"id": "sel", "type": "channel_selector", "parameters": {"channel": "B"}},
        ]
        graph["connections"] += [
            {"from": "gain", "to": "mix"},
            {"from": "mix", "to": "li"},
            {"from": "li", "to": "conc_li"},
            {"from": "bandpass", "to": "sel"},
        ]
        sim = data["acquisition"]["simulator"]
        sim["temperature"]["swing_c"] = 0.0
        sim["concentration"] = {"profile": "constant", "value_ppm": 2000.0}

    analyzer = Analyzer(make_doc(lockin_branch), realtime=False)
    analyzer.warm_up()
    analyzer.run(max_frames=30)
    analyzer.stop()
    fft_ppm = analyzer.state.get("concentration").concentration_ppm
    lockin_ppm = analyzer.state.get("conc_li").concentration_ppm
    assert fft_ppm == pytest.approx(2000.0, rel=0.03)
    assert lockin_ppm == pytest.approx(2000.0, rel=0.03)
    assert analyzer.state.get("conc_li").source_node_id == "li"


def test_record_node_rotates_and_caps_total_size(make_doc, tmp_path):
    frame_bytes = 4096 * 2 * 2  # int16 stereo

    def recorder(data):
        graph = data["processing"]["default_graph"]
        graph["nodes"].append(
            {
                "id": "rec",
                "type": "record",
                "parameters": {
                    "directory": str(tmp_path / "rec"),
                    "sample_format": "int16",
                    "max_file_mb": 3 * frame_bytes / 2**20,
                    "max_total_mb": 9 * frame_bytes / 2**20,
                },
            }
        )
        graph["connections"].append({"from": "input", "to": "rec"})

    analyzer = Analyzer(make_doc(recorder), realtime=False)
    analyzer.run(max_frames=25)
    analyzer.stop()
    files = sorted((tmp_path / "rec").glob("pafw-*.wav"))
    assert 2 <= len(files) <= 3
    total = sum(f.stat().st_size for f in files)
    assert total <= 9 * frame_bytes + 3 * 44
    status = analyzer.graph.get_status()["nodes"]["rec"]
    assert status["written_frames"] + status["dropped_frames"] == 25
    assert status["files_deleted"] > 0
    with wave.open(str(files[-1])) as wav:
        assert wav.getnchannels() == 2 and wav.getsampwidth() == 2
        assert wav.getnframes() % 4096 == 0 and wav.getnframes() > 0


def test_graph_outputs_are_preallocated(make_doc):
    """The same output buffers come back frame after frame: nothing is allocated per frame."""
    analyzer = Analyzer(make_doc(), realtime=False)
    analyzer.warm_up()
    frame = Frame.empty(4096, 48000)
    rng = np.random.default_rng(0)
    ids = []
    for i in range(3):
        frame.samples[:] = rng.standard_normal((2, 4096))
        frame.sequence = i
        analyzer.graph.process(frame)
        ids.append([id(o) for o in analyzer.graph._outputs])
    analyzer.stop()
    assert ids[0] == ids[1] == ids[2]


def test_warm_up_writes_compiled_kernels_to_the_configured_cache(state_env, tmp_path):
    """A fresh process compiles into paths.cache_dir (numba only writes on a compile)."""
    cache = tmp_path / "cache" / "numba"
    env = {**os.environ, **state_env, "PAFW_CACHE_DIR": str(cache)}
    code = (
        "from firmware.config.loader import load_config;"
        "from firmware.app.analyzer import Analyzer;"
        "a = Analyzer(load_config(None), realtime=False); a.warm_up(); a.stop()"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    names = [p.name for p in cache.rglob("*")]
    assert any(n.endswith(".nbi") for n in names)
    assert any(n.endswith(".nbc") for n in names)
