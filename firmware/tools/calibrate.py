"""`pafw calibrate`: the guided calibration, its records and the zero check, over the running
appliance's HTTP API (the analyzer that holds the microphones does the measuring).

Interactive on a terminal (asks each cylinder's concentration and waits for Enter once the
gas flows), scriptable with ``--point PPM`` repeated (with ``--set-simulator-gas`` the
simulator is filled with each point's gas: a rehearsal end to end). Every refusal is printed
as the appliance words it, and nothing has changed.
"""

from __future__ import annotations

import http.client
import json
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

from firmware.errors import PafwError

POLL_S = 0.25
HTTP_TIMEOUT_S = 40.0


@dataclass
class ApplianceClient:
    """The appliance's HTTP API at ``url`` (``token``: the web.token, for writes)."""

    url: str
    token: str | None = None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer; PafwError with the appliance's message on an error status."""
        split = urlsplit(self.url)
        if split.scheme != "http" or not split.hostname:
            raise PafwError(f"--url {self.url!r}: expected http://HOST:PORT")
        conn = http.client.HTTPConnection(split.hostname, split.port or 80,
                                          timeout=HTTP_TIMEOUT_S)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except OSError as exc:
            raise PafwError(f"cannot reach the appliance at {self.url} ({exc}): is `pafw run` "
                            "running with the web server enabled?") from None
        finally:
            conn.close()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        if response.status >= 400:
            error = (payload or {}).get("error", {}) if isinstance(payload, dict) else {}
            message = error.get("message") or raw.decode(errors="replace")[:200]
            raise PafwError(f"refused ({response.status}): {message}")
        return payload

    def get(self, path: str) -> Any:
        """GET ``path``."""
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        """POST ``body`` (``{}`` by default) to ``path``."""
        return self.request("POST", path, {} if body is None else body)


def _fmt(value: Any, spec: str = ".6g") -> str:
    return "-" if value is None else format(value, spec)


def format_fit(fit: dict[str, Any], points: list[dict[str, Any]]) -> str:
    """The fit as people read it: coefficients with uncertainties, residuals per point."""
    lines = [f"fit: degree {fit['degree']}{' through zero' if fit['through_zero'] else ''}, "
             f"R² {_fmt(fit['r_squared'], '.6f')}"]
    uncertainties = fit["uncertainties"] or [None] * len(fit["coefficients"])
    for i, (c, u) in enumerate(zip(fit["coefficients"], uncertainties, strict=True)):
        lines.append(f"  c{i} = {c:.6g}" + ("" if u is None else f" ± {u:.3g}"))
    lines.append("  point ppm      amplitude     residual ppm")
    for point, residual in zip(points, fit["residuals_ppm"], strict=True):
        lines.append(f"  {point['concentration_ppm']:>9g}  "
                     f"{_fmt(point['readings']['amplitude'], '.6g'):>12}  {residual:+.4g}")
    return "\n".join(lines)


def _progress_line(current: dict[str, Any]) -> str:
    window = current.get("window") or {}
    rsd = window.get("amplitude_rsd_percent")
    return (f"  {current['concentration_ppm']:g} ppm: {current['elapsed_s']:.0f} s, "
            f"{window.get('samples', 0)} samples, amplitude {_fmt(window.get('amplitude'))}, "
            f"RSD {_fmt(rsd, '.3g')} % — {current.get('waiting_for') or 'stable'}")


