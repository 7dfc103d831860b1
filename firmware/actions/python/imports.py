"""Import policy of customer scripts: an allow-list, a refused set, a static check and the
runtime guard the worker installs.

Rules (a dotted name is matched by itself or by any parent package: "email" covers
"email.mime.text"):

* ALWAYS_ALLOWED needs no listing: pure computation and data formatting modules
  (math, json, datetime, typing, re, ...), ``email`` (building and parsing messages does no
  I/O; ``smtplib`` is what sends them, so the study's ``allowed_imports: ["smtplib"]`` is
  enough for its EmailNotificationAction), ``logging`` (its output goes to stderr, which the
  worker forwards to the host log) and the SDK modules ``firmware.actions.sdk`` (what the
  docs show) and ``firmware.actions.python.sdk`` (its implementation).
* ``allowed_imports`` (the node's YAML) adds modules, e.g. smtplib, urllib, socket
  (network modules still need ``capabilities.network``: the sandbox refuses connections).
* REFUSED modules cannot be unlocked by ``allowed_imports``: process and interpreter control
  (os, sys, subprocess, signal, multiprocessing, ...), native code (ctypes, cffi, mmap),
  ways around this guard (importlib, builtins, inspect, gc, ...), code deserialisation
  (pickle, marshal, shelve), whole-tree file operations (shutil), the appliance's own
  packages and GPIO libraries (hardware goes through the API's relay/LED calls).
* ``unsafe_allow_refused_imports`` (host-side option, default empty) unlocks refused
  modules. It exists for containment tests and diagnostics only (the hostile tests import
  os/ctypes to prove that os._exit, a segfault or a fork bomb stay contained); the host
  logs a warning whenever it is used.

The worker runs :func:`check_tree` before executing a script and refuses to load it on any
problem (reported with file:line). At run time only the script's own code is checked: the
worker gives the script a private builtins dict whose ``__import__`` is the guard, so
standard modules importing their own dependencies (smtplib -> socket, ssl, email) use the
real import and keep working.

This is hygiene and defense in depth, not the security boundary: any allowed module that
imported ``os`` exposes it as an attribute (``random._os``), and function globals lead to
the real builtins. The boundary is the worker process itself (rlimits, unprivileged uid,
network namespace, audit hook) and the host's capability checks.
"""

from __future__ import annotations

import ast
import builtins
import sys
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any, NamedTuple

ALWAYS_ALLOWED = frozenset({
    "__future__", "abc", "base64", "binascii", "bisect", "calendar", "cmath", "collections",
    "copy", "csv",
    "dataclasses", "datetime", "decimal", "email", "enum", "fractions", "functools",
    "hashlib", "heapq", "hmac", "itertools", "json", "logging", "math", "numbers",
    "operator", "random", "re", "statistics", "string", "struct", "textwrap", "time",
    "typing", "uuid", "zoneinfo", "firmware.actions.sdk", "firmware.actions.python.sdk",
})

_PROCESS = "controls processes, the environment or the interpreter"
_NATIVE = "runs native code"
_ESCAPE = "reaches around the import guard"
_CODE = "deserialises code"
REFUSED: dict[str, str] = {
    **dict.fromkeys(("os", "posix", "sys", "subprocess", "_posixsubprocess", "signal", "pty",
                     "resource", "multiprocessing", "runpy", "faulthandler"), _PROCESS),
    **dict.fromkeys(("ctypes", "_ctypes", "cffi", "mmap", "fcntl"), _NATIVE),
    **dict.fromkeys(("importlib", "imp", "zipimport", "builtins", "inspect", "gc", "code",
                     "codeop", "pdb", "bdb"), _ESCAPE),
    **dict.fromkeys(("pickle", "_pickle", "marshal", "shelve", "dill"), _CODE),
    "shutil": "copies and deletes whole file trees",
    "firmware": "is the appliance itself (use the API passed to your class)",
    **dict.fromkeys(("gpiozero", "lgpio", "RPi", "pigpio"),
                    "drives GPIO directly (use api.relay_on/led_on ...)"),
}

#: builtins and attributes the static check reports (code from strings, reaching globals)
DYNAMIC_NAMES = frozenset({"__import__", "eval", "exec", "compile", "__builtins__"})
INTROSPECTION_ATTRS = frozenset({"__subclasses__", "__globals__", "__builtins__", "__code__",
                                 "f_globals", "f_builtins", "f_back", "gi_frame", "tb_frame"})


class Problem(NamedTuple):
    """One finding of :func:`check_script`; ``str()`` gives ``file:line:col: message``."""

    filename: str
    line: int
    column: int
    code: str  # syntax | import-refused | import-not-allowed | relative-import | dynamic-code
    message: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.column}: {self.message}"


def _longest(name: str, entries: Iterable[str]) -> str | None:
    """The longest entry covering ``name`` (itself or a parent package), if any."""
    best = None
    for entry in entries:
        if (name == entry or name.startswith(entry + ".")) and len(entry) > len(best or ""):
            best = entry
    return best


