"""Entry point of a PythonAction worker process: sandbox, script loading, call loop.

Started by the host as ``python -I -m firmware.actions.python.worker --fd N --max-frame B``
with one end of a socketpair inherited as fd N. It imports only the python/ subpackage
(protocol, sandbox, imports, sdk) plus msgpack and small stdlib modules, so it is ready in
tens of milliseconds and stays small. Sequence:

1. read the ``init`` frame; read the script (the path is re-checked on the opened file);
2. apply the sandbox (sandbox.py) and run the static check (imports.py): any problem is
   fatal, reported with file:line;
3. redirect the script's stdout/stderr to ``log`` frames (line-buffered, at most
   ``log_lines_per_s`` per second, then a "suppressed N lines" summary);
4. execute the script as module ``user_script`` with private builtins whose ``__import__``
   applies the allow-list, arm the audit hook just before, instantiate the class with the
   API, send ``ready`` (or ``fatal``);
5. serve ``call`` frames one at a time until the host closes the socket.
"""

from __future__ import annotations

import _thread
import faulthandler
import io
import os
import signal
import socket
import sys
import time
import types
from typing import Any

from firmware.actions.python import imports, protocol, sandbox, sdk

SCRIPT_MODULE = "user_script"
MAX_MESSAGE_CHARS = 4000
MAX_TRACEBACK_CHARS = 8000
RESULT_RULES = {"on_trigger": "bool", "get_status": "dict", "on_clear": "bool or None"}


class LogSender:
    """Sends ``log`` frames, at most ``lines_per_s`` per second; counts the rest and reports
    them as one "suppressed N lines" frame (carrying ``suppressed: N``)."""

    def __init__(self, send: Any, lines_per_s: int) -> None:
        self._send = send
        self.lines_per_s = max(1, int(lines_per_s))
        self._window = time.monotonic()
        self._sent = 0
        self.suppressed = 0

    def emit(self, stream: str, level: str, message: str) -> None:
        """Send one line (truncated to MAX_MESSAGE_CHARS) unless over the rate cap."""
        now = time.monotonic()
        if now - self._window >= 1.0:
            self.flush()
            self._window, self._sent = now, 0
        if self._sent >= self.lines_per_s:
            self.suppressed += 1
            return
        self._sent += 1
        self._send({"t": "log", "level": level, "stream": stream,
                    "message": message[:MAX_MESSAGE_CHARS]})

    def flush(self) -> None:
        """Report the lines suppressed so far, if any."""
        if self.suppressed:
            count, self.suppressed = self.suppressed, 0
            self._send({"t": "log", "level": "warning", "stream": "log", "suppressed": count,
                        "message": f"suppressed {count} lines (over {self.lines_per_s} "
                                   f"lines/s)"})


class LineStream(io.TextIOBase):
    """A text stream (the script's sys.stdout or sys.stderr) turned into log lines."""

    def __init__(self, sender: LogSender, stream: str, level: str) -> None:
        self._sender, self._stream, self._level = sender, stream, level
        self._buf = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._buf += text
        if "\n" in self._buf:
            *lines, self._buf = self._buf.split("\n")
            for line in lines:
                self._sender.emit(self._stream, self._level, line)
        if len(self._buf) > MAX_MESSAGE_CHARS:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self._buf:
            line, self._buf = self._buf, ""
            self._sender.emit(self._stream, self._level, line)


def error_info(exc: BaseException, script: str | None) -> dict[str, Any]:
    """The wire form of an exception: type, message, innermost script file/line, and the
    traceback from the first script frame on (the worker's own frames are left out)."""
    import traceback  # imported by load() before the sandbox: the dropped user may not read it

    if isinstance(exc, ScriptRefusedError):
        first = exc.problems[0]
        kind = {"syntax": "SyntaxError", "dynamic-code": "PermissionError"}.get(first.code,
                                                                               "ImportError")
        return {"type": kind, "message": str(exc)[:MAX_MESSAGE_CHARS], "file": first.filename,
                "line": first.line, "traceback": ""}
    try:
        message = str(exc)
    except Exception:  # a hostile __str__
        message = f"<unprintable {type(exc).__name__}>"
    frames = traceback.extract_tb(exc.__traceback__)
    in_script = [i for i, f in enumerate(frames) if f.filename == script]
    file = line = None
    if in_script:
        file, line = script, frames[in_script[-1]].lineno
    elif isinstance(exc, SyntaxError) and exc.filename == script:
        file, line = script, exc.lineno
    try:
        te = traceback.TracebackException.from_exception(exc)
        if in_script:
            te.stack = traceback.StackSummary.from_list(te.stack[in_script[0]:])
        text = "".join(te.format())
    except Exception:
        text = f"{type(exc).__name__}: {message}"
    return {"type": type(exc).__name__, "message": message[:MAX_MESSAGE_CHARS],
            "file": file, "line": line, "traceback": text[-MAX_TRACEBACK_CHARS:]}


