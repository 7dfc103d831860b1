"""Bounded logging of what actions and their scripts cause: a rate per source and one safe
line per message.

A script decides how often it fails, prints or is refused, and what its messages contain
(a 70 kB topic, newlines, ANSI escapes): the appliance's log must stay readable and small
whatever it does. :func:`printable` makes any text one escaped, bounded line;
:class:`LogLimiter` lets at most ``lines_per_s`` lines per second through for one source and
summarises the rest once per window.
"""

from __future__ import annotations

import logging
import time

MAX_LOG_CHARS = 2000
#: C0 and C1 controls and DEL as \xNN, the line and paragraph separators as \uNNNN (all
#: of them end a line for some reader: a terminal, ``str.splitlines``, a log viewer)
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {
    0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def printable(text: str, limit: int = MAX_LOG_CHARS) -> str:
    """``text`` as one safe log line: control characters (newlines, ANSI escapes) shown as
    escapes, so a script cannot forge log lines or drive a terminal; cut at ``limit``.

    >>> printable("ok\\n2026 CRITICAL forged\\x1b[2J")
    'ok\\\\n2026 CRITICAL forged\\\\x1b[2J'
    >>> printable("t" * 10, limit=4)
    'tttt... (10 characters)'
    """
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text)} characters)"
    return text.translate(_CONTROL)


class LogLimiter:
    """At most ``lines_per_s`` lines per second of one source (``prefix``) into ``logger``;
    the rest are counted and summarised once per window."""

    def __init__(self, logger: logging.Logger, prefix: str, lines_per_s: int) -> None:
        self.logger, self.prefix = logger, prefix
        self.lines_per_s = max(1, lines_per_s)
        self._window, self._count, self._suppressed = time.monotonic(), 0, 0
        self.suppressed_total = 0

    def log(self, level: int, stream: str | None, message: str) -> None:
        """Log one line (made printable) unless over the rate."""
        now = time.monotonic()
        if now - self._window >= 1.0:
            self.flush()
            self._window, self._count = now, 0
        if self._count >= self.lines_per_s:
            self._suppressed += 1
            self.suppressed_total += 1
            return
        self._count += 1
        if stream is None:
            self.logger.log(level, "%s: %s", self.prefix, printable(message))
        else:
            self.logger.log(level, "%s [%s]: %s", self.prefix, stream, printable(message))

    def count_suppressed(self, count: int) -> None:
        """Lines suppressed at the source (a worker's own summary)."""
        self.suppressed_total += count

    def flush(self) -> None:
        """Log the summary of lines suppressed in the current window."""
        if self._suppressed:
            self.logger.warning("%s: suppressed %d log lines (over %d lines/s)", self.prefix,
                                self._suppressed, self.lines_per_s)
            self._suppressed = 0
