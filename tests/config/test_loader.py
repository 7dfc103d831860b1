"""Config loader: defaults, environment substitution, located error messages, graph helpers."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml

from firmware.config.env import substitute_env
from firmware.config.loader import default_config_text, load_config
from firmware.config.models import Config
from firmware.config.processing import DEFAULT_GRAPH, GraphSettings
from firmware.config.yaml_positions import format_key_path
from firmware.dsp.nodes.filter import FilterParams
from firmware.errors import ConfigError

ENV = {
    "PAFW_STATE_DIR": "/tmp/pafw-test/state",
    "PAFW_SCRIPTS_DIR": "/tmp/pafw-test/scripts",
    "PAFW_CACHE_DIR": "/tmp/pafw-test/cache",
}

GRAPH_HEAD = """\
processing:
  default_graph:
    nodes:
"""


def load_text(text: str, env: dict[str, str] | None = None):
    """Load ``text`` as if it were the file bad.yaml."""
    env = ENV if env is None else env
    return load_config(Path("bad.yaml"), text=textwrap.dedent(text), env=env)


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(text, env)
    return info.value.problems


# --- loading what is valid ---------------------------------------------------------------


def test_default_config_loads() -> None:
    doc = load_config(None, env=ENV)
    config = doc.config
    assert doc.path is None
    assert config.device.id == "pafw-sim"
    assert config.acquisition.source == "simulator"
    assert config.paths.state_dir == Path("/tmp/pafw-test/state")
    graph = config.processing.default_graph
    assert graph.topological_order() == [
        "input", "bandpass", "gain", "differential", "peak_finder", "concentration",
        "mqtt", "alarm_relay", "status_led",
    ]
    assert isinstance(config.node("bandpass").params, FilterParams)
    assert config.node("bandpass").parameters["order"] == 4


def test_default_graph_constant_is_the_default_files_processing_part() -> None:
    """Without a file the graph is the DSP chain alone; the shipped file adds action nodes."""
    shipped = load_config(None, env=ENV).config.processing.default_graph
    processing_ids = [n["id"] for n in DEFAULT_GRAPH["nodes"]]
    dsp_part = {
        "nodes": [n.model_dump(by_alias=True) for n in shipped.nodes if n.id in processing_ids],
        "connections": [c.model_dump(by_alias=True) for c in shipped.connections
                        if c.to in processing_ids],
    }
    assert GraphSettings.model_validate(dsp_part) == GraphSettings.model_validate(DEFAULT_GRAPH)
    assert Config().processing.default_graph == GraphSettings.model_validate(DEFAULT_GRAPH)
    assert {n.type for n in shipped.nodes if n.id not in processing_ids} == {
        "mqtt_action", "relay_action", "led_action"}


def test_default_file_only_differs_from_model_defaults_where_known() -> None:
    """"Every value shown is the default unless its comment says otherwise": the file and the
    models agree except for the demo parts marked so (the simulator's concentration profile,
    the action nodes and the relay and LED they drive) and the named values they use."""
    shipped = load_config(None, env={}).config.model_dump(by_alias=True)
    built_in = Config().model_dump(by_alias=True)
    for config in (shipped, built_in):
        config.pop("values")
        config["acquisition"]["simulator"].pop("concentration")
        config["processing"].pop("default_graph")
        config["hal"].pop("relays")
        config["hal"].pop("leds")
    assert shipped == built_in


def test_default_config_text_is_the_packaged_file() -> None:
    text = default_config_text()
    assert "default_graph:" in text
    assert yaml.safe_load(text)["processing"]["default_graph"]["nodes"][0]["type"] == "input"


@pytest.mark.parametrize("content", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_file_is_all_defaults(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(content)
    doc = load_config(path, env={})
    assert doc.path == path
    assert doc.config == Config()


def test_empty_sections_mean_defaults() -> None:
    doc = load_text("device:\nlogging:\n")
    assert doc.config.device.id == "pafw-sim"
    assert doc.config.logging.level == "info"


def test_node_params_and_raw_parameters() -> None:
    node = load_config(None, env=ENV).config.node("peak_finder")
    assert node.parameters == DEFAULT_GRAPH["nodes"][4]["parameters"]
    assert node.params.frequency_min == 1700.0
    assert node.params.channel == "A"  # a default filled in by the Params model
    assert "channel" not in node.parameters


def test_anchors_and_merge_keys() -> None:
    doc = load_text("""\
    processing:
      default_graph:
        nodes:
          - {id: input, type: input}
          - id: f1
            type: filter
            parameters: &band {band: bandpass, low_hz: 1000, high_hz: 3000, order: 2}
          - id: f2
            type: filter
            parameters:
              <<: *band
              order: 6
        connections:
          - {from: input, to: f1}
          - {from: f1, to: f2}
    """)
    assert doc.config.node("f1").params.order == 2
    assert doc.config.node("f2").params.order == 6
    assert doc.config.node("f2").params.low_hz == 1000


# --- environment substitution -------------------------------------------------------------


def test_env_set_default_and_escape() -> None:
    doc = load_text(
        """\
        device:
          id: ${DEV:-fallback}
          name: "cost $$5 in ${ROOM} ($HOME stays)"
        """,
        env={"ROOM": "lab 2"},
    )
    assert doc.config.device.id == "fallback"
    assert doc.config.device.name == "cost $5 in lab 2 ($HOME stays)"
    assert load_text("device:\n  id: ${DEV:-fallback}\n", env={"DEV": "cell-7"}).config.device.id \
        == "cell-7"


def test_env_plain_scalar_is_reread_quoted_stays_string() -> None:
    doc = load_text(
        """\
        acquisition:
          sample_rate: ${RATE:-44100}
          realtime: ${RT}
          alsa:
            period_size: ${PERIOD:-}
        device:
          name: "${NUM}"
        """,
        env={"RT": "false", "NUM": "1234"},
    )
    assert doc.config.acquisition.sample_rate == 44100
    assert doc.config.acquisition.realtime is False
    assert doc.config.acquisition.alsa.period_size is None
    assert doc.config.device.name == "1234"


def test_env_missing_variable() -> None:
    problems = problems_of("device:\n  id: ${PAFW_NOPE}\n", env={})
    assert len(problems) == 1
    assert re.fullmatch(
        r"bad\.yaml:2:7: device\.id: environment variable 'PAFW_NOPE' is not set and has no "
        r"default .*", problems[0])


def test_substitute_env_unit() -> None:
    sub = substitute_env("${A}", {"A": "1"})
    assert (sub.text, sub.whole, sub.errors) == ("1", True, [])
    sub = substitute_env("x${A:-d}y$$", {})
    assert (sub.text, sub.whole, sub.errors) == ("xdy$", False, [])
    assert substitute_env("${1A}", {}).errors[0].startswith("invalid reference '${1A}'")
    assert substitute_env("${A", {}).errors[0].startswith("unterminated")


def test_format_key_path() -> None:
    assert format_key_path(()) == "(top level)"
    assert format_key_path(("processing", "default_graph", "nodes", 3, "parameters", "order")) \
        == "processing.default_graph.nodes[3].parameters.order"
    assert format_key_path(("a", "b c")) == "a['b c']"
    names = {3: "co2_peak", 4: "7"}
    assert format_key_path(("processing", "default_graph", "nodes", 3, "parameters", "x"),
                           names) == "processing.default_graph.nodes[co2_peak].parameters.x"
    assert format_key_path(("processing", "default_graph", "nodes", 4), names) \
        == "processing.default_graph.nodes['7']"  # an id that looks like an index
    assert format_key_path(("processing", "default_graph", "nodes", 5), names) \
        == "processing.default_graph.nodes[5]"  # no usable id: the index
    assert format_key_path(("x", "nodes", 3), names) == "x.nodes[3]"


def test_errors_name_graph_nodes_by_their_id(tmp_path) -> None:
    text = default_config_text().replace("order: 4", "order: 40")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "c.yaml", text=text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "order: 40" in t)
    assert caught.value.problems == [
        f"{tmp_path / 'c.yaml'}:{line}:11: processing.default_graph.nodes[bandpass].parameters"
        f".order: Input should be less than or equal to 12 (got 40)"]
    # two nodes with one id: neither can be named by it
    text = default_config_text().replace("id: gain", "id: bandpass").replace(
        "order: 4", "order: 40")
    with pytest.raises(ConfigError) as caught:
        load_config(text=text)
    assert any("nodes[1].parameters.order" in p for p in caught.value.problems)


# --- malformed configs: each message names file:line:col and the key path -----------------

GRAPH_OK_TAIL = """\
    connections:
      - {from: input, to: g}
