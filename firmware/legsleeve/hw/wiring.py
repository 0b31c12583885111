"""The wiring table: every GPIO of a build, what it drives or reads, and where it is on the header, from the config.

`legsleeve wiring` prints it for the user's own hardware.yaml; hardware/wiring.md holds the reference build's
(a test keeps the two in step).
"""

from __future__ import annotations

from legsleeve.config.model import HardwareConfig, PinSpec

SDA, SCL = 2, 3


def _header_pin(gpio: int) -> int:
    from gpiozero.pins.pi import PiBoardInfo

    from legsleeve.config.model import HEADER_REVISION

    for header, info in PiBoardInfo.from_revision(HEADER_REVISION).find_pin(f"GPIO{gpio}"):
        if header.name == "J8":
            return info.number
    raise KeyError(gpio)


def rows(cfg: HardwareConfig) -> list[tuple[str, str, str, str, str]]:
    """(GPIO, header pin, device, direction, how it is wired) for every pin the build uses, in GPIO order."""
    out: list[tuple[int, str, str, str]] = []

    def add(pin: PinSpec, device: str, direction: str, wiring: str) -> None:
        out.append((pin.gpio, device, direction, wiring))

    level = lambda high: "high = energised" if high else "low = energised"  # noqa: E731
    p = cfg.pump
    add(
        p.pin,
        "pump",
        "output, PWM",
        f"logic-level N-MOSFET gate, 10k pull-down, flyback diode; {level(p.active_high)}; "
        f"{p.pwm_hz:g} Hz, min duty {p.min_duty:g}",
    )
    for z in cfg.zones:
        add(
            z.inlet.pin,
            f"{z.name} inlet valve (NC)",
            "output",
            f"MOSFET gate, pull-down, flyback diode; {level(z.inlet.active_high)}, energised = open",
        )
        add(
            z.exhaust.pin,
            f"{z.name} exhaust valve (NO)",
            "output",
            f"MOSFET gate, pull-down, flyback diode; {level(z.exhaust.active_high)}, energised = closed",
        )
    c = cfg.controls
    if c.button:
        add(
            c.button.pin,
            "start/stop button",
            "input",
            "momentary switch to GND" + (", internal pull-up" if c.button.pull_up else ""),
        )
    if c.estop:
        add(
            c.estop.pin,
            "E-stop sense",
            "input",
            "normally-closed E-stop contact to GND (open = stop)" + (", internal pull-up" if c.estop.pull_up else ""),
        )
    if c.led:
        add(c.led.pin, "status LED", "output", f"LED + resistor to GND; {level(c.led.active_high)}")
    if c.buzzer:
        add(c.buzzer.pin, "buzzer", "output", f"active buzzer via transistor; {level(c.buzzer.active_high)}")
    mux = f"TCA9548A at 0x{cfg.i2c.mux_address:02x}" if cfg.i2c.mux_address is not None else "sensor"
    sensors = ", ".join(f"{z.name} ch{z.sensor_channel}" for z in cfg.zones)
    if cfg.has_manifold_sensor:
        sensors += f", manifold ch{cfg.manifold_channel}"
    table = [
        (
            f"GPIO{SDA}",
            str(_header_pin(SDA)),
            "I2C SDA",
            "bus",
            f"{mux}; MPRLS 0x{cfg.i2c.sensor_address:02x}: {sensors}",
        ),
        (f"GPIO{SCL}", str(_header_pin(SCL)), "I2C SCL", "bus", f"{cfg.i2c.frequency_hz // 1000} kHz"),
    ]
    for gpio, device, direction, wiring in sorted(out):
        table.append((f"GPIO{gpio}", str(_header_pin(gpio)), device, direction, wiring))
    return table


def markdown(cfg: HardwareConfig) -> str:
    lines = ["| GPIO | header pin | device | direction | wiring |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in rows(cfg)]
    return "\n".join(lines)


def text(cfg: HardwareConfig) -> str:
    table = [("GPIO", "pin", "device", "direction", "wiring"), *rows(cfg)]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=False)) + "  " + r[4] for r in table)
