"""The node-type registry (firmware/dsp/registry.py): ``register`` makes a type known by its
``type_name``, a second class under a taken name is refused, lookups, and that the registry
itself loads no node package."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from firmware.dsp import registry
from firmware.dsp.frame import Frame
from firmware.dsp.node import Node
from firmware.dsp.nodes.basic import GainNode, NoParams
from firmware.dsp.registry import get_node_type, node_types, register
from tests.paths import REPO

TEST_TYPE = "test_registry_only"


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Take the test's own type out of the process-wide registry again."""
    yield
    registry._REGISTRY.pop(TEST_TYPE, None)


def make_type() -> type[Node]:
    class Passthrough(Node):
        type_name = TEST_TYPE
        Params = NoParams

        def process(self, signal: np.ndarray, frame: Frame) -> np.ndarray:
            return signal

    return Passthrough


def test_register_makes_a_type_known_by_its_name(clean_registry: Any) -> None:
    cls = make_type()
    assert get_node_type(TEST_TYPE) is None and TEST_TYPE not in node_types()
    assert register(cls) is cls  # a class decorator returns the class
    assert get_node_type(TEST_TYPE) is cls
    assert node_types()[TEST_TYPE] is cls
    assert register(cls) is cls  # registering the same class again is harmless


def test_a_second_class_under_a_taken_name_is_refused(clean_registry: Any) -> None:
    first, second = make_type(), make_type()
    register(first)
    with pytest.raises(RuntimeError, match=f"node type '{TEST_TYPE}' registered twice"):
        register(second)
    assert get_node_type(TEST_TYPE) is first


def test_the_node_packages_register_their_types() -> None:
    assert get_node_type("gain") is GainNode
    assert get_node_type("nope") is None


def test_node_types_is_a_copy() -> None:
    types = node_types()
    types.pop("gain")
    types["fake"] = GainNode
    assert get_node_type("gain") is GainNode and get_node_type("fake") is None


def test_the_registry_alone_knows_no_type() -> None:
    """dsp/ stays free of actions/: only importing a node package registers its types."""
    code = ("import sys; from firmware.dsp.registry import node_types; "
            "print(sorted(node_types()), 'firmware.actions' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120, check=True)
    assert out.stdout.strip() == "[] False"
