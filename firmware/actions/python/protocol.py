"""Wire protocol between the appliance (host) and a PythonAction worker process.

Transport: one ``AF_UNIX`` socketpair per worker. Each message is a *frame*: a 4-byte
big-endian length, then that many bytes of one msgpack map (packed with ``use_bin_type=True``,
unpacked with ``raw=False, strict_map_key=True``). Never pickle: a frame can only carry
JSON-like data (dict with str keys, list/tuple, str, int, float, bool, None), which
:func:`check_json_like` enforces before packing so the error names the offending path. The
worker first passes a script's values through :func:`jsonable`, which turns datetimes into
ISO 8601 UTC strings (as everything leaving the appliance carries timestamps).

Both sides cap the frame size (``max_frame_bytes``, default 1 MiB): the sender refuses to
send an oversized frame (:class:`FrameTooLargeError`, naming the size and the cap) and the
receiver refuses to read one (it raises before reading the body; the host then closes the
connection and kills the worker, since only a broken or hostile worker sends one).

Messages (the key ``t`` is the type):

host -> worker
    ``{"t": "init", <spec>}``: first frame: node_id, script_path, scripts_dir, class_name,
    python_config, parameters, monitored_nodes, allowed_imports,
    unsafe_allow_refused_imports, network, max_memory_mb, run_as_user, log_lines_per_s,
    timeout_ms (informative: the host enforces it).
    ``{"t": "call", "id": n, "method": m, "args": [...]}``: m in :data:`CALL_METHODS`.
    ``{"t": "resp", "id": m, "value": v}`` or ``{"t": "resp", "id": m, "error": {"type":
    "PermissionError" | "ValueError" | ..., "message": ...}}``: answer to a ``req``; the
    worker re-raises the error in the script as that builtin type (see :data:`WIRE_ERRORS`).

worker -> host
    ``{"t": "ready", "pid": p, "script": real_path, "load_ms": ms, "network": mechanism,
    "sandbox": {...}, "methods": [...]}`` once the script is loaded and its class instantiated, or
    ``{"t": "fatal", "error": ERROR}`` if that failed (the worker then exits).
    ``{"t": "result", "id": n, "value": v}`` or ``{"t": "error", "id": n, "error": ERROR}``.
    ``{"t": "req", "id": m, "method": api_method, "args": [...], "kwargs": {...}}``: an API
    call of the script (:data:`API_METHODS`), synchronous for the script: the worker waits
    for the matching ``resp``.
    ``{"t": "log", "level": "info", "message": text, "stream": "log" | "stdout" | "stderr"}``;
    the worker's rate-cap summary also carries ``"suppressed": n``.

ERROR is ``{"type", "message", "file", "line", "traceback"}`` where file/line name the
innermost frame in the user's script (None when the script is not involved). On the host it
becomes a :class:`WorkerError` subclass carrying it as ``info``.
"""

from __future__ import annotations

import datetime
import socket
import struct
from typing import TYPE_CHECKING, Any

import msgpack

from firmware.errors import ActionError, ScriptError

if TYPE_CHECKING:  # the worker never imports asyncio
    import asyncio  # host side only: the worker must not pay for asyncio

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME_BYTES = 1 << 20
MAX_DEPTH = 64

#: methods of the script's class the host may call
CALL_METHODS = frozenset({"on_trigger", "on_update", "on_clear", "get_status", "on_stop"})
#: API methods a script may request (the host's ``handle_request`` implements them)
API_METHODS = frozenset({
    "get_concentration_data", "get_peak_frequency", "get_peak_amplitude",
    "get_node_statistics", "trigger_notification", "get_history_count", "get_recent_entries",
    "publish_mqtt", "relay_on", "relay_off", "relay_pulse", "led_on", "led_off", "led_blink",
    "store_get", "store_set", "store_delete", "store_keys",
})
#: error types a ``resp`` may carry; the script sees exactly these builtins
WIRE_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls for cls in (
        PermissionError, ValueError, TypeError, KeyError, LookupError, TimeoutError,
        ConnectionError, OSError, RuntimeError, NotImplementedError)
}


class ProtocolError(ActionError):
    """Raised when a frame is malformed, carries non JSON-like data or breaks the protocol."""


class FrameTooLargeError(ProtocolError, ValueError):
    """Raised when a frame exceeds the size cap, by the sender or by the receiver."""

    def __init__(self, size: int, cap: int, what: str = "frame") -> None:
        self.size = size
        self.cap = cap
        super().__init__(f"{what} of {size:,} bytes exceeds the {cap:,}-byte frame cap "
                         f"(max_frame_bytes)")


