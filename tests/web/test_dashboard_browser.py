"""The dashboard in headless Chromium (Debian's, driven by Playwright) against a real appliance:
it loads, the live value follows the simulator, an alarm shows when the simulated
concentration crosses the threshold and can be acknowledged from the page, a Python action's
error and a failed reload appear on its card, writes without a token say so, and a phone
gets no horizontal scroll. Full-page screenshots of each scenario are kept as artefacts
(``$PAFW_TEST_ARTIFACTS`` or ``test-artifacts/dashboard/``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.web.browser import CHROMIUM, Dashboard, dashboard, overflowing_elements
from tests.web.conftest import TOKEN, WebRig

if not CHROMIUM.exists():
    pytest.skip(f"Debian's chromium is not installed ({CHROMIUM}; apt install chromium)",
                allow_module_level=True)

from playwright.sync_api import Browser

DEFAULT_ACTIONS = ("mqtt", "alarm_relay", "status_led")
THRESHOLD_PPM = 2000.0  # the default config's high_gas threshold


# ------------------------------------------------------------------------- fixtures
def open_board(browser: Browser, boards: list[Dashboard], rig: WebRig,
               **kwargs: Any) -> Dashboard:
    """A dashboard on ``rig`` in a fresh context, loaded and connected."""
    board = dashboard(browser, rig, **kwargs)
    boards.append(board)
    return board.open()


# ---------------------------------------------------------------------- configs
Change = Callable[[dict[str, Any]], None]


def steps(levels: list[float], step_s: float, *, repeat: bool) -> Change:
    """Config change: a step profile of the simulated concentration; the alarm relay may
    switch at once (no contactor protection times)."""

    def change(data: dict[str, Any]) -> None:
        data["acquisition"]["simulator"]["concentration"] = {
            "profile": "steps", "levels_ppm": levels, "step_s": step_s, "repeat": repeat}
        data["hal"]["relays"]["alarm"].update({"min_on_s": 0.0, "min_off_s": 0.0})

    return change


def wait_for_data(rig: WebRig) -> None:
    """The appliance has a result, a trend point and a spectrum: the page's first requests
    all succeed (a 503 would be a console error)."""
    rig.wait_for(lambda: rig.get("/api/v1/trend").status == 200
                 and rig.get("/api/v1/spectrum").status == 200,
                 timeout=30, what="the first result, trend point and spectrum")


BOOM = '''"""A python_action whose on_trigger fails."""


class Boom:
    def __init__(self, config):
        self.config = config

    def on_trigger(self, trigger_type, data):
        return 1 / 0

    def get_status(self):
        return {"armed": True}
'''
BOOM_LINE = BOOM.splitlines().index("        return 1 / 0") + 1
BROKEN = "class Boom:\n    def __init__(self, config)\n"


def boom_action(scripts_dir: Path) -> Change:
    """Config change: the python_action ``boom`` (script boom.py) on the concentration, with
    a 2000 ppm threshold that the 1000 → 3000 ppm profile crosses after 2 s."""
    profile = steps([1000.0, 3000.0], 2.0, repeat=False)

    def change(data: dict[str, Any]) -> None:
        profile(data)
        data["scripts"] = {"worker_user": None, "hot_reload": False}
        graph = data["processing"]["default_graph"]
        graph["nodes"].append({
            "id": "boom", "type": "python_action", "parameters": {
                "python_script_path": "boom.py", "python_class_name": "Boom",
                "monitored_nodes": ["concentration"],
                "concentration_threshold": THRESHOLD_PPM}})
        graph["connections"].append({"from": "concentration", "to": "boom"})

    scripts_dir.mkdir(parents=True, exist_ok=True)
    (scripts_dir / "boom.py").write_text(BOOM)
    return change


# ------------------------------------------------------------------------ JS bits
IS_NUMBER = "(s) => /^-?\\d+(\\.\\d+)?$/.test(document.querySelector(s)?.textContent ?? '')"
CARD = ".action-card[data-action-id='{}']"
OUTPUT = ".output[data-output='{}']"


def attr_is(selector: str, name: str, value: str) -> str:
    """JS: the element's ``data-<name>`` is ``value``."""
    return (f"() => document.querySelector({json.dumps(selector)})?.dataset.{name} === "
            f"{json.dumps(value)}")


