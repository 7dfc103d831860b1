# ruff: noqa  (customer-style script: names injected by the worker, study code verbatim)
"""Imports a refused module: the worker must refuse to load it, naming this line."""
import json

import subprocess


class Forbidden(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        return subprocess is not None
