"""Backend choice on a simulated Pi 5, Pi 4 and PC; forced backends; missing-package errors."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from firmware.errors import HalError
from firmware.hal.backend import (
    SIMULATED_MESSAGE,
    Platform,
    detect_platform,
    header_gpiochip,
    make_backend,
)
from firmware.hal.errors import BackendUnavailableError

PI5 = "Raspberry Pi 5 Model B Rev 1.0"
PI4 = "Raspberry Pi 4 Model B Rev 1.4"


class FakeLGPIOFactory:
    def __init__(self, chip=None):
        self.chip = chip


class FakeRPiGPIOFactory:
    pass


class FailingFactory:
    def __init__(self, **kwargs):
        raise RuntimeError("can not open gpiochip")


def importer(*available: str, failing: tuple[str, ...] = ()):
    """An import function that knows only the named backends ('lgpio', 'rpigpio')."""
    modules = {
        "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory", FakeLGPIOFactory),
        "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory", FakeRPiGPIOFactory),
    }
    table: dict[str, ModuleType] = {}
    for name in (*available, *failing):
        module_name, class_name, cls = modules[name]
        table[module_name] = SimpleNamespace(  # type: ignore[assignment]
            **{class_name: FailingFactory if name in failing else cls}
        )
    imported: list[str] = []

    def load(module_name: str) -> ModuleType:
        imported.append(module_name)
        try:
            return table[module_name]
        except KeyError:
            raise ModuleNotFoundError(f"No module named {module_name!r}") from None

    load.imported = imported  # type: ignore[attr-defined]
    return load


@pytest.fixture
def board(tmp_path: Path):
    """Write a device-tree model file (NUL-terminated, as the kernel does); returns its paths."""

    def write(model: str | None) -> tuple[Path, ...]:
        path = tmp_path / "model"
        if model is not None:
            path.write_bytes(model.encode() + b"\x00")
        return (path,)

    return write


@pytest.fixture
def dev(tmp_path: Path) -> Path:
    path = tmp_path / "dev"
    path.mkdir()
    return path


# -- detection -----------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "generation", "rp1"), [
    (PI5, 5, True),
    ("Raspberry Pi Compute Module 5 Rev 1.0", 5, True),
    ("Raspberry Pi 500 Rev 1.0", 5, True),
    (PI4, 4, False),
    ("Raspberry Pi 400 Rev 1.0", 4, False),
    ("Raspberry Pi Compute Module 4 Rev 1.0", 4, False),
    ("Raspberry Pi 3 Model B Plus Rev 1.3", 3, False),
    ("Raspberry Pi Zero 2 W Rev 1.0", None, False),
])
def test_pi_models_are_recognised(board, model, generation, rp1):
    platform = detect_platform(model_paths=board(model))
    assert platform.model == model
    assert platform.is_pi
    assert platform.generation == generation
    assert platform.has_rp1 is rp1


def test_other_boards_and_missing_files_are_not_pis(board, tmp_path):
    assert not detect_platform(model_paths=board("Pine64 RockPro64 v2.1")).is_pi
    assert detect_platform(model_paths=(tmp_path / "none",)) == Platform(None)


def test_second_model_path_is_read_when_first_is_missing(board, tmp_path):
    platform = detect_platform(model_paths=(tmp_path / "missing", *board(PI4)))
    assert platform.generation == 4


def test_pi5_header_chip_follows_the_kernel(dev):
    pi5, pi4 = Platform(PI5), Platform(PI4)
    assert header_gpiochip(pi4, dev_dir=dev) == 0
    assert header_gpiochip(pi5, dev_dir=dev) == 0  # kernel >= 6.6.45 without the link
    (dev / "gpiochip0").touch()
    (dev / "gpiochip4").symlink_to("gpiochip0")  # newer kernel, compatibility link
    assert header_gpiochip(pi5, dev_dir=dev) == 0
    (dev / "gpiochip4").unlink()
    (dev / "gpiochip4").touch()  # kernel < 6.6.45: RP1 really is gpiochip4
    assert header_gpiochip(pi5, dev_dir=dev) == 4
    assert header_gpiochip(pi4, dev_dir=dev) == 0


# -- automatic choice ----------------------------------------------------------------------

def test_pc_gets_simulated_outputs_with_a_clear_log_line(board, caplog):
    load = importer("lgpio", "rpigpio")
    with caplog.at_level(logging.WARNING, logger="pafw.hal"):
        backend = make_backend("auto", model_paths=board(None), importer=load)
    assert backend.name == "mock" and backend.simulated
    assert isinstance(backend.factory, MockFactory)
    assert issubclass(backend.factory.pin_class, MockPWMPin)  # digital and PWM outputs mix
    assert backend.chip is None
    assert SIMULATED_MESSAGE in caplog.text
    assert load.imported == []  # nothing hardware-related is even imported


def test_pi5_uses_lgpio_on_the_header_chip(board, dev):
    (dev / "gpiochip4").touch()
    load = importer("lgpio", "rpigpio")
    backend = make_backend("auto", model_paths=board(PI5), dev_dir=dev, importer=load)
    assert backend.name == "lgpio" and not backend.simulated
    assert isinstance(backend.factory, FakeLGPIOFactory)
    assert backend.factory.chip == backend.chip == 4
    assert "gpiozero.pins.rpigpio" not in load.imported  # RPi.GPIO cannot drive RP1
    assert PI5 in backend.reason


def test_configured_gpiochip_wins(board, dev):
    backend = make_backend("auto", gpiochip=2, model_paths=board(PI5), dev_dir=dev,
                           importer=importer("lgpio"))
    assert backend.factory.chip == backend.chip == 2


def test_pi4_prefers_rpigpio(board, dev):
    backend = make_backend("auto", model_paths=board(PI4), dev_dir=dev,
                           importer=importer("lgpio", "rpigpio"))
    assert backend.name == "rpigpio"
    assert isinstance(backend.factory, FakeRPiGPIOFactory)
    assert backend.chip is None


def test_pi4_falls_back_to_lgpio_on_chip_0(board, dev):
    backend = make_backend("auto", model_paths=board(PI4), dev_dir=dev,
                           importer=importer("lgpio"))
    assert backend.name == "lgpio"
    assert backend.factory.chip == 0


def test_pi4_falls_back_when_rpigpio_imports_but_cannot_open(board, dev):
    backend = make_backend("auto", model_paths=board(PI4), dev_dir=dev,
                           importer=importer("lgpio", failing=("rpigpio",)))
    assert backend.name == "lgpio"


def test_pi_without_any_backend_is_an_error_naming_the_packages(board, dev):
    with pytest.raises(BackendUnavailableError) as info:
        make_backend("auto", model_paths=board(PI4), dev_dir=dev, importer=importer())
    message = str(info.value)
    assert PI4 in message
    assert "install RPi.GPIO" in message and "install lgpio" in message
    assert isinstance(info.value, HalError)


def test_pi5_without_lgpio_is_an_error(board, dev):
    with pytest.raises(BackendUnavailableError, match=r"'lgpio'.*install lgpio"):
        make_backend("auto", model_paths=board(PI5), dev_dir=dev, importer=importer("rpigpio"))


# -- forced backends -----------------------------------------------------------------------

def test_forced_mock_works_even_on_a_pi(board):
    backend = make_backend("mock", model_paths=board(PI5), importer=importer())
    assert backend.name == "mock"
    assert isinstance(backend.factory, MockFactory)
    assert backend.platform.model == PI5


def test_forced_lgpio(board, dev):
    backend = make_backend("lgpio", gpiochip=0, model_paths=board(PI5), dev_dir=dev,
                           importer=importer("lgpio"))
    assert backend.name == "lgpio" and backend.factory.chip == 0


@pytest.mark.parametrize(("choice", "package"), [("lgpio", "lgpio"), ("rpigpio", "RPi.GPIO")])
def test_forced_backend_missing_names_the_package(board, dev, choice, package):
    with pytest.raises(BackendUnavailableError, match=rf"{choice!r}.*install {package} "):
        make_backend(choice, model_paths=board(PI4), dev_dir=dev, importer=importer())


def test_forced_rpigpio_on_a_pi5_is_refused(board, dev):
    with pytest.raises(BackendUnavailableError, match=r"RPi.GPIO does not support.*lgpio"):
        make_backend("rpigpio", model_paths=board(PI5), dev_dir=dev,
                     importer=importer("rpigpio"))


def test_backend_that_cannot_open_names_the_chip(board, dev):
    with pytest.raises(BackendUnavailableError, match=r"/dev/gpiochip0: can not open gpiochip"):
        make_backend("lgpio", model_paths=board(PI4), dev_dir=dev,
                     importer=importer(failing=("lgpio",)))


@pytest.mark.skipif(importlib.util.find_spec("lgpio") is not None, reason="lgpio is installed")
def test_real_import_of_a_missing_backend(board, dev):
    """The default importer really imports gpiozero's module, which needs lgpio."""
    with pytest.raises(BackendUnavailableError, match="install lgpio"):
        make_backend("lgpio", model_paths=board(PI4), dev_dir=dev)


def test_a_simulated_pins_state_log_is_bounded() -> None:
    from firmware.hal.backend import MOCK_STATE_LOG, mock_factory

    pin = mock_factory().pin(5)
    pin.function = "output"
    for i in range(3 * MOCK_STATE_LOG):
        pin.state = i % 2
    assert len(pin.states) <= MOCK_STATE_LOG
    assert [s.state for s in pin.states[-2:]] == [False, True]  # the newest are kept
