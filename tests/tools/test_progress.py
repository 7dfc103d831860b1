"""The offline commands' progress bar (firmware/tools/progress.py): drawn only on a terminal,
what a line says, the fraction capped at 100 %, at most ten redraws a second unless forced,
and the final line ended by close."""

from __future__ import annotations

import io
import re
import sys
import time

import pytest

from firmware.tools.progress import ProgressBar

LINE = re.compile(r"\r(?P<label>\S+) +(?P<percent>\d+)% \[(?P<bar>[#-]{30})\] +(?P<done>[\d.]+)/"
                  r"(?P<total>[\d.]+) s audio +(?P<speed>\d+)x real time")


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def draws(stream: io.StringIO) -> list[re.Match[str]]:
    text = stream.getvalue()
    found = list(LINE.finditer(text))
    assert "".join(m.group(0) for m in found) == text.rstrip("\n"), text
    return found


def test_nothing_is_drawn_when_the_stream_is_no_terminal() -> None:
    stream = io.StringIO()
    bar = ProgressBar(10.0, label="analyze", stream=stream)
    assert not bar.enabled
    bar.update(5.0, force=True)
    bar.close(10.0)
    assert stream.getvalue() == ""


def test_the_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    bar = ProgressBar(1.0, label="x")
    assert bar.stream is sys.stderr
    bar.close(1.0)


def test_a_line_says_how_far_and_how_fast() -> None:
    stream = Terminal()
    bar = ProgressBar(29.1, label="analyze", stream=stream)
    bar.update(12.3, force=True)
    [line] = draws(stream)
    assert (line["label"], line["percent"], line["done"], line["total"]) == (
        "analyze", "42", "12.3", "29.1")
    assert line["bar"] == "#" * 12 + "-" * 18
    assert int(line["speed"]) > 0  # 12.3 s of audio in no time at all


@pytest.mark.parametrize(("done", "percent", "filled"), [(0.0, "0", 0), (10.0, "100", 30),
                                                         (25.0, "100", 30)])
def test_the_fraction_is_capped_at_the_whole(done: float, percent: str, filled: int) -> None:
    stream = Terminal()
    ProgressBar(10.0, label="simulate", stream=stream).update(done, force=True)
    [line] = draws(stream)
    assert line["percent"] == percent and line["bar"].count("#") == filled


def test_an_empty_total_is_no_division_by_zero() -> None:
    stream = Terminal()
    ProgressBar(0.0, label="analyze", stream=stream).update(0.0, force=True)
    [line] = draws(stream)
    assert line["percent"] == "0"


def test_at_most_ten_redraws_a_second() -> None:
    stream = Terminal()
    bar = ProgressBar(100.0, label="analyze", stream=stream)
    start = time.perf_counter()
    for i in range(20000):
        bar.update(i / 200.0)
    elapsed = time.perf_counter() - start
    count = len(draws(stream))
    assert 1 <= count <= elapsed / 0.1 + 1


def test_close_draws_the_final_state_and_ends_the_line() -> None:
    stream = Terminal()
    bar = ProgressBar(8.0, label="analyze", stream=stream)
    bar.update(1.0)
    bar.close(8.0)  # forced: the final state even right after a redraw
    text = stream.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    last = draws(stream)[-1]
    assert (last["percent"], last["done"]) == ("100", "8.0")
