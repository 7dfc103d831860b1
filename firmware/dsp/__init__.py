"""Numeric code only: sources, numba kernels, filters, peak detection, the processing graph.

numba is imported here, before any module of the package uses it, with scipy hidden. numba
imports scipy twice for things the kernels do not use: its import checks scipy's version,
and its array-math module probes for scipy's BLAS (only ``np.dot`` of float vectors would use
it; without it numba compiles a plain loop). Both load scipy (about 40 MB and close to a
second on a PC) into an appliance that needs scipy only to design a filter the design cache
does not hold yet (dsp/design_cache.py). pyproject.toml pins a scipy that numba accepts, so
the version check has nothing to find; ``import scipy`` works normally afterwards.
"""

import sys

if "numba" not in sys.modules and "scipy" not in sys.modules:
    sys.modules["scipy"] = None  # type: ignore[assignment]  # "import scipy" -> ImportError
    try:
        import numba
        import numba.np.arraymath  # noqa: F401
    finally:
        del sys.modules["scipy"]