def measure_point(client: ApplianceClient, ppm: float, *, cylinder: str | None,
                  gas: str | None, out: TextIO, tty: bool) -> dict[str, Any]:
    """Measure one point until it is stable; PafwError when it is refused or times out."""
    body: dict[str, Any] = {"concentration_ppm": ppm, "cylinder": cylinder}
    if gas:
        body["gas"] = gas
    client.post("/api/v1/calibration/session/points", body)
    last_print = 0.0
    while True:
        session = client.get("/api/v1/calibration/session")
        current = session["current"] or {}
        if not session["measuring"]:
            if tty:
                out.write("\n")
            if current.get("state") != "stable":
                raise PafwError(current.get("error") or f"the {ppm:g} ppm point was not kept")
            kept = next(p for p in session["points"] if p["concentration_ppm"] == ppm)
            readings = kept["readings"]
            out.write(f"  {ppm:g} ppm stable after {kept['duration_s']:.1f} s: amplitude "
                      f"{_fmt(readings['amplitude'])} ± {_fmt(readings['amplitude_std'], '.3g')}"
                      f", {_fmt(readings['temperature_c'], '.2f')} °C, "
                      f"{_fmt(readings['frequency_hz'], '.2f')} Hz\n")
            return dict(session)
        now = time.monotonic()
        if tty:
            out.write("\r" + _progress_line(current)[:150].ljust(150))
            out.flush()
        elif now - last_print >= 5.0:
            out.write(_progress_line(current) + "\n")
            last_print = now
        time.sleep(POLL_S)


@dataclass
class RunOptions:
    """What `pafw calibrate run` / `zero-check` was asked."""

    points: list[float]
    cylinders: list[str]
    operator: str | None
    note: str
    degree: int | None
    through_zero: bool | None
    activate: bool
    set_simulator_gas: bool
    zero_check: bool
    gas: str | None = None
    #: a command run before each point (``{ppm}`` replaced): switches the gas valves
    before_point: str | None = None


def run_calibration(client: ApplianceClient, options: RunOptions, *, out: TextIO,
                    ask: Callable[[str], str] | None) -> bool:
    """The whole procedure; ``ask`` (a prompt, None when scripted) drives the interactive
    mode. True when a record (or a zero check) was stored."""
    mode = "zero_check" if options.zero_check else "calibration"
    points = list(options.points)
    if options.zero_check and not points:
        points = [0.0]
    if not points and ask is None:
        raise PafwError("no --point given and no terminal to ask on: pass --point PPM for "
                        "each gas, 0 for zero gas")
    operator = options.operator
    if operator is None and ask is not None:
        operator = ask("Operator name: ").strip() or None
    session = client.post("/api/v1/calibration/session",
                          {"mode": mode, "operator": operator, "note": options.note})
    out.write(f"{mode.replace('_', ' ')} started by {session['operator']} "
              f"(gas {session['gas']})\n")
    try:
        index = 0
        while True:
            if index < len(points):
                ppm = points[index]
                cylinder = options.cylinders[index] if index < len(options.cylinders) else None
            elif ask is not None and not options.points and not options.zero_check:
                answer = ask("Next cylinder's concentration in ppm (0 = zero gas, "
                             "empty = done): ").strip()
                if not answer:
                    break
                try:
                    ppm = float(answer)
                except ValueError:
                    out.write(f"  {answer!r} is not a number\n")
                    continue
                cylinder = ask("Cylinder id (optional): ").strip() or None
            else:
                break
            index += 1
            if options.before_point:
                run_hook(options.before_point, ppm, out=out)
            if options.set_simulator_gas:
                client.post("/api/v1/simulator/gas", {"ppm": ppm})
            elif ask is not None and not options.before_point:
                ask(f"Connect the {ppm:g} ppm gas, let it flow, then press Enter: ")
            try:
                measure_point(client, ppm, cylinder=cylinder, gas=options.gas, out=out,
                              tty=ask is not None)
            except PafwError as exc:
                out.write(f"  point refused: {exc}\n")
                if ask is None:
                    raise
        return _finish(client, options, out=out, ask=ask)
    except BaseException:
        try:
            client.post("/api/v1/calibration/session/abort")
            out.write("session aborted: nothing was stored\n")
        except PafwError:
            pass
        raise


