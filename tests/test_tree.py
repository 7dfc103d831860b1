"""tests/ mirrors firmware/: firmware/x/y.py is tested by tests/x/test_y.py.

A module without a mirrored test module is listed below, with why: it declares and does
nothing (types, protocols, settings models checked through the config's tests), or another
test module drives it whole through a bigger entry point (named, and checked to exist). A
new module must take one of the three ways; a listed one that gains its own test module must
leave the lists.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.paths import REPO

FIRMWARE = REPO / "firmware"

#: modules with no behaviour of their own
DECLARATIONS = {
    "errors.py": "the exception hierarchy",
    "status.py": "the status protocol (a Protocol class)",
    "strict_model.py": "the pydantic base class",
    "hal/errors.py": "the HAL's exception types",
    "actions/config_view.py": "the protocol cross_check reads the config through",
    "actions/sdk.py": "the SDK's public import path (re-exports python/sdk.py)",
    "web/context.py": "the protocol the API's handlers see the server through",
    "config/web.py": "the web section's model (validated in tests/config/test_loader.py)",
    "dsp/sources/settings.py": "the acquisition section's models (tests/config/test_loader.py)",
}

#: modules driven whole by test modules of another name
COVERED_BY = {
    "actions/base.py": ["actions/test_builtin_actions.py", "actions/test_control.py"],
    "actions/nodes/http_action.py": ["actions/test_builtin_actions.py"],
    "actions/nodes/led_action.py": ["actions/test_builtin_actions.py"],
    "actions/nodes/mqtt_action.py": ["actions/test_builtin_actions.py",
                                     "actions/mqtt/test_appliance_mqtt.py"],
    "actions/nodes/relay_action.py": ["actions/test_builtin_actions.py"],
    "actions/python/confinement.py": ["actions/python/test_kernel_sandbox.py",
                                      "actions/python/test_nonroot_appliance.py"],
    "actions/python/host.py": ["actions/python/test_worker.py",
                               "actions/python/test_hostile.py"],
    "actions/python/landlock.py": ["actions/python/test_kernel_sandbox.py"],
    "actions/python/sandbox.py": ["actions/python/test_kernel_sandbox.py",
                                  "actions/python/test_worker.py"],
    "actions/python/sdk.py": ["actions/python/test_worker.py"],
    "actions/python/seccomp.py": ["actions/python/test_kernel_sandbox.py"],
    "app/analyzer.py": ["test_end_to_end.py", "dsp/test_fusion.py", "service/test_run.py"],
    "app/appliance.py": ["actions/test_builtin_actions.py", "actions/python/test_action_node.py",
                         "actions/mqtt/test_appliance_mqtt.py"],
    "app/operations.py": ["web/test_web_operations.py"],
    "bench/web_load.py": ["bench/test_web.py"],
    "config/models.py": ["config/test_loader.py", "config/test_values.py"],
    "modbus/image.py": ["modbus/test_server.py"],
    "web/schemas.py": ["web/test_api.py", "web/test_openapi.py"],
    "web/views.py": ["web/test_api.py", "web/test_web_operations.py"],
}


def mirrored(relative: str) -> Path:
    path = Path(relative)
    return REPO / "tests" / path.parent / f"test_{path.name}"


MODULES = sorted(str(p.relative_to(FIRMWARE)) for p in FIRMWARE.rglob("*.py")
                 if p.name != "__init__.py")


@pytest.mark.parametrize("module", MODULES)
def test_every_module_has_its_test_module_or_says_why_not(module: str) -> None:
    if mirrored(module).exists():
        assert module not in DECLARATIONS and module not in COVERED_BY, (
            f"{module} has tests/{mirrored(module).relative_to(REPO / 'tests')}: take it off "
            f"the lists")
        return
    assert module in DECLARATIONS or module in COVERED_BY, (
        f"firmware/{module} has no {mirrored(module).relative_to(REPO)}: write it, or list "
        f"the module in tests/test_tree.py with the reason")


@pytest.mark.parametrize("module", sorted(COVERED_BY))
def test_the_covering_test_modules_exist(module: str) -> None:
    missing = [t for t in COVERED_BY[module] if not (REPO / "tests" / t).exists()]
    assert not missing, f"{module}: no tests/{', tests/'.join(missing)}"


def test_the_lists_name_only_existing_modules() -> None:
    assert set(DECLARATIONS) | set(COVERED_BY) <= set(MODULES)

# the calibration package (additive, so concurrent branches merge cleanly)
DECLARATIONS["calibration/errors.py"] = "the calibration's exception types"