class WorkerError(ScriptError):
    """Raised when a worker or its script fails; ``info`` is the wire error dict
    (type, message, file, line, traceback)."""

    def __init__(self, message: str, *, info: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.info = info or {"type": type(self).__name__, "message": message,
                             "file": None, "line": None, "traceback": ""}

    @property
    def file(self) -> str | None:
        """The script file of the error, if the script was involved."""
        return self.info.get("file")

    @property
    def line(self) -> int | None:
        """The script line of the error."""
        return self.info.get("line")


class ScriptLoadError(WorkerError):
    """Raised when the script cannot be loaded: refused, syntax error, import, __init__."""


class ScriptCallError(WorkerError):
    """Raised when a script method raised or returned something invalid."""


class WorkerTimeout(WorkerError, TimeoutError):  # noqa: N818  (name used by callers)
    """Raised when a call or the start passed its deadline (the worker was killed)."""


class WorkerCrashed(WorkerError):  # noqa: N818
    """Raised when the worker died (segfault, os._exit, kill, EOF); see ``returncode``."""

    def __init__(self, message: str, *, returncode: int | None = None) -> None:
        super().__init__(message)
        self.returncode = returncode


class WorkerRetired(WorkerCrashed):
    """Raised for a call that never started because its worker was being stopped on purpose
    (a hot reload replaced it, or the action stops): the caller may run it on the new one."""


class ReloadError(WorkerError):
    """Raised when a hot reload failed; the previous worker keeps running (defined here,
    beside the other worker errors, so the web API can catch it without loading the worker
    machinery)."""


def describe_error(node_id: str, what: str, info: dict[str, Any]) -> str:
    """One-line text of a wire error: where (file:line) and what."""
    where = f" at {info['file']}:{info['line']}" if info.get("file") else ""
    return f"python action {node_id}: {what}{where}: {info.get('type')}: {info.get('message')}"


def describe_exit(returncode: int | None) -> str:
    """'exited with code 3', 'killed by SIGSEGV (signal 11)', 'still running'."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "an unknown signal"
        return f"killed by {name} (signal {-returncode})"
    return f"exited with code {returncode}"


def jsonable(value: Any, path: str = "value", _depth: int = 0) -> Any:
    """A JSON-like copy of a script's value: datetime, date and time become ISO 8601 strings
    (datetimes in UTC; naive ones are taken as local time, as ``datetime.now()`` gives),
    tuples become lists; anything else that is not JSON-like raises TypeError naming its
    path. Used by the worker on results and API arguments."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if _depth >= MAX_DEPTH:
        raise TypeError(f"{path} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path} has a key {key!r} of type {type(key).__name__}; "
                                f"keys must be str")
            out[key] = jsonable(sub, f"{path}[{key!r}]", _depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(sub, f"{path}[{i}]", _depth + 1) for i, sub in enumerate(value)]
    raise TypeError(f"{path} is a {type(value).__name__}, which is not JSON-like (expected "
                    f"dict, list, str, int, float, bool, None or a datetime)")


def check_json_like(value: Any, path: str = "value") -> None:
    """Raise TypeError naming the first part of ``value`` that is not JSON-like.

    Accepted: dict with str keys, list, tuple (sent as a list), str, int, float, bool, None.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if item is None or isinstance(item, (str, bool, int, float)):
            continue
        if depth >= MAX_DEPTH:
            raise TypeError(f"{where} is nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise TypeError(f"{where} has a key {key!r} of type "
                                    f"{type(key).__name__}; keys must be str")
                stack.append((sub, f"{where}[{key!r}]", depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((sub, f"{where}[{i}]", depth + 1) for i, sub in enumerate(item))
        else:
            raise TypeError(f"{where} is a {type(item).__name__}, which is not JSON-like "
                            f"(expected dict, list, str, int, float, bool or None)")


def pack(message: dict[str, Any], max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """One frame (header + body) for ``message``; ProtocolError/FrameTooLargeError if impossible."""
    try:
        check_json_like(message, "message")
        body: bytes = msgpack.packb(message, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"cannot send a {message.get('t')!r} message: {exc}") from None
    if len(body) > max_frame_bytes:
        raise FrameTooLargeError(len(body), max_frame_bytes, f"{message.get('t')!r} message")
    return HEADER.pack(len(body)) + body


def unpack(body: bytes) -> dict[str, Any]:
    """Decode one frame body into a message dict with a str ``t``."""
    try:
        message = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several types for garbage
        raise ProtocolError(f"malformed frame: {type(exc).__name__}: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise ProtocolError(f"malformed frame: expected a map with a 't' key, "
                            f"got {type(message).__name__}")
    return message


def body_size(header: bytes, max_frame_bytes: int) -> int:
    """The body length announced by a header; FrameTooLargeError when over the cap."""
    (size,) = HEADER.unpack(header)
    if size > max_frame_bytes:
        raise FrameTooLargeError(size, max_frame_bytes, "incoming frame")
    return int(size)


class BlockingChannel:
    """Blocking frame I/O over a connected socket (the worker side: one thread, no loop)."""

    def __init__(self, sock: socket.socket,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.sock = sock
        self.max_frame_bytes = max_frame_bytes

    def send(self, message: dict[str, Any]) -> None:
        """Pack and send one message (raises ProtocolError/FrameTooLargeError before sending)."""
        self.sock.sendall(pack(message, self.max_frame_bytes))

    def recv(self) -> dict[str, Any] | None:
        """The next message, or None when the peer closed the connection between frames."""
        header = self._recv_exact(HEADER.size, eof_ok=True)
        if header is None:
            return None
        size = body_size(header, self.max_frame_bytes)
        body = self._recv_exact(size, eof_ok=False) if size else b""
        return unpack(body or b"")

    def _recv_exact(self, size: int, *, eof_ok: bool) -> bytes | None:
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            n = self.sock.recv_into(view[got:])
            if n == 0:
                if got == 0 and eof_ok:
                    return None
                raise ProtocolError(f"connection closed inside a frame ({got} of {size} "
                                    f"bytes received)")
            got += n
        return bytes(buf)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self.sock.close()


async def read_message(reader: asyncio.StreamReader,
                       max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> dict[str, Any] | None:
    """The next message from an asyncio stream (the host side), or None at a clean EOF.

    An oversized announced length raises FrameTooLargeError before any of the body is read.
    """
    import asyncio  # host side only: the worker must not pay for asyncio

    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError("connection closed inside a frame header") from None
    size = body_size(header, max_frame_bytes)
    try:
        body = await reader.readexactly(size) if size else b""
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(f"connection closed inside a frame ({len(exc.partial)} of {size} "
                            f"bytes received)") from None
    return unpack(body)
