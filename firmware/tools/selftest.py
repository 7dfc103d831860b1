"""`pafw selftest`: the microphones' self-test, of the running appliance or offline.

Which one runs is decided by the config's state dir, as `pafw status` reads it: when the
appliance of that config is running, its web API runs the test on the live source (``POST
/api/v1/selftest`` on loopback: the only way, since it holds the sound card) and its results
carry the flags. Otherwise the test opens the configured source itself (the simulator, the
WAV file, or the ALSA device no appliance holds now), reads ``selftest.duration_s`` of it
and runs the same checks; ``pafw selftest FILE.wav`` always checks that file, its declared
sample rate against the configured one.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from firmware.app.analyzer import graph_calibration, graph_specs
from firmware.app.selftest import SelftestReport, no_frames_report, selftest_limits
from firmware.app.status_file import read_snapshot, snapshot_path
from firmware.config.loader import ConfigDocument
from firmware.dsp.selftest_checks import run_checks
from firmware.dsp.sources.factory import make_source
from firmware.errors import PafwError
from firmware.tools.offline import wav_document
from firmware.tools.status import summarize

#: seconds to wait for a running appliance's answer, besides the test's own duration
API_MARGIN_S = 15.0


def offline_selftest(doc: ConfigDocument, *, wav_path: Path | None = None) -> SelftestReport:
    """Read ``selftest.duration_s`` of the configured source (or of ``wav_path``) and check
    it; the sample rate checked is the file's against the configured one (a WAV file), the
    one measured from the frames' arrival (a sound card), or none (the simulator produces
    the configured rate by construction)."""
    configured = doc.config
    if wav_path is not None:
        if not wav_path.is_file():
            raise PafwError(f"{wav_path}: no such file")
        doc = wav_document(doc, wav_path)
    acquisition = doc.config.acquisition
    source = make_source(acquisition, realtime=acquisition.source == "alsa",
                         graph_calibration=graph_calibration(graph_specs(doc)))
    frames = max(2, math.ceil(configured.selftest.duration_s * acquisition.sample_rate
                              / acquisition.frame_size))
    started = time.time()
    chunks: list[np.ndarray] = []
    arrivals: list[tuple[int, float]] = []
    with source:
        while len(chunks) < frames:
            frame = source.read()
            if frame is None:
                break
            chunks.append(frame.samples.copy())
            arrivals.append((frame.sequence, frame.timestamp))
    name = str(wav_path) if wav_path is not None else source.kind
    if not chunks:
        return no_frames_report("offline", started, name, "the source gave no frame")
    if acquisition.source == "simulator":
        measured, basis = None, "the simulator makes the configured rate by construction"
    elif acquisition.source == "wav":
        measured, basis = float(source.sample_rate), "declared by the file"
    else:  # a sound card: real time, measured as the running appliance measures it
        (first_seq, first_t), (last_seq, last_t) = arrivals[0], arrivals[-1]
        span = last_t - first_t
        measured = ((last_seq - first_seq) * acquisition.frame_size / span if span > 0
                    else None)
        basis = ("from the frames' arrival times" if measured is not None
                 else "a single frame: no time span to measure")
    checks = run_checks(np.concatenate(chunks, axis=1), selftest_limits(configured),
                        sample_rate=source.sample_rate, measured_rate=measured,
                        rate_basis=basis)
    return SelftestReport(trigger="offline", timestamp=started,
                          duration_s=time.time() - started, source=name, checks=tuple(checks))


def running_url(doc: ConfigDocument) -> str | None:
    """The web API of the appliance running with ``doc``'s state dir (None: none runs).

    Raises when it runs without a web API, which is then the one way to reach its source."""
    snapshot = read_snapshot(snapshot_path(doc.config.paths.state_dir))
    if snapshot is None or not summarize(snapshot)[0]:
        return None
    web = snapshot.get("web")
    url = web.get("url") if isinstance(web, dict) else None
    if not isinstance(url, str):
        raise PafwError("the appliance runs without its web API (web.enabled: false, or not "
                        "bound): enable it to run the self-test on the live source, or stop "
                        "the appliance for an offline test")
    return url


def appliance_selftest(url: str, *, duration_s: float) -> dict[str, Any]:
    """Ask the appliance at ``url`` to run its self-test; its report as a dict."""
    request = urllib.request.Request(f"{url}/api/v1/selftest", method="POST", data=b"",
                                     headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=2 * duration_s + API_MARGIN_S) as reply:
            report: dict[str, Any] = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        raise PafwError(f"{url}: the self-test was refused: HTTP {exc.code} "
                        f"{exc.read()[:300].decode(errors='replace')}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PafwError(f"{url}: cannot reach the running appliance: {reason}") from None
    return report


def selftest_command(doc: ConfigDocument, *, wav_path: Path | None = None
                     ) -> dict[str, Any]:
    """What `pafw selftest` runs (see the module): the report as a dict."""
    if wav_path is None:
        url = running_url(doc)
        if url is not None:
            return appliance_selftest(url, duration_s=doc.config.selftest.duration_s)
    return offline_selftest(doc, wav_path=wav_path).to_dict()
