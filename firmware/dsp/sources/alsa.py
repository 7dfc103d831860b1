"""AlsaSource: capture from an ALSA PCM through pyalsaaudio.

The device is opened non-blocking and waited on with ``poll`` so that ``close()`` from another
thread never waits behind a blocked read. Periods are accumulated into frames of
``frame_size`` (any ratio), converted from interleaved S16_LE/S32_LE to float64 in place.

pyalsaaudio reports an overrun as a read returning ``(-EPIPE, b"")``; it re-prepares the PCM
on the next read, so an overrun is counted and reading simply continues. Read or poll errors,
or no data for ``stall_timeout_s``, mean the device went away: it is closed and reopened with
exponential backoff (up to ``reopen_max_backoff_s``), counting reopens.
"""

from __future__ import annotations

import contextlib
import errno
import select
import threading
import time
from types import ModuleType
from typing import Any

import numpy as np

from firmware.dsp.frame import Frame
from firmware.dsp.sources.base import AudioSource, deinterleave_scaled
from firmware.dsp.sources.settings import AlsaSettings
from firmware.errors import SourceError

_SAMPLE_BYTES = {"S16_LE": 2, "S32_LE": 4}
_DTYPES = {"S16_LE": "<i2", "S32_LE": "<i4"}
_SCALES = {"S16_LE": 2.0**-15, "S32_LE": 2.0**-31}


def _import_alsaaudio() -> ModuleType:
    """pyalsaaudio, imported only when an ALSA source is used (tests replace this)."""
    try:
        import alsaaudio
    except ImportError:
        raise SourceError(
            "the ALSA source needs pyalsaaudio, which is not installed; install the 'alsa' "
            "extra: pip install 'pafw[alsa]' (and the libasound2-dev system package)"
        ) from None
    # a C extension without type information (Any to the type checker): used as a module
    module: ModuleType = alsaaudio
    return module


