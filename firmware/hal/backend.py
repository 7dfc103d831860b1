"""Choosing gpiozero's pin factory: lgpio on a Pi 5, RPi.GPIO or lgpio on older Pis, mock off-Pi.

The factory is returned to the caller, who passes it to every device (``pin_factory=...``);
``Device.pin_factory`` is never set, so tests and several ``Hal`` objects never share hidden
global state. Detection reads the device-tree model string and imports backends through an
injectable function, so tests can pretend to be a Pi 5, a Pi 4 or a PC::

    >>> backend = make_backend("mock")
    >>> backend.name, backend.simulated
    ('mock', True)

Why these choices: RPi.GPIO cannot drive a Pi 5 (its header GPIOs sit on the RP1 chip), lgpio
talks to ``/dev/gpiochipN`` and works on every model; on older Pis RPi.GPIO is preferred when
installed because it is what Raspberry Pi OS ships and is known to work with ``/dev/gpiomem``
without root.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from gpiozero import Factory
from gpiozero.pins.mock import MockFactory, MockPWMPin

from firmware.hal.errors import BackendUnavailableError
from firmware.hal.settings import BackendName

log = logging.getLogger("pafw.hal")

#: where Linux exposes the board's model string (the second is the same file on older kernels)
MODEL_PATHS: tuple[Path, ...] = (
    Path("/proc/device-tree/model"),
    Path("/sys/firmware/devicetree/base/model"),
)
SIMULATED_MESSAGE = "no Raspberry Pi detected: GPIO outputs are simulated (MockFactory)"

#: backend name -> (gpiozero module, factory class, the package a user installs)
_BACKENDS: dict[str, tuple[str, str, str]] = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory",
              "lgpio (pip install lgpio, or apt install python3-lgpio)"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory",
                "RPi.GPIO (pip install RPi.GPIO, or apt install python3-rpi.gpio)"),
}

Importer = Callable[[str], ModuleType]


@dataclass(frozen=True)
class Platform:
    """What the device tree says this board is (``model`` is None when there is no file)."""

    model: str | None

    @property
    def is_pi(self) -> bool:
        return self.model is not None and self.model.startswith("Raspberry Pi")

    @property
    def generation(self) -> int | None:
        """4 for a Pi 4, 400 or CM4; 5 for a Pi 5, 500 or CM5; None for a Zero or a non-Pi."""
        if not self.is_pi or self.model is None:
            return None
        match = re.match(r"Raspberry Pi (?:Compute Module )?(\d)", self.model)
        return int(match.group(1)) if match else None

    @property
    def has_rp1(self) -> bool:
        """The Pi 5 family, whose header GPIOs are on the RP1 chip (RPi.GPIO cannot drive it)."""
        return (self.generation or 0) >= 5


def detect_platform(*, model_paths: Sequence[Path] = MODEL_PATHS) -> Platform:
    """Read the first readable model file (the string ends with a NUL byte)."""
    for path in model_paths:
        try:
            raw = path.read_bytes()
        except OSError:
            continue
        return Platform(raw.decode("utf-8", "replace").strip("\x00 \n") or None)
    return Platform(None)


def header_gpiochip(platform: Platform, *, dev_dir: Path = Path("/dev")) -> int:
    """The gpiochip of the 40-pin header, as gpiozero's ``LGPIOFactory(chip=None)`` picks it.

    A Pi 5 on a kernel before 6.6.45 has the RP1 header GPIOs on ``gpiochip4`` (``gpiochip0``
    is then an SoC chip); later kernels renumbered RP1 to ``gpiochip0`` and may keep
    ``gpiochip4`` as a link to it, which is resolved so the status shows the real chip.
    """
    if not platform.has_rp1:
        return 0
    chip4 = dev_dir / "gpiochip4"
    if not chip4.exists():
        return 0
    match = re.fullmatch(r"gpiochip(\d+)", chip4.resolve().name)
    return int(match.group(1)) if match else 4


@dataclass(frozen=True)
class Backend:
    """The chosen pin factory and why it was chosen (``reason`` is for the log and status)."""

    name: str
    factory: Factory = field(repr=False)
    chip: int | None
    platform: Platform
    reason: str

    @property
    def simulated(self) -> bool:
        return self.name == "mock"


#: state changes a simulated pin remembers (gpiozero's log grows forever otherwise: a status
#: LED's heartbeat on a dev box running for days would hold tens of MB)
MOCK_STATE_LOG = 10_000


class _BoundedStateLog(list[object]):
    """gpiozero's per-pin state log (a list, sliced by tests) that drops its older half
    once it holds ``MOCK_STATE_LOG`` entries."""

    def append(self, item: object) -> None:
        if len(self) >= MOCK_STATE_LOG:
            del self[: MOCK_STATE_LOG // 2]
        super().append(item)


class BoundedMockPWMPin(MockPWMPin):  # type: ignore[misc]  # gpiozero ships no type hints
    """A simulated PWM-capable pin whose state log is bounded."""

    #: declared here because the base class is untyped (gpiozero's MockPin sets it)
    states: list[object]

    def clear_states(self) -> None:
        super().clear_states()
        self.states = _BoundedStateLog(self.states)


def mock_factory() -> MockFactory:
    """A mock factory whose pins all support PWM, so digital and PWM outputs can mix, and
    whose state logs are bounded."""
    return MockFactory(pin_class=BoundedMockPWMPin)


def _open(name: str, chip: int | None, importer: Importer) -> Factory:
    """Import backend ``name`` and open its factory; HalError says what to install or fix."""
    module_name, class_name, package = _BACKENDS[name]
    try:
        module = importer(module_name)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"GPIO backend {name!r} is not available ({exc}): install {package}"
        ) from None
    except Exception as exc:  # RPi.GPIO raises RuntimeError off a Pi
        raise BackendUnavailableError(f"GPIO backend {name!r} failed to load: {exc}") from None
    factory_class = getattr(module, class_name)
    try:
        factory: Factory = factory_class(chip=chip) if name == "lgpio" else factory_class()
    except Exception as exc:
        where = f" on /dev/gpiochip{chip}" if name == "lgpio" else ""
        raise BackendUnavailableError(
            f"GPIO backend {name!r} could not open the GPIOs{where}: {exc}"
        ) from None
    if name == "lgpio" and getattr(factory, "chip", chip) != chip:
        log.warning("gpiozero opened gpiochip%s instead of %s: upgrade gpiozero to 2.0.1.post3+",
                    getattr(factory, "chip", "?"), chip)
    return factory


def make_backend(
    choice: BackendName = "auto",
    *,
    gpiochip: int | None = None,
    model_paths: Sequence[Path] = MODEL_PATHS,
    dev_dir: Path = Path("/dev"),
    importer: Importer = importlib.import_module,
) -> Backend:
    """Build the pin factory for ``choice`` (the ``hal.backend`` option).

    ``auto``: Pi 5 family -> lgpio; older Pi -> RPi.GPIO if it loads, else lgpio; not a Pi ->
    mock, with a warning that outputs are simulated. A forced backend that cannot load raises
    :class:`BackendUnavailableError` naming the package to install; ``mock`` always works.
    """
    platform = detect_platform(model_paths=model_paths)
    board = platform.model or "no device-tree model"
    if choice == "mock":
        return Backend("mock", mock_factory(), None, platform, "backend: mock in the config")
    if choice == "auto" and not platform.is_pi:
        log.warning("%s [%s]", SIMULATED_MESSAGE, board)
        return Backend("mock", mock_factory(), None, platform, SIMULATED_MESSAGE)
    if choice == "rpigpio" and platform.has_rp1:
        raise BackendUnavailableError(
            f"GPIO backend 'rpigpio' cannot drive a {board}: RPi.GPIO does not support the "
            "RP1 chip of the Pi 5 family; use backend: lgpio (or auto)"
        )
    chip = gpiochip if gpiochip is not None else header_gpiochip(platform, dev_dir=dev_dir)
    if choice != "auto":
        factory = _open(choice, chip, importer)
        used_chip = chip if choice == "lgpio" else None
        return Backend(choice, factory, used_chip, platform, f"backend: {choice} in the config")
    candidates = ["lgpio"] if platform.has_rp1 else ["rpigpio", "lgpio"]
    failures: list[str] = []
    for name in candidates:
        try:
            factory = _open(name, chip, importer)
        except BackendUnavailableError as exc:
            failures.append(str(exc))
            continue
        reason = f"auto: {name} on {board}"
        log.info("GPIO backend %s (%s)", name, reason)
        return Backend(name, factory, chip if name == "lgpio" else None, platform, reason)
    raise BackendUnavailableError(
        f"no GPIO backend works on this {board}: " + "; ".join(failures)
    )
