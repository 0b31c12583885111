"""The Pi back end's choices that can be checked off the Pi: which gpiochip carries the header's GPIOs."""

from __future__ import annotations

import pytest

from legsleeve.errors import HardwareError
from legsleeve.hw.backends import header_chip

BRCMSTB = {10: "gpio-brcmstb@107d508500", 11: "gpio-brcmstb@107d508520", 12: "gpio-brcmstb@107d517c00"}


@pytest.mark.parametrize(
    "labels, expected",
    [
        ({0: "pinctrl-bcm2835", 1: "raspberrypi-exp-gpio"}, 0),  # Pi 3, Zero 2 W
        ({0: "pinctrl-bcm2711", 1: "raspberrypi-exp-gpio"}, 0),  # Pi 4, 400, CM4
        ({0: "gpio-brcmstb@107d508500", 1: "gpio-brcmstb@107d508520", 4: "pinctrl-rp1"}, 4),  # Pi 5, kernel < 6.6.45
        ({0: "pinctrl-rp1", 4: "pinctrl-rp1", **BRCMSTB}, 0),  # Pi 5 since 6.6.45: /dev/gpiochip4 links to 0
    ],
    ids=["pi3", "pi4", "pi5-before-6.6.45", "pi5-since-6.6.45"],
)
def test_the_header_chip_is_found_by_its_label_on_every_pi(labels, expected):
    assert header_chip(labels, labels.__getitem__) == expected


def test_an_unreadable_chip_is_skipped_and_none_found_names_what_was_seen():
    def label_of(n: int) -> str:
        if n == 0:
            raise OSError("can not open gpiochip")
        return {1: "pinctrl-bcm2711"}.get(n, "gpio-sim.0-node0")

    assert header_chip([0, 1], label_of) == 1
    with pytest.raises(HardwareError) as err:
        header_chip([0, 2], label_of)
    message = str(err.value)
    assert "gpiochip0: can not open gpiochip" in message and "gpiochip2 [gpio-sim.0-node0]" in message
    assert "set gpio_chip in hardware.yaml" in message


def test_sensors_on_an_absent_bus_say_why(cfg):
    """`vent` opens the sleeve without its I2C bus if it must (venting needs no sensor); sensors asked of that bus
    are not found, and the reason the bus did not open is in the message."""
    from legsleeve.core.clock import VirtualClock
    from legsleeve.hw.backends import AbsentBus
    from legsleeve.hw.i2c import DeadlineI2C
    from legsleeve.hw.sensors import build_sensors

    clock = VirtualClock()
    bus = DeadlineI2C(AbsentBus("I2C bus 1 (/dev/i2c-1) did not start"), clock, 0.02)
    with pytest.raises(HardwareError, match=r"0x70 does not answer .*I2C bus 1 \(/dev/i2c-1\) did not start"):
        build_sensors(cfg, bus, clock)
