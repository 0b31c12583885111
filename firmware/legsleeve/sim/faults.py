"""Fault injection for the simulated rig: names, the `NAME[:ZONE]@SECONDS` text form, and their validation."""

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
PUMP_FAULTS = {
    "pump-dead": "the pump moves no air",
    "pump-stuck-on": "the pump runs at full duty whatever its pin says (a shorted MOSFET)",
}
PANEL_EVENTS = {
    "estop": "someone presses the E-stop (its normally-closed contact opens)",
    "button": "someone presses the start/stop button for 0.2 s",
    "button-hold": "someone holds the start/stop button for 2 s (a long press)",
}
FAULT_NAMES = tuple(ZONE_FAULTS) + tuple(SENSOR_FAULTS) + tuple(PUMP_FAULTS)
EVENT_NAMES = FAULT_NAMES + tuple(PANEL_EVENTS)
MANIFOLD = "manifold"

_PATTERN = re.compile(r"^(?P<name>[a-z-]+)(?::(?P<zone>[A-Za-z0-9_-]+))?@(?P<at>[0-9.eE+-]+)$")


@dataclass(frozen=True)
class FaultSpec:
    name: str
    zone: str | None
    at_s: float

    def __str__(self) -> str:
        return f"{self.name}{':' + self.zone if self.zone else ''}@{self.at_s:g}"


def parse_fault(text: str, zone_names: Sequence[str], *, has_manifold_sensor: bool = False) -> FaultSpec:
    """Parse `NAME[:ZONE]@SECONDS`, e.g. `leak:calf@60` or `pump-dead@12.5`. Raises ValueError saying why."""
    m = _PATTERN.match(text.strip())
    if not m:
        raise ValueError(f"fault {text!r}: expected NAME[:ZONE]@SECONDS, e.g. leak:calf@60")
    name, zone, at = m["name"], m["zone"], m["at"]
    if name not in EVENT_NAMES:
        raise ValueError(f"fault {text!r}: unknown fault {name!r}; known: {', '.join(EVENT_NAMES)}")
    try:
        at_s = float(at)
    except ValueError:
        raise ValueError(f"fault {text!r}: {at!r} is not a time in seconds") from None
    if not math.isfinite(at_s) or at_s < 0:
        raise ValueError(f"fault {text!r}: time must be a finite number of seconds >= 0")
    if name in PUMP_FAULTS or name in PANEL_EVENTS:
        if zone is not None:
            raise ValueError(f"fault {text!r}: {name} concerns the whole sleeve, not a zone; write {name}@{at}")
        return FaultSpec(name, None, at_s)
    allowed = list(zone_names) + ([MANIFOLD] if has_manifold_sensor and name in SENSOR_FAULTS else [])
    if zone is None:
        raise ValueError(f"fault {text!r}: {name} needs a zone, e.g. {name}:{zone_names[0]}@{at}")
    if zone not in allowed:
        raise ValueError(f"fault {text!r}: no zone {zone!r}; zones: {', '.join(allowed)}")
    return FaultSpec(name, zone, at_s)
