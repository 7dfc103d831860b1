"""The configuration: YAML -> validated pydantic models, with errors that point into the file.

``load_config`` reads a YAML file (or the packaged default), substitutes ``${VAR}`` from the
environment, validates it against ``Config`` and raises one ``ConfigError`` listing every
problem as ``file:line:column: key.path[3].name: message``. The returned ``ConfigDocument``
keeps the key positions so errors found later (building the graph needs the sample rate) can
be reported at the right line too.

The models live in ``models``, the YAML side in ``yaml_positions`` (with ``env`` for
``${VAR}``), the graph checks in ``graph`` and the wording of pydantic errors in
``messages``.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from firmware.config.chain import chain_problems
from firmware.config.graph import graph_problems
from firmware.config.messages import validation_problems
from firmware.config.models import Config, PathsSettings
from firmware.config.yaml_positions import (
    KeyPath,
    Position,
    format_key_path,
    node_names,
    parse_yaml,
)
from firmware.errors import ConfigError

__all__ = ["ConfigDocument", "default_config_text", "load_config", "load_paths"]

GRAPH_PATH: KeyPath = ("processing", "default_graph")


def closest_position(positions: Mapping[KeyPath, Position], key_path: KeyPath) -> Position:
    """(line, column) of the longest prefix of ``key_path`` found in ``positions``, else (1, 1)."""
    for end in range(len(key_path), -1, -1):
        found = positions.get(tuple(key_path[:end]))
        if found is not None:
            return found
    return 1, 1


@dataclass(frozen=True)
class ConfigDocument:
    """A loaded config plus where each of its keys was written, for located error messages."""

    config: Config
    path: Path | None = None
    name: str = "<config>"
    positions: Mapping[KeyPath, Position] = field(default_factory=dict)
    #: what is valid but probably not meant, each ``file:line:col: key.path: message``
    warnings: tuple[str, ...] = ()

    def position(self, key_path: KeyPath) -> Position:
        """(line, column) of the closest existing key on ``key_path`` (1, 1 if none)."""
        return closest_position(self.positions, key_path)

    def where(self, key_path: KeyPath) -> str:
        """``file:line:col`` of the closest existing key on ``key_path``."""
        line, column = self.position(key_path)
        return f"{self.name}:{line}:{column}"

    @property
    def node_names(self) -> dict[int, str]:
        """Index -> id of the graph's nodes, to name them in key paths."""
        return {i: n.id for i, n in enumerate(self.config.processing.default_graph.nodes)}

    def key_path(self, key_path: KeyPath) -> str:
        """``key_path`` for people: graph nodes named by their ids."""
        return format_key_path(key_path, self.node_names)

    def locate(self, key_path: KeyPath, message: str) -> str:
        """One problem line: ``file:line:col: key.path: message``."""
        return f"{self.where(key_path)}: {self.key_path(key_path)}: {message}"

    def node_path(self, node_id: str, key: str | None = None) -> KeyPath:
        """Key path of the node with ``node_id`` (the graph's when there is none), or of its
        parameter ``key``."""
        for index, node in enumerate(self.config.processing.default_graph.nodes):
            if node.id == node_id:
                path: KeyPath = (*GRAPH_PATH, "nodes", index)
                return path if key is None else (*path, "parameters", key)
        return (*GRAPH_PATH, "nodes")

    def node_location(self, node_id: str, key: str | None = None) -> str:
        """``file:line:col: processing.default_graph.nodes[<id>]`` of node ``node_id`` (with
        ``.parameters.<key>`` and that key's line when given).

        A prefix for errors found when the graph is built (``f"{loc}: {message}"``).
        """
        path = self.node_path(node_id, key)
        return f"{self.where(path)}: {self.key_path(path)}"

    def node_error(self, node_id: str, error: ConfigError | str) -> ConfigError:
        """``error`` (a message or a ConfigError about node ``node_id``) with its location."""
        problems = [error] if isinstance(error, str) else error.problems
        return ConfigError([f"{self.node_location(node_id)}: {p}" for p in problems])

    def chain_warnings(self) -> tuple[str, ...]:
        """The signal chain's warnings (``config.chain``) for this document's config, located
        (recomputed for a changed config, e.g. ``analyze`` reading a WAV file)."""
        located = [self.locate((*GRAPH_PATH, "nodes", p.index, "parameters", *p.key), p.message)
                   for p in chain_problems(self.config.processing, self.config.acquisition)
                   if not p.error]
        located += [self.locate((*GRAPH_PATH, "nodes", index, "parameters",
                                 "python_script_path"), message)
                    for index, message in missing_scripts(self.config)]
        return tuple(located)

    def with_config(self, config: Config) -> ConfigDocument:
        """The same document (name, positions) around a changed ``config``."""
        changed = replace(self, config=config)
        return replace(changed, warnings=changed.chain_warnings())


def default_config_text() -> str:
    """The packaged default configuration, as YAML text (``pafw config default`` prints it)."""
    resource = importlib.resources.files("firmware").joinpath("default_config.yaml")
    return resource.read_text(encoding="utf-8")


