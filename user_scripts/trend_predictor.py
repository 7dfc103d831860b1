"""Trend predictor: warn *before* the concentration reaches a threshold.

Every ``evaluate_every_s`` seconds the script fits a line (``model: linear``) or a parabola
(``model: quadratic``) with numpy to the last ``window_s`` seconds of ``source_node``'s
concentration, taken from this action's history buffer (``api.get_recent_entries``). If the
fitted curve, still below ``threshold_ppm`` now, reaches it within ``horizon_s`` seconds, it
logs a warning and raises a system notification (severity ``warning``: appliance log,
action history, MQTT ``events`` topic), e.g.::

    concentration: 1520 ppm, rising 95.3 ppm/min; 2000 ppm expected in 302 s
    (around 2025-06-23T10:20:04+00:00; linear fit over 61 points / 60 s)

One warning per excursion: it is re-armed once the concentration is below the threshold and
the forecast no longer reaches it within ``rearm_factor * horizon_s`` (it levels off or
falls); above the threshold it stays quiet, the regular alarm has taken over. The armed state
and the warning count are kept in ``api.store``, so a restart does not repeat a warning.
The regular threshold alarm (a trigger on another action) is still what reacts once the
threshold is crossed; this action needs no trigger of its own.

Sizing: the history holds one ``update`` entry per result of each monitored node (about
11.7 per second at 48 kHz / 4096): ``buffer_size`` and ``history_points`` (at most 1000)
bound the window, 1000 entries being about 85 s. For longer windows, decimate in
``on_update`` into ``api.store`` instead.

Node configuration (under ``processing.default_graph.nodes``; connect it from the
concentration node):

```yaml
- id: co2_trend
  type: python_action
  parameters:
    python_script_path: /user_scripts/trend_predictor.py
    python_class_name: TrendPredictor
    monitored_nodes: [concentration]
    buffer_size: 1000                  # history kept for the fit
    python_config:
      source_node: concentration
      threshold_ppm: 2000.0
      horizon_s: 300.0                 # warn when the threshold is this close in time
      window_s: 60.0                   # fit over the last minute
      model: linear                    # linear | quadratic
      min_points: 20
      history_points: 800
      evaluate_every_s: 5.0
      rearm_factor: 2.0
    allowed_imports: [numpy]
    max_memory_mb: 96                  # numpy needs ~30 MB resident
```
"""

import math
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

from firmware.actions.sdk import CustomPythonAction, PhotoacousticAPI

MODELS = {"linear": 1, "quadratic": 2}


class TrendPredictor(CustomPythonAction):
    """Least-squares trend of the recent concentration, with time-to-threshold."""

    def __init__(self, api: PhotoacousticAPI) -> None:
        super().__init__(api)
        param = api.get_node_parameter
        monitored = api.get_monitored_node_ids()
        self.node = param("source_node") or (monitored[0] if monitored else "concentration")
        self.threshold = float(param("threshold_ppm", 2000.0))
        self.horizon_s = float(param("horizon_s", 300.0))
        self.window_s = float(param("window_s", 60.0))
        self.model = str(param("model", "linear"))
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        self.min_points = max(MODELS[self.model] + 2, int(param("min_points", 20)))
        self.history_points = min(1000, int(param("history_points", 800)))
        self.evaluate_every_s = float(param("evaluate_every_s", 5.0))
        self.rearm_factor = float(param("rearm_factor", 2.0))
        self.armed = bool(api.store.get("armed", True))
        self.warnings = int(api.store.get("warnings", 0))
        self.next_evaluation = 0.0
        self.forecast: dict[str, Any] | None = None
        self.last_warning: dict[str, Any] | None = api.store.get("last_warning")

    def on_update(self, computing_data: dict[str, Any]) -> None:
        now = time.monotonic()
        if self.node not in computing_data or now < self.next_evaluation:
            return
        self.next_evaluation = now + self.evaluate_every_s
        forecast = self._forecast()
        if forecast is None:
            return
        self.forecast = forecast
        eta = forecast["eta_s"]
        if self.armed and eta is not None and eta <= self.horizon_s:
            self._warn(forecast)
        elif (not self.armed and forecast["level_ppm"] < self.threshold
              and (eta is None or eta > self.rearm_factor * self.horizon_s)):
            self._set_armed(True)  # levelled off or falling, below the threshold

    def on_trigger(self, trigger_type: str, data: dict[str, Any]) -> bool:
        return True  # nothing to do: the forecast runs on updates

    def get_status(self) -> dict[str, Any]:
        return {"status": "active", "model": self.model, "threshold_ppm": self.threshold,
                "horizon_s": self.horizon_s, "armed": self.armed, "warnings": self.warnings,
                "forecast": self.forecast, "last_warning": self.last_warning}

    # ------------------------------------------------------------------------------
    def _series(self) -> tuple[np.ndarray, np.ndarray]:
        """(epoch s, ppm) of the source node's recent detected values, oldest first."""
        points = [(e["timestamp"], e["data"]["concentration_ppm"])
                  for e in self.api.get_recent_entries(self.history_points)
                  if e["kind"] == "update" and e["data"].get("node_id") == self.node
                  and e["data"].get("detected")
                  and e["data"].get("concentration_ppm") is not None]
        data = np.array(points, dtype=float).reshape(-1, 2)
        if len(data):
            data = data[data[:, 0] >= data[-1, 0] - self.window_s]
        return data[:, 0], data[:, 1]

    def _forecast(self) -> dict[str, Any] | None:
        t, ppm = self._series()
        if len(t) < self.min_points or t[-1] - t[0] <= 0:
            return None
        x = t - t[-1]  # seconds relative to the newest point: well conditioned
        coeffs = np.polyfit(x, ppm, MODELS[self.model])
        level = float(np.polyval(coeffs, 0.0))
        slope = float(np.polyval(np.polyder(coeffs), 0.0))
        eta = None
        if level < self.threshold:
            shifted = coeffs.copy()
            shifted[-1] -= self.threshold
            ahead = [r.real for r in np.roots(shifted) if abs(r.imag) < 1e-9 and r.real > 0]
            eta = float(min(ahead)) if ahead else None
        return {"at": _iso(float(t[-1])), "level_ppm": round(level, 1),
                "slope_ppm_per_min": round(slope * 60.0, 2),
                "eta_s": None if eta is None or not math.isfinite(eta) else round(eta, 1),
                "points": len(t), "span_s": round(float(t[-1] - t[0]), 2)}

    def _warn(self, forecast: dict[str, Any]) -> None:
        expected = _iso(time.time() + forecast["eta_s"])
        message = (f"{self.node}: {forecast['level_ppm']:.0f} ppm, rising "
                   f"{forecast['slope_ppm_per_min']:.1f} ppm/min; {self.threshold:.0f} ppm "
                   f"expected in {forecast['eta_s']:.0f} s (around {expected}; "
                   f"{self.model} fit over {forecast['points']} points / "
                   f"{forecast['span_s']:.0f} s)")
        self.api.log_message("warning", message)
        self.api.trigger_notification(message, "warning")
        self.warnings += 1
        self.last_warning = {**forecast, "message": message, "expected_at": expected}
        self.api.store.set("warnings", self.warnings)
        self.api.store.set("last_warning", self.last_warning)
        self._set_armed(False)

    def _set_armed(self, armed: bool) -> None:
        self.armed = armed
        self.api.store.set("armed", armed)


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat(timespec="seconds")
