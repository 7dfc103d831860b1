"""Designed coefficients (filter sections, windows) kept on disk, keyed by their parameters.

Designing a filter or a window needs scipy.signal, which costs the appliance about 80 MB of
memory and a second or more of start-up on a Pi. The coefficients depend on nothing but the
design parameters, so the first start designs them and stores each array as ``.npy`` in the
cache directory (next to the compiled kernels); every later start loads the file and never
imports scipy. The key also holds the firmware's version, so an upgrade designs afresh. A
missing, unreadable or malformed file is designed again and rewritten; nothing fails for a
bad cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from firmware import __version__

log = logging.getLogger("pafw.dsp.design_cache")

#: sub-directory of the cache directory holding the designs
DESIGNS_DIR = "designs"

_directory: Path | None = None
_memory: dict[str, np.ndarray] = {}


def use_design_cache(directory: Path | None) -> None:
    """Keep designs under ``directory``/designs from now on (None: in memory only)."""
    global _directory
    _directory = None if directory is None else directory / DESIGNS_DIR


def design_key(kind: str, parameters: dict[str, object]) -> str:
    """A file-name-safe key for ``kind`` designed with ``parameters`` (JSON-safe values)."""
    text = json.dumps({"kind": kind, "version": __version__, **parameters}, sort_keys=True)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def _load(path: Path) -> np.ndarray | None:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if not isinstance(array, np.ndarray) or array.dtype != np.float64:
        return None
    return np.ascontiguousarray(array)


def _store(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as out:
            np.save(out, array, allow_pickle=False)
        tmp.replace(path)
    except OSError as exc:
        log.warning("cannot keep the design %s in the cache: %s", path, exc)
        tmp.unlink(missing_ok=True)


def cached_design(kind: str, parameters: dict[str, object],
                  design: Callable[[], np.ndarray]) -> np.ndarray:
    """The float64 array ``design()`` returns for these parameters: from this process's
    memory, else from the cache directory, else designed now (and stored). The caller gets a
    copy it may keep."""
    key = design_key(kind, parameters)
    array = _memory.get(key)
    path = None if _directory is None else _directory / f"{key}.npy"
    if array is None and path is not None:
        array = _load(path)
    if array is None:
        array = np.ascontiguousarray(design(), dtype=np.float64)
        if path is not None:
            _store(path, array)
    _memory[key] = array
    return array.copy()
