"""The `pafw` command line: run | status | health | export | config check/default | script |
analyze | simulate | allan | selftest | calibrate | modbus map | bench.

Expected failures (bad config, missing file, unusable device) print one clear message and
exit non-zero without a traceback: 2 for configuration errors, 1 for the rest.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from firmware import __version__
from firmware.errors import ConfigError, PafwError

if TYPE_CHECKING:  # imported lazily at run time, for start-up time
    from firmware.config.loader import ConfigDocument

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render the CLI reference)."""
    parser = argparse.ArgumentParser(
        prog="pafw", description="Photoacoustic gas analyzer firmware."
    )
    parser.add_argument("--version", action="version", version=f"pafw {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the analyzer (default config: the simulator)")
    run.add_argument("--config", type=Path, help="config file (default: the built-in one)")
    run.add_argument("--seconds", type=float, help="stop after this long (default: forever)")
    run.add_argument("--no-realtime", action="store_true",
                     help="process as fast as possible instead of pacing to real time")

    status = sub.add_parser("status", help="the running appliance's status (from its state dir)")
    status.add_argument("--config", type=Path, help="the appliance's config file")
    status.add_argument("--json", action="store_true", help="print the whole snapshot as JSON")

    export = sub.add_parser(
        "export", help="the measurements kept in the state dir as CSV (per node and second)")
    export.add_argument("--config", type=Path, help="the appliance's config file")
    export.add_argument("--from", dest="since", metavar="TIME",
                        help="start: epoch seconds or ISO 8601 (default: the oldest kept)")
    export.add_argument("--to", dest="until", metavar="TIME",
                        help="end: epoch seconds or ISO 8601 (default: now)")
    export.add_argument("--node", help="one computing node id (default: all)")
    export.add_argument("--out", type=Path, help="output file (default: stdout)")

    config = sub.add_parser("config", help="check or print configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser("check", help="validate a config file (exit 2 on error)")
    check.add_argument("file", type=Path)
    config_sub.add_parser("default", help="print the built-in config, commented")

    script = sub.add_parser("script", help="check customer scripts (python_action)")
    script_sub = script.add_subparsers(dest="script_command", required=True, metavar="ACTION")
    script_check = script_sub.add_parser(
        "check", help="static checks, load in a sandboxed worker, run on synthetic data")
    script_check.add_argument("file", type=Path)
    script_check.add_argument("--config", type=Path,
                              help="config with the python_action node using this script")
    script_check.add_argument("--node", help="the python_action node id (default: by file)")
    script_check.add_argument("--class", dest="class_name", help="class to instantiate")
    script_check.add_argument("--as", dest="as_name", metavar="NAME",
                              help="find the node by this file name (for a temporary upload)")
    push = script_sub.add_parser(
        "push", help="check, upload over SSH, swap in atomically, wait for it to run")
    push.add_argument("host", help="[user@]host of the appliance")
    push.add_argument("file", type=Path)
    push.add_argument("--name", help="file name on the appliance (default: FILE's name)")
    push.add_argument("--port", type=int, help="SSH port")
    push.add_argument("--identity", "-i", type=Path, help="SSH private key")
    push.add_argument("--ssh-option", "-o", action="append", default=[], metavar="OPTION",
                      help="extra ssh/scp -o option (repeatable)")
    push.add_argument("--remote-pafw", default="/opt/pafw/current/venv/bin/pafw",
                      help="the pafw command on the appliance")
    push.add_argument("--remote-config", default="/etc/pafw/config.yaml",
                      help="the appliance's config file")
    push.add_argument("--timeout", type=float, default=30.0,
                      help="seconds to wait for the new version to run")

    analyze = sub.add_parser("analyze", help="run the graph over a WAV file, one row per frame")
    analyze.add_argument("file", type=Path)
    analyze.add_argument("--config", type=Path)
    analyze.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    analyze.add_argument("--out", type=Path, help="output file (default: stdout)")

    simulate = sub.add_parser("simulate", help="write a simulated recording and its truth")
    simulate.add_argument("--seconds", type=float, required=True)
    simulate.add_argument("--out", type=Path, required=True, help="WAV file to write")
    simulate.add_argument("--concentration", metavar="PROFILE",
                          help="1000 | ramp:START:END:SECONDS | steps:A,B,C:SECONDS | csv:FILE")
    simulate.add_argument("--seed", type=int)
    simulate.add_argument("--config", type=Path)
    simulate.add_argument("--format", choices=["int16", "int24", "int32", "float32"],
                          default="float32")

    allan = sub.add_parser(
        "allan", help="Allan-Werle deviation, LOD and T90 of the graph over a WAV file or the "
        "simulator")
    allan.add_argument("file", type=Path, nargs="?", help="WAV file (or --simulate SECONDS)")
    allan.add_argument("--simulate", type=float, metavar="SECONDS",
                       help="run the configured simulator for SECONDS instead of a file")
    allan.add_argument("--concentration", metavar="PROFILE",
                       help="with --simulate: the simulator's profile (as `pafw simulate`)")
    allan.add_argument("--seed", type=int, help="with --simulate: the simulator's seed")
    allan.add_argument("--config", type=Path)
    allan.add_argument("--node", help="concentration node id (default: the first)")
    allan.add_argument("--json", action="store_true", help="print one JSON object")
    allan.add_argument("--plot", type=Path, metavar="FILE.png",
                       help="draw the log-log plot (needs matplotlib: the plot extra)")

    selftest = sub.add_parser(
        "selftest", help="the microphones' self-test: of the running appliance, else offline")
    selftest.add_argument("file", type=Path, nargs="?",
                          help="check this WAV file instead (offline)")
    selftest.add_argument("--config", type=Path, help="the appliance's config file")
    selftest.add_argument("--json", action="store_true", help="print the report as JSON")

    modbus = sub.add_parser("modbus", help="the Modbus TCP server's register map")
    modbus_sub = modbus.add_subparsers(dest="modbus_command", required=True, metavar="ACTION")
    modbus_map = modbus_sub.add_parser(
        "map", help="print the register map of a config (default: the built-in one)")
    modbus_map.add_argument("--config", type=Path)
    modbus_map.add_argument("--markdown", action="store_true",
                            help="a Markdown table (docs/modbus.md)")

    _add_calibrate_parser(sub)

    bench = sub.add_parser("bench", help="measure the DSP graph (or the actions) and print it")
    bench.add_argument("what", nargs="?",
                       choices=["dsp", "actions", "python-actions", "web", "modbus",
                                "footprint", "estimators"],
                       default="dsp",
                       help="dsp: graph vs a scipy reference; actions: MQTT latency, outbox "
                       "throughput, DSP cost of the actions (needs mosquitto); "
                       "python-actions: trigger latency, DSP cost, worker start/memory, "
                       "reload latency; web: DSP real-time factor and memory under 200 "
                       "stream clients and a slowloris client; modbus: read latency and "
                       "DSP real-time factor with 20 polling Modbus clients; footprint: "
                       "memory (RSS/USS) and start-up time of pafw run, import cost of each "
                       "dependency; estimators: "
                       "frequency/amplitude errors, var/CRB and LOD of the peak finder and "
                       "the lock-in on simulated tones at several SNRs")
    bench.add_argument("--config", type=Path)
    bench.add_argument("--seconds", type=float, default=20.0,
                       help="actions: how long to measure the latency")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--frames", type=int, default=200)
    bench.add_argument("--rounds", type=_positive_int, default=None,
                       help="alternating rounds (7; python-actions: 20 sets of its three "
                       "DSP rounds of 1 s)")
    bench.add_argument("--clients", type=int, default=None,
                       help="web: concurrent stream clients (200); modbus: polling clients "
                       "(20)")
    bench.add_argument("--polls", type=int, default=200,
                       help="modbus: polls timed per round for the latency")
    bench.add_argument("--trials", type=int, default=300,
                       help="estimators: simulated records per SNR")
    bench.add_argument("--probe-first-result", action="store_true", help=argparse.SUPPRESS)
    bench.add_argument("--settle", type=float, default=5.0,
                       help="footprint: seconds after the first result before memory is read")
    bench.add_argument("--warm-runs", type=int, default=2,
                       help="footprint: starts with warm caches after the cold one")
    bench.add_argument("--python-actions", type=int, default=0,
                       help="footprint: script actions added to the config")
    bench.add_argument("--no-imports", action="store_true",
                       help="footprint: skip the per-dependency import measurements")

    health = sub.add_parser(
        "health", help="wait until the appliance is healthy: READY, DSP advancing, MQTT "
        "online, no failed action (the gate of a fleet update; exit 1 if not)")
    health.add_argument("--config", type=Path, help="the appliance's config file")
    health.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                        help="give up after this long (default 30; the DSP check needs two "
                        "status snapshots, processing.status_interval_s apart)")
    health.add_argument("--unit", metavar="UNIT",
                        help="also require this systemd unit active, its main process the "
                        "snapshot's, and no restart while waiting (e.g. pafw.service)")
    health.add_argument("--start-wait", type=float, default=0.0, metavar="SECONDS",
                        help="with --unit: while the unit is still starting (a first start "
                        "compiles its kernels: minutes on a Pi), wait up to this long; --wait "
                        "then counts from READY (default 0: --wait bounds everything)")
    health.add_argument("--release", metavar="ID", help="require this release to be running")
    health.add_argument("--no-mqtt", action="store_true",
                        help="do not require the MQTT link to be connected")
    return parser


