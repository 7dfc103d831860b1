"""Webhook client: POST a JSON payload with a timeout, retries and exponential backoff.

Standard library only (urllib): the blocking request runs in a worker thread through
``asyncio.to_thread`` so the control loop never blocks. Transient failures (connection errors,
timeouts, HTTP 5xx and 429) are retried after ``backoff_s``, doubling each time up to
``max_backoff_s`` (a longer ``Retry-After`` of a 429/503 is honoured within that cap). Other
4xx answers and redirects (never followed: a redirected POST would silently lose its body) fail
at once. Network and HTTP failures never raise: :meth:`WebhookClient.post` returns a
:class:`WebhookOutcome` the caller can record in its history.

``timeout_s`` applies to each socket operation (connect, send, each read), as urllib does.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from firmware.strict_model import StrictModel

log = logging.getLogger("pafw.webhook")

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 header field name
_MAX_RESPONSE = 64 * 1024


class WebhookSettings(StrictModel):
    """Where and how to POST. ``bearer_token`` is typically ``${ENV}`` and never shown."""

    url: str
    timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 5.0
    retries: Annotated[int, Field(ge=0)] = 3
    backoff_s: NonNegative = 0.5
    max_backoff_s: NonNegative = 30.0
    bearer_token: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    verify_tls: bool = True

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname \
                or any(c.isspace() for c in url):
            raise ValueError(f"must be an http:// or https:// URL with a host, got {url!r}")
        if parts.username is not None:
            raise ValueError("credentials in the URL are not supported: use bearer_token "
                             "or headers")
        return url

    @field_validator("headers")
    @classmethod
    def _clean_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _TOKEN.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP token")
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} contains a line break or NUL")
        return headers

    @model_validator(mode="after")
    def _one_authorization(self) -> WebhookSettings:
        if self.bearer_token is not None and any(
                k.lower() == "authorization" for k in self.headers):
            raise ValueError("give either bearer_token or an Authorization header, not both")
        return self


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    """Result of one ``post``: after all attempts, the last status code and error."""

    success: bool
    attempts: int
    status_code: int | None
    error: str | None
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (for history entries and events)."""
        return {"success": self.success, "attempts": self.attempts,
                "status_code": self.status_code, "error": self.error,
                "duration_s": round(self.duration_s, 6)}


@dataclass(frozen=True, slots=True)
class _Attempt:
    success: bool
    status: int | None
    error: str | None
    retryable: bool
    retry_after: float | None = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Turn redirects into HTTPError: urllib would re-send a redirected POST as a bare GET."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> None:
        return None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: ignored, our own backoff applies


class WebhookClient:
    """POSTs JSON payloads to one URL; ``get_status`` reports the counters.

    >>> client = WebhookClient(WebhookSettings(url="http://127.0.0.1:9/hook", retries=0))
    >>> client.get_status()["sent"]
    0
    """

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        context = ssl.create_default_context()
        if not settings.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), _NoRedirect())
        self._headers = {"Content-Type": "application/json", "User-Agent": "pafw-webhook",
                         **settings.headers}
        if settings.bearer_token is not None:
            self._headers["Authorization"] = f"Bearer {settings.bearer_token.get_secret_value()}"
        parts = urlsplit(settings.url)
        self._display_url = f"{parts.scheme}://{parts.netloc}{parts.path}"  # no query string
        self._sent = self._succeeded = self._failed = self._retries = self._in_flight = 0
        self._last_error: str | None = None
        self._last_status: int | None = None
        self._last_duration_s: float | None = None

    async def post(self, payload: Mapping[str, Any]) -> WebhookOutcome:
        """Send ``payload`` as JSON, retrying transient failures; never raises for them.

        A payload that is not JSON-serialisable (NaN, objects) fails with ``attempts == 0``.
        """
        start = time.monotonic()
        self._sent += 1
        try:
            body = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            return self._finish(WebhookOutcome(
                False, 0, None, f"payload is not JSON-serialisable: {exc}", 0.0))
        s = self.settings
        attempts = 0
        self._in_flight += 1
        try:
            while True:
                attempts += 1
                result = await asyncio.to_thread(self._send_once, body)
                if result.success or not result.retryable or attempts > s.retries:
                    break
                delay = min(s.backoff_s * 2 ** (attempts - 1), s.max_backoff_s)
                if result.retry_after is not None:
                    delay = max(delay, min(result.retry_after, s.max_backoff_s))
                self._retries += 1
                log.debug("webhook %s attempt %d failed (%s), retrying in %.2f s",
                          self._display_url, attempts, result.error, delay)
                await asyncio.sleep(delay)
        finally:
            self._in_flight -= 1
        return self._finish(WebhookOutcome(result.success, attempts, result.status,
                                           result.error, time.monotonic() - start))

    def _finish(self, outcome: WebhookOutcome) -> WebhookOutcome:
        if outcome.success:
            self._succeeded += 1
        else:
            self._failed += 1
            self._last_error = outcome.error
            log.warning("webhook %s failed after %d attempt(s): %s", self._display_url,
                        outcome.attempts, outcome.error)
        self._last_status = outcome.status_code
        self._last_duration_s = outcome.duration_s
        return outcome

    def _send_once(self, body: bytes) -> _Attempt:
        """One blocking POST (worker thread); classifies the failure as retryable or not."""
        request = urllib.request.Request(self.settings.url, data=body, headers=self._headers,
                                         method="POST")
        try:
            with self._opener.open(request, timeout=self.settings.timeout_s) as response:
                response.read(_MAX_RESPONSE)
                return _Attempt(True, response.status, None, False)
        except urllib.error.HTTPError as exc:
            code = exc.code
            retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            exc.close()
            text = f"HTTP {code} {exc.reason}"
            if 300 <= code < 400:
                text += " (redirects are not followed)"
            return _Attempt(False, code, text, code == 429 or code >= 500, retry_after)
        except urllib.error.URLError as exc:
            reason = exc.reason
            retryable = not isinstance(reason, ssl.SSLCertVerificationError)
            return _Attempt(False, None, self._describe(reason), retryable)
        except (OSError, http.client.HTTPException) as exc:
            return _Attempt(False, None, self._describe(exc), True)

    def _describe(self, error: object) -> str:
        if isinstance(error, TimeoutError):
            return f"timed out after {self.settings.timeout_s:g} s"
        if isinstance(error, BaseException):
            return f"{type(error).__name__}: {error}"
        return str(error)

    def get_status(self) -> dict[str, Any]:
        """Counters and the last result (a new dict each call; the token is never shown)."""
        return {"url": self._display_url, "sent": self._sent, "succeeded": self._succeeded,
                "failed": self._failed, "retries": self._retries, "in_flight": self._in_flight,
                "last_error": self._last_error, "last_status": self._last_status,
                "last_duration_s": self._last_duration_s}
