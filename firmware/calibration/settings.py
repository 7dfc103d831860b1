"""The ``calibration`` section: due dates, the stability criterion and the fit's tolerance."""

from __future__ import annotations

from pydantic import Field, model_validator

from firmware.strict_model import StrictModel


class StabilitySettings(StrictModel):
    """When a point's signal counts as stable: over the last ``window_s`` seconds the
    amplitude's relative standard deviation is at most ``max_rsd_percent`` (or its standard
    deviation at most ``abs_std``, for the near-zero signal of zero gas)."""

    window_s: float = Field(30.0, gt=0, le=3600, description="seconds of samples judged")
    min_samples: int = Field(5, ge=2, le=100000, description="fewest results in a window")
    max_rsd_percent: float = Field(1.0, gt=0, le=100,
                                   description="largest relative standard deviation, percent")
    abs_std: float = Field(0.0, ge=0, description="or at most this standard deviation, in "
                           "amplitude units (lets the zero point settle on noise)")
    timeout_s: float = Field(600.0, gt=0, le=86400,
                             description="give the point up when not stable by then")


class CalibrationSettings(StrictModel):
    """Calibration procedure, fit and due dates (docs/calibration.md)."""

    node: str | None = Field(None, description="the concentration node calibrated; null: "
                             "the graph's first concentration node")
    interval_days: float | None = Field(
        None, gt=0, description="a calibration is due this long after the active one; null: "
        "never due")
    overdue_after_days: float = Field(7.0, ge=0, description="due becomes overdue this long "
                                      "after the due date")
    check_interval_s: float = Field(60.0, gt=0, le=86400,
                                    description="how often the due state is re-evaluated")
    stability: StabilitySettings = Field(default_factory=StabilitySettings)
    max_degree: int = Field(2, ge=1, le=4, description="highest degree the automatic fit tries")
    through_zero: bool = Field(False, description="fit with c0 = 0 by default")
    residual_tolerance_ppm: float = Field(
        10.0, ge=0, description="a point's residual may reach this many ppm ...")
    residual_tolerance_percent: float = Field(
        2.0, ge=0, le=100, description="... or this share of its concentration, if larger")
    range_margin_percent: float = Field(
        10.0, ge=0, le=1000, description="results beyond the highest calibrated "
        "concentration by more than this are flagged outside_calibrated_range")
    operator: str | None = Field(None, max_length=128,
                                 description="default operator name written in records")

    @model_validator(mode="after")
    def _tolerance_set(self) -> CalibrationSettings:
        if self.residual_tolerance_ppm == 0 and self.residual_tolerance_percent == 0:
            raise ValueError("residual_tolerance_ppm and residual_tolerance_percent are both "
                             "0: no fit could pass; set one of them above 0")
        return self
