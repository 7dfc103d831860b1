"""Registry of processing-node types: adding a node type is one new module in dsp/nodes/.

A node module defines a ``Node`` subclass with a ``type_name``, a ``Params`` model and the
``@register`` decorator; ``node_types()`` imports every module of the packages listed in
``NODE_PACKAGES`` (processing nodes, action nodes; named, not imported, so dsp/ stays free of
actions/) so the config loader can validate parameters without building anything.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from firmware.dsp.node import Node

NODE_PACKAGES: list[str] = ["firmware.dsp.nodes", "firmware.actions.nodes"]

_REGISTRY: dict[str, type[Node]] = {}
_loaded = False

NodeT = TypeVar("NodeT", bound="type[Node]")


def register(cls: NodeT) -> NodeT:
    """Class decorator: make a node type available under its ``type_name``."""
    name = cls.type_name
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls:
        raise RuntimeError(f"node type {name!r} registered twice ({existing} and {cls})")
    _REGISTRY[name] = cls
    return cls


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for package_name in NODE_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package_name}.{module.name}")
    _loaded = True


def node_types() -> dict[str, type[Node]]:
    """All registered node types by name (imports the node packages on first use)."""
    _load_all()
    return dict(_REGISTRY)


def get_node_type(name: str) -> type[Node] | None:
    """The node class registered as ``name``, or None."""
    return node_types().get(name)