def text_has(selector: str, text: str) -> str:
    """JS: the element's text contains ``text``."""
    return (f"() => (document.querySelector({json.dumps(selector)})?.textContent ?? '')"
            f".includes({json.dumps(text)})")


def exists(selector: str) -> str:
    """JS: the element is in the page."""
    return f"() => document.querySelector({json.dumps(selector)}) !== null"


HEALTH_IS = "(state) => document.body.dataset.health === state"

#: Pixels of a canvas close to an RGB colour: proof that a series was drawn, not just axes.
COLOUR_PIXELS = """([selector, rgb]) => {
  const canvas = document.querySelector(selector);
  if (!canvas || !canvas.width || !canvas.height) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 200 && Math.abs(data[i] - rgb[0]) < 24 &&
        Math.abs(data[i + 1] - rgb[1]) < 24 && Math.abs(data[i + 2] - rgb[2]) < 24) n += 1;
  }
  return n;
}"""
TREND_LINE = (45, 212, 191)  # app.js COLORS.line
SPECTRUM_LINE = (159, 140, 255)  # app.js COLORS.spectrum

#: The page's value and the API's, read at the same moment in the page.
VALUE_AND_API = """async () => {
  const r = await (await fetch('/api/v1/results', {cache: 'no-store'})).json();
  const shown = parseFloat(document.querySelector('#current-value').textContent);
  return [Number.isFinite(shown) ? shown : null,
          r.results.concentration ? r.results.concentration.concentration_ppm : null];
}"""


# --------------------------------------------------------------------------- tests
def test_the_dashboard_loads_with_live_data(browser: Browser, boards: list[Dashboard],
                                            make_rig: Any) -> None:
    rig = make_rig()
    wait_for_data(rig)
    board = open_board(browser, boards, rig)
    page = board.page
    device_id = rig.get("/api/v1/status").body["device"]["id"]
    board.wait(text_has("#device-id", device_id), f"the device id {device_id!r}")
    board.wait(text_has("#device-id", "CO2"), "the gas (device.gas) next to the device id")
    board.wait(text_has("#current-title", "CO2 concentration"), "the gas in the value's title")
    board.wait(IS_NUMBER, "a number in #current-value", arg="#current-value")
    assert board.text("#current-unit") == "ppm"
    board.wait(HEALTH_IS, "health 'ok'", arg="ok")
    release = rig.get("/api/v1/status").body["release"]
    board.wait(text_has("#health-release", release), f"the release {release!r}")

    # the charts: laid out, and drawn with data (the series' own colour on the canvas)
    for canvas in ("#trend-canvas", "#spectrum-canvas"):
        box = page.locator(canvas).bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50, (canvas, box)
    board.wait(text_has("#trend-meta", "concentration.concentration_ppm"),
               "the trend's node in #trend-meta")
    board.wait(IS_NUMBER, "the trend's mean in #range-mean", arg="#range-mean")
    board.wait(f"() => ({COLOUR_PIXELS})(['#trend-canvas', {list(TREND_LINE)}]) > 20",
               "the trend line drawn on #trend-canvas")
    board.wait(text_has("#spectrum-meta", "Peak "), "a peak in #spectrum-meta")
    meta = board.text("#spectrum-meta")
    peak = re.search(r"Peak (\d+(?:\.\d+)?) Hz", meta)
    assert peak is not None, meta
    assert abs(float(peak.group(1)) - 2000.0) < 50.0, meta
    board.wait(f"() => ({COLOUR_PIXELS})(['#spectrum-canvas', {list(SPECTRUM_LINE)}]) > 20",
               "the spectrum drawn on #spectrum-canvas")

    # the default config's actions and outputs
    for action_id in DEFAULT_ACTIONS:
        board.wait(attr_is(CARD.format(action_id), "state", "idle"),
                   f"the {action_id} action's card, idle")
    assert page.locator(".action-card").count() == len(DEFAULT_ACTIONS)
    assert page.locator(".btn-reload").count() == 0  # only python actions reload
    for name, kind in (("alarm", "relay"), ("status", "led")):
        board.wait(attr_is(OUTPUT.format(name), "kind", kind), f"the {name} {kind} output")
    assert page.locator(OUTPUT.format("alarm")).get_attribute("data-on") == "false"
    assert page.locator(f"{OUTPUT.format('alarm')} .btn-pulse").is_visible()
    assert page.locator("#btn-ack-all").is_hidden()
    assert page.locator("#current-cycle").is_hidden()  # no cycle configured

    board.screenshot("loaded.png")
    board.assert_clean()


