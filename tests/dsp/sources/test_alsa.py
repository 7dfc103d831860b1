"""AlsaSource: byte-exact capture through libasound's ``file`` plugin, plus error handling.

libasound reads its configuration once per process, so each real-ALSA scenario runs in a
subprocess whose ALSA_CONFIG_PATH points at a config written into tmp_path: a pcm of type
``file`` whose ``infile`` is a raw interleaved file we generated and whose slave is an inline
``null`` pcm (no sound card needed). Overruns, device loss and reopen are driven through a fake
pyalsaaudio module.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import firmware.dsp.sources.alsa as alsa_mod
from firmware.dsp.sources.alsa import AlsaSource
from firmware.dsp.sources.settings import AlsaSettings
from firmware.errors import SourceError
from tests.paths import REPO
from tests.waiting import wait_until

HAVE_ALSA = importlib.util.find_spec("alsaaudio") is not None
needs_alsa = pytest.mark.skipif(
    not HAVE_ALSA,
    reason="pyalsaaudio is not importable: pip install pyalsaaudio (the 'alsa' extra)",
)

CAPTURE = r"""
import json, sys
import numpy as np
from firmware.dsp.sources.alsa import AlsaSource
from firmware.dsp.sources.settings import AlsaSettings
from firmware.errors import SourceError

args = json.loads(sys.argv[1])
settings = AlsaSettings(**args["settings"])
dtype, scale = ("<i2", 2.0**15) if settings.format == "S16_LE" else ("<i4", 2.0**31)
try:
    src = AlsaSource(settings, sample_rate=args["rate"], frame_size=args["frame_size"])
    converted, raw, b_rows = [], [], []
    with src:
        for _ in range(args["frames"]):
            frame = src.read()
            rows = frame.samples[: settings.channels] * scale
            ints = rows.astype(dtype)
            assert np.array_equal(ints, rows), "conversion is not exact"
            converted.append(np.ascontiguousarray(ints.T).tobytes())
            raw.append(src.last_raw_bytes)
            b_rows.append(float(np.abs(frame.samples[1]).max()))
        status = src.get_status()
    with open(args["out"], "wb") as fh:
        fh.write(b"".join(converted))
    with open(args["out"] + ".raw", "wb") as fh:
        fh.write(b"".join(raw))
    print(json.dumps({"ok": True, "status": status, "b_max": max(b_rows)}))
except SourceError as exc:
    print(json.dumps({"ok": False, "error": str(exc)}))
"""


def alsa_config(tmp_path: Path, infile: Path) -> Path:
    conf = tmp_path / "asound.conf"
    conf.write_text(
        f"""
