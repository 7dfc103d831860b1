"""WebServer: the HTTP API, the live stream and the dashboard of a running appliance.

It runs on its own thread and asyncio loop, so neither a slow client nor a burst of requests
touches the DSP thread (which it only reads, lock-free) or the control loop (which it asks to
run operator changes). Periodic tasks sample results for the trend and the stream, and
build one status event per ``web.status_interval_s`` shared by every stream client.

A port that cannot be bound is logged and retried: the analyzer keeps measuring and alarming
without its dashboard.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from firmware.app.operations import Operations
from firmware.app.rates import RateSampler
from firmware.app.trend import TrendRecorder
from firmware.app.trend_store import SAVE_INTERVAL_S, TrendStore
from firmware.config.web import WebSettings
from firmware.web import views
from firmware.web.api import ROUTES, Route
from firmware.web.auth import AccessPolicy
from firmware.web.http import (
    HttpError,
    Limits,
    Request,
    Response,
    error_response,
    is_small_decimal,
    read_request,
)
from firmware.web.openapi import openapi_document
from firmware.web.process_stats import ProcessSampler
from firmware.web.static_files import StaticFiles
from firmware.web.stream import KEEPALIVE, StreamHub, sse_frame

if TYPE_CHECKING:
    from firmware.app.appliance import Appliance

log = logging.getLogger("pafw.web")

BIND_RETRY_S = 30.0
KEEPALIVE_S = 15.0
ACTION_BACKLOG = 200
#: kernel send buffer of a stream socket (Linux doubles it): what a stalled reader may hold
STREAM_SNDBUF = 65536
_BUSY = b'{"error":{"status":503,"code":"busy","message":"too many connections, try again"}}'
REJECT_503 = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
              b"Connection: close\r\nRetry-After: 5\r\nContent-Length: "
              + str(len(_BUSY)).encode() + b"\r\n\r\n" + _BUSY)


class WebServer:
    """Serves ``settings`` for ``appliance``; ``start`` returns once bound (or failed)."""

    def __init__(self, appliance: Appliance, settings: WebSettings,
                 operations: Operations | None = None) -> None:
        self.appliance = appliance
        self.settings = settings
        self.operations = operations or appliance.operations
        self.policy = AccessPolicy(read_access=settings.read_access, token=settings.token,
                                   allowed_hosts=settings.allowed_hosts)
        self.limits = Limits(max_head_bytes=settings.max_head_bytes,
                             max_body_bytes=settings.max_body_bytes,
                             request_timeout_s=settings.request_timeout_s,
                             idle_timeout_s=settings.idle_timeout_s,
                             write_timeout_s=settings.request_timeout_s)
        self.hub = StreamHub(max_streams=settings.max_streams,
                             buffer_bytes=settings.stream_buffer_bytes)
        self.trends = TrendRecorder(settings.trend_hours)
        #: the trend on disk: restored now, appended to every minute and at stop
        self.trend_store = TrendStore(appliance.analyzer.state_dir, self.trends.capacity)
        restored = self.trend_store.load(
            self.trends, appliance.analyzer.graph.computing_node_ids(), now=time.time())
        if restored:
            log.info("trend restored: %d one-second buckets from %s", restored,
                     self.trend_store.get_status()["directory"])
        #: (node, seconds, points) -> (monotonic time, response) of recent trend answers
        self.trend_cache: dict[tuple[str, int, int], tuple[float, Response]] = {}
        self.rates = RateSampler(appliance.analyzer)
        self.process = ProcessSampler()
        self.static = StaticFiles()
        self.openapi_bytes = json.dumps(openapi_document(ROUTES)).encode()
        self.port: int | None = None
        self.bind_error: str | None = None
        self.connections = self.requests = self.rejected = 0
        self.timed_out = self.oversized = 0
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._action_seq = 0
        self._status_built = -1e9
        self._results_updates = -1

    # --------------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 10.0) -> None:
        """Start the thread and bind; returns when listening or when binding failed (then
        it is retried every 30 s in the background)."""
        self._thread = threading.Thread(target=self._run, name="web", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.create_task(self._main())
        self.loop.run_forever()
        self.loop.close()

    async def _main(self) -> None:
        self._action_seq = self.appliance.action_events.last_seq
        frame_s = self.appliance.analyzer.frame_size / self.appliance.analyzer.sample_rate
        # every result reaches the trend: sampled at least twice per frame, off the DSP thread
        trend_s = min(max(frame_s / 2, 0.02), self.settings.stream_interval_s)
        self._tasks = [
            asyncio.create_task(self._every(trend_s, self._sample_trend)),
            asyncio.create_task(self._every(self.settings.stream_interval_s,
                                            self._stream_results)),
            asyncio.create_task(self._every(self.settings.status_interval_s,
                                            self._stream_status)),
            asyncio.create_task(self._every(KEEPALIVE_S, self._keepalive)),
            asyncio.create_task(self._every(SAVE_INTERVAL_S, self._save_trend)),
        ]
        while True:
            try:
                await self._bind()
                self._ready.set()
                return
            except OSError as exc:
                self.bind_error = (f"cannot listen on {self.settings.bind}:"
                                   f"{self.settings.port}: {exc.strerror or exc}")
                log.error("web server: %s; the analyzer runs without it, retrying every "
                          "%.0f s", self.bind_error, BIND_RETRY_S)
                self._ready.set()
                await asyncio.sleep(BIND_RETRY_S)

    async def _bind(self) -> None:
        host = self.settings.bind
        if host == "::":  # both IPv6 and IPv4 (asyncio would set IPV6_V6ONLY by itself)
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("::", self.settings.port))
            except OSError:
                sock.close()
                raise
            self._server = await asyncio.start_server(
                self._connection, sock=sock, limit=self.settings.max_head_bytes, backlog=256)
        else:
            self._server = await asyncio.start_server(
                self._connection, host=host, port=self.settings.port,
                limit=self.settings.max_head_bytes, reuse_address=True, backlog=256)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        self.bind_error = None
        log.info("dashboard and API on http://%s:%d/ (reads: %s, writes: %s)",
                 f"[{host}]" if ":" in host else host, self.port, self.settings.read_access,
                 "token" if self.policy.writes_enabled else "disabled, no web.token")

    @property
    def url(self) -> str:
        """Base URL for a client on this machine."""
        host = self.settings.bind
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener and every connection, end the thread; idempotent."""
        if self._thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(timeout)
        except Exception as exc:  # stopping must finish
            log.warning("web server stop: %s", exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self._thread = None

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()
        self.hub.close_all()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._save_trend()

    # ------------------------------------------------------------------ connections
    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        if len(self._writers) >= self.settings.max_connections:
            self.rejected += 1
            writer.write(REJECT_503)
            writer.transport.close()
            return
        peer = str((writer.get_extra_info("peername") or ("?",))[0])
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer, peer)
        except (ConnectionError, TimeoutError):
            # a peer that reset, or does not read what it asked for: let go of the socket
            # now (close() would wait for the unsent bytes forever)
            writer.transport.abort()
        except Exception as exc:  # a bug: one short log line, the connection dropped
            log.error("web: connection from %s failed: %s: %s", peer, type(exc).__name__, exc)
            writer.transport.abort()
        finally:
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     peer: str) -> None:
        first = True
        while True:
            try:
                request = await read_request(reader, peer, self.limits, first=first)
            except HttpError as exc:
                if exc.status == 408:
                    self.timed_out += 1
                elif exc.status in (413, 431):
                    self.oversized += 1
                await self._send(writer, error_response(exc), keep_alive=False)
                return
            if request is None:
                return
            first = False
            self.requests += 1
            route = self._route(request)
            if route is not None and route.content_type == "text/event-stream" and \
                    request.method == "GET":
                await self._stream(request, reader, writer)
                return
            response = await self._respond(request, route)
            keep_alive = request.keep_alive and response.status < 400
            await self._send(writer, response, keep_alive=keep_alive,
                             head_only=request.method == "HEAD")
            if not keep_alive:
                return

    async def _send(self, writer: asyncio.StreamWriter, response: Response, *,
                    keep_alive: bool, head_only: bool = False) -> None:
        writer.write(response.encode(keep_alive=keep_alive, head_only=head_only))
        async with asyncio.timeout(self.limits.write_timeout_s):
            await writer.drain()

    def _route(self, request: Request) -> Route | None:
        for route in ROUTES:
            match = route.pattern.match(request.path)
            if match and route.method == ("GET" if request.method == "HEAD"
                                          else request.method):
                request.params = match.groupdict()
                return route
        return None

    async def _respond(self, request: Request, route: Route | None) -> Response:
        try:
            self.policy.check_host(request)
            if route is None:
                return self._fallback(request)
            if route.access == "write":
                self.policy.check_write(request)
            else:
                self.policy.check_read(request)
            return await route.handler(self, request)
        except HttpError as exc:
            return error_response(exc)
        except Exception:  # a bug: logged with its traceback, the client gets a 500
            log.exception("web: %s %s failed", request.method, request.path)
            return error_response(HttpError(500, "internal", "internal error (logged)"))

    def _fallback(self, request: Request) -> Response:
        """The dashboard's files, or 404/405."""
        allowed = sorted({r.method for r in ROUTES if r.pattern.match(request.path)})
        if allowed:
            raise HttpError(405, "method_not_allowed",
                            f"{request.method} is not allowed here (allowed: "
                            f"{', '.join(allowed)})", {"Allow": ", ".join(allowed)})
        if request.method in ("GET", "HEAD") and self.static.has(request.path):
            self.policy.check_read(request)
            return self.static.response(request.path, request.headers.get("if-none-match"))
        raise HttpError(404, "not_found", f"nothing at {request.path[:200]}")

    # ----------------------------------------------------------------------- stream
    async def _stream(self, request: Request, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        try:
            self.policy.check_host(request)
            self.policy.check_read(request)
            if self.hub.full:
                raise HttpError(503, "busy", f"{self.hub.max_streams} stream clients already "
                                "connected", {"Retry-After": "5"})
        except HttpError as exc:
            await self._send(writer, error_response(exc), keep_alive=False)
            return
        backlog: list[bytes] = []
        last_id = request.headers.get("last-event-id", "")
        if is_small_decimal(last_id):
            for entry in self.appliance.action_events.since(int(last_id), ACTION_BACKLOG):
                if entry.seq <= self._action_seq:  # newer ones come with the next broadcast
                    backlog.append(sse_frame("action", entry.to_dict(), entry.seq))
        sock = writer.get_extra_info("socket")
        if sock is not None:  # bound the kernel's share too: a stalled reader is found sooner
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
        if time.monotonic() - self._status_built > self.settings.status_interval_s:
            self.hub.last_status = self._status_frame()  # a first client sees it at once
        client = self.hub.add(writer.transport, request.peer, backlog)
        try:
            while not client.closed.is_set():
                data = await reader.read(1024)  # nothing is expected: EOF means gone
                if not data:
                    break
        finally:
            self.hub.remove(client)
            writer.transport.abort()  # whatever it did not read is not worth waiting for

    # --------------------------------------------------------------- periodic tasks
    async def _every(self, period_s: float, step: Callable[[], None]) -> None:
        """Run ``step`` every ``period_s``; an exception is logged (at most once a minute per
        task) and the task goes on: a bug must not freeze the stream silently."""
        last_logged = -math.inf
        while True:
            try:
                step()
            except Exception:
                if time.monotonic() - last_logged > 60.0:
                    last_logged = time.monotonic()
                    log.exception("web: periodic %s failed (going on)", step.__name__)
            await asyncio.sleep(period_s)

    def _sample_trend(self) -> None:
        self.trends.sample(self.appliance.analyzer.state.snapshot())

    def _save_trend(self) -> None:
        self.trend_store.save(self.trends)

    def _stream_results(self) -> None:
        state = self.appliance.analyzer.state
        if state.updates != self._results_updates:
            snapshot = state.snapshot()
            if snapshot:
                self._results_updates = state.updates
                self.hub.broadcast(sse_frame("results", {
                    "timestamp": time.time(),
                    "results": {k: r.to_dict() for k, r in snapshot.items()}}),
                    kind="results")
        for entry in self.appliance.action_events.since(self._action_seq, ACTION_BACKLOG):
            self._action_seq = entry.seq
            self.hub.broadcast(sse_frame("action", entry.to_dict(), entry.seq))

    def _stream_status(self) -> None:
        self.rates.sample()
        self.process.sample()
        if self.hub.clients:
            self.hub.broadcast(self._status_frame(), kind="status")

    def _status_frame(self) -> bytes:
        """The ``status`` stream event: the status plus every action and output."""
        payload = self.status_payload()
        payload["actions"] = [views.action_summary(h, details=False)
                              for h in self.appliance.handlers]
        payload["outputs"] = views.outputs(self.appliance)
        self._status_built = time.monotonic()
        return sse_frame("status", payload)

    def _keepalive(self) -> None:
        self.hub.broadcast(KEEPALIVE)

    # ------------------------------------------------------------------------ status
    def web_status(self) -> dict[str, Any]:
        """``WebStatus``."""
        return {"connections": len(self._writers), "streams": len(self.hub.clients),
                "requests": self.requests, "rejected_connections": self.rejected,
                "dropped_slow_streams": self.hub.dropped_slow,
                "timed_out_requests": self.timed_out, "oversized_requests": self.oversized,
                "auth_failures": self.policy.failures}

    def status_payload(self) -> dict[str, Any]:
        """``ApplianceStatus``."""
        return views.status(self.appliance, self.rates, self.process.get_status(),
                            self.web_status())

    def get_status(self) -> dict[str, Any]:
        """For the appliance status: where it listens, its counters, a bind error."""
        return {"url": self.url if self.port is not None else None,
                "bind_error": self.bind_error, **self.web_status(),
                "trend_store": self.trend_store.get_status()}
