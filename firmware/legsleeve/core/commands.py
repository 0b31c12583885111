"""What the control core asks of the actuators, as data whose default is the safe state.

The safe state: pump off (duty 0), every inlet closed, every exhaust open (docs/safety-requirements.md). A zone
with no action given is vented, so `Commands()` — and the constant `SAFE` — is the safe state for any number of zones.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ZoneAction(enum.Enum):
    """A zone's valve pair in pneumatic verbs. Which coil state that means is wiring, decided in drivers.py."""

    VENT = "vent"  # inlet closed, exhaust open (the unpowered state)
    HOLD = "hold"  # inlet closed, exhaust closed
    FILL = "fill"  # inlet open, exhaust closed

    # (the module names below, not `ZoneAction.FILL`: on Python 3.11 a member looked up on its class costs ten times
    # as much, and the log asks these of every zone every tick)
    @property
    def inlet_open(self) -> bool:
        return self is FILL

    @property
    def exhaust_open(self) -> bool:
        return self is VENT


VENT, HOLD, FILL = ZoneAction.VENT, ZoneAction.HOLD, ZoneAction.FILL


@dataclass(frozen=True)
class Commands:
    """Pump duty (0-1) and one action per zone, distal to proximal; missing zones vent."""

    pump_duty: float = 0.0
    zones: tuple[ZoneAction, ...] = ()

    def action(self, index: int) -> ZoneAction:
        try:  # (the supervisor's rules ask this of every zone every tick: no len() on the way)
            return self.zones[index]
        except IndexError:
            return VENT

    def actions(self, n: int) -> tuple[ZoneAction, ...]:
        """The actions of zones 0 to n-1, missing zones vented: `action(i)` for each, as one tuple (the supervisor's
        rules read every zone's every tick: one call instead of one a zone)."""
        zones = self.zones
        if len(zones) == n:
            return zones
        return (zones + (VENT,) * n)[:n]

    def is_safe(self) -> bool:
        return self.pump_duty == 0.0 and all(a is VENT for a in self.zones)


SAFE = Commands()
