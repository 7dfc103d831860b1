"""The documentation of the examples stays true: user_scripts/examples.yaml passes
`pafw config check`, every node in it and in the scripts' docstrings is valid, and every
script passes the static checks with the imports its node allows."""

from __future__ import annotations

import pytest
import yaml

from firmware.actions.python.imports import check_script
from firmware.app.analyzer import check_graph
from firmware.cli import main
from tests.user_scripts.appliance_run import EXAMPLES, docstring_node, load, make_config

SCRIPTS = ["email_alert.py", "webhook_notification.py", "relay_led_control.py",
           "mqtt_republisher.py", "sqlite_logger.py", "trend_predictor.py",
           "postgres_logger.py"]


def python_nodes() -> list[dict]:
    data = yaml.safe_load((EXAMPLES / "examples.yaml").read_text(encoding="utf-8"))
    return [n for n in data["processing"]["default_graph"]["nodes"]
            if n["type"] == "python_action"]


def test_examples_yaml_passes_config_check(monkeypatch, capsys):
    monkeypatch.setenv("PAFW_SCRIPTS_DIR", str(EXAMPLES))
    assert main(["config", "check", str(EXAMPLES / "examples.yaml")]) == 0
    assert "OK (12 nodes)" in capsys.readouterr().out


def test_examples_yaml_runs_every_example_once():
    scripts = [n["parameters"]["python_script_path"].removeprefix("/user_scripts/")
               for n in python_nodes()]
    assert sorted(scripts) == sorted(SCRIPTS)
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    assert all(f"({name})" in readme for name in SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_docstring_node_is_a_valid_config(script, tmp_path):
    node = docstring_node(script)
    assert node["parameters"]["python_script_path"] == f"/user_scripts/{script}"
    data = make_config(tmp_path, nodes=[node], co2_ids=script == "email_alert.py",
                       broker=_NoBroker() if "mqtt_publish" in str(node) else None,
                       profile={"profile": "constant", "value_ppm": 400.0})
    check_graph(load(data, env={"EMAIL_PASSWORD": "x", "PAFW_DB_PASSWORD": "x"}))


@pytest.mark.parametrize("node", python_nodes(), ids=lambda n: n["id"])
def test_scripts_pass_the_static_checks(node):
    params = node["parameters"]
    path = EXAMPLES / params["python_script_path"].removeprefix("/user_scripts/")
    source = path.read_text(encoding="utf-8")
    assert check_script(source, filename=str(path),
                        allowed_imports=params.get("allowed_imports", [])) == []
    assert f"class {params['python_class_name']}(" in source


class _NoBroker:
    host, port = "127.0.0.1", 1