class ImportPolicy:
    """Decides which module names a script may import."""

    def __init__(self, allowed_imports: Iterable[str] = (),
                 unsafe_allow_refused_imports: Iterable[str] = ()) -> None:
        self.listed = frozenset(allowed_imports)
        self.unsafe = frozenset(unsafe_allow_refused_imports)
        self.allowed = ALWAYS_ALLOWED | self.listed | self.unsafe

    def _state(self, name: str) -> tuple[str, str | None]:
        """("ok" | "refused" | "not-allowed", the refused entry). A refused prefix wins over
        listed names (listing "os.path" does not unlock os) but not over a longer curated
        entry of ALWAYS_ALLOWED (the SDK lives under the refused "firmware")."""
        refused = _longest(name, REFUSED)
        if refused and not _longest(name, self.unsafe):
            curated = _longest(name, ALWAYS_ALLOWED)
            if not (curated and len(curated) > len(refused)):
                return "refused", refused
        return ("ok", None) if _longest(name, self.allowed) else ("not-allowed", None)

    def refusal(self, name: str, fromlist: Iterable[str] = (), where: str = "") -> str | None:
        """None if ``import name`` (or ``from name import *fromlist``) is allowed, else the
        message: "import of 'x' is refused|not allowed [in file:line]: why"."""
        fromlist = tuple(fromlist)
        at = f" in {where}" if where else ""
        state, refused = self._state(name)
        if state != "ok" and fromlist and all(  # from pkg import sub, with pkg.sub allowed
                self._state(f"{name}.{item}")[0] == "ok" for item in fromlist):
            state = "ok"
        if state == "refused" and refused:
            return (f"import of '{name}' is refused{at}: '{refused}' {REFUSED[refused]}; "
                    f"allowed_imports cannot unlock it")
        if state == "not-allowed":
            return f"import of '{name}' is not allowed{at}; allowed: {self.describe()}"
        top = name.split(".")[0]
        if not fromlist and top != name and self._state(top)[0] != "ok":
            return (f"import of '{name}' is not allowed in this form{at}: it binds the whole "
                    f"package '{top}'; write 'from {name} import ...'")
        return None

    def describe(self) -> str:
        """The allowed modules, the listed ones first."""
        listed = ", ".join(sorted(self.listed | self.unsafe)) or "none listed"
        always = sorted(ALWAYS_ALLOWED - {"__future__"})  # a compiler directive, not a module
        return f"{listed} (allowed_imports), plus {', '.join(always)}"

    def config_problems(self) -> list[str]:
        """Problems of the lists themselves (for the config check): refused modules given in
        allowed_imports, names that are not dotted identifiers."""
        out = []
        for name in sorted(self.listed | self.unsafe):
            if not all(part.isidentifier() for part in name.split(".")):
                out.append(f"{name!r} is not a module name")
        for name in sorted(self.listed):
            state, refused = self._state(name)
            if state == "refused" and refused:
                out.append(f"allowed_imports: {name!r} is refused ('{refused}' "
                           f"{REFUSED[refused]}); it cannot be unlocked")
        return out


def check_script(source: str, *, filename: str, allowed_imports: Iterable[str] = (),
                 unsafe_allow_refused_imports: Iterable[str] = ()) -> list[Problem]:
    """Static check of a script: syntax errors, imports outside the policy, relative imports,
    ``__import__``/``eval``/``exec``/``compile``/``__builtins__`` and introspection attributes
    that lead around the sandbox. Sorted by position; empty means the script passes."""
    policy = ImportPolicy(allowed_imports, unsafe_allow_refused_imports)
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        return [Problem(filename, exc.lineno or 1, exc.offset or 0, "syntax",
                        f"syntax error: {exc.msg}")]
    return check_tree(tree, filename=filename, policy=policy)


def check_tree(tree: ast.AST, *, filename: str, policy: ImportPolicy) -> list[Problem]:
    """:func:`check_script` on an already parsed tree (the worker parses once)."""
    problems: list[Problem] = []

    def add(node: Any, code: str, message: str) -> None:
        # columns count from 1, like the config's and every editor's
        problems.append(Problem(filename, node.lineno, node.col_offset + 1, code, message))

    def check_import(node: ast.AST, name: str, fromlist: list[str]) -> None:
        message = policy.refusal(name, fromlist)
        if message:
            refused = message.startswith(f"import of '{name}' is refused")
            add(node, "import-refused" if refused else "import-not-allowed", message)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check_import(node, alias.name, [])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                add(node, "relative-import", "relative imports are not supported in scripts")
            else:
                check_import(node, node.module or "", [a.name for a in node.names])
        elif isinstance(node, ast.Name) and node.id in DYNAMIC_NAMES:
            add(node, "dynamic-code", f"use of '{node.id}' is not allowed: scripts may not "
                                      f"run code built at run time or reach the builtins")
        elif isinstance(node, ast.Attribute) and node.attr in INTROSPECTION_ATTRS:
            add(node, "dynamic-code", f"access to '.{node.attr}' is not allowed: it leads "
                                      f"around the sandbox")
    return sorted(problems, key=lambda p: (p.line, p.column))


def make_import_guard(policy: ImportPolicy, filename: str,
                      real_import: Callable[..., Any] = builtins.__import__
                      ) -> Callable[..., Any]:
    """An ``__import__`` replacement applying ``policy``; installed only in the script's own
    builtins, so it sees exactly the imports written in the script."""

    def guarded_import(name: str, globals: Any = None, locals: Any = None,
                       fromlist: Any = (), level: int = 0) -> Any:
        where = _script_location(filename)
        if level:
            raise ImportError(f"relative import in {where}: relative imports are not "
                              f"supported in scripts")
        message = policy.refusal(name, tuple(fromlist or ()), where)
        if message:
            raise ImportError(message, name=name)
        return real_import(name, globals, locals, fromlist, level)

    return guarded_import


def guarded_builtins(policy: ImportPolicy, filename: str) -> dict[str, Any]:
    """A copy of the builtins for the script's module, with the import guard in place."""
    env = dict(builtins.__dict__)
    env["__import__"] = make_import_guard(policy, filename)
    return env


def _script_location(filename: str) -> str:
    """``file:line`` of the innermost script frame on the stack (the importing line)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == filename:
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return filename
