"""Bounded logging of what actions and scripts cause (firmware/actions/log_limit.py):
``printable`` makes any text one escaped, bounded line; ``LogLimiter`` lets at most
``lines_per_s`` lines of one source through per one-second window and summarises the rest.

The limiter's window is driven by a clock of the test's own (the module's ``time``), so the
rate checks hold however slowly a loaded machine runs them.
"""

from __future__ import annotations

import logging
import types
import unicodedata

import pytest

from firmware.actions import log_limit
from firmware.actions.log_limit import MAX_LOG_CHARS, LogLimiter, printable

LOGGER = "tests.log_limit"


class Clock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(log_limit, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    return clock


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


# -- printable ----------------------------------------------------------------------------------

def test_printable_keeps_ordinary_text_and_unicode() -> None:
    assert printable("CO2 at 2104.7 ppm, 40 µs, ½ ✓") == "CO2 at 2104.7 ppm, 40 µs, ½ ✓"
    assert printable("") == ""


def test_printable_escapes_line_breaks_so_no_line_can_be_forged() -> None:
    forged = "ok\n12:03:44 CRITICAL pafw: relay released\r\n\tindented"
    line = printable(forged)
    assert "\n" not in line and "\r" not in line and "\t" not in line
    assert line == "ok\\n12:03:44 CRITICAL pafw: relay released\\r\\n\\tindented"


def test_printable_escapes_terminal_controls_and_nul() -> None:
    assert printable("\x1b[2J\x1b]0;owned\x07") == "\\x1b[2J\\x1b]0;owned\\x07"
    assert printable("a\x00b\x7fc\x08") == "a\\x00b\\x7fc\\x08"
    every_c0 = "".join(map(chr, range(0x20))) + "\x7f"
    assert all(c.isprintable() for c in printable(every_c0))


def test_printable_cuts_long_text_and_says_how_long_it_was() -> None:
    assert printable("t" * 10, limit=4) == "tttt... (10 characters)"
    assert printable("t" * 4, limit=4) == "tttt"  # at the limit: untouched
    huge = printable("x" * 70_000)
    assert huge.startswith("x" * MAX_LOG_CHARS + "...") and huge.endswith("(70000 characters)")
    assert len(huge) < MAX_LOG_CHARS + 40


def test_printable_escapes_what_it_keeps_after_the_cut() -> None:
    line = printable("\n" * 10, limit=3)
    assert line == "\\n\\n\\n... (10 characters)"


def test_printable_escapes_c1_control_characters_too() -> None:
    line = printable("a\x85b\x9b2Jc\u2028d\u2029e")
    assert [c for c in line if unicodedata.category(c) in ("Cc", "Zl", "Zp")] == []
    assert len(line.splitlines()) == 1
    assert line == "a\\x85b\\x9b2Jc\\u2028d\\u2029e"


# -- LogLimiter ---------------------------------------------------------------------------------

def test_lines_under_the_rate_pass_with_prefix_and_stream(clock, logs) -> None:
    limiter = LogLimiter(logging.getLogger(LOGGER), "python action co2", 5)
    limiter.log(logging.INFO, None, "first")
    limiter.log(logging.WARNING, "stderr", "second\nline")
    assert messages(logs) == ["python action co2: first",
                                 "python action co2 [stderr]: second\\nline"]
    assert [r.levelno for r in logs.records] == [logging.INFO, logging.WARNING]
    assert limiter.suppressed_total == 0


def test_lines_over_the_rate_are_counted_then_summarised_once(clock, logs) -> None:
    limiter = LogLimiter(logging.getLogger(LOGGER), "action relay", 3)
    for i in range(10):
        limiter.log(logging.WARNING, None, f"failure {i}")
    assert messages(logs) == [f"action relay: failure {i}" for i in range(3)]
    assert limiter.suppressed_total == 7
    limiter.flush()
    limiter.flush()  # nothing new suppressed: no second summary
    assert messages(logs)[3:] == ["action relay: suppressed 7 log lines (over 3 lines/s)"]
    assert logs.records[-1].levelno == logging.WARNING


def test_a_new_window_lets_lines_through_again_and_summarises_the_last(clock, logs) -> None:
    limiter = LogLimiter(logging.getLogger(LOGGER), "src", 2)
    for i in range(5):
        limiter.log(logging.INFO, None, f"a{i}")
    clock.now += 0.999  # still the same window
    limiter.log(logging.INFO, None, "late")
    assert messages(logs) == ["src: a0", "src: a1"]
    clock.now += 0.001  # one second after the window opened
    limiter.log(logging.INFO, None, "b0")
    limiter.log(logging.INFO, None, "b1")
    limiter.log(logging.INFO, None, "b2")
    assert messages(logs)[2:] == ["src: suppressed 4 log lines (over 2 lines/s)",
                                     "src: b0", "src: b1"]
    assert limiter.suppressed_total == 5
    clock.now += 60.0  # a quiet minute: the next line opens a window and reports the last
    limiter.log(logging.INFO, None, "c0")
    assert messages(logs)[5:] == ["src: suppressed 1 log lines (over 2 lines/s)", "src: c0"]


@pytest.mark.parametrize("rate", [0, -5])
def test_a_rate_below_one_still_lets_one_line_a_second_through(clock, logs, rate) -> None:
    limiter = LogLimiter(logging.getLogger(LOGGER), "src", rate)
    assert limiter.lines_per_s == 1
    limiter.log(logging.INFO, None, "one")
    limiter.log(logging.INFO, None, "two")
    assert messages(logs) == ["src: one"]
    assert limiter.suppressed_total == 1


def test_lines_suppressed_at_the_source_count_in_the_total_only(clock, logs) -> None:
    limiter = LogLimiter(logging.getLogger(LOGGER), "worker", 5)
    limiter.count_suppressed(40)
    limiter.flush()
    assert limiter.suppressed_total == 40
    assert messages(logs) == []  # the worker logged its own summary already
    limiter.log(logging.INFO, None, "still logs")
    assert messages(logs) == ["worker: still logs"]


def test_the_level_filter_of_the_logger_applies(clock, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    limiter = LogLimiter(logging.getLogger(LOGGER), "src", 5)
    limiter.log(logging.DEBUG, None, "hidden")
    limiter.log(logging.ERROR, None, "shown")
    assert [r.getMessage() for r in caplog.records] == ["src: shown"]
