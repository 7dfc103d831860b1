"""`pafw script check`: static checks, a real sandboxed load and synthetic calls."""

from __future__ import annotations

import subprocess
import sys

import yaml

from firmware.config.loader import default_config_text
from tests.paths import REPO

GOOD = '''
class Alert(CustomPythonAction):
    def __init__(self, api):
        super().__init__(api)
        self.limit = api.get_node_parameter("limit_ppm", 900.0)

    def on_trigger(self, trigger_type, data):
        self.api.relay_pulse("alarm", 1.0)
        return data["value"] > self.limit

    def on_clear(self, trigger_type, data):
        return True

    def get_status(self):
        return {"limit": self.limit}
'''


def check(*args):
    return subprocess.run([sys.executable, "-m", "firmware.cli", "script", "check", *args],
                          capture_output=True, text=True, timeout=120)


def config_for(tmp_path, capabilities):
    data = yaml.safe_load(default_config_text())
    data["processing"]["default_graph"]["nodes"].append({
        "id": "alert", "type": "python_action", "parameters": {
            "python_script_path": "alert.py", "python_class_name": "Alert",
            "python_config": {"limit_ppm": 1200.0}, "capabilities": capabilities}})
    data["processing"]["default_graph"]["connections"].append(
        {"from": "concentration", "to": "alert"})
    data["paths"]["scripts_dir"] = str(tmp_path)
    path = tmp_path / "pafw.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_good_script_with_its_config_passes(tmp_path):
    (tmp_path / "alert.py").write_text(GOOD)
    out = check(str(tmp_path / "alert.py"), "--config",
                str(config_for(tmp_path, {"relays": ["alarm"]})))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "would pulse relay 'alarm'" in out.stdout
    assert "on_trigger -> True" in out.stdout
    assert "get_status -> {'limit': 1200.0}" in out.stdout
    assert "on_clear -> True" in out.stdout
    assert out.stdout.rstrip().endswith("check passed")


def test_ungranted_relay_fails_the_check(tmp_path):
    (tmp_path / "alert.py").write_text(GOOD)
    out = check(str(tmp_path / "alert.py"), "--config", str(config_for(tmp_path, {})))
    assert out.returncode == 1
    assert "relay 'alarm' is not granted" in out.stdout
    assert "alert.py:8" in out.stdout


def test_refused_import_is_reported_at_its_line(tmp_path):
    script = tmp_path / "bad.py"
    script.write_text("import json\nimport subprocess\n\n" + GOOD)
    out = check(str(script))
    assert out.returncode == 1
    assert f"{script}:2" in out.stdout and "subprocess" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_wrong_return_type_and_syntax_error(tmp_path):
    script = tmp_path / "ret.py"
    script.write_text(GOOD.replace('self.api.relay_pulse("alarm", 1.0)', "pass")
                      .replace("return data[\"value\"] > self.limit", "return 'yes'"))
    out = check(str(script))
    assert out.returncode == 1 and "on_trigger" in out.stdout and "bool" in out.stdout
    broken = tmp_path / "syntax.py"
    broken.write_text("class Alert(CustomPythonAction:\n    pass\n")
    out = check(str(broken))
    assert out.returncode == 1 and f"{broken}:1" in out.stdout and "syntax" in out.stdout


FAILS_QUIETLY = '''
class Alert(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        return False
'''

DRIVES_NOTHING = '''
class Alert(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        relay = self.api.get_node_parameter("relay")
        if relay:
            self.api.relay_on(relay)
        return True
'''


def test_a_trigger_that_reports_failure_fails_the_check(tmp_path):
    (tmp_path / "alert.py").write_text(FAILS_QUIETLY)
    out = check(str(tmp_path / "alert.py"), "--config",
                str(config_for(tmp_path, {"relays": ["alarm"]})))
    assert out.returncode == 1, out.stdout
    assert "FAIL  on_trigger returned False" in out.stdout
    assert out.stdout.rstrip().endswith("check FAILED")


def test_granted_outputs_that_are_never_driven_fail_the_check(tmp_path):
    (tmp_path / "alert.py").write_text(DRIVES_NOTHING)
    out = check(str(tmp_path / "alert.py"), "--config",
                str(config_for(tmp_path, {"relays": ["alarm"]})))
    assert out.returncode == 1, out.stdout
    assert "on_trigger drove none of the granted outputs (alarm)" in out.stdout


def test_problem_columns_count_from_one(tmp_path):
    (tmp_path / "alert.py").write_text("import os\n")
    out = check(str(tmp_path / "alert.py"))
    assert f"{tmp_path / 'alert.py'}:1:1: import of 'os' is refused" in out.stdout


def test_config_check_warns_of_a_missing_script(tmp_path):
    """A warning, not an error: scripts are usually pushed after the config."""
    path = config_for(tmp_path, {})
    out = subprocess.run([sys.executable, "-m", "firmware.cli", "config", "check", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 warning" in out.stdout
    assert f"script {tmp_path / 'alert.py'} does not exist yet" in out.stderr
    assert "nodes[alert].parameters.python_script_path" in out.stderr


def test_the_readme_commands_with_a_relative_scripts_dir(tmp_path):
    """user_scripts/README.md: a relative PAFW_SCRIPTS_DIR means the same directory to
    `config check` and `script check` (taken from the working directory)."""
    import os

    root = REPO
    env = {**os.environ, "PAFW_SCRIPTS_DIR": "user_scripts"}
    out = subprocess.run([sys.executable, "-m", "firmware.cli", "config", "check",
                          "user_scripts/examples.yaml"], capture_output=True, text=True,
                         timeout=120, cwd=root, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    out = subprocess.run([sys.executable, "-m", "firmware.cli", "script", "check",
                          "user_scripts/relay_led_control.py", "--config",
                          "user_scripts/examples.yaml"], capture_output=True, text=True,
                         timeout=120, cwd=root, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "would pulse relay 'alarm'" in out.stdout
    assert "confined as `pafw run` confines it:" in out.stdout
