"""What the sensors and the panel said at one sweep: gauge mmHg per sensor, or the reason there is none.

Standard library only. hPa exists only in the sensor adapter (`legsleeve.hw.sensors`); everything past it speaks
these.
"""

from __future__ import annotations

from typing import NamedTuple

UNMEASURED = (
    "unmeasured"  # a one-sensor build's zone not read this tick: no news, not a fault (legsleeve.safety.shared)
)


# Both are named tuples, immutable as a frozen dataclass is and built at a third of its cost (the sweep builds one
# Reading a sensor and a Readings every tick, and the supervisor's median more).
class Reading(NamedTuple):
    """One sensor's gauge pressure at `t_s`, or the reason there is none (`mmhg` is NaN then)."""

    mmhg: float
    t_s: float
    fault: str | None = None

    @property
    def ok(self) -> bool:
        return self.fault is None

    @property
    def unmeasured(self) -> bool:
        """Not read this tick (a one-sensor build reads one zone at a time): the rules carry on as they were."""
        return self.fault == UNMEASURED


class Readings(NamedTuple):
    """Every input once: the zone sensors distal to proximal, the optional manifold sensor, and the panel's
    E-stop and stop button (False where the build has none)."""

    t_s: float
    zones: tuple[Reading, ...]
    manifold: Reading | None = None
    estop_pressed: bool = False
    stop_pressed: bool = False
