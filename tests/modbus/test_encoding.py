"""Registers from values and back: word order, scale, sentinels, saturation."""

from __future__ import annotations

import math

import pytest

from firmware.modbus import encoding


@pytest.mark.parametrize("order", ["big", "little"])
def test_float32_round_trips_in_either_word_order(order):
    words = encoding.float32(1234.5, order)
    assert encoding.decode_float32(words, order) == 1234.5
    assert (words[0] == 0x449A) == (order == "big")  # 1234.5 = 0x449A5000


def test_nan_and_none_are_the_quiet_nan_and_the_integer_sentinels():
    assert encoding.float32(None, "big") == (0x7FC0, 0)
    assert math.isnan(encoding.decode_float32(encoding.float32(math.nan, "little"), "little"))
    assert encoding.decode_int32(encoding.int32(math.nan, 100, "big"), "big") == \
        encoding.INT32_NONE
    assert encoding.decode_int16(encoding.int16(None, 1)) == encoding.INT16_NONE
    assert encoding.uint16(None) == 0xFFFF


def test_integers_are_scaled_rounded_and_saturate_short_of_the_sentinel():
    assert encoding.decode_int32(encoding.int32(403.166, 100, "big"), "big") == 40317
    assert encoding.decode_int32(encoding.int32(-1e12, 100, "little"), "little") == \
        -(2**31 - 1)
    assert encoding.decode_int16(encoding.int16(-41.87, 100)) == -4187
    assert encoding.decode_int16(encoding.int16(50_000, 1)) == 32767
    assert encoding.decode_int16(encoding.int16(-50_000, 1)) == -32767
    assert encoding.uint16(7000.0, 10) == 0xFFFF  # an age of 7000 s saturates
    assert encoding.uint16(-1.0) == 0


def test_float32_beyond_its_range_is_infinite_not_an_error():
    assert encoding.decode_float32(encoding.float32(1e300, "big"), "big") == math.inf


def test_uint32_wraps():
    assert encoding.decode_uint32(encoding.uint32(2**32 + 5, "big"), "big") == 5