def _add_calibrate_parser(sub: Any) -> None:
    """`pafw calibrate ...`: the running appliance's calibration, over its HTTP API."""
    cal = sub.add_parser("calibrate", help="calibrate the running analyzer: zero and span "
                         "gases, records, zero check (over its HTTP API)")
    cal_sub = cal.add_subparsers(dest="calibrate_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="the appliance's config (its web port "
                        "and token)")
    common.add_argument("--url", help="the appliance's API (default: from the config)")
    common.add_argument("--token", help="web.token for changes (default: $PAFW_WEB_TOKEN or "
                        "the config's)")
    for name, text in (("run", "measure zero and span points, fit, store, activate"),
                       ("zero-check", "measure zero gas and record the offset (no refit)")):
        run = cal_sub.add_parser(name, help=text, parents=[common])
        run.add_argument("--point", type=float, action="append", default=[], metavar="PPM",
                         help="a cylinder's concentration (0: zero gas), in order; "
                         "repeatable (without: asked on the terminal)")
        run.add_argument("--cylinder", action="append", default=[], metavar="ID",
                         help="the cylinder id of each --point, in the same order")
        run.add_argument("--gas", help="the gas name (default: device.gas)")
        run.add_argument("--operator", help="who calibrates (written in the record)")
        run.add_argument("--note", default="", help="a note kept in the record")
        run.add_argument("--degree", type=int, choices=[1, 2, 3, 4],
                         help="the fit's degree (default: the lowest that passes)")
        run.add_argument("--through-zero", action="store_true", default=None,
                         help="fit with c0 = 0")
        run.add_argument("--no-activate", action="store_true",
                         help="store the record without making it active")
        run.add_argument("--set-simulator-gas", action="store_true",
                         help="fill the simulator with each point's gas (a rehearsal)")
        run.add_argument("--before-point", metavar="CMD",
                         help="run CMD before each point ({ppm} replaced), e.g. a script "
                         "that switches the gas valves; a failure stops the calibration")
    cal_sub.add_parser("status", help="the calibration in use and its due date",
                       parents=[common])
    cal_sub.add_parser("list", help="every record; * marks the active one", parents=[common])
    show = cal_sub.add_parser("show", help="one record: points, fit, residuals",
                              parents=[common])
    show.add_argument("id")
    activate = cal_sub.add_parser("activate", help="make a record active, live",
                                  parents=[common])
    activate.add_argument("id")
    activate.add_argument("--operator", default="")
    rollback = cal_sub.add_parser("rollback", help="back to the calibration active before",
                                  parents=[common])
    rollback.add_argument("--operator", default="")
    gas = cal_sub.add_parser("gas", help="fill the simulator with a gas (or 'profile')",
                             parents=[common])
    gas.add_argument("ppm", help="ppm, or 'profile' to give it back to its profile")
    pressure = cal_sub.add_parser("pressure", help="the ambient pressure to compensate for",
                                  parents=[common])
    pressure.add_argument("hpa", help="hPa, or 'config' for the configured one")


