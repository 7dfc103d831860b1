"""After ``Analyzer.warm_up()`` the DSP loop compiles nothing: not the graph's kernels, not the
source's (the simulator's synthesis, the WAV decoder, the ALSA int -> float conversion).

A compile on the DSP thread's first frames took longer than the service's watchdog on an
emulated aarch64 host. Each case runs in a fresh interpreter, so a kernel another test already
compiled in this process cannot hide a missing warm-up; the numba cache is the suite's shared
one, so loading from it counts as warm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from firmware.config.loader import default_config_text
from firmware.dsp.sources.wav import WavWriter
from tests.dsp.sources.test_alsa import alsa_config, needs_alsa
from tests.paths import REPO

PROBE = r"""
import json, sys
from pathlib import Path
from numba.core.dispatcher import Dispatcher
from firmware.app.analyzer import Analyzer
from firmware.config.loader import load_config

def compiled():
    counts = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("firmware"):
            for attr, obj in list(vars(module).items()):
                if isinstance(obj, Dispatcher):
                    counts[f"{obj.py_func.__module__}.{obj.py_func.__qualname__}"] = len(
                        obj.overloads)
    return counts

analyzer = Analyzer(load_config(Path(sys.argv[1])), realtime=False)
analyzer.warm_up()
before = compiled()
with analyzer.source:
    for _ in range(3):
        analyzer.process_frame(analyzer.source.read())
after = compiled()
print(json.dumps({
    "kernels": len(after),
    "source_kernels_warm": sorted(k for k in before if ".sources." in k and before[k]),
    "compiled_after_warm_up": sorted(k for k, n in after.items() if n != before.get(k, 0)),
}))
"""


def probe(tmp_path: Path, state_env: dict[str, str], change: Callable[[dict[str, Any]], None],
          extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    data = yaml.safe_load(default_config_text())
    change(data["acquisition"])
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {**os.environ, **state_env, **(extra_env or {}), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(config)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["kernels"] > 5, result  # the probe does see the firmware's kernels
    return result


def test_the_simulator_compiles_nothing_after_the_warm_up(
        tmp_path: Path, state_env: dict[str, str]) -> None:
    result = probe(tmp_path, state_env, lambda acq: acq.update(source="simulator"))
    assert result["compiled_after_warm_up"] == []
    assert "firmware.dsp.sources.simulator._synthesize" in result["source_kernels_warm"]


@pytest.mark.parametrize(("channels", "sample_format"),
                         [(2, "int16"), (1, "int24"), (2, "float32")])
def test_a_wav_file_compiles_nothing_after_the_warm_up(
        tmp_path: Path, state_env: dict[str, str], channels: int, sample_format: Any) -> None:
    wav = tmp_path / "cell.wav"
    with WavWriter(wav, sample_rate=48000, channels=channels,
                   sample_format=sample_format) as out:
        out.write(np.zeros((channels, 4096 * 4)))
    result = probe(tmp_path, state_env, lambda acq: acq.update(
        source="wav", wav={"path": str(wav), "loop": True, "mono": "duplicate"}))
    assert result["compiled_after_warm_up"] == []
    assert "firmware.dsp.sources.base.deinterleave_scaled" in result["source_kernels_warm"]
    if sample_format == "int24":
        assert "firmware.dsp.sources.wav._int24_to_int32" in result["source_kernels_warm"]


@needs_alsa
@pytest.mark.parametrize("sample_format", ["S16_LE", "S32_LE"])
def test_alsa_capture_compiles_nothing_after_the_warm_up(
        tmp_path: Path, state_env: dict[str, str], sample_format: str) -> None:
    width = 2 if sample_format == "S16_LE" else 4
    infile = tmp_path / "capture.raw"
    infile.write_bytes(bytes(4096 * 8 * 2 * width))
    result = probe(
        tmp_path, state_env,
        lambda acq: acq.update(source="alsa", alsa={"device": "pafw_file",
                                                    "format": sample_format}),
        {"ALSA_CONFIG_PATH": str(alsa_config(tmp_path, infile))})
    assert result["compiled_after_warm_up"] == []
    assert "firmware.dsp.sources.base.deinterleave_scaled" in result["source_kernels_warm"]
