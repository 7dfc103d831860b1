"""Registry of processing-node types: adding a node type is one new module.

A node module defines a ``Node`` subclass with a ``type_name``, a ``Params`` model and the
``@register`` decorator. Importing a node package (``firmware.dsp.nodes``,
``firmware.actions.nodes``) registers its types; the registry itself knows no package, so dsp/
stays free of actions/. The config layer imports both packages (``firmware.config.models``),
which is what makes every type known before a config is validated or a graph is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from firmware.dsp.node import Node

_REGISTRY: dict[str, type[Node]] = {}

NodeT = TypeVar("NodeT", bound="type[Node]")


def register(cls: NodeT) -> NodeT:
    """Class decorator: make a node type available under its ``type_name``."""
    name = cls.type_name
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls:
        raise RuntimeError(f"node type {name!r} registered twice ({existing} and {cls})")
    _REGISTRY[name] = cls
    return cls


def node_types() -> dict[str, type[Node]]:
    """Every registered node type by name (those of the node packages imported so far)."""
    return dict(_REGISTRY)


def get_node_type(name: str) -> type[Node] | None:
    """The node class registered as ``name``, or None."""
    return _REGISTRY.get(name)