def _cmd_calibrate(args: argparse.Namespace, out: TextIO) -> int:
    import os

    from firmware.tools import calibrate as cal

    url, token = args.url, args.token or os.environ.get("PAFW_WEB_TOKEN")
    if url is None or token is None:
        web = _load(args.config).config.web
        host = "127.0.0.1" if web.bind in ("0.0.0.0", "::", "") else web.bind
        url = url or f"http://{host}:{web.port}"
        token = token or web.token
    client = cal.ApplianceClient(url, token)
    command = args.calibrate_command
    if command in ("run", "zero-check"):
        options = cal.RunOptions(
            points=args.point, cylinders=args.cylinder, operator=args.operator, note=args.note,
            degree=args.degree, through_zero=args.through_zero, activate=not args.no_activate,
            set_simulator_gas=args.set_simulator_gas, zero_check=command == "zero-check",
            gas=args.gas, before_point=args.before_point)
        ask = input if sys.stdin.isatty() and not args.point else None
        return EXIT_OK if cal.run_calibration(client, options, out=out, ask=ask) \
            else EXIT_FAILURE
    if command == "status":
        cal.print_status(client, out)
    elif command == "list":
        cal.print_records(client, out)
    elif command == "show":
        cal.print_record(client, args.id, out)
    elif command == "activate":
        client.post(f"/api/v1/calibration/records/{args.id}/activate",
                    {"operator": args.operator})
        out.write(f"calibration {args.id} active\n")
    elif command == "rollback":
        answer = client.post("/api/v1/calibration/rollback", {"operator": args.operator})
        out.write(f"active now: {answer['active'] or 'the YAML coefficients'}\n")
    elif command == "gas":
        ppm = None if args.ppm == "profile" else _number(args.ppm, "ppm")
        answer = client.post("/api/v1/simulator/gas", {"ppm": ppm})
        out.write(f"simulator gas: {answer['ppm'] if answer['ppm'] is not None else 'profile'}"
                  "\n")
    else:
        hpa = None if args.hpa == "config" else _number(args.hpa, "hpa")
        status = client.post("/api/v1/calibration/pressure", {"hpa": hpa})
        out.write(f"pressure: {status['pressure_hpa']} hPa\n")
    return EXIT_OK