def test_the_measurement_cycle_shows_its_phase_time_left_and_average(
        browser: Browser, boards: list[Dashboard], make_rig: Any) -> None:
    def with_cycle(data: dict[str, Any]) -> None:
        data["cycle"] = {"enabled": True, "inlets": [{"name": "room", "valve": "valve"}],
                         "phases": [{"name": "measure", "duration_s": 1.0, "measure": True},
                                    {"name": "idle", "duration_s": 120}]}
        data["hal"]["relays"]["valve"] = {"pin": 24}

    rig = make_rig(with_cycle)
    wait_for_data(rig)
    board = open_board(browser, boards, rig)
    board.wait(text_has("#current-phase", "idle · room"), "the idle phase and its inlet")
    board.wait("() => /^\\d+ m \\d+ s left$/.test("
               "document.querySelector('#current-phase-left').textContent)",
               "the time left in the idle phase")
    board.wait("() => /^\\d+\\.\\d ± \\d+\\.\\d+ ppm \\(n \\d+\\) · room$/.test("
               "document.querySelector('#current-average').textContent)",
               "the room inlet's cycle average with its spread and count")
    board.screenshot("cycle.png")
    board.assert_clean()


def test_the_live_value_follows_the_simulator(browser: Browser, boards: list[Dashboard],
                                              make_rig: Any) -> None:
    rig = make_rig(steps([800.0, 1200.0], 2.0, repeat=True))
    wait_for_data(rig)
    board = open_board(browser, boards, rig)
    board.wait(IS_NUMBER, "a number in #current-value", arg="#current-value")

    # both levels shown, each matching the API's value read at the same moment
    shown: set[float] = set()
    matched: dict[str, tuple[float, float]] = {}
    pairs: list[tuple[float | None, float | None]] = []
    for _ in range(400):  # × ≥ 50 ms: at least 20 s (the profile repeats every 4 s)
        value, api = board.page.evaluate(VALUE_AND_API)
        pairs.append((value, api))
        if value is not None:
            shown.add(value)
        if value is None or api is None or 900.0 <= api <= 1100.0:
            pass  # nothing shown yet, or the API's value is mid-step
        elif abs(value - api) <= 0.03 * api:
            matched.setdefault("low" if api < 900.0 else "high", (value, api))
        if len(matched) == 2 and len(shown) >= 5:
            break
        board.page.wait_for_timeout(50)
    assert len(matched) == 2, (
        f"the page did not show both levels as the API gave them (within 3 %): matched "
        f"{matched}, last (page, API) pairs {pairs[-20:]}")
    assert min(shown) < 1000.0 < max(shown), sorted(shown)
    assert len(shown) >= 5, f"the value hardly changed: {sorted(shown)}"
    low, high = matched["low"][0], matched["high"][0]
    assert 700.0 < low < 900.0 and 1100.0 < high < 1300.0, matched

    board.wait("() => parseFloat(document.querySelector('#range-min').textContent) < 900 && "
               "parseFloat(document.querySelector('#range-max').textContent) > 1100",
               "both levels in the trend's min and max")
    board.wait(f"() => ({COLOUR_PIXELS})(['#trend-canvas', {list(TREND_LINE)}]) > 20",
               "the trend line drawn")
    board.screenshot("live.png")
    board.assert_clean()


