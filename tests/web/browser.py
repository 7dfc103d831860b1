"""Helpers for the dashboard's browser tests: Debian's chromium driven by Playwright (never a
downloaded browser), a page that records its errors and every request it makes, waits that
fail with what the page showed, and full-page screenshots kept as test artefacts."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.web.conftest import WebRig

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # belt and braces: no host name resolves, so nothing but 127.0.0.1 can be reached
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
REPO = Path(__file__).resolve().parents[2]
DEFAULT_TIMEOUT_S = 60.0  # a bound for loaded machines: waits end as soon as the page is there

#: The dashboard's visible state, for wait failures: what the page showed when time ran out.
SNAPSHOT_JS = """() => {
  const text = (s) => { const e = document.querySelector(s); return e ? e.textContent : null; };
  return {
    health: document.body.dataset.health,
    connected: document.querySelector('#connection')?.dataset.connected,
    device_id: text('#device-id'),
    current_value: text('#current-value'),
    current_status: text('#current-status'),
    toast: text('#toast'),
    token_state: text('#token-state'),
    ack_all_hidden: document.querySelector('#btn-ack-all')?.hidden,
    spectrum_meta: text('#spectrum-meta'),
    trend_meta: text('#trend-meta'),
    actions: [...document.querySelectorAll('.action-card')].map((c) => ({
      id: c.dataset.actionId, state: c.dataset.state,
      error: c.querySelector('.action-error')?.textContent,
      failures: c.querySelector('.action-failures')?.textContent })),
    outputs: [...document.querySelectorAll('.output')].map(
      (o) => [o.dataset.output, o.dataset.on]),
  };
}"""

#: Records every value ``body[data-health]`` takes, in order, from the first paint on: the
#: browser sees a short state even when the test thread looks too late.
HEALTH_RECORDER_JS = """
window.__healthSeen = [];
new MutationObserver(() => {
  const h = document.body && document.body.dataset.health;
  const seen = window.__healthSeen;
  if (h && seen[seen.length - 1] !== h) seen.push(h);
}).observe(document, {attributes: true, attributeFilter: ['data-health'], subtree: true});
"""


def artifacts_dir() -> Path:
    """Where screenshots go: ``$PAFW_TEST_ARTIFACTS`` or ``<repo>/test-artifacts/dashboard``."""
    configured = os.environ.get("PAFW_TEST_ARTIFACTS")
    path = Path(configured) if configured else REPO / "test-artifacts" / "dashboard"
    path.mkdir(parents=True, exist_ok=True)
    return path


def launch(playwright: Any) -> Browser:
    """Debian's chromium, headless; Playwright gives it an empty profile of its own."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)


