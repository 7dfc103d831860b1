"""Numeric code only: sources, numba kernels, filters, peak detection, the processing graph."""
