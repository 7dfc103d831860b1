"""The analyzer: builds source, graph and state from a config, runs the DSP thread, stops safely.

The DSP thread reads a frame, runs the graph and publishes results; everything else (status
lines, later MQTT and actions) reads ComputingState from other threads and never makes the DSP
thread wait.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware import __version__
from firmware.app.release import release_id
from firmware.config.loader import ConfigDocument
from firmware.dsp.design_cache import use_design_cache
from firmware.dsp.frame import Frame
from firmware.dsp.fusion import fuse_linear_chains
from firmware.dsp.graph import NodeSpec, ProcessingGraph
from firmware.dsp.jit_cache import use_cache_dir
from firmware.dsp.sources.base import AudioSource
from firmware.dsp.sources.factory import make_source
from firmware.errors import PafwError
from firmware.state import ComputingResult, ComputingState

log = logging.getLogger("pafw.analyzer")

WARMUP_FRAMES = 3


def graph_specs(doc: ConfigDocument) -> list[NodeSpec]:
    """The configured graph as build specs, parents first (as written, not fused)."""
    graph = doc.config.processing.default_graph
    parent_of = graph.parent_map()
    by_id = {n.id: n for n in graph.nodes}
    return [
        NodeSpec(node_id=i, type_name=by_id[i].type, params=by_id[i].params,
                 parent=parent_of.get(i))
        for i in graph.topological_order()
    ]


def runnable_specs(doc: ConfigDocument) -> tuple[list[NodeSpec], list[str]]:
    """The specs to build, with linear chains fused when the config allows (dsp/fusion.py)."""
    specs = graph_specs(doc)
    if not doc.config.processing.fuse_linear_chains:
        return specs, []
    return fuse_linear_chains(specs)


def graph_calibration(specs: list[NodeSpec]) -> list[float] | None:
    """Coefficients of the first concentration node (what the simulator inverts)."""
    for spec in specs:
        if spec.type_name == "concentration":
            return list(spec.params.polynomial_coefficients)
    return None


def check_graph(doc: ConfigDocument) -> None:
    """Build the graph once, throwaway, to catch what needs the sample rate and the channel
    layout (filter edges above Nyquist, a differential fed one channel, ...)."""
    with tempfile.TemporaryDirectory(prefix="pafw-check-") as tmp:
        ProcessingGraph.build(
            runnable_specs(doc)[0],
            sample_rate=doc.config.acquisition.sample_rate,
            frame_size=doc.config.acquisition.frame_size,
            state=ComputingState(),
            state_dir=Path(tmp),
            locate=doc.node_location,
        ).close()


class Analyzer:
    """Source + processing graph + ComputingState + the DSP thread that drives them."""

    def __init__(
        self,
        doc: ConfigDocument,
        *,
        realtime: bool,
        source: AudioSource | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.doc = doc
        config = doc.config
        self.sample_rate = config.acquisition.sample_rate
        self.frame_size = config.acquisition.frame_size
        self.state_dir = state_dir or config.paths.state_dir
        self.state = ComputingState()
        self.specs, self.fusions = runnable_specs(doc)
        # designed filters and windows are kept beside the kernels: a warm start needs no scipy
        use_design_cache(config.paths.cache_dir)
        for note in self.fusions:
            log.debug("graph fusion: %s", note)
        self.graph = self._build_graph(self.state, self.state_dir)
        self.source = source or make_source(
            config.acquisition, realtime=realtime, graph_calibration=graph_calibration(self.specs)
        )
        self.frames = 0
        self.overruns = 0
        #: called on the DSP thread after each frame (must not block): the cycle's tap
        self.frame_hooks: list[Callable[[], None]] = []
        #: called once on the DSP thread after the next frame's hooks, then cleared (must not
        #: block); set from any thread by ``call_after_next_frame``
        self.after_next_frame: Callable[[], None] | None = None
        #: called on the DSP thread with each frame after the graph (must not block nor
        #: allocate; the frame is valid only during the call): the self-test's collector
        self.frame_taps: list[Callable[[Frame], None]] = []
        self.started_monotonic = time.monotonic()
        self.last_frame: Frame | None = None
        #: monotonic time the newest frame's processing ended (None before the first)
        self.last_frame_done: float | None = None
        self.fault: str | None = None
        self.finished = threading.Event()
        #: set once the first frame went through the graph (READY to systemd waits for it)
        self.first_frame_done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dsp_cpu_s = 0.0

    def _build_graph(self, state: ComputingState, state_dir: Path, *,
                     rehearsal: bool = False) -> ProcessingGraph:
        return ProcessingGraph.build(
            self.specs,
            sample_rate=self.sample_rate,
            frame_size=self.frame_size,
            state=state,
            state_dir=state_dir,
            locate=self.doc.node_location,
            rehearsal=rehearsal,
        )

    def warm_up(self, cache_dir: Path | None = None) -> float:
        """Compile (or load from the on-disk cache) every kernel; returns the seconds spent.

        Runs a throwaway copy of the graph over silence, so no state, result or file of the
        real graph is touched, then the source's own kernels on scratch buffers: the DSP
        thread's first frame compiles nothing.
        """
        start = time.perf_counter()
        use_cache_dir(cache_dir or self.doc.config.paths.cache_dir)
        with tempfile.TemporaryDirectory(prefix="pafw-warmup-") as tmp:
            scratch = self._build_graph(ComputingState(), Path(tmp), rehearsal=True)
            frame = Frame.empty(self.frame_size, self.sample_rate)
            for i in range(WARMUP_FRAMES):
                frame.sequence = i
                frame.timestamp = time.monotonic()
                frame.wall_time = time.time()
                scratch.process(frame)
            scratch.close()
        self.source.warm_up()
        return time.perf_counter() - start

    def process_frame(self, frame: Frame) -> None:
        """Run the graph on one frame and keep the loop's counters (DSP thread)."""
        self.graph.process(frame)
        for hook in self.frame_hooks:
            hook()
        once = self.after_next_frame
        if once is not None:
            self.after_next_frame = None
            once()
        for tap in self.frame_taps:
            tap(frame)
        self.frames += 1
        if self.graph.last_frame_ns * 1e-9 > frame.duration_s:
            self.overruns += 1
        self.last_frame = frame
        self.last_frame_done = time.monotonic()
        if not self.first_frame_done.is_set():
            self.first_frame_done.set()

    def call_after_next_frame(self, callback: Callable[[], None]) -> None:
        """Have ``callback`` called once on the DSP thread after the next frame (any thread).

        The actions' feed asks for its flush this way at each drain: while a wake-up of the
        control loop is pending, the DSP thread tests one attribute per frame instead of
        calling a hook. Setting the slot again before that frame replaces the callback.
        """
        self.after_next_frame = callback

    def run(self, max_frames: int | None = None) -> None:
        """Read and process frames until stopped, the stream ends or ``max_frames``."""
        cpu0 = time.thread_time()
        try:
            self.source.open()
            while not self._stop.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                self.process_frame(frame)
                self._dsp_cpu_s = time.thread_time() - cpu0
                if max_frames is not None and self.frames >= max_frames:
                    break
        except PafwError as exc:
            self.fault = str(exc)
            log.error("DSP loop stopped: %s", exc)
        except Exception as exc:  # a bug: keep the traceback in the log, fail safe
            self.fault = f"{type(exc).__name__}: {exc}"
            log.exception("DSP loop crashed")
        finally:
            self.finished.set()

    def start(self) -> None:
        """Run the DSP loop in its own thread."""
        self._thread = threading.Thread(target=self.run, name="dsp", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the DSP thread, then close the source and the graph; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.source.close()
        self.graph.close()

    def latest_results(self) -> list[ComputingResult]:
        """The latest result of each computing node that has produced one, in graph order."""
        results = (self.state.get(i) for i in self.graph.computing_node_ids())
        return [r for r in results if r is not None]

    @property
    def dsp_cpu_s(self) -> float:
        """CPU seconds used by the DSP thread so far."""
        return self._dsp_cpu_s

    def get_status(self) -> dict[str, Any]:
        """Appliance-level status: counters, source, graph timings, latest results."""
        uptime = time.monotonic() - self.started_monotonic
        return {
            "version": __version__,
            "release": release_id(),
            "uptime_s": round(uptime, 3),
            "sample_rate": self.sample_rate,
            "frame_size": self.frame_size,
            "frames": self.frames,
            "overruns": self.overruns,
            "fault": self.fault,
            "dsp_cpu_s": round(self._dsp_cpu_s, 3),
            "source": self.source.get_status(),
            "graph": {**self.graph.get_status(), "fused": list(self.fusions)},
            "results": {k: v.to_dict() for k, v in self.state.snapshot().items()},
        }

