"""Turns pydantic validation errors into config problems: a key path and a readable message.

Pydantic's ``loc`` tuples contain union branch names and discriminator tags that are not keys
of the file (``("acquisition", "simulator", "concentration", "steps", "levels_ppm")``); they
are dropped by walking the loc along the data. Messages get the bad value ("got 20") and, for
unknown keys and enum values, a "did you mean" hint computed against the model's field names
(found by walking the model's annotations along the same path).
"""

from __future__ import annotations

import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from firmware.config.graph import did_you_mean
from firmware.config.yaml_positions import KeyPath

#: error types raised by our own validators: their message already names the value
OWN_ERROR_TYPES = frozenset({"graph", "unknown_node_type"})

_MAPPING_TYPES = frozenset({"model_type", "dict_type", "model_attributes_type"})
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")


def describe_value(value: Any) -> str:
    """A short rendering of a YAML value for messages (``'abc'``, ``20``, ``null``, ``a list``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    try:
        text = repr(value)
    except ValueError:  # an int too long for repr
        return "a very long number"
    return text if len(text) <= 60 else text[:57] + "..."


def clean_loc(loc: tuple[Any, ...], data: Any) -> KeyPath:
    """The part of ``loc`` that names keys and indexes of ``data`` (plus a trailing missing key)."""
    out: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        in_dict = isinstance(current, dict) and isinstance(part, str) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            out.append(part)
            current = current[part]
        elif i == len(loc) - 1 and isinstance(current, dict) and isinstance(part, str):
            out.append(part)  # a missing key
    return tuple(out)


def _members(tp: Any) -> list[Any]:
    """The alternatives of a (possibly Annotated / Optional / Union) annotation."""
    if get_origin(tp) is Annotated:
        return _members(get_args(tp)[0])
    if get_origin(tp) in (Union, types.UnionType):
        return [m for arg in get_args(tp) for m in _members(arg)]
    return [tp]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _score(model: type[BaseModel], data: Any) -> int:
    """How well ``data`` fits ``model``: shared keys, plus a lot for a matching Literal tag."""
    if not isinstance(data, dict):
        return 0
    score = 0
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key not in data:
            continue
        score += 1
        if get_origin(info.annotation) is Literal:
            score += 10 if data[key] in get_args(info.annotation) else -10
    return score


def _model_of(tp: Any, data: Any) -> type[BaseModel] | None:
    models = [m for m in _members(tp) if _is_model(m)]
    return max(models, key=lambda m: _score(m, data)) if models else None


def _step(tp: Any, part: str | int, data: Any) -> Any:
    """The annotation of ``data[part]`` when ``data`` is validated as ``tp``."""
    model = _model_of(tp, data)
    if model is not None and isinstance(part, str):
        hook = getattr(model, "config_submodel", None)
        if hook is not None:
            sub = hook(part, data)
            if sub is not None:
                return sub
        for name, info in model.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    for member in _members(tp):
        origin, args = get_origin(member), get_args(member)
        if origin in (list, tuple) and isinstance(part, int) and args:
            return args[0]
        if origin is dict and isinstance(part, str) and len(args) == 2:
            return args[1]
    return None


def keys_at(root: type[BaseModel], data: Any, path: KeyPath) -> list[str] | None:
    """The keys allowed in the mapping at ``path`` (aliases where a field has one)."""
    tp: Any = root
    current = data
    for part in path:
        tp = _step(tp, part, current)
        if tp is None:
            return None
        try:
            current = current[part]
        except (KeyError, IndexError, TypeError):
            current = None
    model = _model_of(tp, current)
    if model is None:
        return None
    return [info.alias or name for name, info in model.model_fields.items()]


def _literal_hint(value: Any, expected: str) -> str:
    if not isinstance(value, str):
        return ""
    return did_you_mean(value, _QUOTED.findall(expected))


def _message(error: Any, path: KeyPath, root: type[BaseModel], data: Any) -> tuple[KeyPath, str]:
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    got = f" (got {describe_value(value)})"
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        allowed = keys_at(root, data, path[:-1])
        if allowed is None:
            return path, f"unknown key {key!r}"
        if not allowed:
            return path, f"unknown key {key!r}: this mapping takes no keys"
        return path, (f"unknown key {key!r}{did_you_mean(key, allowed)} "
                      f"(expected one of: {', '.join(allowed)})")
    if kind == "missing":
        return path, f"missing required key {path[-1]!r}" if path else "missing value"
    if kind in _MAPPING_TYPES:
        return path, f"expected a mapping{got}"
    if kind in ("list_type", "tuple_type"):
        return path, f"expected a list{got}"
    if kind == "literal_error":
        return path, f"{error['msg']}{got}{_literal_hint(value, str(ctx.get('expected', '')))}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(ctx.get("discriminator", "")).strip("'")
        tag_path = (*path, key) if isinstance(value, dict) and key in value else path
        expected = str(ctx.get("expected_tags", ""))
        if kind == "union_tag_not_found":
            return tag_path, f"missing key {key!r}, which selects the kind of this mapping"
        tag = str(ctx.get("tag", ""))
        return tag_path, (f"unknown {key} {tag!r}{did_you_mean(tag, _QUOTED.findall(expected))}"
                          f" (expected one of: {expected})")
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind in OWN_ERROR_TYPES or isinstance(value, dict | list):
        return path, message
    return path, message + got


def validation_problems(
    exc: ValidationError, data: Any, root: type[BaseModel]
) -> list[tuple[KeyPath, str]]:
    """One (key path, message) per error of ``exc``, raised validating ``data`` as ``root``."""
    problems: list[tuple[KeyPath, str]] = []
    for error in exc.errors(include_url=False):
        path = clean_loc(tuple(error["loc"]), data)
        problems.append(_message(error, path, root, data))
    return problems
