"""Point numba's on-disk kernel cache at a directory chosen at run time.

numba decides where ``cache=True`` kernels live when they are decorated, from the
NUMBA_CACHE_DIR environment variable read at import. The firmware only knows its cache
directory once the config is loaded, which already imports the kernels; so this module moves
the cache of every already-decorated kernel before anything is compiled: it sets numba's
``CACHE_DIR`` and re-enables caching on each dispatcher of the firmware's modules.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numba
from numba.core.registry import CPUDispatcher


def firmware_kernels() -> list[CPUDispatcher]:
    """Every numba dispatcher defined at module level in an imported firmware module."""
    found: list[CPUDispatcher] = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("firmware.") or module is None:
            continue
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher) and value.__module__ == name:
                found.append(value)
    return found


def use_cache_dir(directory: Path) -> int:
    """Store compiled kernels under ``directory`` (created if needed); returns how many moved.

    Call it after the DSP modules are imported and before the first frame is processed.
    A kernel that was already compiled in this process keeps working; only where its cache
    is written changes.
    """
    directory.mkdir(parents=True, exist_ok=True)
    # numba.config defines its options at import time through globals(): invisible to typing
    numba.config.CACHE_DIR = str(directory)  # type: ignore[attr-defined]
    kernels = firmware_kernels()
    for dispatcher in kernels:
        dispatcher.enable_caching()
    return len(kernels)
