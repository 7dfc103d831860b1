"""Home Assistant MQTT discovery: which entities an analyzer announces, and their configs.

The configs point Home Assistant at topics the appliance publishes anyway, so discovery adds
no traffic of its own besides the retained configs:

- ``<base>/<device>/measurements`` (JSON ``{"seq", "ts", "time", "results": {node: result}}``,
  one result per node as ``ComputingResult.to_dict()``): one sensor per concentration node
  (ppm) and two per peak node (frequency in Hz, amplitude in dB), each picking its value with
  a ``value_template``. A node missing from a message, or a NaN value (``null`` in JSON),
  renders ``None``, which Home Assistant shows as "unknown" instead of logging errors.
- ``<base>/<device>/state/alarm_<name>`` and ``state/relay_<name>`` (retained ``ON``/``OFF``):
  one binary sensor each. Relays are announced read-only: switching them is the firmware's
  job, not the dashboard's.
- the calibration's due state (``ok``, ``due``, ``overdue``): a sensor that reads the
  ``calibration_due``/``calibration_overdue`` flags of the calibrated node's result in the
  same measurements message.
- ``<base>/<device>/cycle_average`` (or ``cycle_average/<inlet>`` per gas inlet), JSON
  ``{"ts", "time", "cycle", "inlet", "phase", "results": {node: result}}`` at the end of each
  measure phase of the measurement cycle: one sensor per averaged node (and inlet) with the
  mean, and the ``average`` statistics (n, standard deviations) as its attributes.
- ``<base>/<device>/state/selftest`` (retained JSON of the newest self-test: ``passed``,
  ``failed``, ``checks``...): a binary sensor of device class ``problem`` and entity category
  ``diagnostic``, on while a check fails, with the report as its attributes.
- ``<base>/<device>/availability`` (retained ``online``/``offline``, with the LWT): every
  entity goes unavailable when the appliance dies.

Topics are ``<prefix>/<component>/<device_id>/<object>/config``; ``object`` and
``unique_id`` derive from the device id and the node/alarm/relay name, so they are stable
across restarts and unique across analyzers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from firmware.actions.mqtt.settings import check_topic_level

MODEL = "Photoacoustic gas analyzer"


@dataclass
class DiscoveryEntities:
    """What to announce: graph node ids, alarm (trigger) names and relay names."""

    concentration_nodes: list[str] = field(default_factory=list)
    peak_nodes: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    relays: list[str] = field(default_factory=list)
    #: the calibrated concentration node, whose results carry the due flags (None: none)
    calibration_node: str | None = None
    #: (averaged node, its result kind, inlet or None) of the measurement cycle's averages
    cycle_averages: list[tuple[str, str, str | None]] = field(default_factory=list)
    #: the self-test's result (``state/selftest``) as a diagnostic problem sensor
    selftest: bool = False


def cycle_average_topic(root: str, inlet: str | None) -> str:
    """The topic of the cycle averages (of one inlet) under ``<base>/<device>``.

    >>> cycle_average_topic("pafw/lab1", None), cycle_average_topic("pafw/lab1", "room")
    ('pafw/lab1/cycle_average', 'pafw/lab1/cycle_average/room')
    """
    return f"{root}/cycle_average" if inlet is None else f"{root}/cycle_average/{inlet}"


def object_name(*parts: str) -> str:
    """Lower-case ``[a-z0-9_]`` identifier built from ``parts`` (HA's object_id rules)."""
    text = "_".join(parts).lower()
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9_]", "_", text)).strip("_")


def _template(node: str, key: str) -> str:
    """Jinja template that reads one value of one node from the measurements JSON."""
    n = node.replace("\\", "\\\\").replace("'", "\\'")
    return (f"{{{{ value_json.results['{n}'].{key} if '{n}' in value_json.results "
            "else None }}")


