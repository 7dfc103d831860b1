"""``${VAR}`` substitution in config strings, from the environment (or a given mapping).

``${VAR}`` is the variable's value, ``${VAR:-default}`` falls back to ``default`` when it is
unset, ``$$`` is a literal ``$``; any other ``$`` is kept (``$HOME`` stays ``$HOME``). Secrets
thus stay out of the file, and one file serves several appliances.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_REFERENCE = re.compile(r"\$(?:(\$)|\{([^}]*)\}|(\{))")
_INNER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_WHOLE_REFERENCE = re.compile(r"\$\{[^}]*\}")


@dataclass(frozen=True)
class Substitution:
    """Result of ``substitute_env`` on one string scalar."""

    text: str
    #: the scalar was exactly one ``${...}`` reference (its result may be re-read as YAML)
    whole: bool
    errors: list[str]


def substitute_env(value: str, env: Mapping[str, str]) -> Substitution:
    """Replace ``${VAR}``, ``${VAR:-default}`` and ``$$`` in ``value`` from ``env``.

    The default is taken literally (no nested references; it cannot contain ``}``). A ``$``
    followed by anything else is kept as is, so ``$HOME`` stays ``$HOME``.
    """
    errors: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return "$"
        if match.group(3) is not None:
            errors.append(
                f"unterminated '${{' in {value!r}: expected ${{VAR}} or ${{VAR:-default}} "
                f"(write $$ for a literal $)"
            )
            return match.group(0)
        inner = _INNER.fullmatch(match.group(2))
        if inner is None:
            errors.append(
                f"invalid reference {match.group(0)!r}: expected ${{VAR}} or ${{VAR:-default}} "
                f"with VAR made of letters, digits and '_' (write $$ for a literal $)"
            )
            return match.group(0)
        name, default = inner.group(1), inner.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        errors.append(
            f"environment variable {name!r} is not set and has no default "
            f"(set it, or write ${{{name}:-value}})"
        )
        return ""

    text = _REFERENCE.sub(replace, value)
    whole = _WHOLE_REFERENCE.fullmatch(value) is not None and not errors
    return Substitution(text=text, whole=whole, errors=errors)