def test_an_alarm_shows_and_is_acknowledged_from_the_page(
        browser: Browser, boards: list[Dashboard], make_rig: Any) -> None:
    rig = make_rig(steps([1000.0, 3000.0], 5.0, repeat=False))
    wait_for_data(rig)
    board = open_board(browser, boards, rig, record_health=True)
    page = board.page
    relay = OUTPUT.format("alarm")
    board.wait(HEALTH_IS, "health 'ok' before the crossing", arg="ok")

    board.wait(HEALTH_IS, "health 'alarm' after the crossing", arg="alarm", timeout=30)
    seen = page.evaluate("window.__healthSeen")
    assert "ok" in seen and seen.index("ok") < seen.index("alarm"), seen
    board.wait(text_has("#current-status", "alarm"), "#current-status 'alarm'")
    board.wait(attr_is(CARD.format("alarm_relay"), "state", "active"),
               "the alarm_relay card active")
    board.wait(attr_is(relay, "on", "true"), "the alarm relay output on")
    board.wait(text_has("#current-alarms", "high_gas"), "high_gas in the alarm list")
    assert (board.value() or 0.0) > THRESHOLD_PPM, board.text("#current-value")
    board.wait("() => !document.querySelector('#btn-ack-all').hidden",
               "the 'Acknowledge alarm' button shown")
    assert page.locator("#btn-ack-all").is_visible()
    board.screenshot("alarm.png")

    board.save_token(TOKEN)
    page.click("#btn-ack-all")
    board.wait(HEALTH_IS, "health 'acknowledged'", arg="acknowledged")
    board.wait(attr_is(relay, "on", "false"), "the alarm relay silenced")
    board.wait(text_has("#toast", "Acknowledged"), "the acknowledgement in #toast")
    board.wait(attr_is(CARD.format("alarm_relay"), "state", "acknowledged"),
               "the alarm_relay card acknowledged")
    board.wait("() => document.querySelector('#btn-ack-all').hidden",
               "the 'Acknowledge alarm' button hidden again")
    assert rig.get("/api/v1/status").body["health"]["state"] == "acknowledged"
    seen = page.evaluate("window.__healthSeen")
    assert seen[-1] == "acknowledged" and seen.index("alarm") < seen.index("acknowledged"), seen
    board.screenshot("acknowledged.png")
    board.assert_clean()


def test_a_python_actions_error_and_failed_reload_show_on_its_card(
        browser: Browser, boards: list[Dashboard], make_rig: Any,
        state_env: dict[str, str]) -> None:
    scripts = Path(state_env["PAFW_SCRIPTS_DIR"])
    rig = make_rig(boom_action(scripts))
    wait_for_data(rig)
    board = open_board(browser, boards, rig)
    page = board.page
    card = CARD.format("boom")
    where = f"boom.py:{BOOM_LINE}"
    board.wait(text_has(f"{card} .action-error", where),
               f"the exception at {where} on the boom card", timeout=30)
    error = board.text(f"{card} .action-error")
    assert error.startswith("ZeroDivisionError: division by zero"), error
    board.wait("(s) => parseInt(document.querySelector(s)?.textContent) >= 1",
               "a failure counted on the boom card", arg=f"{card} .action-failures")
    assert page.locator(f"{card} .action-failures").evaluate(
        "e => e.classList.contains('bad')")
    assert page.locator(f"{card} .btn-reload").is_visible()
    board.screenshot("python-error.png")

    # a reload from the card with a broken script: refused, the running version stays
    (scripts / "boom.py").write_text(BROKEN)
    board.save_token(TOKEN)
    page.click(f"{card} .btn-reload")
    board.wait(text_has("#toast", "previous version keeps running"),
               "the reload failure in #toast")
    assert page.locator("#toast").get_attribute("data-kind") == "error"
    board.wait(text_has(f"{card} .action-error", "SyntaxError"),
               "the SyntaxError on the boom card")
    # the place once: Python's own "(boom.py, line 2)", no second "(boom.py:2)"
    assert board.text(f"{card} .action-error").endswith("(boom.py, line 2)")
    board.wait(text_has(f"{card} .action-script", "1 failed reload"),
               "the failed reload counted on the boom card")
    assert "worker running" in board.text(f"{card} .action-script")
    board.screenshot("python-reload-failed.png")
    board.assert_clean(allowed_statuses=(422,))


def test_writes_without_the_token_say_so(browser: Browser, boards: list[Dashboard],
                                         make_rig: Any) -> None:
    rig = make_rig()
    wait_for_data(rig)
    board = open_board(browser, boards, rig)
    page = board.page
    board.wait(attr_is(CARD.format("alarm_relay"), "state", "idle"), "the alarm_relay card")
    assert board.text("#token-state") == "no token"

    # every write button is visibly locked, and says why, until a token is entered
    ack = page.locator(f"{CARD.format('alarm_relay')} .btn-ack")
    pulse = page.locator(f"{OUTPUT.format('alarm')} .btn-pulse")
    toggle = page.locator(f"{CARD.format('mqtt')} .btn-toggle")
    for button in (ack, pulse, toggle, page.locator("#btn-ack-all")):
        assert button.is_disabled()
        assert "Enter the API token" in (button.get_attribute("title") or "")
    assert page.evaluate("document.body.dataset.writes") == "locked"
    board.screenshot("locked.png")

    board.save_token("not-the-token")
    for button in (ack, pulse, toggle):
        assert button.is_enabled() and button.get_attribute("title") is None
    page.click(f"{CARD.format('alarm_relay')} .btn-ack")
    board.wait(text_has("#toast", "the bearer token is wrong"), "the 403 message in #toast")
    assert page.locator("#toast").get_attribute("data-kind") == "error"
    assert ack.is_enabled()  # usable again once the answer came
    operator = [e.kind for e in rig.appliance.action_events.since(0)
                if e.kind in {"acknowledged", "enabled", "disabled"}]
    assert operator == []
    board.assert_clean(allowed_statuses=(403,))