class AlsaSource(AudioSource):
    """Frames captured from an ALSA device (``settings.device``), paced by the hardware.

    ``last_raw_bytes`` holds the exact interleaved bytes behind the last frame, for tests
    and diagnostics.

    >>> # with AlsaSource(AlsaSettings(device="hw:CARD=sndrpihifiberry,DEV=0"),
    >>> #                 sample_rate=48000, frame_size=4096) as src:
    >>> #     frame = src.read()
    """

    kind = "alsa"

    def __init__(
        self,
        settings: AlsaSettings,
        *,
        sample_rate: int,
        frame_size: int,
        stall_timeout_s: float | None = None,
    ) -> None:
        super().__init__(sample_rate=sample_rate, frame_size=frame_size, realtime=False)
        self.settings = settings
        self.period_size = settings.period_size or frame_size
        self._bytes_per_frame = _SAMPLE_BYTES[settings.format] * settings.channels
        self.stall_timeout_s = stall_timeout_s or max(2.0, 8 * frame_size / sample_rate)
        self._alsa: ModuleType | None = None
        self._pcm: Any = None
        self._poller: select.poll | None = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        # raw accumulation buffer: one frame plus one period of carry-over
        cap = (frame_size + self.period_size) * self._bytes_per_frame
        self._raw = np.zeros(cap, dtype=np.uint8)
        self._raw_view = self._raw.view(_DTYPES[settings.format])
        self._have = 0  # bytes accumulated in _raw
        self._frame_done = False  # _raw starts with the bytes of the frame last returned
        self._frame_bytes = frame_size * self._bytes_per_frame
        self.granted: dict[str, Any] = {}
        self.reopen_failures = 0
        self.read_errors = 0

    @property
    def last_raw_bytes(self) -> bytes:
        """A copy of the interleaved bytes of the last frame returned by ``read()``."""
        if not self._frame_done:
            return b""
        return self._raw[: self._frame_bytes].tobytes()

    def _open_pcm(self) -> None:
        """Open the device and check that ALSA granted what was asked; raises SourceError."""
        alsa = self._alsa
        assert alsa is not None
        s = self.settings
        try:
            pcm = alsa.PCM(
                type=alsa.PCM_CAPTURE,
                mode=alsa.PCM_NONBLOCK,
                device=s.device,
                rate=self._sample_rate,
                channels=s.channels,
                format=getattr(alsa, f"PCM_FORMAT_{s.format}"),
                periodsize=self.period_size,
                periods=s.periods,
            )
        except alsa.ALSAAudioError as exc:
            raise SourceError(f"ALSA device {s.device!r}: cannot open for capture: {exc}") from None
        info = pcm.info()
        granted = {
            "rate": info.get("rate"),
            "channels": info.get("channels"),
            "format": info.get("format_name"),
            "period_size": info.get("period_size"),
            "periods": info.get("periods", info.get("get_periods")),
        }
        wanted = {"rate": self._sample_rate, "channels": s.channels, "format": s.format}
        bad = [f"{k} {wanted[k]} but got {granted[k]}" for k in wanted if granted[k] != wanted[k]]
        if bad:
            pcm.close()
            raise SourceError(
                f"ALSA device {s.device!r} refused the requested parameters: asked for "
                + "; ".join(bad)
                + " (use a 'plughw:' device for conversion or change acquisition settings)"
            )
        poller = select.poll()
        for fd, mask in pcm.polldescriptors():
            poller.register(fd, mask)
        self.granted = granted
        self._ensure_capacity(int(granted["period_size"] or self.period_size))
        self._pcm, self._poller = pcm, poller

    def _ensure_capacity(self, period_size: int) -> None:
        """Grow the accumulation buffer if ALSA granted larger periods than requested."""
        need = (self._frame_size + period_size) * self._bytes_per_frame
        if need > self._raw.size:
            raw = np.zeros(need, dtype=np.uint8)
            raw[: self._have] = self._raw[: self._have]
            self._raw = raw
            self._raw_view = raw.view(_DTYPES[self.settings.format])

    def _open(self, frame: Frame) -> None:
        self._alsa = _import_alsaaudio()
        self._closing.clear()
        self._have = 0
        self._frame_done = False
        self._open_pcm()

    def _drop_pcm(self) -> None:
        with self._lock:
            pcm, self._pcm, self._poller = self._pcm, None, None
            if pcm is not None:
                with contextlib.suppress(Exception):  # the device may already be gone
                    pcm.close()

    def _reopen(self) -> bool:
        """Reopen with exponential backoff until it works or close() is called."""
        delay = 0.05
        while not self._closing.is_set():
            if self._closing.wait(delay):
                break
            try:
                self._open_pcm()
            except SourceError as exc:
                self.reopen_failures += 1
                self.last_error = str(exc)
                delay = min(delay * 2.0, self.settings.reopen_max_backoff_s)
                continue
            self.reopens += 1
            self._have -= self._have % self._bytes_per_frame
            return True
        return False

    def _lost(self, reason: str) -> None:
        self.read_errors += 1
        self.last_error = f"ALSA device {self.settings.device!r}: {reason}"
        self._drop_pcm()

    def _read_period(self) -> int:
        """One non-blocking read into the accumulation buffer; returns bytes added (0 = none)."""
        alsa = self._alsa
        assert alsa is not None
        with self._lock:
            pcm = self._pcm
            if pcm is None:
                return 0
            length, data = pcm.read()
        if length < 0:
            if length == -errno.EPIPE:
                self.overruns += 1
            else:
                self.read_errors += 1
            return 0
        n = len(data)
        if n:
            self._raw[self._have : self._have + n] = np.frombuffer(data, dtype=np.uint8)
            self._have += n
        return n

    def warm_up(self) -> None:
        """Compile the int -> float conversion for the configured sample format on an empty
        scratch buffer (the device is not opened)."""
        scratch = np.zeros((2, self._frame_size))
        deinterleave_scaled(self._raw_view[:0], 0, self.settings.channels,
                            _SCALES[self.settings.format], scratch, 0, False)

    def _fill(self, frame: Frame) -> bool:
        # move the carry-over of the previous frame to the front
        if self._frame_done:
            rest = self._have - self._frame_bytes
            self._raw[:rest] = self._raw[self._frame_bytes : self._have]
            self._have = rest
            self._frame_done = False
        alsa = self._alsa
        assert alsa is not None
        last_data = time.monotonic()
        while self._have < self._frame_bytes:
            if self._closing.is_set():
                return False
            if self._pcm is None and not self._reopen():
                return False
            try:
                poller = self._poller
                if poller is not None:
                    poller.poll(100)
                got = self._read_period()
            except (alsa.ALSAAudioError, OSError) as exc:
                self._lost(f"read failed: {exc}")
                continue
            now = time.monotonic()
            if got:
                last_data = now
            elif now - last_data > self.stall_timeout_s:
                self._lost(f"no data for {self.stall_timeout_s:.1f} s")
                last_data = now
            elif poller is None:
                time.sleep(0.001)
        channels = self.settings.channels
        n = self._frame_size
        deinterleave_scaled(
            self._raw_view, n, channels, _SCALES[self.settings.format], frame.samples, 0, False
        )
        self._frame_done = True
        return True

    def read(self) -> Frame | None:
        """Next frame, or None once ``close()`` was called (possibly from another thread)."""
        if self._closing.is_set():
            return None
        return super().read()

    def close(self) -> None:
        """Stop reading and release the device; safe from any thread, never waits long."""
        self._closing.set()
        super().close()

    def _close(self) -> None:
        self._drop_pcm()

    def _extra_status(self) -> dict[str, Any]:
        return {
            "device": self.settings.device,
            "format": self.settings.format,
            "channels": self.settings.channels,
            "granted": dict(self.granted),
            "reopen_failures": self.reopen_failures,
            "read_errors": self.read_errors,
        }
