"""Property-based fuzz of the config loader: whatever the input, it returns a validated config
or raises ConfigError whose every line is ``file:line:col: key.path: message``."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.config.loader import ConfigDocument, default_config_text, load_config
from firmware.errors import ConfigError

DEFAULT_TEXT = default_config_text()
DEFAULT_DATA: dict[str, Any] = yaml.safe_load(DEFAULT_TEXT)
ENV = {"PAFW_STATE_DIR": "/tmp/pafw-fuzz/state", "PAFW_PORT": "1883", "PAFW_EMPTY": ""}
LINE = re.compile(r"fuzz\.yaml:\d+:\d+: .+: .+", re.DOTALL)

#: examples per test; raise it (PAFW_FUZZ_EXAMPLES=5000) to hunt for bugs locally
EXAMPLES = int(os.environ.get("PAFW_FUZZ_EXAMPLES", "800"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: words that reach deep into the models, so random documents are not all rejected at the top
WORDS = sorted({
    "device", "acquisition", "processing", "paths", "logging", "id", "name", "source",
    "sample_rate", "frame_size", "realtime", "simulator", "wav", "alsa", "concentration",
    "profile", "steps", "levels_ppm", "default_graph", "nodes", "connections", "from", "to",
    "type", "parameters", "input", "filter", "gain", "peak_finder", "order", "band",
    "level", "format", "state_dir", "status_interval_s", "path", "noise", "seed",
})
ENV_SCALARS = ["${PAFW_PORT}", "${PAFW_MISSING}", "${PAFW_MISSING:-7}", "$$x", "${", "${1x}",
               "${PAFW_EMPTY}", "~nosuchuser/x", "~/x"]

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.text(max_size=20) | st.sampled_from(WORDS) | st.sampled_from(ENV_SCALARS)
)
keys = st.sampled_from(WORDS) | st.text(min_size=1, max_size=12)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=40,
)


def check(text: str) -> None:
    """The property: a ConfigDocument, or a ConfigError of well-formed located lines."""
    try:
        doc = load_config(Path("fuzz.yaml"), text=text, env=ENV)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert LINE.fullmatch(problem), problem
    else:
        assert isinstance(doc, ConfigDocument)
        graph = doc.config.processing.default_graph
        assert sorted(graph.topological_order()) == sorted(n.id for n in graph.nodes)


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@FUZZ
@given(documents)
def test_random_documents(data: Any) -> None:
    check(dump(data))


@FUZZ
@given(st.dictionaries(st.sampled_from(["device", "acquisition", "processing", "paths",
                                        "logging"]), documents, max_size=5))
def test_random_sections(data: dict[str, Any]) -> None:
    check(dump(data))


def _containers(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every value below ``data`` (not the root)."""
    found: list[tuple[Any, ...]] = []
    items = data.items() if isinstance(data, dict) else enumerate(data) \
        if isinstance(data, list) else []
    for key, value in items:
        found.append((*path, key))
        found.extend(_containers(value, (*path, key)))
    return found


PATHS = _containers(DEFAULT_DATA)


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


mutation = st.tuples(
    st.sampled_from(["delete", "replace", "rename"]),
    st.integers(min_value=0, max_value=len(PATHS) - 1),
    documents,
    keys,
)


@FUZZ
@given(st.lists(mutation, min_size=1, max_size=4))
def test_mutated_default_config(mutations: list[tuple[str, int, Any, str]]) -> None:
    data = copy.deepcopy(DEFAULT_DATA)
    for op, index, value, new_key in mutations:
        path = PATHS[index]
        try:
            parent = _parent(data, path)
            key = path[-1]
            parent[key]  # the path may be gone after an earlier mutation
        except (KeyError, IndexError, TypeError):
            continue
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = value
        elif isinstance(parent, dict):
            parent[new_key] = parent.pop(key)
    check(dump(data))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["delete", "insert", "dup_line", "swap_lines"]),
                          st.integers(min_value=0, max_value=len(DEFAULT_TEXT)),
                          st.integers(min_value=1, max_value=40),
                          st.text(max_size=10) | st.sampled_from(
                              [":", "- ", "  ", "\t", "{", "[", "&a ", "*a", "!!", "${", "\n",
                               "'", '"', "#", "<<: ", "? "])),
                min_size=1, max_size=5))
def test_corrupted_default_text(edits: list[tuple[str, int, int, str]]) -> None:
    text = DEFAULT_TEXT
    for op, at, length, insert in edits:
        at = min(at, len(text))
        lines = text.split("\n")
        row = min(at // 40, len(lines) - 1)
        if op == "delete":
            text = text[:at] + text[at + length:]
        elif op == "insert":
            text = text[:at] + insert + text[at:]
        elif op == "dup_line":
            lines.insert(row, lines[row])
            text = "\n".join(lines)
        else:
            other = min(row + length % 5 + 1, len(lines) - 1)
            lines[row], lines[other] = lines[other], lines[row]
            text = "\n".join(lines)
    check(text)


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    check(text)
