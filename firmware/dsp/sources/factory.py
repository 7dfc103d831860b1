"""Build the configured audio source."""

from __future__ import annotations

from collections.abc import Sequence

from firmware.dsp.concentration import CalibrationPolynomial
from firmware.dsp.sources.base import AudioSource
from firmware.dsp.sources.settings import AcquisitionSettings
from firmware.errors import ConfigError

#: largest differential amplitude a simulated cell can produce (mics at +-full scale)
MAX_DIFFERENTIAL_AMPLITUDE = 2.0


def make_source(
    settings: AcquisitionSettings,
    *,
    realtime: bool,
    graph_calibration: Sequence[float] | None,
) -> AudioSource:
    """The source named by ``settings.source``, not yet opened.

    The simulator turns its true concentration into a signal amplitude through the inverse of
    a calibration polynomial: its own ``calibration`` if set, else the graph's (the first
    concentration node's), so the simulated cell and the analyzer agree by construction.
    """
    if settings.source == "simulator":
        from firmware.dsp.sources.simulator import SimulatedSource

        coefficients = settings.simulator.calibration or graph_calibration
        if coefficients is None:
            raise ConfigError(
                "acquisition.simulator.calibration: the simulator needs a calibration "
                "polynomial; set it or add a concentration node to the graph"
            )
        polynomial = CalibrationPolynomial(list(coefficients))

        def amplitude_for_ppm(ppm: float) -> float:
            return polynomial.invert(ppm, x_max=MAX_DIFFERENTIAL_AMPLITUDE)

        return SimulatedSource(
            settings.simulator,
            sample_rate=settings.sample_rate,
            frame_size=settings.frame_size,
            realtime=realtime,
            amplitude_for_ppm=amplitude_for_ppm,
        )
    if settings.source == "wav":
        from firmware.dsp.sources.wav import WavSource

        assert settings.wav is not None  # enforced by AcquisitionSettings
        return WavSource(
            settings.wav,
            sample_rate=settings.sample_rate,
            frame_size=settings.frame_size,
            realtime=realtime,
        )
    from firmware.dsp.sources.alsa import AlsaSource

    return AlsaSource(settings.alsa, sample_rate=settings.sample_rate,
                      frame_size=settings.frame_size)
