"""SAFE-12: the E-stop means the safe state now (the stop button is the runner's: it ends a session, not a trip)."""

from __future__ import annotations

from legsleeve.core.commands import Commands
from legsleeve.core.readings import Readings
from legsleeve.safety.trip import Priority, Trip


class EStop:
    """SAFE-12: the E-stop (which also cuts the 12 V actuator supply in hardware) means the safe state now."""

    raw = True

    rule = "SAFE-12"

    def reset(self) -> None:
        """Nothing to forget: the E-stop is judged on each reading alone."""

    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None:
        if readings.estop_pressed:
            return Trip(
                self.rule,
                None,
                None,
                now_s,
                "E-stop pressed",
                "release the E-stop when the sleeve is safe; a new session starts from idle",
                priority=Priority.MEDIUM,
            )
        return None
