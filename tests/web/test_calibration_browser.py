"""The dashboard's calibration panel (firmware/web/static/calibration.js) in headless
Chromium against a running appliance on the simulator: due state, a calibration measured,
fitted and stored from the page, then rolled back and activated again from the records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.web.browser import CHROMIUM, Dashboard, dashboard
from tests.web.conftest import TOKEN, WebRig
from tests.web.test_calibration_api import fast_calibration

if not CHROMIUM.exists():
    pytest.skip(f"Debian's chromium is not installed ({CHROMIUM}; apt install chromium)",
                allow_module_level=True)

from playwright.sync_api import Browser


def has_text(selector: str, text: str) -> str:
    return (f"() => (document.querySelector({json.dumps(selector)})?.textContent ?? '')"
            f".includes({json.dumps(text)})")


def measure(board: Dashboard, rig: WebRig, ppm: float) -> None:
    assert rig.post("/api/v1/simulator/gas", {"ppm": ppm}, token=TOKEN).status == 200
    rows = int(board.page.evaluate("() => document.querySelectorAll('#cal-points tr').length"))
    board.page.fill("#cal-ppm", f"{ppm:g}")
    board.page.click("#cal-measure")
    board.wait(f"() => document.querySelectorAll('#cal-points tr').length === {rows + 1}",
               f"the {ppm:g} ppm point measured", timeout=30)


def test_a_calibration_from_the_panel(browser: Browser, make_rig: Any) -> None:
    rig = make_rig(fast_calibration)
    rig.wait_for(lambda: rig.get("/api/v1/trend").status == 200, timeout=30, what="data")
    board = dashboard(browser, rig)
    try:
        board.open()
        board.wait(has_text("#cal-due", "calibration due"), "the due pill")
        board.wait(has_text("#cal-active", "YAML coefficients [0, 50000]"), "YAML in use")
        board.save_token(TOKEN)
        board.page.fill("#cal-operator", "Fay")
        board.page.click("#cal-begin")
        board.wait("() => !document.querySelector('#cal-session').hidden", "the session box")
        for ppm in (0.0, 500.0, 1000.0, 2000.0):
            measure(board, rig, ppm)
        board.page.click("#cal-fit-btn")
        board.wait(has_text("#cal-fit", "degree 2, R²"), "the fit shown")
        board.page.click("#cal-commit")
        board.wait(has_text("#cal-active", "by Fay"), "the new record in use")
        board.wait(has_text("#cal-due", "calibration ok"), "no longer due")
        manager = rig.appliance.calibration
        assert manager is not None and manager.node.active.record_id is not None
        record_id = manager.node.active.record_id
        board.page.click("#cal-records-panel summary")
        board.page.click("#cal-rollback")
        board.wait(has_text("#cal-active", "YAML coefficients"), "rolled back")
        board.page.click(f"tr[data-record-id='{record_id}'] .cal-activate")
        board.wait(has_text("#cal-active", record_id), "activated again")
        board.screenshot("calibration-panel.png")
        board.assert_clean()
    finally:
        board.context.close()
