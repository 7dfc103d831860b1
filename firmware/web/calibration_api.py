"""The calibration's HTTP handlers (routes in ``api.py``): status, records, activate and
rollback, the guided session (points, fit, commit), the ambient pressure, and the simulator's
gas (so a calibration can be rehearsed end to end on the simulator).

The manager's methods touch files and wait on locks, so they run on worker threads; a
refusal (CalibrationError) is a 409 or 422 naming why, and nothing has changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from firmware.calibration.errors import CalibrationError, CalibrationNotFoundError
from firmware.calibration.manager import CalibrationManager
from firmware.errors import SourceError
from firmware.web import schemas
from firmware.web.http import HttpError, Request, Response, json_response

if TYPE_CHECKING:
    from firmware.web.context import ApiContext

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def _manager(server: ApiContext) -> CalibrationManager:
    manager = server.appliance.calibration
    if manager is None:
        raise HttpError(404, "not_found", "the graph has no concentration node to calibrate")
    return manager


def _body(request: Request, model: type[M]) -> M:
    try:
        return model.model_validate(request.json())
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "body"
        raise HttpError(422, "invalid", f"{where}: {problem['msg']}") from None


async def _call(call: Callable[[], T], *, refused: int = 409) -> T:
    """Run a manager call on a worker thread; its refusal becomes an HTTP error."""
    try:
        return await asyncio.to_thread(call)
    except CalibrationNotFoundError as exc:
        raise HttpError(404, "not_found", str(exc)) from None
    except CalibrationError as exc:
        raise HttpError(refused, "refused", str(exc)) from None


async def get_calibration(server: ApiContext, request: Request) -> Response:
    return json_response(200, _manager(server).get_status())


async def get_records(server: ApiContext, request: Request) -> Response:
    manager = _manager(server)
    records = await _call(manager.records)
    history = await _call(manager.store.history)
    return json_response(200, {"records": records, "history": history})


async def get_record(server: ApiContext, request: Request) -> Response:
    manager = _manager(server)
    record_id = request.params["id"]
    return json_response(200, await _call(lambda: manager.record(record_id)))


async def post_activate(server: ApiContext, request: Request) -> Response:
    manager = _manager(server)
    body = _body(request, schemas.CalibrationOperatorRequest)
    record_id = request.params["id"]
    await _call(lambda: manager.activate(record_id, operator=body.operator))
    return json_response(200, {"active": record_id, "calibration": manager.get_status()})


async def post_rollback(server: ApiContext, request: Request) -> Response:
    manager = _manager(server)
    body = _body(request, schemas.CalibrationOperatorRequest)
    active = await _call(lambda: manager.rollback(operator=body.operator))
    return json_response(200, {"active": active, "calibration": manager.get_status()})


def _session_payload(manager: CalibrationManager) -> dict[str, Any]:
    session = manager.session
    if session is None:
        raise HttpError(404, "not_found", "no calibration session: start one with POST "
                        "/api/v1/calibration/session")
    return session.to_dict()


async def get_session(server: ApiContext, request: Request) -> Response:
    return json_response(200, _session_payload(_manager(server)))


async def post_session(server: ApiContext, request: Request) -> Response:
    manager = _manager(server)
    body = _body(request, schemas.CalibrationSessionRequest)
    await _call(lambda: manager.begin(body.mode, operator=body.operator, note=body.note))
    return json_response(200, _session_payload(manager))


async def post_point(server: ApiContext, request: Request) -> Response:
    manager = _manager(server)
    body = _body(request, schemas.CalibrationPointRequest)
    await _call(lambda: manager.add_point(body.concentration_ppm, gas=body.gas,
                                          cylinder=body.cylinder), refused=422)
    return json_response(200, _session_payload(manager))


async def post_abort(server: ApiContext, request: Request) -> Response:
    manager = _manager(server)
    await _call(manager.abort)
    return json_response(200, manager.get_status())


async def post_fit(server: ApiContext, request: Request) -> Response:
    manager = _manager(server)
    body = _body(request, schemas.CalibrationFitRequest)
    fit = await _call(lambda: manager.fit(degree=body.degree, through_zero=body.through_zero),
                      refused=422)
    return json_response(200, fit.to_dict())


async def post_commit(server: ApiContext, request: Request) -> Response:
    manager = _manager(server)
    body = _body(request, schemas.CalibrationFitRequest)
    session = manager.session
    zero_check = session is not None and session.mode == "zero_check"
    result = await _call(lambda: manager.commit(degree=body.degree,
                                                through_zero=body.through_zero,
                                                activate=body.activate), refused=422)
    payload = {"record": None, "zero_check": result} if zero_check else \
        {"record": result, "zero_check": None}
    return json_response(200, payload)


async def post_pressure(server: ApiContext, request: Request) -> Response:
    manager = _manager(server)
    body = _body(request, schemas.PressureRequest)
    await _call(lambda: manager.set_pressure(body.hpa), refused=422)
    return json_response(200, manager.get_status())


async def post_simulator_gas(server: ApiContext, request: Request) -> Response:
    source = server.appliance.analyzer.source
    set_gas = getattr(source, "set_gas", None)
    if set_gas is None:
        raise HttpError(409, "refused", f"the audio source is {source.kind}, not the "
                        "simulator: its gas cannot be set")
    body = _body(request, schemas.SimulatorGasRequest)
    try:
        set_gas(body.ppm)
    except SourceError as exc:
        raise HttpError(422, "invalid", str(exc)) from None
    return json_response(200, {"ppm": getattr(source, "gas_ppm", None)})