pcm.pafw_file {{
    type file
    slave.pcm {{ type null }}
    file "/dev/null"
    infile "{infile}"
    format "raw"
}}
pcm.pafw_mono_only {{
    type file
    slave.pcm {{
        type multi
        slaves.a {{ pcm {{ type null }} channels 1 }}
        bindings.0 {{ slave a channel 0 }}
    }}
    file "/dev/null"
    infile "{infile}"
    format "raw"
}}
"""
    )
    return conf


def run_capture(tmp_path: Path, infile: Path, *, frames: int, frame_size: int, rate=48000, **s):
    out = tmp_path / "captured.bin"
    args = {
        "settings": s,
        "rate": rate,
        "frame_size": frame_size,
        "frames": frames,
        "out": str(out),
    }
    env = {
        "ALSA_CONFIG_PATH": str(alsa_config(tmp_path, infile)),
        "PYTHONPATH": str(REPO),
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, "-c", CAPTURE, json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["ok"]:
        result["captured"] = out.read_bytes()
        result["raw"] = Path(str(out) + ".raw").read_bytes()
    return result


def random_pcm(path: Path, frames: int, channels: int, dtype: str) -> bytes:
    info = np.iinfo(dtype)
    rng = np.random.default_rng(5)
    data = rng.integers(info.min, info.max, size=(frames, channels), dtype=dtype, endpoint=True)
    data[:4] = [[info.min] * channels, [info.max] * channels, [0] * channels, [-1] * channels]
    raw = data.astype("<" + np.dtype(dtype).str[1:]).tobytes()
    path.write_bytes(raw)
    return raw


@pytest.mark.parametrize(
    ("fmt", "dtype", "frame_size", "period_size", "frames"),
    [
        ("S16_LE", "int16", 1000, 256, 6),  # frames are not a multiple of periods
        ("S32_LE", "int32", 4096, None, 3),  # period size defaults to the frame size
    ],
)
@pytest.mark.alsa
@needs_alsa
def test_capture_is_byte_exact(tmp_path, fmt, dtype, frame_size, period_size, frames):
    infile = tmp_path / "in.raw"
    reference = random_pcm(infile, 48000, 2, dtype)
    result = run_capture(
        tmp_path,
        infile,
        frames=frames,
        frame_size=frame_size,
        device="pafw_file",
        format=fmt,
        channels=2,
        period_size=period_size,
    )
    assert result["ok"], result
    n = frames * frame_size * 2 * np.dtype(dtype).itemsize
    assert result["raw"] == reference[:n]
    assert result["captured"] == reference[:n]
    status = result["status"]
    assert status["frames_read"] == frames and status["overruns"] == 0
    assert status["granted"]["rate"] == 48000 and status["granted"]["format"] == fmt
    assert status["granted"]["period_size"] == (period_size or frame_size)


@pytest.mark.alsa
@needs_alsa
def test_mono_device_fills_channel_a(tmp_path):
    infile = tmp_path / "mono.raw"
    reference = random_pcm(infile, 10000, 1, "int16")
    result = run_capture(
        tmp_path,
        infile,
        frames=4,
        frame_size=512,
        device="pafw_file",
        format="S16_LE",
        channels=1,
        period_size=128,
    )
    assert result["ok"], result
    assert result["captured"] == reference[: 4 * 512 * 2]
    assert result["b_max"] == 0.0


@pytest.mark.alsa
@needs_alsa
def test_granted_channel_mismatch_is_refused(tmp_path):
    infile = tmp_path / "in.raw"
    random_pcm(infile, 4800, 2, "int16")
    result = run_capture(
        tmp_path,
        infile,
        frames=1,
        frame_size=256,
        device="pafw_mono_only",
        format="S16_LE",
        channels=2,
    )
    assert not result["ok"]
    assert "'pafw_mono_only' refused the requested parameters" in result["error"]
    assert "channels 2 but got 1" in result["error"]


@pytest.mark.alsa
@needs_alsa
def test_missing_device(tmp_path):
    infile = tmp_path / "in.raw"
    random_pcm(infile, 480, 2, "int16")
    result = run_capture(tmp_path, infile, frames=1, frame_size=256, device="pafw_nosuch")
    assert not result["ok"]
    assert "ALSA device 'pafw_nosuch': cannot open for capture" in result["error"]


# ---------------------------------------------------------------- fake pyalsaaudio


class FakeAlsaError(Exception):
    pass


class FakePCM:
    """Serves a script of read() results; ``info`` can lie about what was granted."""

    def __init__(self, script, info):
        self.script = list(script)
        self._info = info
        self.closed = False

    def info(self):
        return dict(self._info)

    def polldescriptors(self):
        return []

    def read(self):
        if self.closed:
            raise FakeAlsaError("PCM device is closed")
        if not self.script:
            return 0, b""
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self):
        self.closed = True


def fake_module(opens):
    """``opens``: list of callables/exceptions, one per PCM() call."""
    calls = []

    def pcm(**kwargs):
        calls.append(kwargs)
        item = opens.pop(0) if opens else FakeAlsaError("No such device")
        if isinstance(item, Exception):
            raise item
        return item

    module = SimpleNamespace(
        PCM=pcm,
        PCM_CAPTURE=1,
        PCM_NONBLOCK=1,
        PCM_FORMAT_S16_LE=2,
        PCM_FORMAT_S32_LE=10,
        ALSAAudioError=FakeAlsaError,
        calls=calls,
    )
    return module


INFO = {"rate": 48000, "channels": 2, "format_name": "S16_LE", "period_size": 4, "periods": 4}


def chunk(values):
    return len(values) // 2, np.asarray(values, dtype="<i2").tobytes()


@pytest.mark.parametrize(
    ("lie", "message"),
    [
        ({"rate": 44100}, "rate 48000 but got 44100"),
        ({"format_name": "S32_LE"}, "format S16_LE but got S32_LE"),
    ],
)
def test_fake_granted_mismatch(monkeypatch, lie, message):
    pcm = FakePCM([], {**INFO, **lie})
    monkeypatch.setattr(alsa_mod, "_import_alsaaudio", lambda: fake_module([pcm]))
    src = AlsaSource(AlsaSettings(device="hw:9"), sample_rate=48000, frame_size=8)
    with pytest.raises(SourceError, match=rf"ALSA device 'hw:9' refused .*{message}"):
        src.open()
    assert pcm.closed


def test_overrun_is_counted_and_reading_continues(monkeypatch):
    pcm = FakePCM([chunk([1, -1, 2, -2]), (-errno.EPIPE, b""), chunk([3, -3, 4, -4])], INFO)
    module = fake_module([pcm])
    monkeypatch.setattr(alsa_mod, "_import_alsaaudio", lambda: module)
    src = AlsaSource(AlsaSettings(), sample_rate=48000, frame_size=4)
    with src:
        frame = src.read()
        assert np.array_equal(frame.samples * 32768, [[1, 2, 3, 4], [-1, -2, -3, -4]])
        assert src.get_status()["overruns"] == 1
    assert module.calls[0]["periodsize"] == 4 and module.calls[0]["mode"] == 1


def test_lost_device_is_reopened_with_backoff(monkeypatch):
    first = FakePCM([chunk([1, 1]), FakeAlsaError("No such device")], INFO)
    second = FakePCM([chunk([2, 2, 3, 3, 4, 4])], INFO)
    module = fake_module([first, FakeAlsaError("still gone"), second])
    monkeypatch.setattr(alsa_mod, "_import_alsaaudio", lambda: module)
    src = AlsaSource(AlsaSettings(reopen_max_backoff_s=0.1), sample_rate=48000, frame_size=4)
    with src:
        frame = src.read()
        assert np.array_equal(frame.samples[0] * 32768, [1, 2, 3, 4])
        status = src.get_status()
    assert first.closed and second.closed
    assert status["reopens"] == 1 and status["reopen_failures"] == 1
    assert "still gone" in status["last_error"]
    json.dumps(status)


def test_close_from_another_thread_ends_a_waiting_read(monkeypatch):
    pcm = FakePCM([FakeAlsaError("unplugged")], INFO)
    monkeypatch.setattr(alsa_mod, "_import_alsaaudio", lambda: fake_module([pcm]))
    src = AlsaSource(AlsaSettings(reopen_max_backoff_s=5.0), sample_rate=48000, frame_size=4)
    src.open()
    result = {}
    reader = threading.Thread(target=lambda: result.setdefault("frame", src.read()))
    reader.start()
    # six failed reopens (3.15 s): the reader now waits 3.2 s before the next attempt
    wait_until(lambda: src.reopen_failures >= 6, what="six failed reopen attempts")
    t0 = time.monotonic()
    src.close()
    reader.join(timeout=30)
    assert not reader.is_alive()
    # the timing is the behaviour: close() cuts the 3.2 s wait short (the bound leaves a
    # loaded machine a second and more; a wait that close() cannot end lasts ~3.2 s)
    assert time.monotonic() - t0 < 2.0
    assert result["frame"] is None
    src.close()  # idempotent


def test_stall_counts_as_lost_device(monkeypatch):
    silent = FakePCM([], INFO)
    fresh = FakePCM([chunk([5, 5, 6, 6])], INFO)
    monkeypatch.setattr(alsa_mod, "_import_alsaaudio", lambda: fake_module([silent, fresh]))
    src = AlsaSource(AlsaSettings(), sample_rate=48000, frame_size=2, stall_timeout_s=0.2)
    with src:
        frame = src.read()
        assert np.array_equal(frame.samples[0] * 32768, [5, 6])
        assert src.reopens == 1 and "no data" in src.last_error


def test_missing_pyalsaaudio_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "alsaaudio", None)  # makes the import fail
    src = AlsaSource(AlsaSettings(), sample_rate=48000, frame_size=64)
    with pytest.raises(SourceError, match=r"install the 'alsa' extra"):
        src.open()
