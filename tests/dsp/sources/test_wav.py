"""WAV reading/writing and WavSource: formats, looping, end of stream, bad files."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import scipy.io.wavfile as scipy_wav

from firmware.dsp.sources.settings import WavSettings
from firmware.dsp.sources.wav import WavSource, WavWriter, read_wav, read_wav_info
from firmware.errors import SourceError

FS = 48000
STEP = {"int16": 2.0**-15, "int24": 2.0**-23, "int32": 2.0**-31, "float32": 2.0**-24}


def signal(channels: int, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.99, 0.99, (channels, n))


def write(path, data, fmt="int16", fs=FS):
    with WavWriter(path, sample_rate=fs, channels=data.shape[0], sample_format=fmt) as w:
        w.write(data[:, : data.shape[1] // 2])
        w.write(data[:, data.shape[1] // 2 :])
    return path


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("fmt", ["int16", "int24", "int32", "float32"])
def test_round_trip_every_format(tmp_path, fmt, channels):
    data = signal(channels, 1001)
    path = write(tmp_path / f"{fmt}.wav", data, fmt)
    info = read_wav_info(path)
    assert (info.sample_rate, info.channels, info.sample_format, info.frames) == (
        FS,
        channels,
        fmt,
        1001,
    )
    back, _ = read_wav(path)
    assert back.shape == (channels, 1001)
    assert np.max(np.abs(back - data)) <= STEP[fmt]
    # an independent reader agrees sample for sample
    rate, ref = scipy_wav.read(path)
    ref = ref.reshape(1001, channels).T.astype(np.float64)
    if fmt.startswith("int"):
        ref = ref / (2.0**31 if fmt in ("int24", "int32") else 2.0**15)
    assert rate == FS
    assert np.array_equal(back, ref)


def test_integer_mapping_and_clipping(tmp_path):
    data = np.array([[-2.0, -1.0, 0.0, 0.5, 1.0, 3.0]])
    back, _ = read_wav(write(tmp_path / "c.wav", data))
    assert back[0].tolist() == [-1.0, -1.0, 0.0, 0.5, 32767 / 32768, 32767 / 32768]


def test_float64_and_unknown_chunks_are_read(tmp_path):
    data = signal(2, 300)
    path = tmp_path / "f64.wav"
    inter = data.T.astype("<f8").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 2, FS, FS * 16, 16, 64)
    junk = b"LIST" + struct.pack("<I", 5) + b"abcde" + b"\x00"  # odd size, padded
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + junk
    body += b"data" + struct.pack("<I", len(inter)) + inter
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    back, info = read_wav(path)
    assert info.sample_format == "float64"
    assert np.array_equal(back, data)


def test_header_valid_after_flush(tmp_path):
    path = tmp_path / "rec.wav"
    writer = WavWriter(path, sample_rate=FS, channels=2, sample_format="int24")
    writer.write(signal(2, 500))
    writer.flush()
    assert read_wav_info(path).frames == 500  # a recorder killed now leaves a valid file
    writer.write(signal(2, 250))
    assert writer.bytes_written == 750 * 6
    writer.close()
    writer.close()
    assert read_wav_info(path).frames == 750
    with pytest.raises(SourceError, match="after close"):
        writer.write(signal(2, 1))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not a WAV file"),
        (b"RIFF\x00\x00\x00\x00WAVX", "not a WAV file"),
        (b"RIFF\x04\x00\x00\x00WAVE", "no 'fmt ' chunk"),
    ],
)
def test_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=rf"bad\.wav: .*{match}"):
        read_wav_info(path)


def test_truncated_data_chunk(tmp_path):
    path = write(tmp_path / "t.wav", signal(2, 100))
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(SourceError, match=r"t\.wav: truncated: 'data' chunk declares 400 bytes"):
        read_wav_info(path)


def test_unsupported_format(tmp_path):
    path = tmp_path / "u8.wav"
    fmt = struct.pack("<HHIIHH", 1, 1, FS, FS, 1, 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 2) + b"ab"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(SourceError, match=r"u8\.wav: unsupported sample format .*8 bits"):
        read_wav_info(path)


def test_missing_file(tmp_path):
    with pytest.raises(SourceError, match=r"nope\.wav: cannot open WAV file"):
        read_wav_info(tmp_path / "nope.wav")


def read_all(src: WavSource, limit: int = 1000) -> list[np.ndarray]:
    out = []
    with src:
        for _ in range(limit):
            frame = src.read()
            if frame is None:
                break
            out.append(frame.samples.copy())
    return out


def test_source_end_of_stream_pads_the_last_frame(tmp_path):
    data = signal(2, 2500)
    path = write(tmp_path / "s.wav", data, "float32")
    src = WavSource(WavSettings(path=path), sample_rate=FS, frame_size=1000, realtime=False)
    frames = read_all(src)
    assert len(frames) == 3
    joined = np.concatenate(frames, axis=1)
    assert np.allclose(joined[:, :2500], data, atol=1e-7)
    assert np.all(joined[:, 2500:] == 0.0)
    src.open()
    assert src.read() is not None  # reopening starts again
    src.close()


def test_source_loops_seamlessly(tmp_path):
    data = signal(2, 700)
    path = write(tmp_path / "l.wav", data, "int32")
    src = WavSource(WavSettings(path=path, loop=True), sample_rate=FS, frame_size=1000)
    frames = read_all(src, limit=7)
    joined = np.concatenate(frames, axis=1)
    assert joined.shape[1] == 7000
    assert np.allclose(joined, np.tile(data, 10), atol=1e-9)
    status = src.get_status()
    json.dumps(status)
    assert status["loops"] == 9 and status["frames_read"] == 7


@pytest.mark.parametrize(("mode", "b_is_a"), [("a_only", False), ("duplicate", True)])
def test_source_mono(tmp_path, mode, b_is_a):
    data = signal(1, 1000)
    path = write(tmp_path / "m.wav", data, "int24")
    src = WavSource(WavSettings(path=path, mono=mode), sample_rate=FS, frame_size=1000)
    (frame,) = read_all(src)
    assert np.allclose(frame[0], data[0], atol=2.0**-23)
    assert np.array_equal(frame[1], frame[0] if b_is_a else np.zeros(1000))


def test_source_rate_mismatch(tmp_path):
    path = write(tmp_path / "r.wav", signal(2, 100), fs=44100)
    src = WavSource(WavSettings(path=path), sample_rate=48000, frame_size=64)
    with pytest.raises(SourceError, match=r"r\.wav: sample rate is 44100 Hz .* is 48000 Hz"):
        src.open()
    assert not src.is_open


def test_source_realtime_pacing(tmp_path):
    import time

    path = write(tmp_path / "p.wav", signal(2, 8000), fs=8000)
    src = WavSource(WavSettings(path=path), sample_rate=8000, frame_size=400, realtime=True)
    t0 = time.monotonic()
    frames = read_all(src, limit=5)
    assert len(frames) == 5
    # five 50 ms frames paced on a grid: at least four periods; the upper bound (10x) only
    # leaves a loaded machine room
    assert 0.2 < time.monotonic() - t0 < 2.0
