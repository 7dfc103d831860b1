"""Moving numba's kernel cache at run time (firmware/dsp/jit_cache.py): which dispatchers count
as the firmware's kernels, and that after ``use_cache_dir`` a fresh compilation is written to
the chosen directory (created on demand)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numba
import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

from firmware.dsp import kernels
from firmware.dsp.jit_cache import firmware_kernels, use_cache_dir
from firmware.dsp.sources import base, wav


@numba.njit(cache=False)
def not_a_firmware_kernel(x: float) -> float:
    return x + 1.0


@pytest.fixture
def restore_cache_dir() -> Iterator[None]:
    """Point the kernels back where they cached before the test."""
    before = numba.config.CACHE_DIR
    yield
    numba.config.CACHE_DIR = before
    for dispatcher in firmware_kernels():
        dispatcher.enable_caching()


def test_firmware_kernels_are_the_dispatchers_defined_in_firmware_modules() -> None:
    found = firmware_kernels()
    assert kernels.sos_filter in found and kernels.scale in found
    assert base.deinterleave_scaled in found
    assert not_a_firmware_kernel not in found
    assert all(isinstance(d, CPUDispatcher) for d in found)
    assert all(d.__module__.startswith("firmware.") for d in found)
    # a kernel imported into another module is counted once, where it is defined
    assert len({id(d) for d in found}) == len(found)
    assert wav.deinterleave_scaled is base.deinterleave_scaled


def test_use_cache_dir_writes_new_compilations_there(tmp_path: Path,
                                                     restore_cache_dir: None) -> None:
    directory = tmp_path / "deep" / "numba-cache"
    moved = use_cache_dir(directory)
    assert directory.is_dir()
    assert moved == len(firmware_kernels()) > 0
    assert str(directory) == numba.config.CACHE_DIR
    # a signature nobody compiled in this process yet: compiled now, and cached here
    x = np.ones((1, 16), dtype=np.float32)[:, ::2]
    out = np.zeros((1, 8), dtype=np.float32)
    kernels.scale(x, 3.0, out)
    assert out.tolist() == [[3.0] * 8]
    written = [p.name for p in directory.rglob("*")]
    assert any(n.startswith("kernels.scale") and n.endswith(".nbi") for n in written), written
    assert any(n.startswith("kernels.scale") and n.endswith(".nbc") for n in written), written


def test_use_cache_dir_accepts_an_existing_directory(tmp_path: Path,
                                                     restore_cache_dir: None) -> None:
    (tmp_path / "keep.txt").write_text("x")
    assert use_cache_dir(tmp_path) > 0
    assert (tmp_path / "keep.txt").read_text() == "x"
