"""Record node: writes the signal passing through it to WAV files, off the DSP thread.

The DSP thread only copies the frame into a free slot of a preallocated ring and hands the
slot index to a writer thread; when the writer lags and no slot is free the frame is dropped
and counted, never waited for. The writer thread creates the directory and every file (an
error is kept in ``last_error``, never raised on the DSP thread), names each file so that no
other recorder can take it, and rewrites the header at least every ``FLUSH_S``: a recorder
killed mid-file leaves a readable recording. Files rotate at ``max_file_mb`` and the oldest
recordings are deleted to keep the directory under ``max_total_mb``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from firmware.dsp.frame import Frame
from firmware.dsp.node import BuildContext, Node
from firmware.dsp.registry import register
from firmware.dsp.sources.wav import WavWriter
from firmware.strict_model import StrictModel

_STOP = -1
#: the longest the file being recorded goes without a header that counts its samples
FLUSH_S = 1.0


class RecordParams(StrictModel):
    """Where and how to record; sizes in MiB."""

    directory: Path = Field(Path("recordings"), description="relative paths are in the state dir")
    prefix: str = Field("pafw", pattern=r"^[A-Za-z0-9_.-]+$")
    sample_format: Literal["int16", "int24", "int32", "float32"] = "int16"
    max_file_mb: float = Field(50.0, gt=0)
    max_total_mb: float = Field(500.0, gt=0)
    queue_frames: int = Field(64, ge=2, le=4096)

    @model_validator(mode="after")
    def _file_fits_total(self) -> RecordParams:
        if self.max_file_mb > self.max_total_mb:
            raise ValueError(
                f"max_file_mb ({self.max_file_mb}) must not exceed max_total_mb "
                f"({self.max_total_mb})"
            )
        return self


@register
class RecordNode(Node):
    """Pass-through node that records to rotating WAV files."""

    type_name = "record"
    Params = RecordParams

    def __init__(self, node_id: str, params: RecordParams, ctx: BuildContext) -> None:
        super().__init__(node_id, params, ctx)
        directory = params.directory
        if ctx.rehearsal:  # the warm-up's copy records into its own scratch directory
            directory = Path("recordings") / node_id
        self.directory = directory if directory.is_absolute() else ctx.state_dir / directory
        self._sample_rate = ctx.sample_rate
        self._slots = np.zeros((params.queue_frames, ctx.input_channels, ctx.frame_size))
        self._free: deque[int] = deque(range(params.queue_frames))
        self._filled: queue.SimpleQueue[int] = queue.SimpleQueue()
        #: frames the writer thread could not take (no free slot) / could not write (I/O)
        self.dropped_frames = 0
        self.failed_frames = 0
        self.written_frames = 0
        self.files_written = 0
        self.files_deleted = 0
        self.last_error: str | None = None
        self._writer: WavWriter | None = None
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"record-{self.node_id}",
                                        daemon=True)
        self._thread.start()

    def process(self, signal: np.ndarray, frame: Frame) -> np.ndarray:
        if self._thread is None:
            self._start()
        try:
            slot = self._free.popleft()
        except IndexError:
            self.dropped_frames += 1
            return signal
        self._slots[slot] = signal
        self._filled.put(slot)
        return signal

    def _run(self) -> None:
        max_bytes = int(self.params.max_file_mb * 1024 * 1024)
        flushed = time.monotonic()
        while True:
            try:
                slot = self._filled.get(timeout=FLUSH_S)
            except queue.Empty:
                slot = None
            if slot is None or time.monotonic() - flushed >= FLUSH_S:
                self._flush()
                flushed = time.monotonic()
            if slot is None:
                continue
            if slot == _STOP:
                break
            try:
                if self._writer is None or self._writer.bytes_written >= max_bytes:
                    self._rotate()
                assert self._writer is not None
                self._writer.write(self._slots[slot])
                self.written_frames += 1
            except OSError as exc:
                self.failed_frames += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._close_writer()
            finally:
                self._free.append(slot)
        self._close_writer()

    def _flush(self) -> None:
        if self._writer is not None:
            try:
                self._writer.flush()
            except OSError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._close_writer()

    def _rotate(self) -> None:
        self._close_writer()
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        number = self.files_written
        while True:  # another recorder in this directory may have taken the name
            path = self.directory / f"{self.params.prefix}-{stamp}-{number:05d}.wav"
            try:
                self._writer = WavWriter(path, sample_rate=self._sample_rate,
                                         channels=self._slots.shape[1],
                                         sample_format=self.params.sample_format,
                                         exclusive=True)
                break
            except FileExistsError:
                number += 1
        self.files_written += 1
        self._enforce_total_cap()

    def _close_writer(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            self._writer = None

    def recordings(self) -> list[Path]:
        """This node's recordings, oldest first."""
        return sorted(self.directory.glob(f"{self.params.prefix}-*.wav"))

    def _enforce_total_cap(self) -> None:
        """Delete the oldest finished files until the total fits under max_total_mb."""
        cap = self.params.max_total_mb * 1024 * 1024
        max_file = self.params.max_file_mb * 1024 * 1024
        files = self.recordings()
        # the file just opened will grow to max_file: reserve its room
        finished = files[:-1]
        total = sum(p.stat().st_size for p in finished) + max_file
        for path in finished:
            if total <= cap:
                break
            size = path.stat().st_size
            path.unlink(missing_ok=True)
            self.files_deleted += 1
            total -= size

    def close(self) -> None:
        if self._thread is not None:
            self._filled.put(_STOP)
            self._thread.join(timeout=10.0)
            self._thread = None

    def get_status(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "written_frames": self.written_frames,
            "dropped_frames": self.dropped_frames,
            "failed_frames": self.failed_frames,
            "files_written": self.files_written,
            "files_deleted": self.files_deleted,
            "last_error": self.last_error,
        }
