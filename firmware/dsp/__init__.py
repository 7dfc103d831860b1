"""Numeric code only: sources, numba kernels, filters, peak detection, the processing graph.

numba imports scipy twice for things the kernels do not use: its import checks scipy's
version, and its array-math module probes for scipy's BLAS (only ``np.dot`` of float vectors
would use it; without it numba compiles a plain loop). Both would load scipy (about 40 MB and
close to a second on a PC) into an appliance that needs scipy only to design a filter the
design cache does not hold yet (dsp/design_cache.py). So while those two modules initialise,
and scipy is not loaded already, ``import scipy`` fails as if scipy were not installed;
numba treats that as "optional and absent". pyproject.toml pins a scipy that numba accepts,
so the version check has nothing to find. Every other import of scipy works as usual.
"""

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

#: modules whose initialisation only probes scipy
_PROBING = ("numba", "numba.np.arraymath")


class _NoScipyForNumbaProbes(importlib.abc.MetaPathFinder):
    """Refuses ``scipy`` while one of ``_PROBING`` initialises and scipy is not loaded."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname.partition(".")[0] != "scipy" or "scipy" in sys.modules:
            return None
        for name in _PROBING:
            spec = getattr(sys.modules.get(name), "__spec__", None)
            if getattr(spec, "_initializing", False):
                raise ImportError(f"scipy is not loaded for {name}'s optional probe")
        return None


if not any(isinstance(finder, _NoScipyForNumbaProbes) for finder in sys.meta_path):
    sys.meta_path.insert(0, _NoScipyForNumbaProbes())
