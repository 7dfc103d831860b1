"""Named values: a value set once in ``values:`` (a YAML anchor) and used by every node that
needs it (``*name``), with errors still located at the line that uses it."""

from __future__ import annotations

import pytest

from firmware.config.loader import default_config_text, load_config
from firmware.dsp.nodes.peak_finder import PeakFinderParams
from firmware.errors import ConfigError


def test_the_default_config_sets_the_resonance_and_the_threshold_once() -> None:
    text = default_config_text().replace("resonance_hz: &resonance_hz 2000.0",
                                         "resonance_hz: &resonance_hz 3100.0")
    text = text.replace("high_gas_ppm: &high_gas_ppm 2000.0", "high_gas_ppm: &high_gas_ppm 1500.0")
    config = load_config(text=text).config
    assert config.acquisition.simulator.resonance_hz == 3100.0
    assert config.node("bandpass").params.band_edges() == (2800.0, 3400.0)
    finder = config.node("peak_finder").params
    assert (finder.frequency_min, finder.frequency_max) == (2800.0, 3400.0)
    deviation = [t for t in config.node("mqtt").params.triggers
                 if t.type == "frequency_deviation"]
    assert deviation[0].expected_hz == 3100.0
    thresholds = [t.above for node in ("mqtt", "alarm_relay", "status_led")
                  for t in config.node(node).params.triggers if t.type == "threshold"]
    assert thresholds == [1500.0, 1500.0, 1500.0]
    assert load_config(text=text).warnings == ()  # the chain still agrees with itself


def test_a_bad_shared_value_is_reported_where_it_is_used() -> None:
    text = default_config_text().replace("high_gas_ppm: &high_gas_ppm 2000.0",
                                         "high_gas_ppm: &high_gas_ppm lots")
    with pytest.raises(ConfigError) as caught:
        load_config(text=text)
    lines = text.splitlines()
    for problem in caught.value.problems:
        line = int(problem.split(":")[1])
        assert "*high_gas_ppm" in lines[line - 1], problem  # the line using it
    assert any("nodes[alarm_relay].parameters.triggers[0].above" in p
               for p in caught.value.problems)


def test_a_value_used_before_it_is_defined_says_how_to_fix_it() -> None:
    text = "device:\n  name: *who\nvalues:\n  who: &who analyzer\n"
    with pytest.raises(ConfigError) as caught:
        load_config(text=text)
    [problem] = caught.value.problems
    assert problem.startswith("<text>:2:9: ")
    assert "found undefined alias 'who'" in problem and "the anchor &who must be defined " \
        "before its first use" in problem


def test_peak_finder_search_band_by_center_and_bandwidth() -> None:
    params = PeakFinderParams(center_frequency=2000.0, bandwidth=500.0)
    assert (params.frequency_min, params.frequency_max) == (1750.0, 2250.0)
    with pytest.raises(ValueError, match="center_frequency and bandwidth go together"):
        PeakFinderParams(center_frequency=2000.0)
    with pytest.raises(ValueError, match="not both"):
        PeakFinderParams(center_frequency=2000.0, bandwidth=500.0, frequency_max=2600.0)
    with pytest.raises(ValueError, match="reaches below 0 Hz"):
        PeakFinderParams(center_frequency=100.0, bandwidth=500.0)