class Worker:
    """The worker's state: channel, init spec, script instance."""

    def __init__(self, channel: protocol.BlockingChannel, init: dict[str, Any], *,
                 parent_pid: int) -> None:
        self.channel = channel
        self.init = init
        self.parent_pid = parent_pid
        self.t0 = time.perf_counter()
        self.script: str | None = None
        self.instance: Any = None
        self._lock = _thread.allocate_lock()
        self._main = _thread.get_ident()
        self._req_id = 0
        self.log = LogSender(self.send, int(init.get("log_lines_per_s", 20)))

    def send(self, message: dict[str, Any]) -> None:
        """Send one frame (thread-safe: script threads may print)."""
        with self._lock:
            self.channel.send(message)

    # --------------------------------------------------------------------- loading
    def load(self) -> bool:
        """Steps 1-4 of the module docstring; False after sending ``fatal``."""
        spec = self.init
        import traceback  # noqa: F401 - loaded now: after a user switch it may be unreadable

        try:
            path, source = sandbox.read_script(spec["scripts_dir"], spec["script_path"])
            self.script = path
            report, guard = sandbox.apply_sandbox(spec, parent_pid=self.parent_pid)
            instance, methods = self._instantiate(path, source, guard)
        except BaseException as exc:  # anything, even SystemExit from the script's top level
            self.send({"t": "fatal", "error": error_info(exc, self.script)})
            return False
        self.instance = instance
        self.send({"t": "ready", "pid": os.getpid(), "script": self.script,
                   "network": report["network"],
                   "load_ms": round((time.perf_counter() - self.t0) * 1e3, 3),
                   "sandbox": report, "methods": methods})
        return True

    def _instantiate(self, path: str, source: str,
                     guard: sandbox.AuditGuard) -> tuple[Any, list[str]]:
        spec = self.init
        policy = imports.ImportPolicy(spec.get("allowed_imports", []),
                                      spec.get("unsafe_allow_refused_imports", []))
        import ast  # once per process, here rather than at startup

        tree = ast.parse(source, filename=path)  # a SyntaxError is reported as fatal
        problems = imports.check_tree(tree, filename=path, policy=policy)
        if problems:
            raise ScriptRefusedError(problems)
        sys.stdout = LineStream(self.log, "stdout", "info")
        sys.stderr = LineStream(self.log, "stderr", "warning")
        api = sdk.PhotoacousticAPI(
            self.request, lambda level, msg: self.log.emit("log", level, msg),
            node_id=spec["node_id"], python_config=spec.get("python_config", {}),
            parameters=spec.get("parameters", {}),
            monitored_nodes=spec.get("monitored_nodes", []))
        module = types.ModuleType(SCRIPT_MODULE)
        module.__file__ = path
        module.__dict__.update(
            __builtins__=imports.guarded_builtins(policy, path),
            CustomPythonAction=sdk.CustomPythonAction, PhotoacousticAPI=sdk.PhotoacousticAPI,
            RustPhotoacousticAPI=sdk.RustPhotoacousticAPI)
        sys.modules[SCRIPT_MODULE] = module
        code = compile(tree, path, "exec")
        guard.arm()
        exec(code, module.__dict__)
        name = spec["class_name"]
        cls = module.__dict__.get(name)
        if not isinstance(cls, type):
            found = sorted(k for k, v in module.__dict__.items()
                           if isinstance(v, type) and getattr(v, "__module__", "") == SCRIPT_MODULE)
            raise AttributeError(f"class {name!r} not found in {path}; classes defined there: "
                                 f"{', '.join(found) or 'none'}")
        methods = sorted(m for m in protocol.CALL_METHODS if callable(getattr(cls, m, None))
                         and getattr(cls, m) is not getattr(sdk.CustomPythonAction, m, None))
        return cls(api), methods

    # ------------------------------------------------------------------------ calls
    def serve(self) -> None:
        """Answer ``call`` frames until the host closes the connection."""
        while True:
            message = self.channel.recv()
            if message is None:
                return
            if message.get("t") != "call":
                raise protocol.ProtocolError(f"expected a 'call' frame, got {message['t']!r}")
            self._call(message)

    def _call(self, message: dict[str, Any]) -> None:
        call_id, method = message.get("id"), message.get("method")
        try:
            value = self._run(str(method), list(message.get("args") or []))
        except BaseException as exc:  # the script's failure is reported, never fatal
            reply = {"t": "error", "id": call_id, "error": error_info(exc, self.script)}
        else:
            reply = {"t": "result", "id": call_id, "value": value}
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self.log.flush()
        try:
            self.send(reply)
        except protocol.ProtocolError as exc:  # oversized or not JSON-like
            self.send({"t": "error", "id": call_id, "error": {
                "type": "ValueError", "message": f"{method} returned a value that cannot be "
                                                 f"sent: {exc}",
                "file": self.script, "line": None, "traceback": ""}})

    def _run(self, method: str, args: list[Any]) -> Any:
        if method not in protocol.CALL_METHODS:
            raise ValueError(f"unknown method {method!r}")
        fn = getattr(self.instance, method, None)
        if fn is None:
            if method == "on_trigger":
                raise AttributeError(f"{type(self.instance).__name__} has no on_trigger")
            return {"status": "active"} if method == "get_status" else None
        value = fn(*args)
        rule = RESULT_RULES.get(method)
        if rule is None:
            return None  # on_update, on_stop: the return value is ignored
        ok = {"bool": type(value) is bool, "dict": isinstance(value, dict),
              "bool or None": value is None or type(value) is bool}[rule]
        if not ok:
            raise TypeError(f"{method} must return {rule}, got {type(value).__name__}")
        return protocol.jsonable(value, f"{method}() return value")

    def request(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """An API request of the script: send ``req``, wait for the matching ``resp``."""
        if _thread.get_ident() != self._main:
            raise RuntimeError("API methods must be called from the thread that runs the "
                               "action's methods")
        wire_args = protocol.jsonable(list(args), f"{method}() arguments")
        wire_kwargs = protocol.jsonable(kwargs, f"{method}() keyword arguments")
        self._req_id += 1
        try:
            self.send({"t": "req", "id": self._req_id, "method": method, "args": wire_args,
                       "kwargs": wire_kwargs})
        except protocol.FrameTooLargeError as exc:
            raise ValueError(f"{method}(): {exc}") from None
        reply = self.channel.recv()
        if reply is None:
            os._exit(0)  # the host is gone
        if reply.get("t") != "resp" or reply.get("id") != self._req_id:
            # not something the script could handle: report on fd 2 and leave
            os.write(2, f"protocol error: expected 'resp' {self._req_id}, got "
                        f"{reply.get('t')!r} {reply.get('id')!r}\n".encode())
            os._exit(70)
        error = reply.get("error")
        if error is not None:
            cls = protocol.WIRE_ERRORS.get(str(error.get("type")), RuntimeError)
            raise cls(str(error.get("message")))
        return reply.get("value")


class ScriptRefusedError(ImportError):
    """Raised when the static check finds problems; reported as the first one's type."""

    def __init__(self, problems: list[imports.Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _parse(argv: list[str]) -> tuple[int, int]:
    opts = dict(zip(argv[::2], argv[1::2], strict=False))
    return int(opts["--fd"]), int(opts.get("--max-frame", protocol.DEFAULT_MAX_FRAME_BYTES))


def main(argv: list[str] | None = None) -> int:
    """Run the worker; the exit code is 0 after a clean close, 1 after a fatal load error."""
    fd, max_frame = _parse(sys.argv[1:] if argv is None else argv)
    parent = os.getppid()
    # on SIGUSR1 (a call past its deadline) the host gets the stack on fd 2 before the kill
    # (the host always gives the worker a stderr; None only when fd 2 was closed at start)
    if sys.__stderr__ is not None:
        faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    # a write past RLIMIT_FSIZE fails with EFBIG (an OSError the script sees) instead of
    # killing the worker
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    channel = protocol.BlockingChannel(socket.socket(fileno=fd), max_frame)
    init = channel.recv()
    if init is None:
        return 0
    if init.get("t") != "init":
        raise protocol.ProtocolError(f"expected an 'init' frame, got {init['t']!r}")
    worker = Worker(channel, init, parent_pid=parent)
    if not worker.load():
        return 1
    worker.serve()
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except (BrokenPipeError, ConnectionResetError):
        code = 0  # the host closed the connection (it stopped or killed us): nobody to tell
    os._exit(code)  # no atexit handlers or thread joins of the script
