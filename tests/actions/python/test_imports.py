"""Import policy: the static check (with line numbers) and the runtime guard."""

from __future__ import annotations

import textwrap

import pytest

from firmware.actions.python.imports import (
    ALWAYS_ALLOWED,
    REFUSED,
    ImportPolicy,
    check_script,
    guarded_builtins,
)

SCRIPT = "user_scripts/action.py"


def problems(source: str, **kw):
    return check_script(textwrap.dedent(source), filename=SCRIPT, **kw)


def test_study_email_imports_pass_with_smtplib_listed():
    source = """\
        import smtplib
        from email.mime.text import MIMEText
        from datetime import datetime
        from typing import Dict, Any
        from firmware.actions.python.sdk import CustomPythonAction
        """
    assert problems(source, allowed_imports=["smtplib"]) == []
    found = problems(source)
    assert [(p.line, p.code) for p in found] == [(1, "import-not-allowed")]
    assert "import of 'smtplib' is not allowed; allowed: none listed (allowed_imports), " \
           "plus abc" in found[0].message


def test_problems_carry_line_and_column():
    source = """\
        import json
        import os
        from subprocess import run
        import requests
        from . import sibling
        x = eval("1")
        exec("y = 2")
        code = compile("1", "f", "eval")
        mod = __import__("math")
        b = __builtins__
        frames = (lambda: 0).__globals__
        """
    found = problems(source)
    assert [(p.line, p.code) for p in found] == [
        (2, "import-refused"), (3, "import-refused"), (4, "import-not-allowed"),
        (5, "relative-import"), (6, "dynamic-code"), (7, "dynamic-code"), (8, "dynamic-code"),
        (9, "dynamic-code"), (10, "dynamic-code"), (11, "dynamic-code")]
    assert str(found[0]) == (f"{SCRIPT}:2:1: import of 'os' is refused: 'os' controls "
                             "processes, the environment or the interpreter; allowed_imports "
                             "cannot unlock it")
    assert "'eval'" in found[4].message


def test_syntax_error_has_line_and_column():
    (problem,) = problems("x = 1\nif x\n    pass\n")
    assert problem.code == "syntax"
    assert (problem.line, problem.column) == (2, 5)
    assert str(problem).startswith(f"{SCRIPT}:2:5: syntax error")


def test_refused_modules_cannot_be_listed_only_unlocked():
    assert problems("import os\nimport ctypes\n", allowed_imports=["os", "ctypes"])
    assert problems("import os.path\n", allowed_imports=["os.path"])  # os.path is os
    assert problems("import os\nimport ctypes\n",
                    unsafe_allow_refused_imports=["os", "ctypes"]) == []
    policy = ImportPolicy(["os", "smtplib", "not a module"])
    assert policy.config_problems() == [
        "'not a module' is not a module name",
        "allowed_imports: 'os' is refused ('os' controls processes, the environment or the "
        "interpreter); it cannot be unlocked"]


def test_study_yaml_allowed_imports_are_all_acceptable():
    policy = ImportPolicy(["smtplib", "email", "datetime", "json", "csv", "requests"])
    assert policy.config_problems() == []


def test_sdk_is_allowed_but_not_the_rest_of_firmware():
    assert problems("from firmware.actions.python.sdk import CustomPythonAction\n"
                    "from firmware.actions.python import sdk\n") == []
    (binding,) = problems("import firmware.actions.python.sdk\n")
    assert "binds the whole package 'firmware'" in binding.message
    (hal,) = problems("from firmware.hal import gpio\n", allowed_imports=["firmware.hal"])
    assert hal.code == "import-refused"
    (gpio,) = problems("import gpiozero\n", allowed_imports=["gpiozero"])
    assert "drives GPIO directly" in gpio.message


def test_submodules_of_allowed_packages():
    assert problems("import email.mime.text\nfrom xml.etree import ElementTree\n",
                    allowed_imports=["xml"]) == []
    assert problems("from email import mime\nimport logging.handlers\n") == []


def test_policy_sets_are_disjoint_where_it_matters():
    assert not {m for m in ALWAYS_ALLOWED if m in REFUSED}
    for name in ("os", "sys", "subprocess", "ctypes", "importlib", "builtins", "pickle",
                 "marshal", "multiprocessing", "shutil"):
        assert name in REFUSED


def run_as_script(source: str, policy: ImportPolicy) -> dict:
    namespace = {"__builtins__": guarded_builtins(policy, SCRIPT), "__name__": "user_script"}
    exec(compile(textwrap.dedent(source), SCRIPT, "exec"), namespace)
    return namespace


def test_runtime_guard_allows_listed_and_safe_modules():
    ns = run_as_script("import json\nimport smtplib\nfrom email.mime.text import MIMEText\n",
                       ImportPolicy(["smtplib"]))
    assert ns["smtplib"].SMTP and ns["MIMEText"]


def test_runtime_guard_refuses_with_file_line_and_allowed_list():
    policy = ImportPolicy(["smtplib"])
    with pytest.raises(ImportError, match=rf"import of 'requests' is not allowed in "
                                          rf"{SCRIPT}:3; allowed: smtplib "
                                          r"\(allowed_imports\), plus abc, base64"):
        run_as_script("import json\n\nimport requests\n", policy)
    with pytest.raises(ImportError, match=rf"import of 'subprocess' is refused in {SCRIPT}:1: "
                                          r"'subprocess' controls processes"):
        run_as_script("import subprocess\n", policy)
    with pytest.raises(ImportError, match=rf"import of 'os' is refused in {SCRIPT}:2"):
        run_as_script("def f():\n    import os\nf()\n", policy)
    with pytest.raises(ImportError, match="relative imports are not supported"):
        run_as_script("from . import x\n", policy)


def test_runtime_guard_only_sees_the_scripts_own_imports():
    # smtplib imports socket, ssl, email.* itself: those go through the real import
    ns = run_as_script("import smtplib\nok = smtplib.socket is not None\n",
                       ImportPolicy(["smtplib"]))
    assert ns["ok"]
    # code run by exec() inside the script inherits the guarded builtins
    with pytest.raises(ImportError, match="import of 'os'"):
        run_as_script("exec('import os', {})\n", ImportPolicy())
