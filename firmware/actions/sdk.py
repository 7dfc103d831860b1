"""The script author's SDK: ``from firmware.actions.sdk import CustomPythonAction``.

Scripts also get ``CustomPythonAction``, ``PhotoacousticAPI`` and ``RustPhotoacousticAPI``
without importing anything (the design study's scripts rely on that); importing them from here
gives an editor the type hints and docstrings. The implementation lives in
``firmware.actions.python.sdk``, which the worker loads without the rest of the firmware.
"""

from firmware.actions.python.sdk import CustomPythonAction, PhotoacousticAPI, RustPhotoacousticAPI

__all__ = ["CustomPythonAction", "PhotoacousticAPI", "RustPhotoacousticAPI"]
