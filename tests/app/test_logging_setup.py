"""Logging set-up (firmware/app/logging_setup.py): ``setup_logging`` replaces the root
handlers with one stderr handler (idempotent), sets the level (unknown names mean info) and
quiets numba; the text format is compact, the JSON format one object per line with ts, time,
level, logger, msg and a traceback, whatever the message contains."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from firmware.app.logging_setup import JsonFormatter, setup_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put the root logger (pytest's capture handlers included) back as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    numba_level = logging.getLogger("numba").level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("numba").setLevel(numba_level)


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    captured = capsys.readouterr()
    assert captured.out == ""  # logs never go to stdout (it may carry a command's output)
    return captured.err.splitlines()


def test_json_lines_carry_time_level_logger_and_message(capsys) -> None:
    setup_logging("debug", "json")
    before = time.time()
    logging.getLogger("pafw.test").warning("relay %s: %d switches", "pump", 3)
    [line] = lines(capsys)
    record = json.loads(line)
    assert set(record) == {"ts", "time", "level", "logger", "msg"}
    assert (record["level"], record["logger"], record["msg"]) == (
        "warning", "pafw.test", "relay pump: 3 switches")
    assert before - 0.01 <= record["ts"] <= time.time() + 0.01
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    when = datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()
    assert abs(when - record["ts"]) <= 0.0015  # the same instant, to the millisecond


def test_json_keeps_one_line_per_record_whatever_the_message(capsys) -> None:
    setup_logging("info", "json")
    log = logging.getLogger("pafw.script.x")
    log.info("line one\nforged: CRITICAL\r\n\x1b[2J \"quoted\" CO₂")
    try:
        raise ValueError("bad value\nsecond line")
    except ValueError:
        log.exception("the action failed")
    first, second = (json.loads(line) for line in lines(capsys))
    assert first["msg"] == "line one\nforged: CRITICAL\r\n\x1b[2J \"quoted\" CO₂"
    assert second["level"] == "error" and second["msg"] == "the action failed"
    assert second["exc"].startswith("Traceback (most recent call last):")
    assert second["exc"].rstrip().endswith("ValueError: bad value\nsecond line")


def test_json_writes_non_ascii_as_is() -> None:
    record = logging.LogRecord("pafw", logging.INFO, __file__, 1, "%s µs", ("40",), None)
    text = JsonFormatter().format(record)
    assert "40 µs" in text and "\\u" not in text


def test_text_lines_are_compact(capsys) -> None:
    setup_logging("info", "text")
    logging.getLogger("pafw.mqtt").info("connected to %s", "127.0.0.1:1883")
    [line] = lines(capsys)
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO    pafw\.mqtt: connected to 127\.0\.0\.1:1883",
                        line)


@pytest.mark.parametrize(("name", "level"), [
    ("debug", logging.DEBUG), ("info", logging.INFO), ("warning", logging.WARNING),
    ("error", logging.ERROR), ("verbose", logging.INFO)])
def test_the_level_names_map_and_unknown_ones_mean_info(name: str, level: int) -> None:
    setup_logging(name)
    assert logging.getLogger().level == level


def test_the_level_filters_lines(capsys) -> None:
    setup_logging("warning", "json")
    log = logging.getLogger("pafw.test")
    log.info("hidden")
    log.error("shown")
    assert [json.loads(line)["msg"] for line in lines(capsys)] == ["shown"]


def test_setting_up_again_replaces_the_handlers(capsys) -> None:
    setup_logging("info", "text")
    setup_logging("info", "json")
    setup_logging("info", "json")
    root = logging.getLogger()
    assert len(root.handlers) == 1
    assert isinstance(root.handlers[0].formatter, JsonFormatter)
    logging.getLogger("pafw").info("once")
    assert len(lines(capsys)) == 1
    assert root.handlers[0].stream is sys.stderr  # type: ignore[attr-defined]


def test_numba_is_quieted_to_warnings(capsys) -> None:
    setup_logging("debug", "json")
    assert logging.getLogger("numba").level == logging.WARNING
    logging.getLogger("numba.core.ssa").info("chatter")
    logging.getLogger("numba.core.ssa").warning("kept")
    assert [json.loads(line)["msg"] for line in lines(capsys)] == ["kept"]
