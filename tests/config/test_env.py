"""``${VAR}`` substitution in config strings (firmware/config/env.py): values, defaults, the
``$$`` escape, what is left alone, and the message of every malformed or unset reference."""

from __future__ import annotations

import pytest

from firmware.config.env import Substitution, substitute_env


def test_a_reference_is_replaced_by_the_variable() -> None:
    sub = substitute_env("${HOST}", {"HOST": "broker.lan"})
    assert sub == Substitution(text="broker.lan", whole=True, errors=[])


def test_references_inside_text_are_replaced_and_the_result_is_not_whole() -> None:
    sub = substitute_env("mqtt://${HOST}:${PORT}/x", {"HOST": "b", "PORT": "1883"})
    assert (sub.text, sub.whole, sub.errors) == ("mqtt://b:1883/x", False, [])


@pytest.mark.parametrize(("value", "env", "expected"), [
    ("${A:-fallback}", {}, "fallback"),
    ("${A:-fallback}", {"A": "set"}, "set"),
    ("${A:-}", {}, ""),
    # only an unset variable falls back: one set to "" is ""
    ("${A:-fallback}", {"A": ""}, ""),
    # the default is literal: spaces, ':-', '$' and '{' are kept, no nested reference
    ("${A:-two words}", {}, "two words"),
    ("${A:-x:-y}", {}, "x:-y"),
    ("${A:-${B}", {"B": "b"}, "${B"),
    # a default ends at the first '}'
    ("${A:-a}b}", {}, "ab}"),
])
def test_defaults_apply_to_unset_variables_only(value: str, env: dict[str, str],
                                                expected: str) -> None:
    sub = substitute_env(value, env)
    assert sub.text == expected and sub.errors == []


@pytest.mark.parametrize(("value", "expected"), [
    ("cost $$5", "cost $5"),
    ("$$", "$"),
    ("$${A}", "${A}"),  # an escaped '$' starts no reference
    ("$$$${A}", "$${A}"),
    ("$$${A}", "$v"),
    ("$HOME stays", "$HOME stays"),
    ("ends with $", "ends with $"),
    ("a$b$ c", "a$b$ c"),
    ("no dollar at all", "no dollar at all"),
])
def test_dollar_escape_and_other_dollars(value: str, expected: str) -> None:
    sub = substitute_env(value, {"A": "v", "HOME": "/root"})
    assert sub.text == expected and sub.errors == []
    assert sub.whole is False


def test_a_value_is_not_substituted_again() -> None:
    """The variable's value is taken as is: no second round, no escape processing."""
    sub = substitute_env("${A}", {"A": "${B} and $$", "B": "b"})
    assert sub.text == "${B} and $$" and sub.errors == []


def test_any_mapping_serves_as_the_environment() -> None:
    class Env(dict[str, str]):
        pass

    assert substitute_env("${X}", Env(X="1")).text == "1"


def test_whole_needs_exactly_one_reference_and_nothing_else() -> None:
    env = {"A": "1", "B": "2"}
    assert substitute_env("${A}", env).whole
    assert substitute_env("${A:-3}", {}).whole
    for value in (" ${A}", "${A} ", "${A}${B}", "x${A}", "$${A}", "$$"):
        assert not substitute_env(value, env).whole, value


def test_an_unset_variable_without_default_is_an_error_naming_it() -> None:
    sub = substitute_env("host=${PAFW_NOPE}!", {})
    assert sub.text == "host=!"
    assert sub.errors == [
        "environment variable 'PAFW_NOPE' is not set and has no default "
        "(set it, or write ${PAFW_NOPE:-value})"]
    assert sub.whole is False
    assert not substitute_env("${PAFW_NOPE}", {}).whole  # whole only when it worked


@pytest.mark.parametrize("reference", ["${}", "${1A}", "${A-B}", "${A:x}", "${A B}", "${-}",
                                       "${A:}"])
def test_an_invalid_reference_is_an_error_and_kept(reference: str) -> None:
    sub = substitute_env(f"x {reference} y", {"A": "a"})
    assert sub.text == f"x {reference} y"
    assert sub.errors == [
        f"invalid reference {reference!r}: expected ${{VAR}} or ${{VAR:-default}} with VAR "
        f"made of letters, digits and '_' (write $$ for a literal $)"]


def test_an_unterminated_reference_is_an_error_and_kept() -> None:
    sub = substitute_env("x ${A y", {"A": "a"})
    assert sub.text == "x ${A y"
    assert sub.errors == [
        "unterminated '${' in 'x ${A y': expected ${VAR} or ${VAR:-default} "
        "(write $$ for a literal $)"]
    assert not substitute_env("${A", {"A": "a"}).whole


def test_every_problem_of_a_string_is_reported() -> None:
    sub = substitute_env("${MISSING} ${1bad} ${OK} ${", {"OK": "fine"})
    assert sub.text == " ${1bad} fine ${"
    assert [e.split(" ", 2)[:2] for e in sub.errors] == [
        ["environment", "variable"], ["invalid", "reference"], ["unterminated", "'${'"]]


def test_the_result_is_frozen() -> None:
    sub = substitute_env("x", {})
    with pytest.raises(AttributeError):
        sub.text = "y"  # type: ignore[misc]
