"""Validated settings of the audio sources (the ``acquisition`` section of the config).

Kept apart from the sources themselves so the config loader can validate a file without
importing numba, ALSA or opening anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from firmware.strict_model import StrictModel


class ConstantProfile(StrictModel):
    """The concentration stays at one value."""

    profile: Literal["constant"] = "constant"
    value_ppm: float = Field(1000.0, ge=0)


class StepsProfile(StrictModel):
    """The concentration walks through ``levels_ppm``, holding each for ``step_s`` seconds."""

    profile: Literal["steps"]
    levels_ppm: list[Annotated[float, Field(ge=0)]] = Field(min_length=1)
    step_s: float = Field(10.0, gt=0)
    repeat: bool = True


class RampProfile(StrictModel):
    """The concentration moves linearly from ``start_ppm`` to ``end_ppm`` over ``duration_s``."""

    profile: Literal["ramp"]
    start_ppm: float = Field(0.0, ge=0)
    end_ppm: float = Field(5000.0, ge=0)
    duration_s: float = Field(60.0, gt=0)
    repeat: bool = False


class CsvProfile(StrictModel):
    """The concentration follows a CSV schedule with columns ``time_s,concentration_ppm``.

    Values are interpolated linearly between rows and held after the last one.
    """

    profile: Literal["csv"]
    path: Path


ConcentrationProfileSettings = Annotated[
    ConstantProfile | StepsProfile | RampProfile | CsvProfile, Field(discriminator="profile")
]


class NoiseSettings(StrictModel):
    """Noise model of a real cell: levels are set from a broadband SNR at a reference level."""

    snr_db: float = Field(25.0, description="differential SNR (RMS, full band) at reference_ppm")
    reference_ppm: float = Field(2500.0, gt=0, description="mid-range concentration for snr_db")
    pink_fraction: float = Field(0.5, ge=0, le=1, description="share of noise power that is 1/f")
    common_mode_db: float = Field(
        6.0, description="ambient common-mode noise power relative to the uncorrelated noise"
    )
    hum_hz: float = Field(50.0, ge=0, description="mains frequency (0 disables hum)")
    hum_level: float = Field(0.005, ge=0, description="hum amplitude, full-scale units")
    hum_imbalance: float = Field(0.05, ge=0, le=1, description="hum difference between mics")


class TemperatureSettings(StrictModel):
    """Slow temperature drift that moves the acoustic resonance (f ~ sqrt(T))."""

    mean_c: float = 25.0
    swing_c: float = Field(1.0, ge=0, description="peak deviation of the slow sinusoidal drift")
    period_s: float = Field(900.0, gt=0)


class SimulatorSettings(StrictModel):
    """Physical model of a differential Helmholtz photoacoustic cell."""

    seed: int | None = 1
    resonance_hz: float = Field(2000.0, gt=0, description="resonance at temperature.mean_c")
    q_factor: float = Field(50.0, gt=0.5, le=1000)
    modulation_hz: float | None = Field(
        None, gt=0, description="fixed modulation frequency; null tracks the resonance"
    )
    calibration: list[float] | None = Field(
        None,
        min_length=1,
        max_length=5,
        description="ppm = c0 + c1*A + ... ; null inverts the graph's first concentration node",
    )
    concentration: ConcentrationProfileSettings = Field(default_factory=ConstantProfile)
    noise: NoiseSettings = Field(default_factory=NoiseSettings)
    temperature: TemperatureSettings = Field(default_factory=TemperatureSettings)
    quantize_bits: Literal[16] | None = Field(
        None, description="clip to full scale and quantise to 16 bits like a real ADC"
    )


class WavSettings(StrictModel):
    """A WAV file standing in for the microphones."""

    path: Path
    loop: bool = False
    mono: Literal["a_only", "duplicate"] = Field(
        "a_only", description="for mono files: fill channel A only, or copy it to B"
    )


class AlsaSettings(StrictModel):
    """An ALSA capture device read through pyalsaaudio."""

    device: str = Field("default", min_length=1, description="e.g. hw:CARD=sndrpihifiberry,DEV=0")
    format: Literal["S16_LE", "S32_LE"] = "S16_LE"
    channels: Literal[1, 2] = 2
    period_size: int | None = Field(
        None, ge=16, le=65536, description="frames per ALSA period; null uses the frame size"
    )
    periods: int = Field(4, ge=2, le=64)
    reopen_max_backoff_s: float = Field(10.0, gt=0)


class AcquisitionSettings(StrictModel):
    """Where audio comes from and how it is cut into frames."""

    source: Literal["simulator", "wav", "alsa"] = "simulator"
    sample_rate: int = Field(48000, ge=8000, le=384000)
    frame_size: int = Field(4096, ge=64, le=65536)
    realtime: bool | None = Field(
        None, description="pace to real time; null = yes under 'run', no for analyze/bench"
    )
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    wav: WavSettings | None = None
    alsa: AlsaSettings = Field(default_factory=AlsaSettings)

    @model_validator(mode="after")
    def _wav_needs_path(self) -> AcquisitionSettings:
        if self.source == "wav" and self.wav is None:
            raise ValueError("source 'wav' needs an 'acquisition.wav' section with a 'path'")
        return self
