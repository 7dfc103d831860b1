"""WorkerSpec (firmware/actions/python/spec.py): its defaults, immutability, and the ``init``
frame it makes: every field a worker needs, JSON-like so it goes through the protocol's
frames unchanged, and holding copies so a change to the frame never reaches the spec."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from firmware.actions.python import protocol
from firmware.actions.python.spec import WorkerSpec

#: spec fields the host and the confinement use themselves (cgroup, egress, frame cap, the
#: scratch mount); a new field must be added to the init frame or here
HOST_SIDE_FIELDS = {"scratch_mb", "max_cpu_percent", "network_hosts", "max_frame_bytes"}


def full_spec() -> WorkerSpec:
    return WorkerSpec(
        node_id="co2_alert", script_path=Path("/srv/scripts/alert.py"), class_name="Alert",
        scripts_dir=Path("/srv/scripts"), python_config={"smtp": {"port": 587}},
        parameters={"threshold": 2000.5, "recipients": ["a@example.com"], "on": True},
        monitored_nodes=["co2_concentration"], allowed_imports=["smtplib"],
        unsafe_allow_refused_imports=["ctypes"], network=True,
        network_hosts=["smtp.example.com:587"], timeout_ms=2500, max_memory_mb=128,
        max_threads=4, max_cpu_percent=25, scratch_mb=8, data_mb=10, run_as_user="pafw-w",
        max_frame_bytes=4096, log_lines_per_s=5)


def test_defaults() -> None:
    spec = WorkerSpec("a", Path("/s/a.py"), "A", Path("/s"))
    assert (spec.timeout_ms, spec.max_memory_mb, spec.max_threads, spec.max_cpu_percent,
            spec.scratch_mb, spec.data_mb, spec.log_lines_per_s) == (5000, 64, 16, 50, 16, 0, 20)
    assert (spec.network, spec.network_hosts, spec.run_as_user) == (False, [], None)
    assert spec.max_frame_bytes == protocol.DEFAULT_MAX_FRAME_BYTES
    assert spec.parameters == {} and spec.parameters is not WorkerSpec(
        "b", Path("/s/b.py"), "B", Path("/s")).parameters  # no shared mutable default


def test_a_spec_cannot_be_changed() -> None:
    spec = full_spec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.timeout_ms = 1  # type: ignore[misc]
    changed = dataclasses.replace(spec, timeout_ms=1)
    assert changed.timeout_ms == 1 and spec.timeout_ms == 2500


def test_the_init_frame_carries_what_the_worker_needs() -> None:
    message = full_spec().init_message()
    assert message == {
        "t": "init", "node_id": "co2_alert", "script_path": "/srv/scripts/alert.py",
        "scripts_dir": "/srv/scripts", "class_name": "Alert",
        "python_config": {"smtp": {"port": 587}},
        "parameters": {"threshold": 2000.5, "recipients": ["a@example.com"], "on": True},
        "monitored_nodes": ["co2_concentration"], "allowed_imports": ["smtplib"],
        "unsafe_allow_refused_imports": ["ctypes"], "network": True, "max_memory_mb": 128,
        "max_threads": 4, "data_mb": 10, "run_as_user": "pafw-w", "log_lines_per_s": 5,
        "timeout_ms": 2500}


def test_every_field_is_in_the_init_frame_or_used_by_the_host() -> None:
    fields = {f.name for f in dataclasses.fields(WorkerSpec)}
    in_frame = set(full_spec().init_message())
    assert fields - in_frame == HOST_SIDE_FIELDS
    assert in_frame - fields == {"t"}  # nothing in the frame that the spec does not hold


def test_the_init_frame_goes_through_the_protocol_unchanged() -> None:
    message = full_spec().init_message()
    frame = protocol.pack(message)
    body = frame[protocol.HEADER.size:]
    assert protocol.body_size(frame[:protocol.HEADER.size], 1 << 20) == len(body)
    assert protocol.unpack(body) == message


def test_the_init_frame_holds_copies_of_the_lists() -> None:
    spec = full_spec()
    message = spec.init_message()
    for key in ("monitored_nodes", "allowed_imports", "unsafe_allow_refused_imports"):
        message[key].append("changed")
    assert spec.monitored_nodes == ["co2_concentration"]
    assert spec.allowed_imports == ["smtplib"] and spec.unsafe_allow_refused_imports == ["ctypes"]


def test_parameters_that_are_not_json_like_cannot_be_sent() -> None:
    spec = dataclasses.replace(full_spec(), parameters={"levels": {1, 2}})
    with pytest.raises(protocol.ProtocolError,
                       match=r"cannot send a 'init' message: message\['parameters'\]\['levels'\] "
                             r"is a set"):
        protocol.pack(spec.init_message())
