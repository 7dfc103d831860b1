"""The architecture's rules, read from the imports of every module of ``firmware/``.

docs/architecture.md states them; this test keeps them true. Every ``import`` counts, including
those under ``if TYPE_CHECKING:`` and inside functions: a type-only dependency is still one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"

#: each layer and the layers it may import (its own included); lowest first
LAYERS: dict[str, set[str]] = {
    "core": {"core"},
    "dsp": {"core", "dsp"},
    "hal": {"core", "hal"},
    "actions": {"core", "dsp", "hal", "actions"},
    "config": {"core", "dsp", "hal", "actions", "config"},
    "app": {"core", "dsp", "hal", "actions", "config", "app"},
    "web": {"core", "dsp", "hal", "actions", "config", "app", "web"},
    "modbus": {"core", "dsp", "hal", "actions", "config", "app", "modbus"},
    "tools": {"core", "dsp", "hal", "actions", "config", "app", "tools"},
    "service": {"core", "dsp", "hal", "actions", "config", "app", "web", "modbus", "service"},
    "bench": {"core", "dsp", "hal", "actions", "config", "app", "web", "modbus", "service",
              "bench"},
    "cli": set(),  # the entry point may import anything (and only lazily, see below)
}
#: calibration/ sits between dsp and config: it drives the concentration node (dsp), config
#: composes its settings model, app builds its manager
LAYERS["calibration"] = {"core", "dsp", "calibration"}
for _above in ("config", "app", "web", "modbus", "tools", "service", "bench"):
    LAYERS[_above].add("calibration")
CORE_MODULES = {"firmware", "firmware.errors", "firmware.state", "firmware.stats",
                "firmware.status", "firmware.strict_model"}
#: third-party packages one layer owns
OWNED = {"gpiozero": "hal", "lgpio": "hal", "RPi": "hal", "paho": "actions",
         "alsaaudio": "dsp", "numba": "dsp", "scipy": "dsp", "pymodbus": "modbus"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(FIRMWARE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    if module in CORE_MODULES:
        return "core"
    if module == "firmware.cli":
        return "cli"
    return module.split(".")[1]


def is_settings_leaf(module: str) -> bool:
    """A package's settings model: imported by the config package, which composes them."""
    return module.rsplit(".", 1)[-1] == "settings"


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) of every import in ``path``, resolved to a module name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                yield node.lineno, candidate if candidate in MODULES else node.module


PATHS = sorted(FIRMWARE.rglob("*.py"))
MODULES = {module_name(p) for p in PATHS}


def firmware_imports(path: Path) -> Iterator[tuple[int, str]]:
    for line, name in imports(path):
        if name.split(".")[0] == "firmware":
            yield line, name


def test_every_package_is_a_known_layer() -> None:
    assert {layer_of(m) for m in MODULES} <= set(LAYERS)


@pytest.mark.parametrize("path", PATHS, ids=module_name)
def test_a_module_imports_only_its_layer_and_those_below(path: Path) -> None:
    module = module_name(path)
    layer = layer_of(module)
    if layer == "cli":
        return
    wrong = []
    for line, name in firmware_imports(path):
        target = layer_of(name)
        if target in LAYERS[layer]:
            continue
        wrong.append(f"{path.name}:{line} imports {name} ({layer} may import "
                     f"{', '.join(sorted(LAYERS[layer]))})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", [p for p in PATHS if is_settings_leaf(module_name(p))],
                         ids=module_name)
def test_settings_modules_are_leaves(path: Path) -> None:
    """What the config package composes imports nothing but the core: a settings module
    that reached into its package would make config depend on the whole package."""
    wrong = [f"{path.name}:{line} imports {name}" for line, name in firmware_imports(path)
             if layer_of(name) != "core" and not is_settings_leaf(name)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", PATHS, ids=module_name)
def test_third_party_hardware_and_dsp_libraries_stay_in_their_layer(path: Path) -> None:
    layer = layer_of(module_name(path))
    wrong = [f"{path.name}:{line} imports {name} (only {OWNED[name.split('.')[0]]}/ may)"
             for line, name in imports(path)
             if OWNED.get(name.split(".")[0], layer) != layer and layer != "bench"]
    assert not wrong, "\n".join(wrong)


def test_the_cli_imports_commands_lazily() -> None:
    """`pafw status` answers fast: the CLI module imports nothing heavy at its top level."""
    tree = ast.parse((FIRMWARE / "cli.py").read_text(encoding="utf-8"))
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name if isinstance(n, ast.Import) else (n.module or "")
             for n in top for a in n.names}
    assert not {n for n in names if n.startswith("firmware.") and n != "firmware.errors"}


def find_cycles(graph: dict[str, set[str]]) -> list[str]:
    """Every cycle a depth-first walk meets, as "a -> b -> a" (edges between a package and
    its own modules are no cycle of code and are skipped)."""
    cycles: list[str] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_no_import_cycle_between_modules() -> None:
    graph = {module_name(p): {name for _, name in firmware_imports(p) if name in MODULES}
             for p in PATHS}
    cycles = find_cycles(graph)
    assert not cycles, "\n".join(cycles)


def test_no_import_cycle_between_the_rooms_of_a_package() -> None:
    """Inside a package, its modules and subpackages (each taken whole) import each other
    one way: actions/mqtt/ may use actions/base.py or be used by it, not both."""
    def room(module: str) -> str:
        return ".".join(module.split(".")[:3])

    graph: dict[str, set[str]] = {}
    for path in PATHS:
        source = room(module_name(path))
        for _, name in firmware_imports(path):
            target = room(name)
            if target != source and target.split(".")[:2] == source.split(".")[:2]:
                graph.setdefault(source, set()).add(target)
    cycles = find_cycles(graph)
    assert not cycles, "\n".join(cycles)
