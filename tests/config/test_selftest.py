"""The selftest section: on at start with sane limits by default; every limit is bounded and
a bad one is an error naming its file, line and key; unknown keys are refused."""

from __future__ import annotations

import pytest

from firmware.config.loader import load_config
from firmware.errors import ConfigError


def test_the_defaults_run_at_start_with_sane_limits(make_doc):
    st = make_doc().config.selftest
    assert st.at_start is True and st.duration_s == 3.0
    assert st.min_noise_dbfs < st.max_noise_dbfs <= 0
    assert (st.resonance_hz, st.band_hz) == (None, None)  # the graph's
    assert 0 < st.max_clipped_fraction < 0.01 and 0 < st.min_coherence < 1


@pytest.mark.parametrize(("key", "value", "message"), [
    ("duration_s", 0.1, "greater than or equal to 0.5"),
    ("max_noise_dbfs", 3.0, "less than or equal to 0"),
    ("clip_level", 1.5, "less than or equal to 1"),
    ("min_coherence", -0.1, "greater than or equal to 0"),
    ("resonance_hz", 0, "greater than 0"),
    ("max_sample_rate_error_percent", 0, "greater than 0"),
    ("max_resonance_deviaton_hz", 5, "max_resonance_deviation_hz"),  # a typo: did you mean
])
def test_bad_values_name_the_option(make_doc, key, value, message):
    def edit(data):
        data["selftest"] = {key: value}

    with pytest.raises(ConfigError, match=message) as info:
        make_doc(edit)
    assert f"selftest.{key}" in str(info.value)


def test_noise_limits_in_the_wrong_order_are_located(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("device:\n  id: x\nselftest:\n  min_noise_dbfs: -10\n"
                    "  max_noise_dbfs: -20\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert f"{path}:5:" in text and "selftest.max_noise_dbfs" in text
    assert "must be above min_noise_dbfs (-10), got -20" in text
