"""The YAML front end of the config loader (firmware/config/yaml_positions.py): data plus the
line and column of every key, problems instead of exceptions (duplicate keys, tags, recursive
aliases, alias bombs, deep nesting, syntax errors), merge keys, ``${VAR}`` substitution with
plain references re-read as YAML, and the key-path helpers."""

from __future__ import annotations

import pytest

from firmware.config.yaml_positions import (
    MAX_DEPTH,
    MAX_VALUES,
    YamlDocument,
    YamlProblem,
    format_key_path,
    node_names,
    parse_yaml,
    path_at_error,
)


def parsed(text: str, env: dict[str, str] | None = None) -> YamlDocument:
    return parse_yaml(text, env or {})


def only_problem(text: str, env: dict[str, str] | None = None) -> YamlProblem:
    doc = parsed(text, env)
    assert len(doc.problems) == 1, doc.problems
    return doc.problems[0]


def test_data_and_the_position_of_every_key_and_item() -> None:
    doc = parsed("a: 1\nb:\n  - x\n  - {c: 2}\n")
    assert doc.syntax_ok and doc.problems == []
    assert doc.data == {"a": 1, "b": ["x", {"c": 2}]}
    assert doc.positions == {(): (1, 1), ("a",): (1, 1), ("b",): (2, 1), ("b", 0): (3, 5),
                             ("b", 1): (4, 5), ("b", 1, "c"): (4, 6)}


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_an_empty_document_is_none_without_problems(text: str) -> None:
    doc = parsed(text)
    assert (doc.data, doc.syntax_ok, doc.problems) == (None, True, [])


def test_keys_are_the_text_written_in_the_file() -> None:
    assert parsed("on: 1\nyes: 2\n1: x\nnull: 3\n").data == {"on": 1, "yes": 2, "1": "x",
                                                             "null": 3}


def test_a_duplicate_key_is_a_problem_at_the_second_one() -> None:
    doc = parsed("a: 1\nb:\n  c: 1\n  c: 2\n")
    assert doc.problems == [YamlProblem((4, 3), ("b", "c"), "duplicate key 'c' (first defined at "
                                        "line 3, column 3); each key may appear once in a "
                                        "mapping")]
    assert doc.positions[("b", "c")] == (4, 3)


@pytest.mark.parametrize(("text", "path", "message"), [
    ("a: &x [*x]\n", ("a", 0), "recursive alias: a value that contains itself"),
    ("a: &x {b: *x}\n", ("a", "b"), "recursive alias: a value that contains itself"),
    ("a: !!set {x, y}\n", ("a",), "unsupported YAML tag 'tag:yaml.org,2002:set' on a mapping"),
    ("a: !!omap [b: 1]\n", ("a",), "unsupported YAML tag 'tag:yaml.org,2002:omap' on a list"),
    ("a: !secret x\n", ("a",),
     "cannot read 'x' as !secret: could not determine a constructor for the tag '!secret'"),
    ("a: !!int abc\n", ("a",), "cannot read 'abc' as tag:yaml.org,2002:int: invalid literal for "
                               "int() with base 10: 'abc'"),
])
def test_values_that_cannot_be_read_become_null_with_a_problem(
        text: str, path: tuple[str | int, ...], message: str) -> None:
    doc = parsed(text)
    assert doc.syntax_ok
    assert doc.problems == [YamlProblem((1, 4), path, message)]
    value = doc.data
    for part in path:
        value = value[part]
    assert value is None


def test_a_long_scalar_is_shortened_in_the_message() -> None:
    problem = only_problem(f"a: !!float {'9' * 100}x\n")
    assert problem.message.startswith(f"cannot read '{'9' * 37}...' as tag:yaml.org,2002:float")


@pytest.mark.parametrize(("text", "kind"), [("? [a, b]\n: 1\nc: 2\n", "list"),
                                            ("? {a: 1}\n: 1\nc: 2\n", "mapping")])
def test_a_key_that_is_not_a_plain_value_is_skipped(text: str, kind: str) -> None:
    doc = parsed(text)
    assert doc.data == {"c": 2}
    assert doc.problems == [YamlProblem((1, 3), (), f"a key must be a plain value, not a {kind}",
                                        masks=False)]


def test_merge_keys_add_what_is_not_given_explicitly() -> None:
    doc = parsed("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n")
    assert doc.problems == [] and doc.data["c"] == {"x": 1, "y": 3}
    # of several merged mappings the first one wins
    doc = parsed("b1: &b1 {x: 1}\nb2: &b2 {x: 2, z: 3}\nc:\n  <<: [*b1, *b2]\n")
    assert doc.problems == [] and doc.data["c"] == {"x": 1, "z": 3}


def test_merging_something_else_than_a_mapping_is_a_problem() -> None:
    doc = parsed("c:\n  <<: 5\n  y: 3\n")
    assert doc.data == {"c": {"y": 3}}
    assert doc.problems == [YamlProblem((2, 7), ("c",), "a merge key '<<' needs a mapping or a "
                                        "list of them", masks=False)]


def test_nesting_deeper_than_the_limit_is_cut() -> None:
    doc = parsed("[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2))
    assert doc.syntax_ok
    [problem] = doc.problems
    assert problem.message == f"nested deeper than {MAX_DEPTH} levels"
    assert len(problem.path) == MAX_DEPTH + 1
    # far deeper than the Python stack allows: a problem, no RecursionError
    doc = parsed("[" * 5000 + "]" * 5000)
    assert (doc.data, doc.syntax_ok) == (None, False)
    assert doc.problems == [YamlProblem((1, 1), (), "YAML nested too deeply to be a config")]


def test_an_alias_bomb_is_refused() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 7):
        name, previous = chr(ord("a") + i), chr(ord("a") + i - 1)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    doc = parsed("\n".join(lines) + "\n")
    assert (doc.data, doc.syntax_ok) == (None, False)
    assert doc.problems == [YamlProblem((1, 1), (), f"document expands to more than {MAX_VALUES} "
                                        f"values (aliases used as a bomb?)")]