def discovery_messages(
    entities: DiscoveryEntities,
    *,
    device_id: str,
    device_name: str,
    base_topic: str,
    prefix: str,
    gas_device_class: str,
    gas_name: str,
    software_version: str,
    alarm_device_class: str = "problem",
) -> list[tuple[str, dict[str, Any]]]:
    """Discovery config messages ``(topic, payload)`` for ``entities``; publish them retained.

    >>> msgs = discovery_messages(DiscoveryEntities(concentration_nodes=["co2"]),
    ...     device_id="lab1", device_name="Lab", base_topic="pafw", prefix="homeassistant",
    ...     gas_device_class="carbon_dioxide", gas_name="CO2", software_version="1.0")
    >>> msgs[0][0], msgs[0][1]["unit_of_measurement"]
    ('homeassistant/sensor/lab1/co2_concentration/config', 'ppm')
    """
    root = f"{base_topic}/{device_id}"
    common: dict[str, Any] = {
        "availability_topic": f"{root}/availability",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [device_id],
            "name": device_name,
            "manufacturer": "pafw",
            "model": MODEL,
            "sw_version": software_version,
        },
        "origin": {"name": "pafw", "sw": software_version},
    }
    out: list[tuple[str, dict[str, Any]]] = []
    seen: dict[str, str] = {}

    def add(component: str, obj: str, config: dict[str, Any]) -> None:
        raw, obj = obj, object_name(obj)
        uid = object_name(device_id, obj)
        if uid in seen:
            raise ValueError(f"discovery: {raw!r} and {seen[uid]!r} both map to the entity id "
                             f"{uid!r}; rename one of them")
        seen[uid] = raw
        payload = {**config, "unique_id": uid, "object_id": uid, **common}
        out.append((f"{prefix}/{component}/{device_id}/{obj}/config", payload))

    measurements = f"{root}/measurements"
    for node in entities.concentration_nodes:
        add("sensor", f"{node}_concentration", {
            "name": f"{gas_name} ({node})" if len(entities.concentration_nodes) > 1
            else gas_name,
            "device_class": gas_device_class,
            "unit_of_measurement": "ppm",
            "state_class": "measurement",
            "state_topic": measurements,
            "value_template": _template(node, "concentration_ppm"),
            "suggested_display_precision": 0,
        })
    for node in entities.peak_nodes:
        add("sensor", f"{node}_frequency", {
            "name": f"Peak frequency ({node})",
            "device_class": "frequency",
            "unit_of_measurement": "Hz",
            "state_class": "measurement",
            "state_topic": measurements,
            "value_template": _template(node, "frequency_hz"),
            "suggested_display_precision": 2,
        })
        add("sensor", f"{node}_amplitude", {
            "name": f"Peak amplitude ({node})",
            "unit_of_measurement": "dB",
            "state_class": "measurement",
            "state_topic": measurements,
            "value_template": _template(node, "amplitude_db"),
            "suggested_display_precision": 1,
        })
    for node, kind, inlet in entities.cycle_averages:
        key = "concentration_ppm" if kind == "concentration" else "amplitude"
        n = node.replace("\\", "\\\\").replace("'", "\\'")
        suffix = "" if inlet is None else f" {inlet}"
        add("sensor", f"{node}_cycle_average{'' if inlet is None else '_' + inlet}", {
            "name": f"Cycle average ({node}{suffix})",
            **({"device_class": gas_device_class, "unit_of_measurement": "ppm",
                "suggested_display_precision": 0} if kind == "concentration" else
               {"suggested_display_precision": 6}),
            "state_class": "measurement",
            "state_topic": cycle_average_topic(root, inlet),
            "value_template": _template(node, key),
            "json_attributes_topic": cycle_average_topic(root, inlet),
            "json_attributes_template": (f"{{{{ value_json.results['{n}'].average | tojson "
                                         f"if '{n}' in value_json.results else {{}} }}}}"),
        })
    for name in [*entities.alarms, *entities.relays]:
        check_topic_level(name, "alarm or relay name")
    for name in entities.alarms:
        add("binary_sensor", f"alarm_{name}", {
            "name": f"Alarm {name}",
            "device_class": alarm_device_class,
            "state_topic": f"{root}/state/alarm_{name}",
            "payload_on": "ON",
            "payload_off": "OFF",
        })
    for name in entities.relays:
        add("binary_sensor", f"relay_{name}", {
            "name": f"Relay {name}",
            "device_class": "power",
            "state_topic": f"{root}/state/relay_{name}",
            "payload_on": "ON",
            "payload_off": "OFF",
        })
    if entities.calibration_node is not None:
        n = entities.calibration_node.replace("\\", "\\\\").replace("'", "\\'")
        add("sensor", "calibration", {
            "name": "Calibration",
            "icon": "mdi:calendar-clock",
            "entity_category": "diagnostic",
            "device_class": "enum",
            "options": ["ok", "due", "overdue"],
            "state_topic": measurements,
            "value_template": (
                f"{{% if '{n}' in value_json.results %}}{{% set f = value_json.results['{n}']"
                ".flags %}{{ 'overdue' if 'calibration_overdue' in f else 'due' if "
                "'calibration_due' in f else 'ok' }}{% else %}{{ None }}{% endif %}"),
        })
    if entities.selftest:
        add("binary_sensor", "selftest", {
            "name": "Self-test",
            "device_class": "problem",
            "entity_category": "diagnostic",
            "state_topic": f"{root}/state/selftest",
            "value_template": "{{ 'OFF' if value_json.passed else 'ON' }}",
            "json_attributes_topic": f"{root}/state/selftest",
            "json_attributes_template": "{{ {'failed': value_json.failed, 'time': "
                                        "value_json.time, 'checks': value_json.checks} "
                                        "| tojson }}",
            "payload_on": "ON",
            "payload_off": "OFF",
        })
    return out
