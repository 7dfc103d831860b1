"""Relay and LED control: pulse a relay and blink an LED while an alarm is active.

On a trigger (and, if ``pulse_on_repeat``, on each ``repeat``) the script pulses the relay
``relay`` for ``pulse_s`` seconds (a horn, a valve, a PLC input) and blinks the LED ``led``;
when the trigger clears it switches the LED steadily off. The relay is released by the
appliance itself when the pulse ends, even if the script is killed meanwhile, and every
output goes off when the appliance stops.

The script never touches GPIO: it asks the appliance (``api.relay_pulse``, ``api.led_blink``,
``api.led_off``), which only obeys for the relays and LEDs listed in the node's
``capabilities``. Any other name raises ``PermissionError`` in the script: it is logged,
counted (here in ``denied`` and in the node status ``denied_calls``) and the event is
reported as failed. Counters live in ``api.store``, so they survive worker restarts, hot
reloads and appliance restarts; ``get_status`` shows them.

Do not drive one relay from two actions: the shipped default config has a built-in
``alarm_relay`` node on relay ``alarm``; remove it, or give this script another relay.

Node configuration (under ``processing.default_graph.nodes``; connect it from the
concentration node; ``alarm`` and ``status`` must exist in ``hal.relays`` / ``hal.leds``):

```yaml
- id: alarm_outputs
  type: python_action
  parameters:
    python_script_path: /user_scripts/relay_led_control.py
    python_class_name: RelayLedControl
    monitored_nodes: [concentration]
    triggers:
      - { type: threshold, name: high_co2, kind: concentration, above: 2000.0,
          hysteresis: 100.0, repeat_s: 60.0 }
    python_config:
      relay: alarm            # a name from hal.relays (null: no relay)
      pulse_s: 2.0            # at most the relay's max_pulse_s
      pulse_on_repeat: true   # pulse again on every repeat_s while active
      led: status             # a name from hal.leds (null: no LED)
      blink_on_s: 0.2
      blink_off_s: 0.2
    capabilities:
      relays: [alarm]
      leds: [status]
```
"""

from collections.abc import Callable
from typing import Any

from firmware.actions.sdk import CustomPythonAction, PhotoacousticAPI

COUNTERS = ("triggers", "clears", "pulses", "blinks", "led_offs", "denied", "errors")


class RelayLedControl(CustomPythonAction):
    """Relay pulse + LED blink on trigger, LED off on clear; counters in the store."""

    def __init__(self, api: PhotoacousticAPI) -> None:
        super().__init__(api)
        self.relay: str | None = api.get_node_parameter("relay")
        self.pulse_s = float(api.get_node_parameter("pulse_s", 2.0))
        self.pulse_on_repeat = bool(api.get_node_parameter("pulse_on_repeat", True))
        self.led: str | None = api.get_node_parameter("led")
        self.blink_on_s = float(api.get_node_parameter("blink_on_s", 0.2))
        self.blink_off_s = float(api.get_node_parameter("blink_off_s", 0.2))
        if self.pulse_s <= 0:
            raise ValueError(f"pulse_s must be > 0, got {self.pulse_s}")
        saved = api.store.get("counters", {})
        self.counters = {name: int(saved.get(name, 0)) for name in COUNTERS}
        self.last_denied: str | None = None
        self.last_error: str | None = None

    def on_trigger(self, trigger_type: str, data: dict[str, Any]) -> bool:
        self.counters["triggers"] += 1
        ok = True
        if self.relay and (self.pulse_on_repeat or not data.get("repeat")):
            ok = self._call("pulses", self.api.relay_pulse, self.relay, self.pulse_s) and ok
        if self.led:
            ok = self._call("blinks", self.api.led_blink, self.led, self.blink_on_s,
                            self.blink_off_s) and ok
        self.api.log_message("info", f"{data.get('kind')} {data.get('trigger_name')} "
                                     f"(value {_number(data.get('value'))}, threshold "
                                     f"{_number(data.get('threshold'))}): outputs "
                                     f"{'set' if ok else 'NOT all set'}")
        self._save()
        return ok

    def on_clear(self, trigger_type: str, data: dict[str, Any]) -> bool:
        self.counters["clears"] += 1
        ok = self._call("led_offs", self.api.led_off, self.led) if self.led else True
        self._save()
        return ok

    def get_status(self) -> dict[str, Any]:
        return {"status": "active", "relay": self.relay, "led": self.led, **self.counters,
                "last_denied": self.last_denied, "last_error": self.last_error}

    # ------------------------------------------------------------------------------
    def _call(self, counter: str, call: Callable[..., None], *args: Any) -> bool:
        """One API call; a refusal or a bad name is counted and logged, never raised."""
        try:
            call(*args)
        except PermissionError as exc:  # not in the node's capabilities
            self.counters["denied"] += 1
            self.last_denied = str(exc)
            self.api.log_message("error", f"not granted: {exc}")
            return False
        except (ValueError, KeyError) as exc:  # unknown name, pulse longer than allowed
            self.counters["errors"] += 1
            self.last_error = str(exc)
            self.api.log_message("error", f"refused: {exc}")
            return False
        self.counters[counter] += 1
        return True

    def _save(self) -> None:
        self.api.store.set("counters", self.counters)


def _number(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else str(value)
