"""The wiring table: every GPIO of a build, what it drives or reads, and where it is on the header, from the config;
and each TCA9548A multiplexer on the I2C bus, its address pins and the sensor on each of its channels.

`legsleeve wiring` prints it for the user's own hardware.yaml; hardware/README.md holds the reference build's
(a test keeps the two in step).
"""

from __future__ import annotations

from legsleeve.config.model import MUX_CHANNELS, HardwareConfig, PinSpec
from legsleeve.hw import parts

SDA, SCL = 2, 3
MANIFOLD = "manifold"


def _header_pin(gpio: int) -> int:
    from gpiozero.pins.pi import PiBoardInfo

    from legsleeve.config.model import HEADER_REVISION

    for header, info in PiBoardInfo.from_revision(HEADER_REVISION).find_pin(f"GPIO{gpio}"):
        if header.name == "J8":
            return info.number
    raise KeyError(gpio)


def header_pin(gpio: int) -> int:
    """The physical pin (1-40) of BCM GPIO `gpio` on the 40-pin header."""
    return _header_pin(gpio)


def rows(cfg: HardwareConfig) -> list[tuple[str, str, str, str, str]]:
    """(GPIO, header pin, device, direction, how it is wired) for every pin the build uses, in GPIO order."""
    out: list[tuple[int, str, str, str]] = []

    def add(pin: PinSpec, device: str, direction: str, wiring: str) -> None:
        out.append((pin.gpio, device, direction, wiring))

    level = lambda high: "high = energised" if high else "low = energised"  # noqa: E731
    p = cfg.pump
    add(p.pin, "pump", "output, PWM", f"{_stage(p.active_high)}; {p.pwm_hz:g} Hz, min duty {p.min_duty:g}")
    for z in cfg.zones:
        add(
            z.inlet.pin,
            f"{z.name} inlet valve (NC)",
            "output",
            f"{_stage(z.inlet.active_high)}, energised = open",
        )
        add(
            z.exhaust.pin,
            f"{z.name} exhaust valve (NO)",
            "output",
            f"{_stage(z.exhaust.active_high)}, energised = closed",
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
        add(c.led.pin, "status LED", "output", f"{parts.LED_R} + LED to GND; {level(c.led.active_high)}")
    if c.buzzer:
        add(
            c.buzzer.pin,
            "buzzer",
            "output",
            f"{parts.BUZZER_BASE_R} to a {parts.BUZZER_NPN}'s base ({parts.PULL_DOWN_R} base pull-down), 5 V active "
            f"buzzer on its collector; {level(c.buzzer.active_high)}",
        )
    table = _i2c_rows(cfg)
    for gpio, device, direction, wiring in sorted(out):
        table.append((f"GPIO{gpio}", str(_header_pin(gpio)), device, direction, wiring))
    return table


def _stage(active_high: bool) -> str:
    """How an output's driver is wired (the schematic draws it): a low-side MOSFET stage, or, for an active-low
    output, a driver board's active-low input held off by a pull-up."""
    if active_high:
        return (
            f"{parts.MOSFET} gate via {parts.GATE_R}, {parts.PULL_DOWN_R} gate pull-down, {parts.FLYBACK} flyback; "
            "high = energised"
        )
    return f"active-low driver input via {parts.GATE_R}, {parts.PULL_DOWN_R} pull-up to 3V3; low = energised"


def address_pins(address: int) -> str:
    """How a TCA9548A's A0-A2 pins set `address` (0x70-0x77): each pin tied high adds 1, 2 or 4 to 0x70."""
    bits = address - 0x70
    high = [f"A{n}" for n in range(3) if bits >> n & 1]
    low = [f"A{n}" for n in range(3) if not bits >> n & 1]
    if not high:
        return "A0-A2 low (the board's default)"
    return f"{_and(high)} high (tied to VIN)" + (f", {_and(low)} low" if low else "")


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _i2c_rows(cfg: HardwareConfig) -> list[tuple[str, str, str, str, str]]:
    """SDA and SCL, then one row per multiplexer: its address, how its pins set it, and the sensor on each channel
    (sensor channel n of the config is channel n % 8 of the n // 8-th multiplexer)."""
    i2c = cfg.i2c
    sensor = f"MPRLS at 0x{i2c.sensor_address:02x}"
    khz = f"{i2c.frequency_hz // 1000} kHz"
    sensors = [(z.name, z.sensor_channel) for z in cfg.zones if z.sensor_channel is not None]
    if cfg.manifold_channel is not None:
        sensors.append((MANIFOLD, cfg.manifold_channel))
    if not i2c.mux_addresses:
        return [
            (f"GPIO{SDA}", str(_header_pin(SDA)), "I2C SDA", "bus", f"the {sensor} ({sensors[0][0]}), no multiplexer"),
            (f"GPIO{SCL}", str(_header_pin(SCL)), "I2C SCL", "bus", khz),
        ]
    muxes = ", ".join(f"0x{a:02x}" for a in i2c.mux_addresses)
    which = f"the TCA9548A at {muxes}" if len(i2c.mux_addresses) == 1 else f"every TCA9548A ({muxes})"
    table = [
        (f"GPIO{SDA}", str(_header_pin(SDA)), "I2C SDA", "bus", f"to SDA of {which}"),
        (f"GPIO{SCL}", str(_header_pin(SCL)), "I2C SCL", "bus", f"{khz}; to SCL of {which}"),
    ]
    several = len(i2c.mux_addresses) > 1
    for index, address in enumerate(i2c.mux_addresses):
        on = sorted(
            (channel % MUX_CHANNELS, name, channel)
            for name, channel in sensors
            if channel is not None and channel // MUX_CHANNELS == index
        )
        channels = ", ".join(
            f"SD{local}/SC{local} {name}" + (f" (sensor channel {channel})" if several and index else "")
            for local, name, channel in on
        )
        table.append(
            (
                "",
                "",
                f"TCA9548A at 0x{address:02x}",
                "I2C multiplexer",
                f"{address_pins(address)}; {channels}: an {sensor} on each" if channels else address_pins(address),
            )
        )
    return table


def markdown(cfg: HardwareConfig) -> str:
    lines = ["| GPIO | header pin | device | direction | wiring |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in rows(cfg)]
    return "\n".join(lines)


def text(cfg: HardwareConfig) -> str:
    table = [("GPIO", "pin", "device", "direction", "wiring"), *rows(cfg)]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=False)) + "  " + r[4] for r in table)
