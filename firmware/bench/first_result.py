"""The first concentration result of a fresh process with a warm kernel cache, for `pafw bench`.

The child side (``probe_first_result``, run as ``pafw bench --probe-first-result``) imports
only what `pafw run` imports to produce a result: the analyzer, not the benchmark's scipy
reference, which alone took 0.9 s to import and was counted in the figure before.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from firmware.app.analyzer import Analyzer
from firmware.config.loader import ConfigDocument

PROBE_READY = "PAFW-FIRST-RESULT"


def first_result_seconds(config_path: Path | None, runs: int = 2) -> float:
    """Wall time from launching a new `pafw` process to its first concentration result.

    The first run warms the on-disk kernel cache; the figure is the best of the later ones.
    """
    cmd = [sys.executable, "-m", "firmware.cli", "bench", "--probe-first-result"]
    if config_path is not None:
        cmd += ["--config", str(config_path)]
    timings: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.strip() == PROBE_READY:
                    timings.append(time.perf_counter() - start)
                    break
            proc.kill()
    if not timings:
        raise RuntimeError("the first-result probe never reported a result")
    return min(timings[1:] or timings)


def probe_first_result(doc: ConfigDocument) -> None:
    """Child side of first_result_seconds: run until a concentration result, then say so."""
    analyzer = Analyzer(doc, realtime=False)
    analyzer.warm_up()
    source = analyzer.source
    source.open()
    ids = [n.node_id for n in analyzer.graph.nodes if n.type_name == "concentration"]
    ids = ids or analyzer.graph.computing_node_ids()
    while (frame := source.read()) is not None:
        analyzer.process_frame(frame)
        if any(analyzer.state.get(i) is not None for i in ids):
            print(PROBE_READY, flush=True)
            break
    analyzer.stop()