def _positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (a clear usage error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise PafwError(f"{name} {text!r}: expected a number") from None


def _load(path: Path | None) -> ConfigDocument:
    from firmware.config.loader import load_config

    return load_config(path)


def _cmd_run(args: argparse.Namespace) -> int:
    from firmware.app.logging_setup import setup_logging
    from firmware.service.run import Service

    doc = _load(args.config)
    setup_logging(doc.config.logging.level, doc.config.logging.format)
    realtime = doc.config.acquisition.realtime
    realtime = (True if realtime is None else realtime) and not args.no_realtime
    service = Service(doc, realtime=realtime)
    service.install_signal_handlers()
    return service.run(duration_s=args.seconds)


def _cmd_config(args: argparse.Namespace, out: TextIO) -> int:
    from firmware.config.loader import default_config_text

    if args.config_command == "default":
        out.write(default_config_text())
        return EXIT_OK
    from firmware.app.analyzer import check_graph

    doc = _load(args.file)
    check_graph(doc)
    _print_warnings(doc.warnings)
    count = len(doc.warnings)
    warned = f", {count} warning{'s' if count != 1 else ''}" if count else ""
    out.write(f"{args.file}: OK ({len(doc.config.processing.default_graph.nodes)} nodes"
              f"{warned})\n")
    return EXIT_OK


def _cmd_modbus(args: argparse.Namespace, out: TextIO) -> int:
    from firmware.modbus.registers import RegisterMap

    register_map = RegisterMap.from_config(_load(args.config).config)
    out.write(register_map.format_markdown() if args.markdown else register_map.format_text())
    return EXIT_OK


def _print_warnings(warnings: tuple[str, ...] | list[str]) -> None:
    """Config and analysis warnings on stderr, one per line, like errors."""
    if warnings:
        print("pafw: warning:", file=sys.stderr)
        for warning in warnings:
            print(f"  {warning}", file=sys.stderr)


def _cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    from firmware.app.status_file import read_snapshot, snapshot_path
    from firmware.config.loader import load_paths
    from firmware.tools.status import summarize

    path = snapshot_path(load_paths(args.config).state_dir)
    snapshot = read_snapshot(path)
    if snapshot is None:
        raise PafwError(f"no status snapshot at {path}: is `pafw run` running with this "
                        f"config?")
    running, summary = summarize(snapshot)
    out.write(json.dumps(snapshot, indent=2) + "\n" if args.json else summary + "\n")
    return EXIT_OK if running else EXIT_FAILURE


def _cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    import math
    import time

    from firmware.app.export import parse_time, stored_series, write_csv
    from firmware.config.loader import load_paths

    since = -math.inf if args.since is None else parse_time(args.since, "--from")
    until = time.time() if args.until is None else parse_time(args.until, "--to")
    if since > until:
        raise PafwError(f"--from ({args.since}) is after --to ({args.until or 'now'})")
    state_dir = load_paths(args.config).state_dir
    series = stored_series(state_dir, since=since, until=until, node=args.node)
    if args.out is None:
        write_csv(series, out)
        return EXIT_OK
    with args.out.open("w", newline="", encoding="utf-8") as fh:
        rows = write_csv(series, fh)
    print(f"wrote {rows} rows to {args.out}", file=sys.stderr)
    return EXIT_OK


def _cmd_script(args: argparse.Namespace, out: TextIO) -> int:
    from firmware.tools.script_check import check_script_file

    if args.script_command == "push":
        from firmware.tools.script_push import PushTarget, push_script

        target = PushTarget(host=args.host, port=args.port, identity=args.identity,
                            options=args.ssh_option, remote_pafw=args.remote_pafw,
                            remote_config=args.remote_config)
        return EXIT_OK if push_script(target, args.file, name=args.name,
                                      timeout_s=args.timeout, out=out) else EXIT_FAILURE
    doc = _load(args.config) if args.config is not None else None
    report = check_script_file(args.file, doc=doc, node_id=args.node,
                               class_name=args.class_name, name=args.as_name)
    out.write(report.render() + "\n")
    return EXIT_OK if report.ok else EXIT_FAILURE


def _cmd_analyze(args: argparse.Namespace, out: TextIO) -> int:
    from firmware.tools.offline import AnalyzeReport, analyze, detection_warnings, wav_document

    if not args.file.is_file():
        raise PafwError(f"{args.file}: no such file")
    doc = _load(args.config)
    _print_warnings(wav_document(doc, args.file).warnings)
    report = AnalyzeReport()
    if args.out is None:
        analyze(doc, args.file, out, fmt=args.format, report=report)
    else:
        with args.out.open("w", newline="") as fh:
            rows = analyze(doc, args.file, fh, fmt=args.format, report=report)
        print(f"wrote {rows} rows to {args.out}", file=sys.stderr)
    _print_warnings(detection_warnings(report))
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    from firmware.tools.offline import simulate

    doc = _load(args.config)
    truth = simulate(doc, seconds=args.seconds, out_path=args.out,
                     concentration=args.concentration, seed=args.seed,
                     sample_format=args.format)
    print(f"wrote {args.out} and {truth}", file=sys.stderr)
    return EXIT_OK


def _cmd_allan(args: argparse.Namespace, out: TextIO) -> int:
    from firmware.tools.allan import allan_report, record_series, simulator_document

    if (args.file is None) == (args.simulate is None):
        raise PafwError("pafw allan: give a WAV file or --simulate SECONDS (one of them)")
    if args.file is not None and (args.concentration is not None or args.seed is not None):
        raise PafwError("pafw allan: --concentration and --seed go with --simulate")
    doc = _load(args.config)
    if args.simulate is not None:
        doc = simulator_document(doc, concentration=args.concentration, seed=args.seed)
    report = allan_report(record_series(doc, node=args.node, wav_path=args.file,
                                        seconds=args.simulate))
    if args.plot is not None:
        from firmware.tools.allan_plot import plot_allan

        plot_allan(report, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    out.write(json.dumps(report.to_dict()) + "\n" if args.json else report.format_text() + "\n")
    return EXIT_OK


def _cmd_selftest(args: argparse.Namespace, out: TextIO) -> int:
    from firmware.app.selftest import format_report
    from firmware.tools.selftest import selftest_command

    report = selftest_command(_load(args.config), wav_path=args.file)
    out.write(json.dumps(report) + "\n" if args.json else format_report(report) + "\n")
    return EXIT_OK if report["passed"] else EXIT_FAILURE


def _cmd_bench(args: argparse.Namespace, out: TextIO) -> int:
    if args.what == "python-actions":
        from firmware.bench.python_actions import format_python_report, run_python_bench

        figures = run_python_bench(seconds=args.seconds, rounds=args.rounds or 20)
        out.write(json.dumps(figures) + "\n" if args.json
                  else format_python_report(figures) + "\n")
        return EXIT_OK
    if args.what == "web":
        from firmware.bench.web import format_web_report, run_web_bench

        figures = run_web_bench(seconds=args.seconds, rounds=args.rounds or 7,
                                clients=args.clients or 200)
        out.write(json.dumps(figures) + "\n" if args.json
                  else format_web_report(figures) + "\n")
        return EXIT_OK
    if args.what == "modbus":
        from firmware.bench.modbus import format_modbus_report, run_modbus_bench

        figures = run_modbus_bench(seconds=args.seconds, rounds=args.rounds or 7,
                                   clients=args.clients or 20, polls=args.polls)
        out.write(json.dumps(figures) + "\n" if args.json
                  else format_modbus_report(figures) + "\n")
        return EXIT_OK
    if args.what == "footprint":
        from firmware.bench.footprint import format_footprint_report, run_footprint_bench

        figures = run_footprint_bench(config=args.config, settle_s=args.settle,
                                      warm_runs=args.warm_runs,
                                      python_actions=args.python_actions,
                                      imports=not args.no_imports)
        out.write(json.dumps(figures) + "\n" if args.json
                  else format_footprint_report(figures) + "\n")
        return EXIT_OK
    if args.what == "actions":
        from firmware.bench.actions import format_actions_report, run_actions_bench

        figures = run_actions_bench(seconds=args.seconds, rounds=args.rounds or 7)
        out.write(json.dumps(figures) + "\n" if args.json
                  else format_actions_report(figures) + "\n")
        return EXIT_OK
    if args.what == "estimators":
        from firmware.bench.estimators import format_estimator_report, run_estimator_bench

        figures = run_estimator_bench(_load(args.config), trials=args.trials)
        out.write(json.dumps(figures) + "\n" if args.json
                  else format_estimator_report(figures) + "\n")
        return EXIT_OK
    if args.probe_first_result:
        from firmware.bench.first_result import probe_first_result

        probe_first_result(_load(args.config))
        return EXIT_OK
    from firmware.bench.graph import format_report, run_bench

    doc = _load(args.config)
    figures = run_bench(doc, config_path=args.config, frames=args.frames, rounds=args.rounds or 7)
    out.write(json.dumps(figures) + "\n" if args.json else format_report(figures) + "\n")
    return EXIT_OK


def _cmd_health(args: argparse.Namespace, out: TextIO) -> int:
    import time

    from firmware.app.status_file import snapshot_path
    from firmware.config.loader import load_paths
    from firmware.tools.health import HealthGate, report

    if not args.wait >= 0:
        raise PafwError(f"--wait must be 0 or more seconds, got {args.wait}")
    if not args.start_wait >= 0:
        raise PafwError(f"--start-wait must be 0 or more seconds, got {args.start_wait}")
    gate = HealthGate(snapshot_path(load_paths(args.config).state_dir), unit=args.unit,
                      release=args.release, mqtt_required=not args.no_mqtt)
    started = time.monotonic()
    verdict = gate.wait(args.wait, start_timeout_s=args.start_wait)
    out.write(report(verdict, waited_s=time.monotonic() - started) + "\n")
    return EXIT_OK if verdict.healthy else EXIT_FAILURE


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pafw` console script."""
    args = build_parser().parse_args(argv)
    out = sys.stdout
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "config":
            return _cmd_config(args, out)
        if args.command == "status":
            return _cmd_status(args, out)
        if args.command == "export":
            return _cmd_export(args, out)
        if args.command == "script":
            return _cmd_script(args, out)
        if args.command == "analyze":
            return _cmd_analyze(args, out)
        if args.command == "simulate":
            return _cmd_simulate(args)
        if args.command == "allan":
            return _cmd_allan(args, out)
        if args.command == "selftest":
            return _cmd_selftest(args, out)
        if args.command == "modbus":
            return _cmd_modbus(args, out)
        if args.command == "health":
            return _cmd_health(args, out)
        if args.command == "calibrate":
            return _cmd_calibrate(args, out)
        return _cmd_bench(args, out)
    except ConfigError as exc:
        print("pafw: configuration error:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except PafwError as exc:
        print(f"pafw: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
