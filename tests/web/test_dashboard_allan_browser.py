"""The dashboard's detection-limit panel in headless Chromium against a real appliance: the
Allan-Werle deviation of the live trend (restored from the state dir) drawn log-log in SVG
with the white-noise line and the optimum, the LOD figures under it, the span buttons asking
for another window; before enough seconds are kept it says it is collecting."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.web.browser import CHROMIUM, Dashboard, dashboard
from tests.web.conftest import WebRig
from tests.web.test_selftest_allan_api import write_trend

if not CHROMIUM.exists():
    pytest.skip(f"Debian's chromium is not installed ({CHROMIUM}; apt install chromium)",
                allow_module_level=True)

from playwright.sync_api import Browser

CURVE = "#allan-svg path.allan-curve"


def open_board(browser: Browser, boards: list[Dashboard], rig: WebRig) -> Dashboard:
    rig.wait_for(lambda: rig.get("/api/v1/trend").status == 200
                 and rig.get("/api/v1/spectrum").status == 200, what="the first data")
    board = dashboard(browser, rig)
    boards.append(board)
    return board.open()


def points(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", d)]


def test_the_panel_draws_the_live_allan_deviation_log_log(
        browser: Browser, boards: list[Dashboard], make_rig: Any,
        state_env: dict[str, str]) -> None:
    write_trend(Path(state_env["PAFW_STATE_DIR"]), 3000)

    def steady(data: dict[str, Any]) -> None:
        # the live seconds join the saved trend at its level: the default profile's steps
        # (400..2500 ppm) would dominate the deviation at 1 s as soon as one arrives, and the
        # curve the browser drew would no longer be the one the API gives a moment later
        data["acquisition"]["simulator"]["concentration"] = {"profile": "constant",
                                                             "value_ppm": 1000.0}

    rig = make_rig(steady)
    board = open_board(browser, boards, rig)
    board.wait(f"() => Number(document.querySelector({json.dumps(CURVE)})"
               "?.dataset.points) >= 10", "the Allan curve drawn")
    curve = points(board.page.get_attribute(CURVE, "d") or "")
    api = rig.get("/api/v1/allan?seconds=3600").body
    taus = [t for t, s in zip(api["tau_s"], api["sigma"], strict=True) if s > 0]
    assert len(curve) >= len(taus) - 2  # the same curve (a few new seconds may have come)
    # log-log: x is linear in log(tau), y in log(sigma) (same points as the API's)
    n = min(len(curve), len(taus))
    xs, ys = np.array([p[0] for p in curve[:n]]), np.array([p[1] for p in curve[:n]])
    log_tau = np.log10(taus[:n])
    log_sigma = np.log10([s for s in api["sigma"] if s > 0][:n])
    for coords, logs in ((xs, log_tau), (ys[:n // 2], log_sigma[:n // 2])):
        fit = np.polyfit(logs, coords, 1)
        assert np.max(np.abs(np.polyval(fit, logs) - coords)) < 1.5
    assert curve[-1][1] > curve[0][1]  # SVG y grows downwards: a lower sigma
    white = points(board.page.get_attribute("#allan-svg path.allan-white", "d") or "")
    assert len(white) == len(curve) and white[0] == curve[0]  # through the first point
    assert board.page.locator("#allan-svg circle.allan-opt").count() == 1
    meta = board.text("#allan-meta")
    assert "LOD (3σ) at 1 s:" in meta and "ppm" in meta and "optimum τ" in meta

    board.page.click("[data-allan-span='21600']")
    board.wait("() => document.querySelector(\"[data-allan-span='21600']\")"
               ".getAttribute('aria-pressed') === 'true'", "the 6 h span selected")
    board.wait("() => performance.getEntriesByType('resource')"
               ".some((e) => e.name.includes('/api/v1/allan?seconds=21600'))",
               "the 6 h window asked for")
    board.screenshot("allan-panel.png")
    board.assert_clean()


def test_without_enough_trend_it_says_it_is_collecting(
        browser: Browser, boards: list[Dashboard], make_rig: Any) -> None:
    rig = make_rig()
    board = open_board(browser, boards, rig)
    board.wait("() => (document.querySelector('#allan-svg text.allan-message')?.textContent"
               " ?? '').startsWith('Collecting the trend')", "the collecting message")
    assert board.page.locator(CURVE).count() == 0
    board.assert_clean()
