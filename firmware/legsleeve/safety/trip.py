"""What a safety rule says when it trips, how loud, and the shape every rule (monitor) has."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from legsleeve.core.commands import Commands
from legsleeve.core.readings import Reading, Readings


class Priority(enum.Enum):
    """Alarm priority, lowest first; the value orders them."""

    LOW = 1  # news: a session ended, the session limit
    MEDIUM = 2  # a fault that stopped the session: leak, sensor, E-stop
    HIGH = 3  # latched danger: over-pressure, cannot vent, a runaway pump

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Trip:
    """A rule's verdict: the sleeve goes to the safe state and stays there (SAFE-13) until a person resets it."""

    rule: str  # "SAFE-4"
    zone: str | None
    reading_mmhg: float | None
    t_s: float
    reason: str
    hint: str
    priority: Priority = Priority.HIGH
    cannot_vent: bool = False  # the zone stays under pressure whatever the outputs do: the worst news there is

    def __str__(self) -> str:
        where = f" {self.zone}" if self.zone else ""
        return f"{self.rule}{where}: {self.reason}"


class Monitor(Protocol):
    """One safety rule: checked every tick, on time handed in, against what the outputs did since last time."""

    rule: str  # its requirement, "SAFE-n"
    raw: bool  # True: sees every reading as it came; False: sees the median of each sensor's last three

    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None:
        """A Trip when the rule is broken, else None."""

    def reset(self) -> None:
        """Forget everything seen, as new."""


def all_readings(readings: Readings) -> list[Reading]:
    """The zone sensors, then the manifold sensor if the build has one."""
    return [*readings.zones, *([readings.manifold] if readings.manifold else [])]