"""

BAD_CONFIGS: list[tuple[str, str, str]] = [
    ("unknown top-level key",
     "devce:\n  id: x\n",
     r"bad\.yaml:1:1: devce: unknown key 'devce'; did you mean 'device'\? \(expected one of: "
     r"device, acquisition, processing, paths, logging, hal, mqtt, scripts, web, modbus, "
     r"calibration, cycle, selftest, values\)"),
    ("unknown nested key",
     "acquisition:\n  simulator:\n    q_factr: 20\n",
     r"bad\.yaml:3:5: acquisition\.simulator\.q_factr: unknown key 'q_factr'; "
     r"did you mean 'q_factor'\?.*"),
    ("wrong type",
     "acquisition:\n  sample_rate: fast\n",
     r"bad\.yaml:2:3: acquisition\.sample_rate: Input should be a valid integer.* \(got 'fast'\)"),
    ("out of range",
     "acquisition:\n  frame_size: 10\n",
     r"bad\.yaml:2:3: acquisition\.frame_size: Input should be greater than or equal to 64 "
     r"\(got 10\)"),
    ("bad enum value",
     "logging:\n  level: warn\n",
     r"bad\.yaml:2:3: logging\.level: Input should be 'debug', 'info', 'warning' or 'error' "
     r"\(got 'warn'\); did you mean 'warning'\?"),
    ("bad device id",
     "device:\n  id: my device\n",
     r"bad\.yaml:2:3: device\.id: String should match pattern .* \(got 'my device'\)"),
    ("duplicate node ids",
     GRAPH_HEAD + "      - {id: input, type: input}\n      - {id: g, type: gain}\n"
     "      - {id: g, type: gain}\n" + GRAPH_OK_TAIL,
     r"bad\.yaml:6:10: processing\.default_graph\.nodes\[2\]\.id: duplicate node id 'g' "
     r"\(already used by nodes\[1\]\).*"),
    ("unknown node type",
     GRAPH_HEAD + "      - {id: input, type: input}\n      - {id: g, type: gian}\n"
     + GRAPH_OK_TAIL,
     r"bad\.yaml:5:17: processing\.default_graph\.nodes\[g\]\.type: unknown node type 'gian'; "
     r"did you mean 'gain'\? \(registered types: .*filter.*\)"),
    ("dangling connection",
     GRAPH_HEAD + "      - {id: input, type: input}\n      - {id: g, type: gain}\n"
     "    connections:\n      - {from: input, to: g}\n      - {from: g, to: peak}\n",
     r"bad\.yaml:8:19: processing\.default_graph\.connections\[1\]\.to: connection to unknown "
     r"node id 'peak'.*"),
    ("dangling connection with suggestion",
     GRAPH_HEAD + "      - {id: input, type: input}\n      - {id: g, type: gain}\n"
     "    connections:\n      - {from: inptu, to: g}\n",
     r"bad\.yaml:7:10: processing\.default_graph\.connections\[0\]\.from: connection from unknown"
     r" node id 'inptu'; did you mean 'input'\?.*"),
    ("cycle",
     GRAPH_HEAD + "      - {id: input, type: input}\n      - {id: a, type: gain}\n"
     "      - {id: b, type: gain}\n"
     "    connections:\n      - {from: a, to: b}\n      - {from: b, to: a}\n",
     r"bad\.yaml:8:9: processing\.default_graph\.connections\[0\]: connections form a cycle: "
     r"a -> b -> a.*"),
    ("two inputs into one node",
     GRAPH_HEAD + "      - {id: input, type: input}\n      - {id: a, type: gain}\n"
     "      - {id: b, type: gain}\n    connections:\n      - {from: input, to: a}\n"
     "      - {from: input, to: b}\n      - {from: a, to: b}\n",
     r"bad\.yaml:10:19: processing\.default_graph\.connections\[2\]\.to: node 'b' already takes "
     r"its input from 'input' \(connections\[1\]\); each node takes exactly one input.*"),
    ("connection into an input node",
     GRAPH_HEAD + "      - {id: input, type: input}\n      - {id: g, type: gain}\n"
     "    connections:\n      - {from: input, to: g}\n      - {from: g, to: input}\n",
     r"bad\.yaml:8:19: processing\.default_graph\.connections\[1\]\.to: node 'input' is an "
     r"'input' node.*takes no incoming connection.*"),
    ("node without input",
     GRAPH_HEAD + "      - {id: input, type: input}\n      - {id: g, type: gain}\n",
     r"bad\.yaml:5:9: processing\.default_graph\.nodes\[g\]: node 'g' \(gain\) has no input.*"),
    ("no input node",
     GRAPH_HEAD + "      - {id: g, type: gain}\n",
     r"bad\.yaml:3:5: processing\.default_graph\.nodes: the graph has no node of type 'input'.*"),
    ("bad node parameter type",
     GRAPH_HEAD + "      - {id: input, type: input}\n      - id: g\n        type: gain\n"
     "        parameters:\n          gain_db: loud\n" + GRAPH_OK_TAIL,
     r"bad\.yaml:8:11: processing\.default_graph\.nodes\[g\]\.parameters\.gain_db: Input should "
     r"be a valid number.* \(got 'loud'\)"),
    ("node parameter out of range",
     GRAPH_HEAD + "      - {id: input, type: input}\n      - id: g\n        type: filter\n"
     "        parameters:\n          order: 20\n          cutoff_hz: 100\n"
     "          band: lowpass\n" + GRAPH_OK_TAIL,
     r"bad\.yaml:8:11: processing\.default_graph\.nodes\[g\]\.parameters\.order: Input should be "
     r"less than or equal to 12 \(got 20\)"),
    ("unknown node parameter",
     GRAPH_HEAD + "      - {id: input, type: input}\n      - id: g\n        type: gain\n"
     "        parameters:\n          gain: 3\n" + GRAPH_OK_TAIL,
     r"bad\.yaml:8:11: processing\.default_graph\.nodes\[g\]\.parameters\.gain: unknown key "
     r"'gain'; did you mean 'gain_db'\?.*"),
    ("filter params inconsistent",
     GRAPH_HEAD + "      - {id: input, type: input}\n      - id: g\n        type: filter\n"
     "        parameters:\n          band: lowpass\n          center_frequency: 2000\n"
     + GRAPH_OK_TAIL,
     r"bad\.yaml:7:9: processing\.default_graph\.nodes\[g\]\.parameters: a lowpass filter needs "
     r"cutoff_hz"),
    ("unknown connection key",
     GRAPH_HEAD + "      - {id: input, type: input}\n      - {id: g, type: gain}\n"
     "    connections:\n      - {form: input, to: g}\n",
     r"bad\.yaml:7:10: processing\.default_graph\.connections\[0\]\.form: unknown key 'form'; "
     r"did you mean 'from'\? \(expected one of: from, to\)"),
    ("YAML syntax error",
     "device:\n  id: x\n name: y\n",
     r"bad\.yaml:3:2: device: YAML syntax error: expected <block end>.*"),
    ("duplicate mapping key",
     "acquisition:\n  source: simulator\n  sample_rate: 8000\n  source: alsa\n",
     r"bad\.yaml:4:3: acquisition\.source: duplicate key 'source' \(first defined at line 2, "
     r"column 3\).*"),
    ("unset env var",
     "paths:\n  state_dir: \"${PAFW_TEST_UNSET}/x\"\n",
     r"bad\.yaml:2:14: paths\.state_dir: environment variable 'PAFW_TEST_UNSET' is not set.*"),
    ("invalid env reference",
     "device:\n  name: ${not-a-name}\n",
     r"bad\.yaml:2:9: device\.name: invalid reference '\$\{not-a-name\}'.*"),
    ("non-mapping top level",
     "- device\n- logging\n",
     r"bad\.yaml:1:1: \(top level\): expected a mapping of sections .*got list"),
    ("section not a mapping",
     "logging: verbose\n",
     r"bad\.yaml:1:1: logging: expected a mapping \(got 'verbose'\)"),
    ("wav source without wav section",
     "acquisition:\n  source: wav\n",
     r"bad\.yaml:1:1: acquisition: source 'wav' needs an 'acquisition\.wav' section with a "
     r"'path'"),
    ("wav section without path",
     "acquisition:\n  source: wav\n  wav:\n    loop: true\n",
     r"bad\.yaml:3:3: acquisition\.wav\.path: missing required key 'path'"),
    ("unknown profile with suggestion",
     "acquisition:\n  simulator:\n    concentration:\n      profile: ramps\n",
     r"bad\.yaml:4:7: acquisition\.simulator\.concentration\.profile: unknown profile 'ramps'; "
     r"did you mean 'ramp'\?.*"),
    ("profile list item",
     "acquisition:\n  simulator:\n    concentration:\n      profile: steps\n"
     "      levels_ppm: [10, -5]\n",
     r"bad\.yaml:5:24: acquisition\.simulator\.concentration\.levels_ppm\[1\]: Input should be "
     r"greater than or equal to 0 \(got -5\)"),
    ("unsupported tag",
     "device: !secret {id: x}\n",
     r"bad\.yaml:1:9: device: unsupported YAML tag '!secret' on a mapping"),
    ("empty path",
     "paths:\n  cache_dir: ''\n",
     r"bad\.yaml:2:3: paths\.cache_dir: expected a directory path, not an empty string.*"),
    ("status interval must be finite",
     "processing:\n  status_interval_s: .inf\n",
     r"bad\.yaml:2:3: processing\.status_interval_s: Input should be a finite number.*"),
]


@pytest.mark.parametrize(("text", "pattern"), [(t, p) for _, t, p in BAD_CONFIGS],
                         ids=[name for name, _, _ in BAD_CONFIGS])
def test_malformed_config_message(text: str, pattern: str) -> None:
    problems = problems_of(text)
    assert any(re.fullmatch(pattern, p) for p in problems), "\n".join(problems)
    for problem in problems:
        assert re.match(r"bad\.yaml:\d+:\d+: \S+.*: .+", problem), problem


def test_all_problems_of_a_file_together_sorted_by_line() -> None:
    problems = problems_of("""\
    processing:
      default_graph:
        nodes:
          - {id: input, type: input}
          - {id: g, type: gain, parameters: {gain_db: 1000}}
          - {id: f, type: fliter}
          - {id: x, type: gain}
        connections:
          - {from: input, to: g}
          - {from: g, to: f}
    logging:
      level: loud
      format: xml
    devices: {}
    """)
    assert len(problems) == 6, problems
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == sorted(lines)
    text = "\n".join(problems)
    for needle in ("gain_db", "'fliter'", "node 'x' (gain) has no input", "logging.level",
                   "logging.format", "did you mean 'device'"):
        assert needle in text


def test_yaml_problem_hides_validation_noise_below_it() -> None:
    problems = problems_of("acquisition:\n  sample_rate: ${RATE}\n", env={})
    assert len(problems) == 1 and "RATE" in problems[0]


def test_bad_key_does_not_hide_other_problems() -> None:
    problems = problems_of("? [a, b]\n: 1\nlogging: {level: loud}\n")
    assert len(problems) == 2
    assert re.fullmatch(r"bad\.yaml:1:3: \(top level\): a key must be a plain value, not a "
                        r"list", problems[0])
    assert problems[1].startswith("bad.yaml:3:11: logging.level: Input should be")


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: cannot read the configuration")):
        load_config(missing)
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path}: cannot read")):
        load_config(tmp_path)


def test_not_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"device:\n  name: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1\.yaml:2:12: \(top level\): not UTF-8 text"):
        load_config(path)


def test_config_error_is_a_value_error_with_problem_list() -> None:
    with pytest.raises(ValueError) as info:
        load_text("logging: {level: x, format: y}\n")
    assert isinstance(info.value, ConfigError)
    assert len(info.value.problems) == 2


# --- locations for later errors and graph helpers -----------------------------------------


def test_where_and_node_location() -> None:
    text = default_config_text()
    lines = text.splitlines()
    doc = load_config(Path("config.yaml"), text=text, env=ENV)
    where = doc.where(("processing", "default_graph", "nodes", 2, "parameters"))
    file_name, line, column = where.split(":")
    assert file_name == "config.yaml"
    assert lines[int(line) - 1][int(column) - 1:].startswith("parameters:")
    # a key that is not in the file: the closest existing one
    assert doc.where(("processing", "default_graph", "nodes", 2, "parameters", "nope")) == where
    assert doc.where(("nothing", "here")) == doc.where(())  # the document's first key
    first_key = next(i for i, t in enumerate(lines, 1) if t.strip() and not t.startswith("#"))
    assert doc.where(()) == f"config.yaml:{first_key}:1"

    location = doc.node_location("gain")
    assert location.endswith(": processing.default_graph.nodes[gain]")
    line = int(location.split(":")[1])
    assert "id: gain" in lines[line - 1]

    error = doc.node_error("gain", ConfigError("node 'gain' (gain): too loud"))
    assert error.problems == [f"{location}: node 'gain' (gain): too loud"]


def test_with_config_keeps_positions() -> None:
    doc = load_config(None, env=ENV)
    changed = doc.with_config(Config())
    assert changed.config == Config()
    assert changed.where(("logging", "level")) == doc.where(("logging", "level"))


def test_topological_order_and_upstream_chain() -> None:
    doc = load_text("""\
    processing:
      default_graph:
        nodes:
          - {id: peak, type: peak_finder}
          - {id: diff, type: differential}
          - {id: lock, type: lockin}
          - {id: input, type: input}
          - {id: rec, type: record}
        connections:
          - {from: diff, to: peak}
          - {from: input, to: diff}
          - {from: diff, to: lock}
          - {from: input, to: rec}
    """)
    graph = doc.config.processing.default_graph
    order = graph.topological_order()
    assert order == ["input", "diff", "peak", "lock", "rec"]
    assert graph.upstream_chain("peak") == ["input", "diff"]
    assert graph.upstream_chain("input") == []
    assert graph.parent_map() == {"peak": "diff", "diff": "input", "lock": "diff",
                                  "rec": "input"}
    with pytest.raises(KeyError):
        graph.upstream_chain("nope")
    with pytest.raises(KeyError):
        doc.config.node("nope")


def test_graph_errors_from_model_validate_have_locs() -> None:
    """Config.model_validate (without the loader) checks the graph too."""
    from pydantic import ValidationError

    data = {"nodes": [{"id": "input", "type": "input"}, {"id": "g", "type": "gain"}],
            "connections": [{"from": "g", "to": "g"}]}
    with pytest.raises(ValidationError) as info:
        GraphSettings.model_validate(data)
    assert info.value.errors()[0]["loc"] == ("connections", 0)
    assert "cycle: g -> g" in info.value.errors()[0]["msg"]
