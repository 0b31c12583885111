"""The composition root: the sleeve's hardware or the simulated rig, chosen by an explicit flag.

There is no fallback from one to the other. A Pi whose GPIO or I2C will not start is an error (after the safe
state has been driven on whatever did start) - never a quiet switch to simulation, which would hide a broken
sleeve.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from legsleeve.config.model import HardwareConfig
from legsleeve.core.clock import MonotonicClock
from legsleeve.errors import HardwareError
from legsleeve.hw.rig import Rig, build_rig


def open_sim(config: HardwareConfig, *, seed: int = 0, faults: Iterable = (), with_sensors: bool = True) -> Rig:
    """The simulated rig: real drivers on gpiozero's MockFactory and a simulated I2C bus, on a virtual clock."""
    from legsleeve.sim.world import SimWorld

    world = SimWorld(config, seed=seed, faults=faults)
    rig = build_rig(
        config,
        clock=world.clock,
        pin_factory=world.pin_factory,
        i2c_bus=world.bus,
        world=world,
        with_sensors=with_sensors,
    )
    world.connect_panel()
    return rig


# The gpiochip that carries the 40-pin header's GPIOs, by the label its kernel driver gives it: a Pi 1-3 and the
# Zero family (BCM2835/6/7), a Pi 4, 400 and CM4 (BCM2711), a Pi 5 (its RP1). Its number is not fixed: a Pi 5's is
# gpiochip4 on kernels before 6.6.45 and gpiochip0 since (raspberrypi/linux#6144), with a gpiochip4 link on
# Raspberry Pi OS; gpiozero 2.0.1 picks 4 on a Pi 5 whenever /dev/gpiochip4 exists (gpiozero#1166).
HEADER_CHIP_LABELS = ("pinctrl-bcm2835", "pinctrl-bcm2711", "pinctrl-rp1")


def header_chip(chips: Iterable[int], label_of: Callable[[int], str]) -> int:
    """The lowest-numbered gpiochip labelled as a Pi's header bank. `label_of(n)` reads /dev/gpiochipN's label
    (raising OSError when it cannot). Raises HardwareError naming what it found."""
    seen = []
    for n in sorted(set(chips)):
        try:
            label = label_of(n)
        except OSError as exc:
            seen.append(f"gpiochip{n}: {exc}")
            continue
        if label in HEADER_CHIP_LABELS:
            return n
        seen.append(f"gpiochip{n} [{label}]")
    raise HardwareError(
        f"no gpiochip labelled {' or '.join(HEADER_CHIP_LABELS)} (found: {', '.join(seen) or 'none'}): "
        "set gpio_chip in hardware.yaml to the number of the chip that carries the header's GPIOs"
    )


def _dev_gpiochips() -> list[int]:
    return [int(m.group(1)) for p in Path("/dev").glob("gpiochip*") if (m := re.fullmatch(r"gpiochip(\d+)", p.name))]


def _lgpio_label(n: int) -> str:
    """/dev/gpiochipN's label, through lgpio (the chip's ioctl); OSError when it cannot be opened."""
    import lgpio

    try:
        handle = lgpio.gpiochip_open(n)
    except lgpio.error as exc:  # "can not open gpiochip": permissions, or not a chip
        raise OSError(str(exc)) from exc
    try:
        return str(lgpio.gpio_get_chip_info(handle)[3])
    finally:
        lgpio.gpiochip_close(handle)


def _pi_pin_factory(config: HardwareConfig):
    """gpiozero's lgpio back end on the header's gpiochip (hardware.yaml's `gpio_chip`, or the one labelled as the
    header's). Never the mock factory, whatever the environment says."""
    try:
        from gpiozero.pins.lgpio import LGPIOFactory

        chip = config.gpio_chip if config.gpio_chip is not None else header_chip(_dev_gpiochips(), _lgpio_label)
        return LGPIOFactory(chip=chip)
    except HardwareError:  # no header chip: its own message says what was found
        raise
    except Exception as exc:  # no lgpio, no access to the chip, a chip that will not open
        raise HardwareError(
            f"no GPIO library could start (lgpio: {exc}). On the Pi: pip install 'legsleeve[pi]'."
        ) from exc


class AbsentBus:
    """Stands in for an I2C bus that would not open, so that the outputs can still be driven safe: `vent` (and
    ExecStopPost's vent) needs no sensor, so it must not need their bus either. Every transfer raises OSError with
    the reason: sensors built on it are not found, and say why."""

    def __init__(self, reason: str):
        self.reason = reason

    def _absent(self, *args, **kwargs):
        raise OSError(errno.ENODEV, self.reason)

    try_lock = writeto = readfrom_into = writeto_then_readfrom = scan = _absent

    def unlock(self) -> None:
        pass

    def deinit(self) -> None:
        pass


def open_pi(config: HardwareConfig, *, with_sensors: bool = True) -> Rig:
    """The sleeve: gpiozero on lgpio and the Linux I2C bus /dev/i2c-N (i2c.bus) through Blinka's
    ExtendedI2C, which opens any bus by its number (the stock `board` module knows only the board's own).

    A bus that will not open is an error when the sensors are wanted at once; without them (`vent`, `serve`, which
    connects them itself) the rig opens on an AbsentBus, and the missing bus shows when a sensor is asked for."""
    pin_factory = _pi_pin_factory(config)
    bus = config.i2c.bus
    try:
        from adafruit_extended_bus import ExtendedI2C

        # the bus's speed is the kernel's (dtparam=i2c_arm_baudrate); Blinka ignores frequency on Linux
        i2c = ExtendedI2C(bus, frequency=config.i2c.frequency_hz)
    except Exception as exc:
        hint = "is dtparam=i2c_arm=on set?" if bus == 1 else "is the overlay that makes it enabled?"
        error = HardwareError(f"I2C bus {bus} (/dev/i2c-{bus}) did not start ({exc}); {hint}")
        if with_sensors:
            pin_factory.close()
            raise error from exc
        i2c = AbsentBus(str(error))
    return build_rig(config, clock=MonotonicClock(), pin_factory=pin_factory, i2c_bus=i2c, with_sensors=with_sensors)
