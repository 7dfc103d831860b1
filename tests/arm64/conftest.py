"""The arm64 proof takes an hour and more under emulation: its tests run only when asked for
by marker (``pytest -m arm64``, which ``./dev test-arm64`` does); any other run, the default
``./dev test`` included, deselects them."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "arm64" in (config.option.markexpr or ""):
        return
    deselected = [item for item in items if item.get_closest_marker("arm64") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.get_closest_marker("arm64") is None]
