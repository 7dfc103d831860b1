"""Builds the appliance's CalibrationManager from the config and the running graph."""

from __future__ import annotations

from firmware import __version__
from firmware.app.analyzer import Analyzer, graph_specs
from firmware.calibration.manager import CalibrationManager
from firmware.calibration.record import signal_chain
from firmware.calibration.store import RecordStore
from firmware.config.loader import ConfigDocument
from firmware.dsp.nodes.concentration import ConcentrationNode


def build_calibration(doc: ConfigDocument, analyzer: Analyzer) -> CalibrationManager | None:
    """The manager of ``calibration.node`` (or the graph's first concentration node); None
    when the graph has no concentration node."""
    cfg = doc.config
    wanted = cfg.calibration.node
    nodes = [n for n in analyzer.graph.nodes if isinstance(n, ConcentrationNode)
             and (wanted is None or n.node_id == wanted)]
    if not nodes:
        return None
    node = nodes[0]
    chain = signal_chain(graph_specs(doc), node.node_id,
                         sample_rate=cfg.acquisition.sample_rate,
                         frame_size=cfg.acquisition.frame_size)
    return CalibrationManager(
        cfg.calibration, node=node, state=analyzer.state,
        store=RecordStore(analyzer.state_dir / "calibration"), chain=chain,
        firmware_version=__version__, gas=cfg.device.gas)