def test_controls_stay_locked_when_the_appliance_has_no_token(
        browser: Browser, boards: list[Dashboard], make_rig: Any) -> None:
    rig = make_rig(token="")
    wait_for_data(rig)
    board = open_board(browser, boards, rig)
    page = board.page
    board.wait(attr_is(CARD.format("alarm_relay"), "state", "idle"), "the alarm_relay card")
    board.save_token(TOKEN)
    ack = page.locator(f"{CARD.format('alarm_relay')} .btn-ack")
    board.wait(f"() => document.querySelector({CARD.format('alarm_relay')!r} + ' .btn-ack')"
               f".title.includes('no web.token')", "the no-token reason on the button")
    assert ack.is_disabled()
    board.assert_clean()


def test_a_phone_gets_no_horizontal_scroll(browser: Browser, boards: list[Dashboard],
                                           make_rig: Any, state_env: dict[str, str]) -> None:
    # the widest state: an alarm (header button, alarm list) and a python action's card
    # with its error and reload button
    rig = make_rig(boom_action(Path(state_env["PAFW_SCRIPTS_DIR"])))
    wait_for_data(rig)
    for width, height in ((390, 844), (360, 780)):
        board = open_board(browser, boards, rig, viewport=(width, height), mobile=True)
        page = board.page
        board.wait(IS_NUMBER, "a number in #current-value", arg="#current-value")
        board.wait(HEALTH_IS, "health 'alarm'", arg="alarm", timeout=30)
        board.wait(text_has(f"{CARD.format('boom')} .action-error", "ZeroDivisionError"),
                   "the boom card's error")
        for name in ("alarm", "status"):
            board.wait(exists(OUTPUT.format(name)), f"the {name} output")
        page.evaluate("document.querySelector('#graph-timing').open = true")
        board.wait("() => document.querySelectorAll('#graph-nodes tr').length > 0",
                   "the node timing table")
        assert page.evaluate("window.innerWidth") == width
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"{width} px wide: the page scrolls sideways ({scroll} px)"
        assert overflowing_elements(page, width) == [], f"{width} px wide: off the right edge"
        value = page.locator("#current-value")
        assert value.is_visible()
        box = value.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box
        assert box["y"] + box["height"] <= height, f"the value is below the fold: {box}"
        board.screenshot(f"phone-{width}.png")
        board.assert_clean()


def test_the_page_rides_out_a_server_restart(browser: Browser, boards: list[Dashboard],
                                             make_rig: Any) -> None:
    """The web server goes away (the analyzer keeps measuring) and comes back on the same
    port: the page says so, keeps the last values, and reconnects by itself."""
    from firmware.web.server import WebServer

    rig = make_rig()
    wait_for_data(rig)
    board = open_board(browser, boards, rig)
    port = rig.port
    rig.server.stop()
    board.wait(attr_is("#connection", "connected", "false"), "the page noticing the loss")
    assert board.value() is not None  # the last value stays on screen
    settings = rig.appliance.doc.config.web.model_copy(update={"port": port})
    rig.server = WebServer(rig.appliance, settings, rig.appliance.operations)
    rig.server.start()
    assert rig.server.port == port, rig.server.bind_error
    board.wait(attr_is("#connection", "connected", "true"), "the page reconnected",
               timeout=45)
    before = board.value()
    board.wait(f"() => document.querySelector('#current-value').textContent !== "
               f"{json.dumps(board.page.locator('#current-value').text_content())}",
               "a new value after the reconnection")
    assert before is not None
    assert not board.page_errors, board.page_errors
