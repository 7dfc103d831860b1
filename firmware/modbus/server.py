"""ModbusServer: Modbus TCP for PLCs and SCADA, on its own thread and asyncio loop.

pymodbus frames and decodes the requests; the data behind them is ``ApplianceContext``:
reads come from the register image (``image.py``, the state the web API reads), writes
become the appliance's Operations, run on the control loop. Nothing here touches the DSP
thread. Writes are refused with exception 0x01 (ILLEGAL FUNCTION) unless
``modbus.writes_enabled`` and the client's address is in ``write_allowed_clients``;
addresses outside the map get 0x02, values other than 0/1 0x03, an operation that fails 0x04,
another unit id 0x0B (docs/modbus.md).

pymodbus 3.16 reaches its data through ``server.context.async_getValues`` /
``async_setValues`` (returning values or an ``ExcCodes``), and hands each request to a
``ServerRequestHandler`` per connection: the server replaces the first and subclasses the
second (to learn the client's address and count connections), nothing else.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, cast

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusIOException, NoSuchIdException
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.transaction import TransactionManager

from firmware.app.operations import OperationRefusedError, Operations
from firmware.config.modbus import ModbusSettings
from firmware.modbus.image import RegisterImage
from firmware.modbus.registers import (
    COIL_ACK_ALL,
    COIL_ACK_BASE,
    COIL_ENABLE_BASE,
    RegisterMap,
)

if TYPE_CHECKING:
    from firmware.app.appliance import Appliance

log = logging.getLogger("pafw.modbus")

BIND_RETRY_S = 30.0
#: how long a write waits for its operation on the control loop before 0x04
OPERATION_TIMEOUT_S = 10.0
#: function codes served: read coils, read holding/input registers, write coil(s)/register(s)
SERVED = {1, 3, 4, 5, 6, 15, 16}
WRITES = {5, 6, 15, 16}

#: the address of the client whose request is being served (set per request task)
_PEER: contextvars.ContextVar[str] = contextvars.ContextVar("modbus_peer", default="")
#: what the current request wrote (FC 5/6 answer with it, as the protocol asks)
_WRITTEN: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "modbus_written", default=None)


class ModbusStats:
    """The server's counters (read from any thread; written on its loop)."""

    def __init__(self) -> None:
        self.connections = self.connections_total = self.rejected = self.idle_closed = 0
        self.requests = self.errors = self.refused_writes = self.writes = 0
        self.last_refused: str | None = None


