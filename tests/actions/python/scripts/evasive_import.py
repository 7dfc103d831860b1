# ruff: noqa  (customer-style script: names injected by the worker, study code verbatim)
"""Imports through the builtins dict, which the static check does not see: the runtime
guard must refuse it, naming this file and line."""


class Evasive(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        importer = globals()["__builtins__"]["__import__"]
        module = importer("subprocess")
        return module is not None
