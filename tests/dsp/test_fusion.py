"""Linear-chain fusion: the differential moved ahead of the filters gives the same results."""

from __future__ import annotations

import numpy as np
import pytest

from firmware.app.analyzer import Analyzer
from firmware.dsp.frame import Frame
from tests.conftest import graph_node


def results_over_frames(doc, frames):
    analyzer = Analyzer(doc, realtime=False)
    out = []
    for i, samples in enumerate(frames):
        frame = Frame(samples=samples, sample_rate=48000, sequence=i, timestamp=1e6 + i,
                      wall_time=1e9 + i)
        analyzer.graph.process(frame)
        peak = analyzer.state.get("peak_finder")
        conc = analyzer.state.get("concentration")
        out.append((peak.frequency_hz, peak.amplitude, peak.snr_db, conc.concentration_ppm))
    analyzer.stop()
    return np.array(out), analyzer


@pytest.mark.parametrize("gain_db", [0.0, 6.0])
def test_fused_graph_matches_unfused(make_doc, gain_db):
    rng = np.random.default_rng(3)
    t = np.arange(4096 * 12) / 48000
    tone = 0.03 * np.sin(2 * np.pi * 2011.7 * t)
    common = 0.05 * rng.standard_normal(t.size)
    a = tone / 2 + common + 0.002 * rng.standard_normal(t.size)
    b = -tone / 2 + common + 0.002 * rng.standard_normal(t.size)
    frames = [np.ascontiguousarray(np.stack([a, b])[:, i:i + 4096])
              for i in range(0, t.size, 4096)]

    def configure(fuse):
        def change(data):
            data["processing"]["fuse_linear_chains"] = fuse
            graph_node(data, "gain")["parameters"]["gain_db"] = gain_db
            graph_node(data, "concentration")["parameters"]["max_ppm"] = None
        return change

    fused, fused_analyzer = results_over_frames(make_doc(configure(True)), frames)
    plain, plain_analyzer = results_over_frames(make_doc(configure(False)), frames)
    assert fused_analyzer.fusions == ["differential moved before bandpass, gain"]
    assert plain_analyzer.fusions == []
    assert fused_analyzer.graph.nodes[1].node_id == "differential"
    assert fused_analyzer.graph.nodes[2].output_channels == 1
    np.testing.assert_allclose(fused, plain, rtol=1e-9)
    assert fused[-1, 0] == pytest.approx(2011.7, abs=0.05)


def test_no_fusion_when_the_filter_output_has_another_consumer(make_doc):
    def tap(data):
        graph = data["processing"]["default_graph"]
        graph["nodes"].append({"id": "tap", "type": "peak_finder", "parameters": {}})
        graph["connections"].append({"from": "bandpass", "to": "tap"})

    analyzer = Analyzer(make_doc(tap), realtime=False)
    # bandpass feeds gain and tap: only the gain may move behind the differential
    assert analyzer.fusions == ["differential moved before gain"]
    order = [n.node_id for n in analyzer.graph.nodes]
    assert order.index("bandpass") < order.index("differential") < order.index("gain")
    analyzer.stop()
