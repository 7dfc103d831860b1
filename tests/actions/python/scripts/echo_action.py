# ruff: noqa  (customer-style script: names injected by the worker, study code verbatim)
"""A well-behaved action using every part of the API (tests/actions/python)."""

import json
import logging
from datetime import date, datetime, timezone
from firmware.actions.python.sdk import CustomPythonAction as Base


class EchoAction(Base):
    def __init__(self, api):
        super().__init__(api)
        self.threshold = api.get_node_parameter("threshold", 1000.0)
        self.buffer_size = api.get_node_parameter("buffer_size")
        self.events = []
        self.errors = {}
        api.store.set("boots", api.store.get("boots", 0) + 1)  # API requests during __init__
        print("echo action loaded")

    def on_trigger(self, trigger_type, data):
        self.events.append(trigger_type)
        self.concentration = self.api.get_concentration_data("co2_concentration")
        self.api.relay_on("pump")
        try:
            self.api.relay_on("heater")
        except PermissionError as exc:
            self.errors["relay"] = f"{type(exc).__name__}: {exc}"
        try:
            self.api.get_node_statistics("nope")
        except ValueError as exc:
            self.errors["stats"] = f"{type(exc).__name__}: {exc}"
        count = self.api.store.get("count", 0) + 1
        self.api.store.set("count", count)
        self.api.log_message("info", f"trigger {trigger_type} #{count}")
        logging.getLogger("echo").warning("via logging")
        print("data", json.dumps(data, sort_keys=True))
        return data.get("value", 0) > self.threshold

    def on_update(self, computing_data):
        self.last_update = computing_data
        return "ignored"

    def on_clear(self, trigger_type, data):
        self.events.append("clear:" + trigger_type)

    def get_status(self):
        return {"events": self.events, "errors": self.errors,
                "concentration": getattr(self, "concentration", None),
                "history": self.api.get_history_count(),
                "recent": self.api.get_recent_entries(2),
                "config": self.api.get_node_config(),
                "monitored": self.api.get_monitored_node_ids(),
                "buffer_size": self.buffer_size, "keys": self.api.store.keys(),
                "since": datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc),
                "day": date(2024, 5, 1)}

    def on_stop(self):
        self.api.store.set("stopped", True)