@dataclass
class Dashboard:
    """One browser context + page on a rig's dashboard, with what the page reported."""

    rig: WebRig
    context: BrowserContext
    page: Page
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.rig.port}"

    def _console(self, message: ConsoleMessage) -> None:
        # app.js's safe() turns an exception in a handler into a "pafw dashboard:" warning
        if message.type == "error" or (message.type == "warning"
                                       and message.text.startswith("pafw dashboard")):
            self.console_errors.append(f"{message.type}: {message.text}")

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def open(self) -> Dashboard:
        """Load the dashboard and wait for its stream to be up."""
        self.page.goto(self.origin + "/", wait_until="domcontentloaded")
        self.wait('() => document.querySelector("#connection").dataset.connected === "true"',
                  "the live stream connected (#connection[data-connected=true])")
        return self

    def snapshot(self) -> dict[str, Any]:
        """What the dashboard shows now (for failure messages)."""
        try:
            return dict(self.page.evaluate(SNAPSHOT_JS))
        except Exception as exc:  # a failure message must not fail itself
            return {"snapshot_failed": repr(exc)}

    def wait(self, expression: str, what: str, *, arg: Any = None,
             timeout: float = DEFAULT_TIMEOUT_S) -> Any:
        """Wait until the JS function ``expression`` (of ``arg``) returns a truthy value; on
        timeout fail with ``what`` and the page's state.

        It must be a function: Playwright evaluates a function's source once and calls it on
        each poll, but re-evaluates a bare expression with eval() on each poll, which the
        dashboard's Content-Security-Policy (no 'unsafe-eval') refuses after the first."""
        assert "=>" in expression or expression.lstrip().startswith("function"), expression
        try:
            handle = self.page.wait_for_function(expression, arg=arg, timeout=timeout * 1e3,
                                                 polling=50)
        except PlaywrightTimeoutError:
            shown = json.dumps(self.snapshot(), indent=1, ensure_ascii=False)
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what}; the page showed: {shown}; "
                f"page errors: {self.page_errors}; console errors: {self.console_errors}"
            ) from None
        return handle.json_value()

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()

    def value(self) -> float | None:
        """``#current-value`` as a number (None while it shows a dash)."""
        raw = self.page.locator("#current-value").text_content() or ""
        try:
            return float(raw)
        except ValueError:
            return None

    def save_token(self, token: str) -> None:
        self.page.fill("#token-input", token)
        self.page.click("#token-save")
        self.wait('() => document.querySelector("#token-state").textContent === "token set"',
                  "the token stored (#token-state 'token set')")

    def screenshot(self, name: str) -> Path:
        path = artifacts_dir() / name
        # from the top: a sticky header would otherwise sit mid-page in a full-page shot
        self.page.evaluate("() => window.scrollTo(0, 0)")
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self, *, allowed_statuses: tuple[int, ...] = ()) -> None:
        """No page error, no console error (but the browser's own "Failed to load resource"
        line for an HTTP status the test provoked), nothing requested off the rig."""
        expected = tuple(f"status of {s} " for s in allowed_statuses)
        errors = [e for e in self.console_errors
                  if not ("Failed to load resource" in e and any(s in e for s in expected))]
        assert not self.page_errors, f"page errors: {self.page_errors}"
        assert not errors, f"console errors: {errors}"
        foreign = [u for u in self.requests if not u.startswith(self.origin + "/")]
        assert not foreign, f"requests off the rig: {foreign}"


def dashboard(browser: Browser, rig: WebRig, *, viewport: tuple[int, int] = (1280, 900),
              mobile: bool = False, record_health: bool = False) -> Dashboard:
    """A fresh context (own storage, so no token) on ``rig``, not yet loaded."""
    context = browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]}, is_mobile=mobile,
        has_touch=mobile, device_scale_factor=2 if mobile else 1, service_workers="block")
    context.set_default_timeout(DEFAULT_TIMEOUT_S * 1e3)
    page = context.new_page()
    board = Dashboard(rig, context, page)
    page.on("pageerror", lambda exc: board.page_errors.append(str(exc)))
    page.on("console", board._console)
    page.on("request", board._request)
    if record_health:
        page.add_init_script(HEALTH_RECORDER_JS)
    return board


def overflowing_elements(page: Page, width: int) -> list[str]:
    """Visible elements that stick out to the right of a ``width`` px wide screen without a
    scrolling or clipping box of their own that fits (body's overflow-x: hidden would merely
    hide them; a mobile browser would zoom out, widening its layout viewport)."""
    return list(page.evaluate(r"""(width) => {
      const out = [];
      for (const e of document.body.querySelectorAll('*')) {
        const r = e.getBoundingClientRect();
        if (r.width === 0 || r.height === 0 || r.right <= width + 0.5) continue;
        let clipped = false;
        for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
          const style = getComputedStyle(a);
          if (style.overflowX !== 'visible' && a.getBoundingClientRect().right <= width + 0.5) {
            clipped = true;
            break;
          }
        }
        if (!clipped) {
          const cls = typeof e.className === 'string' && e.className
            ? '.' + e.className.trim().split(/\s+/).join('.') : '';
          const name = e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + cls;
          out.push(`${name} right=${r.right.toFixed(0)}`);
        }
      }
      return out;
    }""", width))
