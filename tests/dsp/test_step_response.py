"""T90 of a step (firmware/dsp/step_response.py): a first-order response exp(-t/tau) has a
10-to-90 % time of tau*ln(9), found through noise, rising and falling; a record of noise alone,
or a step smaller than the noise, has no step."""

from __future__ import annotations

import math

import numpy as np
import pytest

from firmware.dsp.step_response import find_step, white_noise


def first_order(pre: float, post: float, *, tau_s: float, at_s: float, dt_s: float = 0.1,
                length_s: float = 120.0, noise: float = 0.0, seed: int = 5) -> np.ndarray:
    t = np.arange(0.0, length_s, dt_s)
    y = pre + (post - pre) * np.where(t >= at_s, 1.0 - np.exp(-(t - at_s) / tau_s), 0.0)
    return y + np.random.default_rng(seed).normal(0.0, noise, t.shape[0])


@pytest.mark.parametrize(("pre", "post"), [(400.0, 2500.0), (2500.0, 400.0)])
def test_a_first_order_step_has_a_t90_of_tau_ln9(pre: float, post: float) -> None:
    y = first_order(pre, post, tau_s=3.0, at_s=50.0, noise=10.0)
    step = find_step(y, 0.1)
    assert step is not None
    assert step.t90_s == pytest.approx(3.0 * math.log(9.0), rel=0.1)
    assert step.pre == pytest.approx(pre, abs=5.0)
    assert step.post == pytest.approx(post, abs=5.0)
    # 10 % of the way is reached at tau*ln(10/9) after the step
    assert step.t10_at_s == pytest.approx(50.0 + 3.0 * math.log(10 / 9), abs=0.4)


def test_noise_alone_or_a_step_within_the_noise_is_no_step() -> None:
    rng = np.random.default_rng(1)
    assert find_step(rng.normal(1000.0, 5.0, 1200), 0.1) is None
    assert find_step(first_order(1000.0, 1010.0, tau_s=1.0, at_s=60.0, noise=5.0), 0.1) is None


def test_too_short_a_record_has_no_step() -> None:
    assert find_step(np.array([1.0, 2.0, 3.0]), 1.0) is None


def test_missing_values_are_bridged() -> None:
    y = first_order(400.0, 2500.0, tau_s=2.0, at_s=40.0, noise=5.0)
    y[100:110] = np.nan
    step = find_step(y, 0.1)
    assert step is not None
    assert step.t90_s == pytest.approx(2.0 * math.log(9.0), rel=0.1)


def test_white_noise_ignores_a_slow_drift() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(0.0, 3.0, 10_000) + np.linspace(0.0, 500.0, 10_000)
    assert white_noise(y) == pytest.approx(3.0, rel=0.1)
