"""The composition root: the sleeve's hardware or the simulated rig, chosen by an explicit flag.

There is no fallback from one to the other. A Pi whose GPIO or I2C will not start is an error (after the safe
state has been driven on whatever did start) - never a quiet switch to simulation, which would hide a broken
sleeve.
"""

from __future__ import annotations

from collections.abc import Iterable

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


def _pi_pin_factory():
    """lgpio first (the only one on a Pi 5), then RPi.GPIO. Never the mock factory, whatever the environment says."""
    errors = []
    try:
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    except Exception as exc:  # noqa: BLE001 - try the next library
        errors.append(f"lgpio: {exc}")
    try:
        from gpiozero.pins.rpigpio import RPiGPIOFactory

        return RPiGPIOFactory()
    except Exception as exc:  # noqa: BLE001
        errors.append(f"RPi.GPIO: {exc}")
    raise HardwareError(
        "no GPIO library could start (" + "; ".join(errors) + "). On the Pi: pip install 'legsleeve[pi]'. "
        "On a PC, use the simulated rig with --sim."
    )


def open_pi(config: HardwareConfig, *, with_sensors: bool = True) -> Rig:
    """The sleeve: gpiozero on lgpio/RPi.GPIO and the Linux I2C bus through Blinka."""
    pin_factory = _pi_pin_factory()
    try:
        import board
        import busio

        # frequency is set by dtparam=i2c_arm_baudrate on Linux; Blinka ignores it here
        i2c = busio.I2C(board.SCL, board.SDA, frequency=config.i2c.frequency_hz)
    except Exception as exc:
        pin_factory.close()
        raise HardwareError(f"I2C bus {config.i2c.bus} did not start ({exc}); is dtparam=i2c_arm=on set?") from exc
    return build_rig(config, clock=MonotonicClock(), pin_factory=pin_factory, i2c_bus=i2c, with_sensors=with_sensors)
