"""Random and half-valid requests never get a 500, never stop the server, never stop the DSP
loop: every answer is a well-formed 2xx/3xx/4xx (or 503 busy) or a closed connection."""

from __future__ import annotations

import socket
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.web.api import ROUTES
from tests.web.conftest import TOKEN, WebRig

PATHS = [r.path.replace("{id}", "alarm_relay").replace("{name}", "alarm") for r in ROUTES]
PATHS += ["/", "/static/app.js", "/static/nope", "/api/v1/actions/%00", "/api/v1/../etc",
          "/api/v1/actions/" + "a" * 300]
TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=40)


@st.composite
def half_valid(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "X"]))
    path = draw(st.sampled_from(PATHS))
    query = draw(st.one_of(st.just(""), TEXT.map(lambda t: "?" + t),
                           st.sampled_from(["?limit=5", "?limit=-3", "?points=10&seconds=10",
                                            "?node=concentration", "?kinds=,,,"])))
    headers = draw(st.dictionaries(
        st.sampled_from(["Content-Type", "Authorization", "Connection", "Last-Event-ID",
                         "If-None-Match", "X-Any"]), TEXT, max_size=4))
    if draw(st.booleans()):
        headers["Authorization"] = f"Bearer {TOKEN}"
    body = draw(st.one_of(st.just(b""), st.binary(max_size=300),
                          st.sampled_from([b'{"seconds": 0.01}', b'{"seconds": 1e999}',
                                           b'{"seconds": null}', b"[]", b'"x"'])))
    if body or draw(st.booleans()):
        headers["Content-Length"] = str(len(body))
    headers.setdefault("Connection", "close")
    head = f"{method} {path}{query} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("utf-8", "replace") + body


def send(rig: WebRig, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", rig.port), timeout=15) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
                if b"text/event-stream" in data:
                    break  # a stream that opened: it would never end
        except (ConnectionResetError, TimeoutError):
            pass
        return data


def check_answer(raw: bytes, answer: bytes) -> None:
    if not answer:
        return
    assert answer.startswith(b"HTTP/1.1 "), (raw[:200], answer[:200])
    status = int(answer[9:12])
    assert status < 500 or status == 503, (raw[:300], answer[:400])


def test_random_requests_never_break_the_server(make_rig: Any) -> None:
    rig: WebRig = make_rig(request_timeout_s=2.0)
    analyzer = rig.appliance.analyzer
    rig.wait_for(lambda: analyzer.frames > 0, what="the first frame")
    frames = analyzer.frames

    @settings(max_examples=400, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(raw=st.one_of(half_valid(), st.binary(min_size=1, max_size=400)
                         .map(lambda b: b + b"\r\n\r\n")))
    def one_request(raw: bytes) -> None:
        check_answer(raw, send(rig, raw))

    one_request()
    assert rig.get("/healthz").status == 200
    rig.wait_for(lambda: analyzer.frames > frames + 2, what="the DSP loop going on")
    assert analyzer.fault is None
