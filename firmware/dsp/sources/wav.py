"""WAV files: header parsing, a streaming writer and WavSource.

Reads 16/24/32-bit integer PCM and 32/64-bit float, mono or stereo, plain or
WAVE_FORMAT_EXTENSIBLE, skipping chunks it does not know. Integers map to [-1, 1)
(int16 / 32768 and so on). The writer keeps the header valid after every ``flush()`` so a
recorder killed mid-file leaves a readable file.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal

import numpy as np
from numba import njit

from firmware.dsp.frame import Frame
from firmware.dsp.sources.base import AudioSource, deinterleave_scaled
from firmware.dsp.sources.settings import WavSettings
from firmware.errors import SourceError

SampleFormat = Literal["int16", "int24", "int32", "float32", "float64"]
_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
_BYTES = {"int16": 2, "int24": 3, "int32": 4, "float32": 4, "float64": 8}
_SCALE = {"int16": 2.0**-15, "int24": 2.0**-23, "int32": 2.0**-31, "float32": 1.0, "float64": 1.0}
_DTYPE = {"int16": "<i2", "int32": "<i4", "float32": "<f4", "float64": "<f8"}
# KSDATAFORMAT_SUBTYPE_* GUIDs share this tail after the 16-bit format tag
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


@dataclass(frozen=True, slots=True)
class WavInfo:
    """What a WAV header says, plus where its samples start."""

    path: Path
    sample_rate: int
    channels: int
    sample_format: SampleFormat
    frames: int
    data_offset: int

    @property
    def block_align(self) -> int:
        """Bytes per sample frame (all channels)."""
        return self.channels * _BYTES[self.sample_format]

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return self.frames / self.sample_rate


def read_wav_info(path: str | Path) -> WavInfo:
    """Parse the RIFF header of ``path``; SourceError names the file and what was wrong."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _parse_header(path, fh)
    except OSError as exc:
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"{path}: cannot open WAV file: {exc.strerror}") from None


