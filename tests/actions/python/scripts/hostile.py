# ruff: noqa  (customer-style script: names injected by the worker, study code verbatim)
"""Misbehaving actions, one class per failure (tests/actions/python/test_hostile.py)."""

import time


class InfiniteLoop(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        n = 0
        while True:
            n += 1


class SleepForever(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        time.sleep(3600)
        return True


class MemoryHog(CustomPythonAction):
    """Stays under RLIMIT_AS but over max_memory_mb: the RSS watchdog must kill it."""

    def on_trigger(self, trigger_type, data):
        self.hog = bytearray(data["mb"] << 20)
        time.sleep(30)
        return True


class MemoryBomb(CustomPythonAction):
    """One allocation far beyond RLIMIT_AS: MemoryError at once."""

    def on_trigger(self, trigger_type, data):
        self.hog = bytearray(4 << 30)
        return True


class LogFlood(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        for i in range(data["lines"]):
            print("flood line", i)
        return True


class InitRaises(CustomPythonAction):
    def __init__(self, api):
        super().__init__(api)
        self.limit = api.get_node_parameter("limit")
        raise ValueError("limit is required in python_config")


class NonBool(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        return 1


class BadStatus(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        return True

    def get_status(self):
        return {"items": {1, 2, 3}}


class Oversized(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        return True

    def get_status(self):
        return {"blob": "x" * (2 << 20)}


class Raises(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        return {"a": 1}["missing"]


class Flaky(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        while data.get("hang"):
            pass
        return True