def run_hook(command: str, ppm: float, *, out: TextIO, timeout_s: float = 600.0) -> None:
    """Run ``command`` (``{ppm}`` replaced by the point's concentration) before a point;
    PafwError when it fails, so no point is measured on a gas that was not switched."""
    argv = [word.replace("{ppm}", f"{ppm:g}") for word in shlex.split(command)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PafwError(f"--before-point {shlex.join(argv)}: {exc}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise PafwError(f"--before-point {shlex.join(argv)} failed (exit {done.returncode})"
                        f"{': ' + detail[-1] if detail else ''}; the {ppm:g} ppm point was "
                        "not measured")
    out.write(f"  ran {shlex.join(argv)}\n")


def _finish(client: ApplianceClient, options: RunOptions, *, out: TextIO,
            ask: Callable[[str], str] | None) -> bool:
    body = {"degree": options.degree, "through_zero": options.through_zero,
            "activate": options.activate}
    if not options.zero_check:
        fit = client.post("/api/v1/calibration/session/fit", body)
        session = client.get("/api/v1/calibration/session")
        out.write(format_fit(fit, session["points"]) + "\n")
        if ask is not None and ask("Store this calibration"
                                   f"{' and make it active' if options.activate else ''}? "
                                   "[y/N] ").strip().lower() not in ("y", "yes"):
            client.post("/api/v1/calibration/session/abort")
            out.write("not stored\n")
            return False
    result = client.post("/api/v1/calibration/session/commit", body)
    if result["zero_check"] is not None:
        check = result["zero_check"]
        out.write(f"zero check {check['id']}: offset {_fmt(check['offset_ppm'], '.4g')} ppm "
                  f"with calibration {check['record_id'] or 'from the YAML'}; nothing "
                  "refitted\n")
        return True
    record = result["record"]
    out.write(f"calibration {record['id']} stored"
              f"{' and active' if record['active'] else ''}\n")
    return True


def print_records(client: ApplianceClient, out: TextIO) -> None:
    """`pafw calibrate list`."""
    listing = client.get("/api/v1/calibration/records")
    if not listing["records"]:
        out.write("no calibration records: the YAML coefficients apply\n")
    for r in listing["records"]:
        mark = "*" if r["active"] else " "
        note = "" if r["applicable"] else "  (other signal chain)"
        out.write(f"{mark} {r['id']}  {r['created']}  {r['operator']:<16} degree "
                  f"{r['degree']}, {r['points']} points, {r['concentration_range'][0]:g}-"
                  f"{r['concentration_range'][1]:g} ppm{note}\n")


def print_record(client: ApplianceClient, record_id: str, out: TextIO) -> None:
    """`pafw calibrate show ID`."""
    record = client.get(f"/api/v1/calibration/records/{record_id}")
    out.write(f"{record['id']}{' (active)' if record['active'] else ''}\n"
              f"  created {record['created']} by {record['operator']}, firmware "
              f"{record['firmware_version']}, node {record['node_id']}, gas {record['gas']}\n"
              f"  signal chain {record['signal_chain']['fingerprint'][:16]}\n")
    for p in record["points"]:
        out.write(f"  point {p['concentration_ppm']:g} ppm ({p['gas']}, cylinder "
                  f"{p['cylinder'] or '-'}) at {p['measured_at']}\n")
    out.write(format_fit(record["fit"], record["points"]) + "\n")


def print_status(client: ApplianceClient, out: TextIO) -> None:
    """`pafw calibrate status`."""
    status = client.get("/api/v1/calibration")
    active = status["active_record"]
    out.write(f"node {status['node']}: "
              f"{'record ' + active['id'] if active else 'YAML coefficients'} "
              f"{status['coefficients']}\n"
              f"due: {status['due']['state']}"
              f"{' on ' + status['due']['due_at'] if status['due']['due_at'] else ''}\n")
    if status["problem"]:
        out.write(f"problem: {status['problem']}\n")
    check = status["last_zero_check"]
    if check:
        out.write(f"last zero check {check['at']}: offset {_fmt(check['offset_ppm'], '.4g')} "
                  "ppm\n")
