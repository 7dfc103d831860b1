"""``selftest:``: when the self-test runs and the limits its checks compare with.

The checks themselves are ``firmware.dsp.selftest_checks``; the runner is
``firmware.app.selftest``. The resonance and its band default to the graph's (the first peak
finder's search band, else the first lock-in's reference), so a config that sets its
resonance once (``values.resonance_hz``) needs nothing here.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from firmware.strict_model import StrictModel


class SelftestSettings(StrictModel):
    """The self-test's schedule and limits (docs/selftest.md)."""

    at_start: bool = Field(True, description="run once when the appliance starts (off the DSP "
                           "thread: the first result is not delayed)")
    duration_s: float = Field(3.0, ge=0.5, le=60,
                              description="seconds of both microphones' samples examined")
    min_noise_dbfs: float = Field(-90.0, ge=-200, le=0,
                                  description="a quieter channel is a dead microphone")
    max_noise_dbfs: float = Field(-6.0, ge=-200, le=0,
                                  description="a louder channel is overloaded")
    clip_level: float = Field(0.999, gt=0, le=1,
                              description="a sample at or above this fraction of full scale "
                              "is clipped")
    max_clipped_fraction: float = Field(0.001, ge=0, le=1)
    min_coherence: float = Field(0.3, ge=0, le=1, description="mean A/B coherence in the "
                                 "resonance band")
    resonance_hz: float | None = Field(None, gt=0, description="null: the graph's (the first "
                                       "peak finder's search band centre, or lock-in "
                                       "reference)")
    band_hz: float | None = Field(None, gt=0, description="width of the resonance band; "
                                  "null: the peak finder's search band (lock-in: 10 % of the "
                                  "reference)")
    max_resonance_deviation_hz: float = Field(10.0, gt=0)
    max_sample_rate_error_percent: float = Field(1.0, gt=0, le=50)

    @field_validator("max_noise_dbfs")
    @classmethod
    def _above_min(cls, value: float, info: ValidationInfo) -> float:
        """The noise range must not be empty (reported at ``max_noise_dbfs``)."""
        low = info.data.get("min_noise_dbfs")
        if low is not None and value <= low:
            raise ValueError(f"must be above min_noise_dbfs ({low:g}), got {value:g}")
        return value
