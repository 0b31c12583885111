"""Fault injection for the simulated rig: names, the `NAME[:ZONE]@SECONDS[=VALUE]` text form, and their validation."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

# name -> what it does, for `--help` and the docs
ZONE_FAULTS = {
    "leak": "a hole in the zone's bladder",
    "blocked": "hose kinked between the sensor tee and the bladder",
    "disconnected": "hose pulled off the bladder",
    "inlet-stuck-open": "the zone's inlet valve passes air whatever its coil does",
    "exhaust-stuck-closed": "the zone's exhaust valve never opens",
}
SENSOR_FAULTS = {
    "sensor-dead": "the sensor stops acknowledging its address (I2C NACK)",
    "sensor-stuck": "the sensor's output never changes again",
    "sensor-busy": "the sensor's busy bit never clears",
    "sensor-integrity": "the sensor reports an integrity failure (status bit 0x04)",
    "sensor-spike": f"one conversion in four reads {60} mmHg high",
}
# Sensor errors a chip makes while answering normally: plausible readings of the wrong pressure. Each takes a value.
SENSOR_ERRORS = {
    "sensor-offset": "the sensor's zero steps by VALUE mmHg (-13: it reads 13 mmHg low)",
    "sensor-drift": "the sensor's zero drifts by VALUE mmHg every second from then on",
    "sensor-gain": "the sensor reads VALUE times the true gauge pressure (0.6: 60 mmHg reads as 36)",
    "sensor-lag": "the sensor reports the true pressure of VALUE seconds ago",
    "sensor-frozen": "the sensor reports the pressure of that moment from then on, plus fresh noise of VALUE mmHg "
    "(default: the simulation's sensor noise), so its output keeps moving",
}
PUMP_FAULTS = {
    "pump-dead": "the pump moves no air",
    "pump-stuck-on": "the pump runs at full duty whatever its pin says (a shorted MOSFET)",
}
PANEL_EVENTS = {
    "estop": "someone presses the E-stop (its normally-closed contact opens)",
    "button": "someone presses the start/stop button for 0.2 s",
    "button-hold": "someone holds the start/stop button for 2 s (a long press)",
}
FAULT_NAMES = tuple(ZONE_FAULTS) + tuple(SENSOR_FAULTS) + tuple(SENSOR_ERRORS) + tuple(PUMP_FAULTS)
EVENT_NAMES = FAULT_NAMES + tuple(PANEL_EVENTS)
MANIFOLD = "manifold"


@dataclass(frozen=True)
class ValueRange:
    """What a fault's `=VALUE` means (`what`), its unit, its sane range (`low` excluded when `open_low`), an example."""

    what: str
    unit: str
    low: float
    high: float
    example: float
    required: bool = True
    open_low: bool = False

    def describe(self) -> str:
        low = f"> {self.low:g}" if self.open_low else f">= {self.low:g}"
        return f"{low} and <= {self.high:g}{' ' + self.unit if self.unit else ''}"

    def admits(self, value: float) -> bool:
        above = value > self.low if self.open_low else value >= self.low
        return math.isfinite(value) and above and value <= self.high


# The sane ranges: an MPRLS spans 0-25 psi absolute (0-1293 mmHg, ambient ~760), so a zero shifted by 200 mmHg or
# drifting by 10 mmHg/s is far beyond anything but a broken sensor; a lag of 30 s outlasts any fill.
VALUES = {
    "sensor-offset": ValueRange("a step of the zero in mmHg, both signs", "mmHg", -200.0, 200.0, -13.0),
    "sensor-drift": ValueRange("a drift of the zero in mmHg/s, both signs", "mmHg/s", -10.0, 10.0, -0.2),
    "sensor-gain": ValueRange("a factor on the gauge pressure", "", 0.0, 5.0, 0.6),
    "sensor-lag": ValueRange("a delay in seconds", "s", 0.0, 30.0, 3.0, open_low=True),
    "sensor-frozen": ValueRange(
        "optional, the noise's standard deviation in mmHg", "mmHg", 0.0, 10.0, 0.08, required=False
    ),
}

_PATTERN = re.compile(
    r"^(?P<name>[a-z-]+)(?::(?P<zone>[A-Za-z0-9_.-]+))?@(?P<at>[0-9.eE+-]+)(?:=(?P<value>[^=@:\s]*))?$"
)
_FORM = "NAME[:ZONE]@SECONDS[=VALUE]"


