"""Values as Modbus registers: float32 and int32 over two registers in a chosen word order,
scaled int16, saturating unsigned counters, and the sentinels that mean "no value".

A PLC cannot read NaN as an integer, so every integer form has a sentinel (INT16_NONE,
INT32_NONE) and saturates one step short of it: a huge value never reads as "none". Bytes
within a register are big-endian (the Modbus rule); the word order of 32-bit values is the
``modbus.word_order`` setting.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Literal

WordOrder = Literal["big", "little"]

#: int16 meaning "no value" (NaN or no result yet); real values saturate at ±32767
INT16_NONE = -32768
#: int32 meaning "no value"; real values saturate at ±2147483647
INT32_NONE = -(2**31)
#: the largest unsigned 16-bit value, also meaning "no value" for ages
UINT16_MAX = 0xFFFF
UINT32_MAX = 0xFFFF_FFFF


def _words(raw: bytes, order: WordOrder) -> tuple[int, int]:
    high, low = struct.unpack(">HH", raw)
    return (high, low) if order == "big" else (low, high)


def _raw(words: Sequence[int], order: WordOrder) -> bytes:
    first, second = words[0], words[1]
    high, low = (first, second) if order == "big" else (second, first)
    return struct.pack(">HH", high, low)


def float32(value: float | None, order: WordOrder) -> tuple[int, int]:
    """IEEE 754 single precision; None and NaN become the quiet NaN 0x7FC00000."""
    if value is None or math.isnan(value):
        return _words(b"\x7f\xc0\x00\x00", order)
    try:
        raw = struct.pack(">f", value)
    except OverflowError:  # beyond float32: ±inf, as IEEE rounding would give
        raw = struct.pack(">f", math.copysign(math.inf, value))
    return _words(raw, order)


def int32(value: float | None, scale: float, order: WordOrder) -> tuple[int, int]:
    """``round(value * scale)`` as a signed 32-bit integer, saturating at ±(2**31 - 1);
    None and NaN become INT32_NONE."""
    if value is None or math.isnan(value):
        number = INT32_NONE
    else:
        scaled = value * scale
        number = -(2**31 - 1) if scaled <= -(2**31 - 1) else \
            2**31 - 1 if scaled >= 2**31 - 1 else round(scaled)
    return _words(struct.pack(">i", number), order)


def int16(value: float | None, scale: float) -> int:
    """``round(value * scale)`` as a signed 16-bit integer in its register form (two's
    complement), saturating at ±32767; None and NaN become INT16_NONE."""
    if value is None or math.isnan(value):
        number = INT16_NONE
    else:
        scaled = value * scale
        number = -32767 if scaled <= -32767 else 32767 if scaled >= 32767 else round(scaled)
    return number & 0xFFFF


def uint16(value: float | None, scale: float = 1.0) -> int:
    """``round(value * scale)`` clamped to 0..65535; None and NaN become 65535."""
    if value is None or math.isnan(value):
        return UINT16_MAX
    scaled = value * scale
    return 0 if scaled <= 0 else UINT16_MAX if scaled >= UINT16_MAX else round(scaled)


def uint32(value: int, order: WordOrder) -> tuple[int, int]:
    """A counter as an unsigned 32-bit integer, wrapping at 2**32."""
    return _words(struct.pack(">I", value & UINT32_MAX), order)


# ------------------------------------------------------------- decoding (clients, tests)
def decode_float32(words: Sequence[int], order: WordOrder) -> float:
    """The float32 two registers hold (NaN for the "no value" sentinel)."""
    value: float = struct.unpack(">f", _raw(words, order))[0]
    return value


def decode_int32(words: Sequence[int], order: WordOrder) -> int:
    """The signed int32 two registers hold (INT32_NONE: no value)."""
    value: int = struct.unpack(">i", _raw(words, order))[0]
    return value


def decode_uint32(words: Sequence[int], order: WordOrder) -> int:
    """The unsigned int32 two registers hold."""
    value: int = struct.unpack(">I", _raw(words, order))[0]
    return value


def decode_int16(word: int) -> int:
    """The signed int16 one register holds (INT16_NONE: no value)."""
    return word - 0x10000 if word & 0x8000 else word
