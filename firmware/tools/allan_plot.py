"""The Allan-Werle plot of `pafw allan --plot FILE.png` (log-log, with the white-noise line).

matplotlib is an optional extra (``pip install 'pafw[plot]'``): it is imported here, inside
``plot_allan`` only, so nothing else (above all `pafw run` on the appliance) loads it. The
Agg back-end draws without a display.
"""

from __future__ import annotations

import math
from pathlib import Path

from firmware.dsp.allan import LOD_SIGMAS
from firmware.errors import PafwError
from firmware.tools.allan import AllanReport

MISSING = ("--plot needs matplotlib, an optional extra of pafw: install it with "
           "`pip install 'pafw[plot]'` (or Debian's python3-matplotlib in the venv's "
           "interpreter)")


def plot_allan(report: AllanReport, path: Path) -> None:
    """Draw ``report`` to ``path`` (PNG, or any format matplotlib knows by the suffix)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise PafwError(MISSING) from None
    adev = report.adev
    tau_opt, sigma_opt = adev.optimum()
    figure, axes = pyplot.subplots(figsize=(7.0, 4.8), dpi=120)
    try:
        axes.loglog(adev.tau_s, adev.sigma, "o-", markersize=3, label="Allan-Werle deviation")
        axes.loglog(adev.tau_s, adev.white_sigma(adev.tau_s), "--", color="grey",
                    label=r"white noise ($\tau^{-1/2}$)")
        if math.isfinite(sigma_opt):
            axes.loglog([tau_opt], [sigma_opt], "s", color="C3",
                        label=f"optimum {tau_opt:.3g} s: LOD {LOD_SIGMAS * sigma_opt:.3g} ppm")
        sigma_1s = report.sigma_1s
        if math.isfinite(sigma_1s):
            axes.loglog([1.0], [sigma_1s], "^", color="C2",
                        label=f"1 s: LOD {LOD_SIGMAS * sigma_1s:.3g} ppm")
        axes.set_xlabel("averaging time τ (s)")
        axes.set_ylabel("σ (ppm)")
        axes.set_title(f"{report.series.node_id}: {report.series.source}")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize="small")
        figure.tight_layout()
        try:
            figure.savefig(path)
        except (OSError, ValueError) as exc:
            raise PafwError(f"--plot {path}: cannot write the plot: {exc}") from None
    finally:
        pyplot.close(figure)