@dataclass(frozen=True)
class FaultSpec:
    name: str
    zone: str | None
    at_s: float
    value: float | None = None  # the size of a sensor error (VALUES gives its unit); None for every other fault

    def __str__(self) -> str:
        zone = f":{self.zone}" if self.zone else ""
        value = f"={_number(self.value)}" if self.value is not None else ""
        return f"{self.name}{zone}@{_number(self.at_s)}{value}"


def _number(x: float) -> str:
    """Short when that loses nothing (`12.5`, `-13`), else every digit: `parse_fault(str(spec))` gives `spec` back."""
    short = f"{x:g}"
    return short if float(short) == x else repr(x)


def parse_fault(text: str, zone_names: Sequence[str], *, has_manifold_sensor: bool = False) -> FaultSpec:
    """Parse `NAME[:ZONE]@SECONDS[=VALUE]`, e.g. `leak:calf@60`, `pump-dead@12.5` or `sensor-offset:ankle@20=-13`.

    VALUE is the size of a sensor error (`SENSOR_ERRORS`), in the unit `VALUES` gives; every other fault takes none.
    Raises ValueError saying why."""
    m = _PATTERN.match(text.strip())
    if not m:
        raise ValueError(f"fault {text!r}: expected {_FORM}, e.g. leak:calf@60 or sensor-offset:ankle@20=-13")
    name, zone, at, raw_value = m["name"], m["zone"], m["at"], m["value"]
    if name not in EVENT_NAMES:
        raise ValueError(f"fault {text!r}: unknown fault {name!r}; known: {', '.join(EVENT_NAMES)}")
    try:
        at_s = float(at)
    except ValueError:
        raise ValueError(f"fault {text!r}: {at!r} is not a time in seconds") from None
    if not math.isfinite(at_s) or at_s < 0:
        raise ValueError(f"fault {text!r}: time must be a finite number of seconds >= 0")
    example_zone = zone or (zone_names[0] if zone_names else "ZONE")
    value = _parse_value(text, name, raw_value, f"{name}:{example_zone}@{at}")
    if name in PUMP_FAULTS or name in PANEL_EVENTS:
        if zone is not None:
            raise ValueError(f"fault {text!r}: {name} concerns the whole sleeve, not a zone; write {name}@{at}")
        return FaultSpec(name, None, at_s)
    sensor = name in SENSOR_FAULTS or name in SENSOR_ERRORS
    allowed = list(zone_names) + ([MANIFOLD] if has_manifold_sensor and sensor else [])
    if zone is None:
        tail = f"={raw_value}" if raw_value is not None else ""
        raise ValueError(f"fault {text!r}: {name} needs a zone, e.g. {name}:{example_zone}@{at}{tail}")
    if zone not in allowed:
        raise ValueError(f"fault {text!r}: no zone {zone!r}; zones: {', '.join(allowed)}")
    return FaultSpec(name, zone, at_s, value)


def _parse_value(text: str, name: str, raw: str | None, example: str) -> float | None:
    spec = VALUES.get(name)
    if spec is None:
        if raw is not None:
            raise ValueError(f"fault {text!r}: {name} takes no value; leave out '={raw}'")
        return None
    if raw is None:
        if spec.required:
            raise ValueError(f"fault {text!r}: {name} needs a value ({spec.what}), e.g. {example}={spec.example:g}")
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"fault {text!r}: {raw!r} is not a number ({name} takes {spec.what})") from None
    if not spec.admits(value):
        raise ValueError(f"fault {text!r}: {name}'s value must be {spec.describe()} (got {raw})")
    return value


def check_value(fault: FaultSpec) -> None:
    """The checks `parse_fault` makes on a value, for a FaultSpec built in code. Raises ValueError."""
    spec = VALUES.get(fault.name)
    if spec is None:
        if fault.value is not None:
            raise ValueError(f"fault {fault}: {fault.name} takes no value")
        return
    if fault.value is None:
        if spec.required:
            raise ValueError(f"fault {fault}: {fault.name} needs a value ({spec.what})")
        return
    if not spec.admits(fault.value):
        raise ValueError(f"fault {fault}: {fault.name}'s value must be {spec.describe()}")
