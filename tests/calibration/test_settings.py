"""The calibration section (firmware/calibration/settings.py) as the config loader reads it."""

from __future__ import annotations

from typing import Any

import pytest

from firmware.errors import ConfigError


def test_defaults_and_a_tolerance_that_no_fit_could_meet(make_doc: Any) -> None:
    cfg = make_doc().config.calibration
    assert cfg.interval_days is None and cfg.stability.max_rsd_percent == 1.0

    def impossible(data: dict[str, Any]) -> None:
        data["calibration"] = {"residual_tolerance_ppm": 0, "residual_tolerance_percent": 0}

    with pytest.raises(ConfigError, match="both 0: no fit could pass"):
        make_doc(impossible)


def test_the_calibrated_node_must_be_a_concentration_node(make_doc: Any) -> None:
    def wrong(data: dict[str, Any]) -> None:
        data["calibration"] = {"node": "peak_finder"}

    with pytest.raises(ConfigError, match=r"calibration.node 'peak_finder' is not a "
                       r"concentration node of the graph \(concentration nodes: concentration\)"):
        make_doc(wrong)


def test_unknown_keys_are_errors(make_doc: Any) -> None:
    def typo(data: dict[str, Any]) -> None:
        data["calibration"] = {"stability": {"window": 3}}

    with pytest.raises(ConfigError, match="window"):
        make_doc(typo)
