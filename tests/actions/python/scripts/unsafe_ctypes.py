# ruff: noqa  (customer-style script: names injected by the worker, study code verbatim)
"""Needs unsafe_allow_refused_imports=["ctypes"] (containment tests only)."""

import ctypes


class Segfault(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        ctypes.string_at(0)
        return True
