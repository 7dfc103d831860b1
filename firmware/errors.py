"""Exception hierarchy: one root, one base per area, leaves that also inherit a builtin.

Every message names the thing (option, pin, file and line), the bad value and what was expected,
so the CLI can print it as is, without a traceback.
"""

from __future__ import annotations


class PafwError(Exception):
    """Raised for any expected failure of the firmware (the CLI prints it without a traceback)."""


class ConfigError(PafwError, ValueError):
    """Raised when a configuration file or value is invalid.

    ``problems`` holds one line per problem, each already prefixed with ``file:line:column``
    and the key path, so a user can jump straight to the faulty spot.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class NodeParameterError(ConfigError):
    """Raised when a node cannot be built because of one of its parameters (a frequency above
    Nyquist); ``key`` names it under the node's ``parameters``, so the config loader can point
    at its line."""

    def __init__(self, problems: list[str] | str, *, key: str) -> None:
        super().__init__(problems)
        self.key = key


class DspError(PafwError):
    """Raised when the signal-processing layer cannot do what it was asked."""


class SourceError(DspError, OSError):
    """Raised when an audio source cannot be opened or read (device, file, format)."""


class HalError(PafwError):
    """Raised when hardware access (pins, backends) fails."""


class ActionError(PafwError):
    """Raised when an action cannot be built or run."""


class ScriptError(ActionError):
    """Raised when a customer script is invalid, refused or fails to load."""
