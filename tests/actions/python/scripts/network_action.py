# ruff: noqa  (customer-style script: names injected by the worker, study code verbatim)
"""Opens a TCP connection; needs allowed_imports ["socket"], and network for it to work."""

import socket


class Connect(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        with socket.create_connection(("127.0.0.1", data["port"]), timeout=1):
            return True