def _read(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{path}:{line}:{column}: (top level): not UTF-8 text "
            f"(byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        ) from None


def _raw_graph(data: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]] | None:
    """The graph's ids and edges from unvalidated data, or None when they are not readable."""
    try:
        graph = data["processing"]["default_graph"]
        nodes = [(n["id"], n["type"]) for n in graph["nodes"]]
        edges = [(c["from"], c["to"]) for c in graph.get("connections") or []]
    except (KeyError, TypeError, AttributeError):
        return None
    flat = [v for pair in nodes + edges for v in pair]
    return (nodes, edges) if all(isinstance(v, str) for v in flat) else None


def missing_scripts(config: Config) -> list[tuple[int, str]]:
    """(node index, message) of each python_action whose script is not in the scripts
    directory yet: a warning, since scripts are usually pushed after the config (the action
    then fails at start until its script arrives, and hot-reloads it when it does)."""
    missing = []
    for index, node in enumerate(config.processing.default_graph.nodes):
        path = node.parameters.get("python_script_path") if node.type == "python_action" \
            else None
        if not isinstance(path, str):
            continue
        relative = path.removeprefix("/user_scripts/")
        location = Path(relative) if Path(relative).is_absolute() else \
            config.paths.scripts_dir / relative
        if not location.is_file():
            missing.append((index, f"script {location} does not exist yet (push it with "
                                   f"`pafw script push`; until then the action fails)"))
    return missing


def load_config(
    path: Path | None = None, *, text: str | None = None, env: Mapping[str, str] | None = None
) -> ConfigDocument:
    """Load and validate a config: ``path``, or ``text`` (named ``path`` in messages if given),
    or the packaged default when both are None. ``env`` replaces ``os.environ`` for ``${VAR}``.

    Raises ConfigError with every problem of the file, each ``file:line:col: key.path: ...``.
    """
    if text is None:
        text = default_config_text() if path is None else _read(path)
        name = "<default config>" if path is None else str(path)
    else:
        name = "<text>" if path is None else str(path)
    parsed = parse_yaml(text, os.environ if env is None else env)
    problems: list[tuple[Position, KeyPath, str]] = [
        (p.position, p.path, p.message) for p in parsed.problems
    ]
    data = {} if parsed.data is None else parsed.data
    config: Config | None = None
    if parsed.syntax_ok and not isinstance(data, dict):
        problems.append(((1, 1), (), "expected a mapping of sections (device, acquisition, "
                         f"processing, paths, logging), got {type(data).__name__}"))
    elif parsed.syntax_ok:
        try:
            config = Config.model_validate(data)
        except ValidationError as exc:
            found = validation_problems(exc, data, Config)
            raw = _raw_graph(data)
            if raw is not None:
                found += [((*GRAPH_PATH, *loc), msg) for loc, msg, _ in graph_problems(*raw)]
            bad = [p.path for p in parsed.problems if p.masks]  # explain what is under them
            for key_path, message in found:
                if not any(key_path[: len(b)] == b for b in bad):
                    position = closest_position(parsed.positions, key_path)
                    problems.append((position, key_path, message))
    if problems or config is None:
        names = node_names(data)
        lines = [f"{name}:{line}:{col}: {format_key_path(kp, names)}: {msg}"
                 for (line, col), kp, msg in sorted(problems, key=lambda p: p[0])]
        raise ConfigError(list(dict.fromkeys(lines)))
    doc = ConfigDocument(config, path, name, parsed.positions)
    return replace(doc, warnings=doc.chain_warnings())


def load_paths(path: Path | None = None, *, env: Mapping[str, str] | None = None
               ) -> PathsSettings:
    """Only the ``paths`` section of a config (``pafw status``, ``pafw export``).

    Reads and checks that section alone: validating the whole file would import every node
    type (scipy, numba: seconds on a Pi) to tell where the state dir is. Errors in the
    section are reported like ``load_config``'s, ``file:line:col: paths.x: message``.
    """
    text = default_config_text() if path is None else _read(path)
    name = "<default config>" if path is None else str(path)
    parsed = parse_yaml(text, os.environ if env is None else env)
    syntax = [p for p in parsed.problems if not p.path or p.path[0] == "paths"]
    data = parsed.data.get("paths") if isinstance(parsed.data, dict) else None
    problems = [(p.position, p.path, p.message) for p in syntax]
    settings: PathsSettings | None = None
    if parsed.syntax_ok:
        try:
            settings = PathsSettings.model_validate({} if data is None else data)
        except ValidationError as exc:
            for key_path, message in validation_problems(exc, data, PathsSettings):
                full = ("paths", *key_path)
                problems.append((closest_position(parsed.positions, full), full, message))
    if problems or settings is None:
        raise ConfigError([f"{name}:{line}:{col}: {format_key_path(kp)}: {msg}"
                           for (line, col), kp, msg in sorted(problems, key=lambda p: p[0])])
    return settings
