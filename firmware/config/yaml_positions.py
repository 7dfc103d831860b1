"""YAML front end of the config loader: plain Python data plus the position of every key.

PyYAML's ``safe_load`` forgets where values came from and silently keeps the last of two
duplicate keys. Here the document is composed into PyYAML's node tree (which keeps marks) and
turned into dicts, lists and scalars by hand, so that:

- every key path (``("processing", "default_graph", "nodes", 3, "parameters", "order")``) maps
  to the 1-based line and column of its key (sequence items: of the item itself);
- duplicate keys, unsupported tags, recursive aliases and unset environment variables become
  problems with a position instead of exceptions or silent surprises;
- ``${VAR}`` / ``${VAR:-default}`` in string scalars are replaced from the environment (see
  ``config.env``). A *plain* (unquoted) scalar that is exactly one ``${...}`` is re-read as a
  YAML scalar after substitution, so ``port: ${PORT:-1883}`` is an int; quoted scalars always
  stay strings (``id: "${ID}"`` with ``ID=007`` gives ``"007"``).

Mapping keys are kept as the text written in the file (``on:`` is the key ``"on"``, not True).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from firmware.config.env import substitute_env

KeyPath = tuple[str | int, ...]
#: 1-based (line, column)
Position = tuple[int, int]

#: more constructed values than this means an alias bomb (or a file that is not a config)
MAX_VALUES = 100_000
#: deeper nesting than this is not a config either, and would exhaust the Python stack
MAX_DEPTH = 100

_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


#: where the graph's node list is: its items are named by their ids in key paths
NODES_PATH: KeyPath = ("processing", "default_graph", "nodes")


def node_names(data: Any) -> dict[int, str]:
    """Index -> id of the graph's nodes in raw config data, for ids that are usable as names
    (a string used by one node only); nodes without one keep their index in messages."""
    try:
        nodes = data["processing"]["default_graph"]["nodes"]
    except (KeyError, TypeError, IndexError):
        return {}
    if not isinstance(nodes, list):
        return {}
    ids = [n.get("id") if isinstance(n, dict) else None for n in nodes]
    return {i: node_id for i, node_id in enumerate(ids)
            if isinstance(node_id, str) and _PLAIN_KEY.fullmatch(node_id.replace(".", "_"))
            and ids.count(node_id) == 1}


def format_key_path(path: KeyPath, names: Mapping[int, str] | None = None) -> str:
    """``processing.default_graph.nodes[co2_peak].parameters.order``: a graph node is named
    by its id (from ``names``, see ``node_names``), else by its index (``nodes[3]``); an id
    that looks like an index is quoted (``nodes['3']``). ``(top level)`` for ``()``."""
    if not path:
        return "(top level)"
    out = ""
    for i, part in enumerate(path):
        if isinstance(part, int) and names and i == len(NODES_PATH) \
                and path[:i] == NODES_PATH and part in names:
            name = names[part]
            out += f"[{name!r}]" if name.isdigit() else f"[{name}]"
        elif isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


@dataclass(frozen=True)
class YamlProblem:
    """One problem found while reading the YAML text, with where it is."""

    position: Position
    path: KeyPath
    message: str
    #: the value at ``path`` was replaced (by null or a guess): validation errors there are noise
    masks: bool = True


@dataclass
class YamlDocument:
    """The parsed document: ``data`` (None for an empty one), key positions and problems.

    ``syntax_ok`` is False when the text is not YAML at all; ``data`` is then None.
    """

    data: Any = None
    positions: dict[KeyPath, Position] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)
    syntax_ok: bool = True


class _TooLargeError(Exception):
    """Internal: the value budget ran out (alias bomb)."""


def _position(node: Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    """Turns a composed node tree into Python data, recording positions and problems."""

    def __init__(
        self, loader: yaml.SafeLoader, env: Mapping[str, str], doc: YamlDocument
    ) -> None:
        self.loader = loader
        self.env = env
        self.doc = doc
        self.count = 0
        self.active: set[int] = set()

    def problem(self, node: Node, path: KeyPath, message: str, *, masks: bool = True) -> None:
        self.doc.problems.append(YamlProblem(_position(node), path, message, masks))

    def build(self, node: Node, path: KeyPath) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _TooLargeError
        if len(path) > MAX_DEPTH:
            self.problem(node, path, f"nested deeper than {MAX_DEPTH} levels")
            return None
        if id(node) in self.active:
            self.problem(node, path, "recursive alias: a value that contains itself")
            return None
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag != _SEQ_TAG:
                    self.problem(node, path, f"unsupported YAML tag {node.tag!r} on a list")
                    return None
                items = []
                for index, item in enumerate(node.value):
                    self.doc.positions.setdefault((*path, index), _position(item))
                    items.append(self.build(item, (*path, index)))
                return items
            if isinstance(node, MappingNode):
                if node.tag != _MAP_TAG:
                    self.problem(node, path, f"unsupported YAML tag {node.tag!r} on a mapping")
                    return None
                return self.mapping(node, path)
        finally:
            self.active.discard(id(node))
        self.problem(node, path, f"unsupported YAML node {type(node).__name__}")
        return None

    def mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, Position] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                kind = "list" if isinstance(key_node, SequenceNode) else "mapping"
                self.problem(key_node, path, f"a key must be a plain value, not a {kind}",
                             masks=False)
                continue
            key = key_node.value
            key_path = (*path, key)
            if key in first_seen:
                line, column = first_seen[key]
                self.problem(
                    key_node,
                    key_path,
                    f"duplicate key {key!r} (first defined at line {line}, column {column}); "
                    f"each key may appear once in a mapping",
                )
            first_seen[key] = _position(key_node)
            self.doc.positions[key_path] = _position(key_node)
            result[key] = self.build(value_node, key_path)
        for merge_node in merges:
            self.merge(merge_node, path, result)
        return result

    def merge(self, node: Node, path: KeyPath, result: dict[str, Any]) -> None:
        """``<<: *anchor`` (or a list of anchors): add the keys not given explicitly."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, MappingNode) or source.tag != _MAP_TAG:
                self.problem(source, path, "a merge key '<<' needs a mapping or a list of them",
                             masks=False)
                continue
            merged = self.build(source, path)
            for key, value in (merged or {}).items():
                result.setdefault(key, value)

    def scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        if node.tag == _STR_TAG:
            value: str = node.value
            if "$" not in value:
                return value
            sub = substitute_env(value, self.env)
            for error in sub.errors:
                self.problem(node, path, error)
            if sub.whole and node.style is None and not _explicitly_tagged(node):
                return self.reread(sub.text)
            return sub.text
        try:
            return self.loader.construct_object(node, deep=True)
        except Exception as exc:  # PyYAML raises ValueError, ConstructorError, binascii...
            detail = str(getattr(exc, "problem", None) or exc)[:200]
            shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
            self.problem(node, path, f"cannot read {shown!r} as {node.tag}: {detail}")
            return None

    def reread(self, text: str) -> Any:
        """The substituted text of a plain scalar, typed as YAML would type it."""
        # types-PyYAML leaves BaseResolver.resolve unannotated; it returns the tag (str)
        tag: str = self.loader.resolve(  # type: ignore[no-untyped-call]
            ScalarNode, text, (True, False))
        if tag == _STR_TAG:
            return text
        try:
            return self.loader.construct_object(ScalarNode(tag, text), deep=True)
        except Exception:  # e.g. an int too long to convert: keep the text, let the model judge
            return text


