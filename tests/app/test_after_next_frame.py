"""The analyzer's one-shot slot: a callback set from any thread runs once on the DSP thread
after the next frame's hooks (the actions' feed asks for its flush this way), and a callback
may set itself again for the frame after."""

from __future__ import annotations

from firmware.app.analyzer import Analyzer
from firmware.config.loader import load_config


def test_a_callback_runs_once_after_the_next_frame_and_may_ask_again(
        state_env: dict[str, str]) -> None:
    analyzer = Analyzer(load_config(env=state_env), realtime=False)
    calls: list[str] = []
    analyzer.frame_hooks.append(lambda: calls.append("hook"))
    asks = iter([True, False])

    def once() -> None:
        calls.append(f"once after frame {analyzer.graph.frames}")
        if next(asks):
            analyzer.call_after_next_frame(once)

    with analyzer.source:
        analyzer.process_frame(analyzer.source.read())
        analyzer.call_after_next_frame(once)
        for _ in range(3):
            analyzer.process_frame(analyzer.source.read())
    assert calls == ["hook", "hook", "once after frame 2", "hook", "once after frame 3",
                     "hook"]
    assert analyzer.after_next_frame is None