def test_environment_references_in_string_values() -> None:
    env = {"B": "true", "N": "1" * 5000, "L": "[1, 2]", "Z": "007", "S": "lab 2"}
    doc = parsed(
        "p: ${P:-1883}\nq: '${P:-1883}'\nr: x${P:-1}\nb: ${B}\nn: ${N}\nl: ${L}\n"
        "e: ${E:-}\nz: \"${Z}\"\nf: ${F:-2.5}\ns: ${S}\n", env)
    assert doc.problems == []
    assert doc.data == {
        "p": 1883,  # a plain whole reference is typed as YAML would type its text
        "q": "1883",  # quoted: always a string
        "r": "x1",
        "b": True,
        "n": "1" * 5000,  # an int too long to convert stays text for the model to judge
        "l": "[1, 2]",  # re-read as a scalar only: never a list
        "e": None,
        "z": "007",
        "f": 2.5,
        "s": "lab 2",
    }


def test_keys_are_never_substituted() -> None:
    assert parsed("${K}: 1\n", {"K": "x"}).data == {"${K}": 1}


def test_a_bad_reference_is_a_problem_at_its_value() -> None:
    doc = parsed("a:\n  b: ${NOPE}\n  c: ${1x}\n")
    assert [(p.position, p.path) for p in doc.problems] == [((2, 6), ("a", "b")),
                                                            ((3, 6), ("a", "c"))]
    assert doc.problems[0].message.startswith("environment variable 'NOPE' is not set")
    assert doc.problems[1].message.startswith("invalid reference '${1x}'")
    assert doc.data == {"a": {"b": "", "c": "${1x}"}}


def test_an_explicit_str_tag_keeps_a_substituted_value_a_string() -> None:
    assert parsed("id: !!str ${ID}\n", {"ID": "007"}).data == {"id": "007"}
    assert parsed("id: &x !!str ${ID}\nn: ${ID}\n", {"ID": "7"}).data == {"id": "7", "n": 7}


@pytest.mark.parametrize(("text", "position", "path", "start"), [
    ("a:\n  b: [1, 2\n", (3, 1), ("a", "b", 1),
     "YAML syntax error: expected ',' or ']', but got '<stream end>' (while parsing a flow "
     "sequence at line 2)"),
    ("device:\n  id: x\n name: y\n", (3, 2), ("device",), "YAML syntax error: expected "
                                                          "<block end>"),
    ("a: *nope\n", (1, 4), (), "YAML syntax error: found undefined alias 'nope'; the anchor "
                               "&nope must be defined before its first use *nope (put shared "
                               "values in the 'values:' section at the top of the file)"),
    ("a: 1\nb: \x07\n", (2, 4), (), "YAML syntax error: character '\\x07' is not allowed in "
                                    "YAML (special or unprintable character)"),
    ("a: 1\n---\nb: 2\n", (2, 1), (), "YAML syntax error: but found another document"),
])
def test_syntax_errors_are_one_located_problem(text: str, position: tuple[int, int],
                                               path: tuple[str | int, ...], start: str) -> None:
    doc = parsed(text)
    assert (doc.data, doc.syntax_ok) == (None, False)
    [problem] = doc.problems
    assert (problem.position, problem.path) == (position, path)
    assert problem.message.startswith(start), problem.message


@pytest.mark.parametrize(("text", "path"), [
    ("a:\n  b:\n    - 1\n    - {c: [\n", ("a", "b", 1, "c")),
    ("x: 1\ny: {z: 1, w: [1, 2", ("y", "w", 1)),
    ("[1, 2, {a: ", (2, "a")),
    ("", ()),
    ("a: 1\n", ()),
])
def test_path_at_error_guesses_where_parsing_stopped(text: str,
                                                     path: tuple[str | int, ...]) -> None:
    assert path_at_error(text) == path


def test_node_names_are_the_usable_unique_ids() -> None:
    nodes = [{"id": "a"}, {"id": "b"}, {"id": "b"}, {"id": 5}, {"id": "x y"}, "n",
             {"id": "c.d"}, {"type": "gain"}, {"id": "7"}]
    data = {"processing": {"default_graph": {"nodes": nodes}}}
    assert node_names(data) == {0: "a", 6: "c.d", 8: "7"}
    for bad in (None, [], {"processing": []}, {"processing": {"default_graph": {"nodes": {}}}},
                {"processing": {"default_graph": None}}):
        assert node_names(bad) == {}


def test_format_key_path() -> None:
    nodes = ("processing", "default_graph", "nodes")
    assert format_key_path(()) == "(top level)"
    assert format_key_path((*nodes, 3, "parameters", "order")) == \
        "processing.default_graph.nodes[3].parameters.order"
    assert format_key_path((*nodes, 3, "parameters"), {3: "co2.peak"}) == \
        "processing.default_graph.nodes[co2.peak].parameters"
    assert format_key_path((*nodes, 4), {4: "7"}) == "processing.default_graph.nodes['7']"
    # a name applies to the graph's node list only
    assert format_key_path(("hal", "nodes", 3), {3: "x"}) == "hal.nodes[3]"
    assert format_key_path(("a.b", 1, "c d", "e")) == "['a.b'][1]['c d'].e"
    assert format_key_path((0, "a")) == "[0].a"