class ApplianceContext:
    """What pymodbus reads and writes: the register image and the operator's operations."""

    def __init__(self, image: RegisterImage, operations: Operations,
                 settings: ModbusSettings, stats: ModbusStats) -> None:
        self.image = image
        self.map = image.map
        self.operations = operations
        self.settings = settings
        self.stats = stats
        self.allowed = {ipaddress.ip_address(a) for a in settings.write_allowed_clients}
        self.inputs = self.map.input_ranges()
        self.coils = self.map.coil_addresses()

    def device_ids(self) -> list[int]:
        """The one unit id served."""
        return [self.settings.unit_id]

    def _check_unit(self, device_id: int) -> None:
        if device_id != self.settings.unit_id:
            raise NoSuchIdException(f"unit id {device_id} (this server answers "
                                    f"{self.settings.unit_id})")

    async def async_getValues(self, device_id: int, func_code: int, address: int,  # noqa: N802 - pymodbus's name
                              count: int = 1) -> list[int] | list[bool] | ExcCodes:
        """Values of ``count`` addresses from ``address`` for ``func_code``, or an error."""
        self._check_unit(device_id)
        if func_code in (5, 6):  # the answer to a single write echoes what was written
            written = _WRITTEN.get()
            if written is not None:
                return [bool(v) for v in written] if func_code == 5 else list(written)
        if func_code == 4:
            end = address + count
            if not any(first <= address and end <= last for first, last in self.inputs):
                return ExcCodes.ILLEGAL_ADDRESS
            registers = self.image.input_registers()
            return [registers[a] for a in range(address, end)]
        if func_code in (1, 3):
            addresses = range(address, address + count)
            if not all(a in self.coils for a in addresses):
                return ExcCodes.ILLEGAL_ADDRESS
            states = [self.image.coil(a) for a in addresses]
            return states if func_code == 1 else [int(s) for s in states]
        return ExcCodes.ILLEGAL_FUNCTION

    async def async_setValues(self, device_id: int, func_code: int, address: int,  # noqa: N802 - pymodbus's name
                              values: Sequence[int] | Sequence[bool]) -> ExcCodes | None:
        """Apply a write (coils or holding registers), or say why not."""
        self._check_unit(device_id)
        if func_code not in WRITES:
            return ExcCodes.ILLEGAL_FUNCTION
        peer = _PEER.get()
        if not self._may_write(peer):
            self.stats.refused_writes += 1
            self.stats.last_refused = peer
            log.warning("modbus: write from %s refused (%s)", peer or "?",
                        "modbus.writes_enabled is false" if not self.settings.writes_enabled
                        else "not in modbus.write_allowed_clients")
            return ExcCodes.ILLEGAL_FUNCTION
        numbers = [int(v) for v in values]
        addresses = range(address, address + len(numbers))
        if not all(a in self.coils for a in addresses):
            return ExcCodes.ILLEGAL_ADDRESS
        if any(v not in (0, 1) for v in numbers):
            return ExcCodes.ILLEGAL_VALUE
        for target, value in zip(addresses, numbers, strict=True):
            failure = await self._apply(target, bool(value), peer)
            if failure is not None:
                return failure
        self.stats.writes += 1
        _WRITTEN.set(numbers)
        return None

    def _may_write(self, peer: str) -> bool:
        if not self.settings.writes_enabled:
            return False
        try:
            address = ipaddress.ip_address(peer.split("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address in self.allowed

    async def _apply(self, address: int, value: bool, peer: str) -> ExcCodes | None:
        """One coil's write as an operation; None when done (or nothing to do)."""
        handlers = self.image.handlers
        future: Future[Any]
        try:
            if address == COIL_ACK_ALL:
                if not value:
                    return None
                future = self.operations.acknowledge_all()
                what = "acknowledge all"
            elif COIL_ENABLE_BASE <= address < COIL_ENABLE_BASE + len(handlers):
                action_id = self.map.actions[address - COIL_ENABLE_BASE].action_id
                future = self.operations.set_enabled(action_id, value)
                what = f"{'enable' if value else 'disable'} {action_id}"
            else:
                if not value:
                    return None
                action_id = self.map.actions[address - COIL_ACK_BASE].action_id
                future = self.operations.acknowledge(action_id)
                what = f"acknowledge {action_id}"
            await asyncio.wait_for(asyncio.wrap_future(future), OPERATION_TIMEOUT_S)
        except OperationRefusedError as exc:
            if exc.status == 409:  # nothing to acknowledge: done, as far as a PLC cares
                return None
            log.warning("modbus: write from %s to %d failed: %s", peer, address, exc)
            return ExcCodes.DEVICE_FAILURE
        except (TimeoutError, Exception) as exc:  # any failure: 0x04, the server goes on
            log.warning("modbus: write from %s to %d failed: %s: %s", peer, address,
                        type(exc).__name__, exc)
            return ExcCodes.DEVICE_FAILURE
        log.info("modbus: %s by %s", what, peer)
        return None


class _Handler(ServerRequestHandler):
    """One client connection: its address, its last activity, its request's peer."""

    def __init__(self, owner: _Server, *args: Any) -> None:
        super().__init__(owner, *args)  # type: ignore[no-untyped-call]  # unannotated
        self.owner = owner
        self.peer = ""
        self.last_active = time.monotonic()

    def callback_connected(self) -> None:
        super().callback_connected()
        peername = self.transport.get_extra_info("peername") if self.transport else None
        self.peer = str(peername[0]) if peername else ""
        stats = self.owner.stats
        stats.connections_total += 1
        stats.connections += 1
        self.owner.handlers.add(self)
        if len(self.owner.handlers) > self.owner.settings.max_connections:
            stats.rejected += 1
            self.transport.close()

    def callback_disconnected(self, exc: Exception | None) -> None:
        super().callback_disconnected(exc)
        if self in self.owner.handlers:
            self.owner.handlers.discard(self)
            self.owner.stats.connections -= 1

    def callback_data(self, data: bytes, addr: tuple[Any, ...] | None = None) -> int:
        """As pymodbus's, but a function code it cannot decode is answered with that
        code | 0x80 and 0x01 (pymodbus would answer 0x80, which no client matches)."""
        self.last_active = time.monotonic()
        try:
            used: int = TransactionManager.callback_data(self, data, addr)
        except ModbusIOException as exc:
            code = data[7] & 0x7F if len(data) > 7 else 0
            response = ExceptionResponse(code, ExcCodes.ILLEGAL_FUNCTION,
                                         device_id=exc.dev_id or 0,
                                         transaction=exc.transaction_id or 0)
            self.server_send(response, addr)  # type: ignore[no-untyped-call]
            return len(data)
        if self.last_pdu:
            self.loop.call_soon(self.handle_later)
        return used

    async def handle_request(self) -> None:
        """Serve one request; function codes outside ``SERVED`` (diagnostics, device
        identification, discrete inputs, ...) get 0x01 without reaching pymodbus."""
        pdu = self.last_pdu
        if pdu is not None and pdu.function_code not in SERVED:
            self.last_pdu = None
            response = ExceptionResponse(pdu.function_code, ExcCodes.ILLEGAL_FUNCTION,
                                         device_id=pdu.dev_id, transaction=pdu.transaction_id)
            self.server_send(response, self.last_addr)  # type: ignore[no-untyped-call]
            return
        _PEER.set(self.peer)
        await super().handle_request()  # type: ignore[no-untyped-call]


class _Server(ModbusTcpServer):
    """pymodbus's TCP server with our handler and counters."""

    def __init__(self, settings: ModbusSettings, stats: ModbusStats, **kwargs: Any) -> None:
        self.settings = settings
        self.stats = stats
        self.handlers: set[_Handler] = set()
        super().__init__(**kwargs)

    def callback_new_connection(self) -> _Handler:
        return _Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)


class ModbusServer:
    """Serves ``settings`` for ``appliance``; ``start`` returns once bound (or failed)."""

    def __init__(self, appliance: Appliance, settings: ModbusSettings,
                 operations: Operations | None = None) -> None:
        self.appliance = appliance
        self.settings = settings
        self.map = RegisterMap.from_config(appliance.doc.config)
        self.image = RegisterImage(appliance, self.map, settings)
        self.stats = ModbusStats()
        self.context = ApplianceContext(self.image, operations or appliance.operations,
                                        settings, self.stats)
        self.port: int | None = None
        self.bind_error: str | None = None
        self.loop = asyncio.new_event_loop()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # --------------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 10.0) -> None:
        """Start the thread and bind; returns when listening or when binding failed (then
        it is retried every 30 s in the background, the analyzer runs on)."""
        self._thread = threading.Thread(target=self._run, name="modbus", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.create_task(self._main())
        self.loop.run_forever()
        self.loop.close()

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.stats.requests += 1
        elif isinstance(pdu, ExceptionResponse):
            self.stats.errors += 1
        return pdu

    async def _main(self) -> None:
        self._tasks.append(asyncio.create_task(self._close_idle()))
        while True:
            try:
                await self._bind()
                self._ready.set()
                return
            except (OSError, RuntimeError) as exc:
                self.bind_error = (f"cannot listen on {self.settings.bind}:"
                                   f"{self.settings.port}: {exc}")
                log.error("modbus: %s; the analyzer runs without it, retrying every %.0f s",
                          self.bind_error, BIND_RETRY_S)
                self._ready.set()
                await asyncio.sleep(BIND_RETRY_S)

    async def _bind(self) -> None:
        # the placeholder device is never read: the context is replaced below
        server = _Server(self.settings, self.stats,
                         context=SimDevice(0, simdata=[SimData(0, datatype=DataType.REGISTERS)]),
                         address=(self.settings.bind, self.settings.port),
                         trace_pdu=self._trace_pdu)
        # pymodbus reads its data only through these two methods (see the module's text)
        server.context = self.context  # type: ignore[assignment]
        await server.serve_forever(background=True)
        self._server = server
        sockets = cast(asyncio.Server, server.transport).sockets
        self.port = int(sockets[0].getsockname()[1])
        self.bind_error = None
        log.info("modbus TCP on %s:%d (unit %d, %s word order, writes %s)",
                 self.settings.bind, self.port, self.settings.unit_id, self.settings.word_order,
                 "from " + ", ".join(self.settings.write_allowed_clients)
                 if self.settings.writes_enabled else "disabled")

    async def _close_idle(self) -> None:
        """Close connections silent for longer than ``idle_timeout_s``."""
        limit = self.settings.idle_timeout_s
        while True:
            await asyncio.sleep(min(1.0, limit / 4))
            now = time.monotonic()
            server = self._server
            if server is None:
                continue
            for handler in list(server.handlers):
                if now - handler.last_active > limit:
                    self.stats.idle_closed += 1
                    handler.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener and every connection, end the thread; idempotent."""
        if self._thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(timeout)
        except Exception as exc:  # stopping must finish
            log.warning("modbus server stop: %s", exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self._thread = None

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]

    # ------------------------------------------------------------------------ status
    def get_status(self) -> dict[str, Any]:
        """Where it listens and its counters (docs/status.md); JSON-safe, a new dict."""
        stats = self.stats
        return {
            "enabled": True, "bind": self.settings.bind, "port": self.port,
            "bind_error": self.bind_error, "unit_id": self.settings.unit_id,
            "word_order": self.settings.word_order,
            "writes_enabled": self.settings.writes_enabled,
            "connections": stats.connections, "connections_total": stats.connections_total,
            "rejected_connections": stats.rejected, "idle_closed": stats.idle_closed,
            "requests": stats.requests, "errors": stats.errors, "writes": stats.writes,
            "refused_writes": stats.refused_writes, "last_refused_client": stats.last_refused,
            "image_builds": self.image.builds,
            "nodes": len(self.map.nodes), "actions": len(self.map.actions),
        }