def _line_column(text: str, index: int) -> Position:
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def path_at_error(text: str) -> KeyPath:
    """Best guess of the key path where the YAML text stops parsing (for syntax errors)."""
    # each frame: [is_mapping, children_started, last_key]
    stack: list[list[Any]] = []
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionEndEvent):
                if stack:
                    stack.pop()
                continue
            if not isinstance(event, yaml.NodeEvent):
                continue
            if stack:
                frame = stack[-1]
                if frame[0] and frame[1] % 2 == 0:
                    frame[2] = event.value if isinstance(event, yaml.ScalarEvent) else "?"
                frame[1] += 1
            if isinstance(event, yaml.CollectionStartEvent):
                stack.append([isinstance(event, yaml.MappingStartEvent), 0, None])
    except (yaml.YAMLError, RecursionError):
        pass
    path: list[str | int] = []
    for is_mapping, started, last_key in stack:
        if is_mapping and last_key is not None:
            path.append(str(last_key))
        elif not is_mapping and started:
            path.append(started - 1)
    return tuple(path)


def _syntax_problem(text: str, exc: yaml.YAMLError) -> YamlProblem:
    path = path_at_error(text)
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        message = exc.problem or "invalid YAML"
        if message.startswith("found undefined alias"):
            name = message.rsplit(" ", 1)[-1].strip("'")
            message += (f"; the anchor &{name} must be defined before its first use *{name} "
                        f"(put shared values in the 'values:' section at the top of the file)")
        if exc.context:
            where = ""
            if exc.context_mark is not None:
                where = f" at line {exc.context_mark.line + 1}"
            message = f"{message} ({exc.context}{where})"
        return YamlProblem((mark.line + 1, mark.column + 1), path, f"YAML syntax error: {message}")
    if isinstance(exc, yaml.reader.ReaderError):
        return YamlProblem(
            _line_column(text, exc.position),
            path,
            f"YAML syntax error: character {chr(exc.character)!r} is not allowed in YAML "
            f"(special or unprintable character)"
            if isinstance(exc.character, int)
            else f"YAML syntax error: {exc.reason}",
        )
    return YamlProblem((1, 1), path, f"YAML syntax error: {exc}")


def parse_yaml(text: str, env: Mapping[str, str]) -> YamlDocument:
    """Parse one YAML document, substituting environment references in string scalars.

    Never raises for bad input: every problem is in the returned document's ``problems``.
    """
    doc = YamlDocument()
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            if root is not None:
                doc.positions[()] = _position(root)
                doc.data = _Builder(loader, env, doc).build(root, ())
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        doc.problems.append(_syntax_problem(text, exc))
        doc.data, doc.syntax_ok = None, False
    except RecursionError:
        doc.problems.append(YamlProblem((1, 1), (), "YAML nested too deeply to be a config"))
        doc.data, doc.syntax_ok = None, False
    except _TooLargeError:
        doc.problems.append(
            YamlProblem((1, 1), (), f"document expands to more than {MAX_VALUES} values "
                                    f"(aliases used as a bomb?)")
        )
        doc.data, doc.syntax_ok = None, False
    return doc


def _explicitly_tagged(node: ScalarNode) -> bool:
    """True for a scalar written with a tag (``!!str ${PORT}``): its type is what it says,
    not what the substituted text looks like. A node's mark starts at its tag or anchor."""
    mark = node.start_mark
    buffer = getattr(mark, "buffer", None)
    if not isinstance(buffer, str):
        return False
    head = buffer[mark.index:mark.index + 200]
    value_at = head.find(node.value)
    return "!" in (head[:value_at] if value_at >= 0 else head)
