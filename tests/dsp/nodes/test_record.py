"""The record node (firmware/dsp/nodes/record.py): where it records, that it copies what passes
(the source reuses its buffer) into WAV files written off the DSP thread, rotation and the total
cap, counters that account for every frame, write errors kept in the status while recording
goes on, and its parameters' checks."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from firmware.app.analyzer import Analyzer
from firmware.config.loader import load_config
from firmware.dsp.nodes.record import RecordParams
from firmware.dsp.sources.wav import read_wav, read_wav_info
from tests.dsp.nodes.building import build, frame
from tests.waiting import wait_until

N = 256
#: bytes of one stereo float32 frame of N samples, in MiB
FRAME_MB = N * 2 * 4 / 2**20


@pytest.fixture
def nodes() -> Iterator[list[Any]]:
    """Record nodes built by a test, closed (their writer threads joined) at its end."""
    built: list[Any] = []
    yield built
    for node in built:
        node.close()


def recorder(nodes: list[Any], tmp_path: Path, parameters: dict[str, Any] | None = None,
             channels: int = 2, node_id: str = "rec") -> Any:
    node = build("record", {"directory": str(tmp_path / "rec"), "sample_format": "float32",
                            **(parameters or {})},
                 node_id=node_id, input_channels=channels, frame_size=N, state_dir=tmp_path)
    nodes.append(node)
    return node


def blocks(count: int, channels: int = 2) -> list[np.ndarray]:
    return [np.full((channels, N), (k + 1) / 64.0) * np.array([[1.0], [-1.0]])[:channels]
            for k in range(count)]


@pytest.mark.parametrize(("parameters", "message"), [
    ({"max_file_mb": 10, "max_total_mb": 5}, "max_file_mb (10.0) must not exceed max_total_mb "
                                             "(5.0)"),
])
def test_a_file_larger_than_the_total_is_refused(parameters: dict[str, Any],
                                                 message: str) -> None:
    with pytest.raises(ValidationError) as info:
        RecordParams.model_validate(parameters)
    assert [e["msg"] for e in info.value.errors()] == [f"Value error, {message}"]


@pytest.mark.parametrize(("parameters", "key"), [
    ({"prefix": "a/b"}, "prefix"), ({"prefix": ""}, "prefix"), ({"prefix": "../x"}, "prefix"),
    ({"sample_format": "float64"}, "sample_format"), ({"max_file_mb": 0}, "max_file_mb"),
    ({"queue_frames": 1}, "queue_frames"), ({"queue_frames": 4097}, "queue_frames"),
])
def test_parameter_limits(parameters: dict[str, Any], key: str) -> None:
    with pytest.raises(ValidationError) as info:
        RecordParams.model_validate(parameters)
    assert [e["loc"] for e in info.value.errors()] == [(key,)]


def test_a_relative_directory_is_in_the_state_dir(tmp_path: Path) -> None:
    relative = build("record", {"directory": "recs/raw"}, state_dir=tmp_path)
    assert relative.directory == tmp_path / "recs" / "raw"
    absolute = build("record", {"directory": str(tmp_path / "abs")}, state_dir=tmp_path / "x")
    assert absolute.directory == tmp_path / "abs"
    assert build("record", state_dir=tmp_path).directory == tmp_path / "recordings"


def test_nothing_is_created_before_the_first_frame(nodes: list[Any], tmp_path: Path) -> None:
    node = recorder(nodes, tmp_path)
    node.close()
    node.close()
    assert not (tmp_path / "rec").exists()
    assert node.get_status() == {"directory": str(tmp_path / "rec"), "written_frames": 0,
                                 "dropped_frames": 0, "failed_frames": 0, "files_written": 0,
                                 "files_deleted": 0, "last_error": None}


@pytest.mark.parametrize("channels", [1, 2])
def test_what_passes_is_recorded(nodes: list[Any], tmp_path: Path, channels: int) -> None:
    node = recorder(nodes, tmp_path, channels=channels)
    sent = blocks(5, channels)
    buffer = np.zeros((channels, N))  # one buffer, refilled like a source's
    for block in sent:
        buffer[:] = block
        assert node.process(buffer, frame()) is buffer  # a pass-through
    buffer[:] = 99.0  # the node copied the frames: this is in no recording
    node.close()
    [path] = node.recordings()
    assert path.name.startswith("pafw-") and path.parent == tmp_path / "rec"
    samples, info = read_wav(path)
    assert (info.channels, info.sample_rate, info.sample_format) == (channels, 48000, "float32")
    np.testing.assert_array_equal(samples, np.hstack(sent))
    status = node.get_status()
    assert (status["written_frames"], status["dropped_frames"], status["files_written"]) == (
        5, 0, 1)


def test_int16_recordings_are_quantised(nodes: list[Any], tmp_path: Path) -> None:
    node = recorder(nodes, tmp_path, {"sample_format": "int16", "prefix": "q"})
    node.process(np.full((2, N), 0.5), frame())
    node.close()
    [path] = node.recordings()
    assert path.name.startswith("q-")
    samples, info = read_wav(path)
    assert info.sample_format == "int16"
    np.testing.assert_array_equal(samples, np.full((2, N), 0.5))


def test_files_rotate_and_the_oldest_go_to_keep_the_total(nodes: list[Any],
                                                          tmp_path: Path) -> None:
    node = recorder(nodes, tmp_path, {"max_file_mb": 2 * FRAME_MB,
                                      "max_total_mb": 5 * FRAME_MB})
    sent = blocks(9)
    for block in sent:
        node.process(block, frame())
    node.close()
    files = node.recordings()
    status = node.get_status()
    assert status["written_frames"] == 9 and status["files_written"] == 5
    # room for the file being written: the finished ones fill the rest of the total
    assert status["files_deleted"] == 3 and len(files) == 2
    assert [read_wav_info(p).frames for p in files] == [2 * N, N]
    np.testing.assert_array_equal(np.hstack([read_wav(p)[0] for p in files]),
                                  np.hstack(sent[6:]))
    assert sum(p.stat().st_size for p in files) <= 5 * FRAME_MB * 2**20 + 2 * 46


def test_every_frame_is_written_or_counted_as_dropped(nodes: list[Any],
                                                      tmp_path: Path) -> None:
    node = recorder(nodes, tmp_path, {"queue_frames": 2})
    for block in blocks(200):
        node.process(block, frame())
    node.close()
    status = node.get_status()
    assert status["written_frames"] + status["dropped_frames"] == 200
    [path] = node.recordings()
    assert read_wav_info(path).frames == status["written_frames"] * N


def test_a_write_error_is_kept_and_recording_goes_on(nodes: list[Any], tmp_path: Path) -> None:
    node = recorder(nodes, tmp_path, {"max_file_mb": FRAME_MB / 2})  # a file per frame
    directory = tmp_path / "rec"
    node.process(np.zeros((2, N)), frame())
    wait_until(lambda: node.written_frames == 1, what="the first frame written")
    shutil.rmtree(directory)
    directory.write_text("a file where the recordings go")
    node.process(np.zeros((2, N)), frame())
    wait_until(lambda: node.last_error is not None, what="the write error")
    assert str(directory) in node.last_error
    directory.unlink()  # a deleted directory is made again
    node.process(np.ones((2, N)), frame())
    wait_until(lambda: node.written_frames == 2, what="recording to resume")
    node.close()
    [path] = node.recordings()
    np.testing.assert_array_equal(read_wav(path)[0], np.ones((2, N)))
    status = node.get_status()
    assert (status["dropped_frames"], status["failed_frames"]) == (0, 1)


def test_a_directory_that_cannot_be_created_does_not_stop_the_dsp_thread(
        nodes: list[Any], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    node = build("record", {"directory": str(tmp_path / "file" / "rec")}, frame_size=N)
    nodes.append(node)
    node.process(np.zeros((2, N)), frame())
    wait_until(lambda: node.last_error is not None, timeout_s=10, what="the error")


def test_two_recorders_in_one_directory_keep_both_recordings(nodes: list[Any],
                                                             tmp_path: Path) -> None:
    # three rounds: the file names collide only when both open in the same second, which
    # all three rounds straddling a second boundary would hide
    for attempt in range(3):
        where = tmp_path / str(attempt)
        first = recorder(nodes, where, node_id="raw")
        second = recorder(nodes, where, node_id="filtered")
        for _ in range(3):
            first.process(np.full((2, N), 0.25), frame())
            second.process(np.full((2, N), -0.5), frame())
        first.close()
        second.close()
        recorded = [read_wav(p)[0] for p in sorted((where / "rec").glob("*.wav"))]
        assert sorted(float(r[0, 0]) for r in recorded) == [-0.5, 0.25]


def test_the_file_being_recorded_is_readable_while_it_grows(nodes: list[Any],
                                                            tmp_path: Path) -> None:
    node = recorder(nodes, tmp_path)
    for block in blocks(4):
        node.process(block, frame())
    wait_until(lambda: node.written_frames == 4, what="the frames written")
    [path] = node.recordings()
    wait_until(lambda: read_wav_info(path).frames == 4 * N, timeout_s=3,
               what="the header to count the frames written")


def test_warm_up_records_nothing(tmp_path: Path, state_env: dict[str, str]) -> None:
    directory = tmp_path / "recordings"
    data = {"acquisition": {"simulator": {"calibration": [0.0, 50000.0]}},
            "processing": {"default_graph": {
                "nodes": [{"id": "input", "type": "input"},
                          {"id": "rec", "type": "record",
                           "parameters": {"directory": str(directory)}}],
                "connections": [{"from": "input", "to": "rec"}]}}}
    analyzer = Analyzer(load_config(text=yaml.safe_dump(data), env=state_env), realtime=False)
    try:
        analyzer.warm_up()
    finally:
        analyzer.stop()
    assert not directory.exists() or list(directory.iterdir()) == []
