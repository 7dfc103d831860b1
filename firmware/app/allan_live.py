"""The Allan-Werle deviation of a running appliance's concentration, from its trend.

The trend keeps one mean per node and second (``firmware.app.trend``); its closed buckets of
the last ``seconds``, on a regular one-second grid (a gap, while the appliance was stopped,
is left out of the sums, see ``firmware.dsp.allan``), give the deviation from 1 s to a third
of that span. What ``GET /api/v1/allan`` answers and the dashboard draws; `pafw allan` does
the same offline from one value per frame.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from firmware.app.trend import NodeTrend
from firmware.dsp.allan import LOD_SIGMAS, allan_deviation, regular_series

#: the trend's bucket width, the shortest averaging time of the live curve
BUCKET_S = 1.0
#: fewer one-second values than this give no curve
MIN_POINTS = 9


def _finite(value: float) -> float | None:
    return round(value, 9) if math.isfinite(value) else None


def allan_payload(trend: NodeTrend, rows: np.ndarray, *, since: float) -> dict[str, Any]:
    """The curve and figures of ``rows`` (``trend.closed_rows()``, copied by the caller on
    the thread that feeds the trend) newer than ``since`` (epoch s); with fewer than
    ``MIN_POINTS`` values the curve is empty and the figures null."""
    rows = rows[rows[:, 0] >= since]
    series = regular_series(rows[:, 0], rows[:, 1], BUCKET_S)
    adev = allan_deviation(series if rows.shape[0] >= MIN_POINTS else series[:0], BUCKET_S)
    tau_opt, sigma_opt = adev.optimum()
    sigma_1s = adev.sigma_at(1.0)
    keep = np.isfinite(adev.sigma)
    return {
        "node": trend.node_id, "field": trend.field, "unit": trend.unit,
        "bucket_s": BUCKET_S, "values": int(np.isfinite(series).sum()),
        "min_values": MIN_POINTS, "span_s": float(series.shape[0] * BUCKET_S),
        "tau_s": [float(t) for t in adev.tau_s[keep]],
        "sigma": [float(s) for s in adev.sigma[keep]],
        "white_sigma": [float(s) for s in adev.white_sigma(adev.tau_s[keep])],
        "sigma_1s": _finite(sigma_1s), "lod_1s": _finite(LOD_SIGMAS * sigma_1s),
        "optimum_tau_s": _finite(tau_opt), "sigma_optimum": _finite(sigma_opt),
        "lod_optimum": _finite(LOD_SIGMAS * sigma_opt),
    }