def _parse_header(path: Path, fh: BinaryIO) -> WavInfo:
    riff = fh.read(12)
    if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        raise SourceError(f"{path}: not a WAV file (expected 'RIFF....WAVE', got {riff[:12]!r})")
    file_size = fh.seek(0, 2)
    pos = 12
    fmt: tuple[int, int, SampleFormat] | None = None
    while pos + 8 <= file_size:
        fh.seek(pos)
        chunk_id, size = struct.unpack("<4sI", fh.read(8))
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(path, fh.read(size))
        elif chunk_id == b"data":
            if fmt is None:
                raise SourceError(f"{path}: 'data' chunk before the 'fmt ' chunk")
            rate, channels, sample_format = fmt
            block = channels * _BYTES[sample_format]
            if body + size > file_size:
                raise SourceError(
                    f"{path}: truncated: 'data' chunk declares {size} bytes but only "
                    f"{file_size - body} follow"
                )
            return WavInfo(path, rate, channels, sample_format, size // block, body)
        pos = body + size + (size & 1)  # chunks are padded to even sizes
    what = "'fmt ' chunk" if fmt is None else "'data' chunk"
    raise SourceError(f"{path}: truncated or incomplete WAV file: no {what} found")


def _parse_fmt(path: Path, body: bytes) -> tuple[int, int, SampleFormat]:
    if len(body) < 16:
        raise SourceError(f"{path}: 'fmt ' chunk is {len(body)} bytes, expected at least 16")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _EXTENSIBLE:
        if len(body) < 40 or body[26:40] != _GUID_TAIL:
            raise SourceError(f"{path}: WAVE_FORMAT_EXTENSIBLE with an unknown sub-format")
        tag = struct.unpack("<H", body[24:26])[0]
    formats: dict[tuple[int, int], SampleFormat] = {
        (_PCM, 16): "int16",
        (_PCM, 24): "int24",
        (_PCM, 32): "int32",
        (_FLOAT, 32): "float32",
        (_FLOAT, 64): "float64",
    }
    sample_format = formats.get((tag, bits))
    if sample_format is None:
        raise SourceError(
            f"{path}: unsupported sample format (format tag 0x{tag:04x}, {bits} bits); "
            "expected 16/24/32-bit integer PCM or 32/64-bit float"
        )
    if channels < 1 or rate < 1:
        raise SourceError(f"{path}: invalid header: {channels} channels at {rate} Hz")
    return rate, channels, sample_format


@njit(cache=True, nogil=True)
def _int24_to_int32(raw: np.ndarray, count: int, out: np.ndarray) -> None:
    """Sign-extend ``count`` little-endian 3-byte integers of ``raw`` into ``out``."""
    for i in range(count):
        v = (
            np.int64(raw[3 * i])
            | (np.int64(raw[3 * i + 1]) << 8)
            | (np.int64(raw[3 * i + 2]) << 16)
        )
        out[i] = v - (1 << 24) if v >= (1 << 23) else v


class _Decoder:
    """Preallocated raw buffer + typed view: decodes up to ``capacity`` frames per call."""

    def __init__(self, info: WavInfo, capacity: int) -> None:
        self.info = info
        self.raw = np.zeros(capacity * info.block_align, dtype=np.uint8)
        fmt = info.sample_format
        if fmt == "int24":
            self.view = np.zeros(capacity * info.channels, dtype=np.int32)
        else:
            self.view = self.raw.view(_DTYPE[fmt])
        self.scale = _SCALE[fmt]

    def read_into(self, fh: io.BufferedIOBase, nframes: int, out: np.ndarray, col0: int,
                  dup: bool) -> int:
        """Read up to ``nframes`` frames from ``fh`` into ``out[:, col0:]``; returns frames."""
        ba = self.info.block_align
        got = fh.readinto(self.raw.data[: nframes * ba]) // ba
        if self.info.sample_format == "int24":
            _int24_to_int32(self.raw, got * self.info.channels, self.view)
        deinterleave_scaled(self.view, got, self.info.channels, self.scale, out, col0, dup)
        return got


def read_wav(path: str | Path) -> tuple[np.ndarray, WavInfo]:
    """Whole file as ``(channels, frames)`` float64 (not for the hot path)."""
    info = read_wav_info(path)
    out: np.ndarray = np.zeros((max(info.channels, 2), info.frames), dtype=np.float64)
    dec = _Decoder(info, max(info.frames, 1))
    with open(info.path, "rb") as fh:
        fh.seek(info.data_offset)
        if info.channels <= 2:
            dec.read_into(fh, info.frames, out, 0, False)
        else:
            fh.readinto(dec.raw.data)
            if info.sample_format == "int24":
                _int24_to_int32(dec.raw, info.frames * info.channels, dec.view)
            out = dec.view.reshape(info.frames, info.channels).T * dec.scale
    return np.ascontiguousarray(out[: info.channels]), info


class WavWriter:
    """Streaming WAV writer; the header is rewritten on every ``flush()``.

    ``write`` takes ``(channels, n)`` float64 in full scale; integer formats are clipped to
    [-1, 1) and rounded. int24/int32 are written as WAVE_FORMAT_EXTENSIBLE.

    >>> import tempfile, numpy as np
    >>> path = Path(tempfile.mkdtemp()) / "x.wav"
    >>> with WavWriter(path, sample_rate=48000) as w:
    ...     w.write(np.zeros((2, 480)))
    >>> read_wav_info(path).frames
    480
    """

    def __init__(
        self,
        path: str | Path,
        *,
        sample_rate: int,
        channels: int = 2,
        sample_format: Literal["int16", "int24", "int32", "float32"] = "int16",
        exclusive: bool = False,
    ) -> None:
        """``exclusive``: FileExistsError instead of replacing an existing file."""
        if sample_format not in ("int16", "int24", "int32", "float32"):
            raise SourceError(
                f"{path}: sample_format={sample_format!r}; expected int16, int24, int32 or float32"
            )
        if channels < 1:
            raise SourceError(f"{path}: channels={channels}; expected at least 1")
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.sample_format = sample_format
        self.bytes_written = 0
        self._width = _BYTES[sample_format]
        try:
            self._fh: BinaryIO | None = open(  # noqa: SIM115 - closed in close()
                self.path, "xb" if exclusive else "wb")
        except FileExistsError:
            if exclusive:
                raise
            raise SourceError(f"{self.path}: cannot create WAV file: it exists") from None
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot create WAV file: {exc.strerror}") from None
        self._fh.write(self._header())

    def _header(self) -> bytes:
        bits = self._width * 8
        block = self.channels * self._width
        common = struct.pack("<HIIHH", self.channels, self.sample_rate,
                             self.sample_rate * block, block, bits)  # fmt: skip
        if self.sample_format == "int16":
            fmt = struct.pack("<H", _PCM) + common
        elif self.sample_format == "float32":
            fmt = struct.pack("<H", _FLOAT) + common + struct.pack("<H", 0)
        else:
            mask = 0x3 if self.channels == 2 else 0x4 if self.channels == 1 else 0
            ext = struct.pack("<HHIH", 22, bits, mask, _PCM) + _GUID_TAIL
            fmt = struct.pack("<H", _EXTENSIBLE) + common + ext
        riff_size = 4 + 8 + len(fmt) + 8 + self.bytes_written + (self.bytes_written & 1)
        return (b"RIFF" + struct.pack("<I", riff_size) + b"WAVE"
                + b"fmt " + struct.pack("<I", len(fmt)) + fmt
                + b"data" + struct.pack("<I", self.bytes_written))  # fmt: skip

    def write(self, samples: np.ndarray) -> None:
        """Append ``samples`` of shape ``(channels, n)`` (a 1-D array counts as mono)."""
        if self._fh is None:
            raise SourceError(f"{self.path}: write() after close()")
        data = np.asarray(samples, dtype=np.float64)
        if data.ndim == 1:
            data = data[None, :]
        if data.shape[0] != self.channels:
            raise SourceError(
                f"{self.path}: got {data.shape[0]} channels, writer expects {self.channels}"
            )
        inter = data.T
        if self.sample_format == "float32":
            raw = np.ascontiguousarray(inter, dtype="<f4").tobytes()
        else:
            full = float(2 ** (self._width * 8 - 1))
            ints = np.clip(np.rint(inter * full), -full, full - 1).astype("<i4")
            if self.sample_format == "int16":
                raw = ints.astype("<i2").tobytes()
            elif self.sample_format == "int32":
                raw = ints.tobytes()
            else:
                raw = ints.reshape(-1, 1).view(np.uint8)[:, :3].tobytes()
        if self.bytes_written + len(raw) > 0xFFFFFFFF - 64:
            raise SourceError(f"{self.path}: WAV files cannot exceed 4 GiB; start a new file")
        self._fh.write(raw)
        self.bytes_written += len(raw)

    def flush(self) -> None:
        """Write buffered samples and a header that matches them (the file is readable now)."""
        fh = self._fh
        if fh is None:
            return
        end = fh.tell()
        fh.seek(0)
        fh.write(self._header())
        fh.seek(end)
        fh.flush()

    def close(self) -> None:
        """Pad to an even size, finalise the header and close; idempotent."""
        fh = self._fh
        if fh is None:
            return
        try:
            if self.bytes_written & 1:
                fh.seek(0, 2)
                fh.write(b"\x00")
            self.flush()
        finally:
            self._fh = None
            fh.close()

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class WavSource(AudioSource):
    """Frames from a WAV file, optionally looped, optionally paced to real time.

    >>> # src = WavSource(WavSettings(path="cell.wav", loop=True), sample_rate=48000,
    >>> #                 frame_size=4096, realtime=False)
    """

    kind = "wav"

    def __init__(
        self, settings: WavSettings, *, sample_rate: int, frame_size: int, realtime: bool = False
    ) -> None:
        super().__init__(sample_rate=sample_rate, frame_size=frame_size, realtime=realtime)
        self.settings = settings
        self.info: WavInfo | None = None
        self._fh: io.BufferedIOBase | None = None
        self._decoder: _Decoder | None = None
        self._remaining = 0
        self.loops = 0

    def _open(self, frame: Frame) -> None:
        info = read_wav_info(self.settings.path)
        if info.sample_rate != self._sample_rate:
            raise SourceError(
                f"{info.path}: sample rate is {info.sample_rate} Hz but acquisition.sample_rate "
                f"is {self._sample_rate} Hz; resample the file or change the setting"
            )
        if info.channels > 2:
            raise SourceError(f"{info.path}: has {info.channels} channels; expected 1 or 2")
        if info.frames == 0 and self.settings.loop:
            raise SourceError(f"{info.path}: has no samples; cannot loop an empty file")
        self._decoder = _Decoder(info, self._frame_size)
        self._fh = open(info.path, "rb")  # noqa: SIM115 - closed in _close()
        self._fh.seek(info.data_offset)
        self._remaining = info.frames
        self.info = info
        self.loops = 0

    def warm_up(self) -> None:
        """Compile the decoder's kernels for the file's sample format on an empty scratch
        decoder (the file is only read for its header). A file that cannot be read is left
        for ``open()`` to report."""
        try:
            info = read_wav_info(self.settings.path)
        except SourceError:
            return
        if info.channels > 2:
            return
        decoder = _Decoder(info, 1)
        scratch = np.zeros((2, self._frame_size))
        if info.sample_format == "int24":
            _int24_to_int32(decoder.raw, 0, decoder.view)
        deinterleave_scaled(decoder.view, 0, info.channels, decoder.scale, scratch, 0,
                            self.settings.mono == "duplicate")

    def _fill(self, frame: Frame) -> bool:
        fh, dec, info = self._fh, self._decoder, self.info
        assert fh is not None and dec is not None and info is not None
        dup = self.settings.mono == "duplicate"
        filled = 0
        while filled < self._frame_size:
            if self._remaining == 0:
                if not self.settings.loop:
                    break
                fh.seek(info.data_offset)
                self._remaining = info.frames
                self.loops += 1
            want = min(self._frame_size - filled, self._remaining)
            got = dec.read_into(fh, want, frame.samples, filled, dup)
            if got < want:  # the file shrank under us
                raise SourceError(f"{info.path}: file ended early (truncated while reading)")
            filled += got
            self._remaining -= got
        if filled == 0:
            return False
        frame.samples[:, filled:] = 0.0
        return True

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _extra_status(self) -> dict[str, Any]:
        return {
            "path": str(self.settings.path),
            "loop": self.settings.loop,
            "loops": self.loops,
            "file_frames": self.info.frames if self.info else None,
        }
