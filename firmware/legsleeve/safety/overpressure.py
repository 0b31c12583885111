"""SAFE-4, over-pressure: a zone above its trip level for longer than the debounce, and a pump that runs while
commanded off (seen at the manifold sensor)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from legsleeve.core.commands import FILL, Commands
from legsleeve.core.limits import ABS_MAX_MMHG
from legsleeve.core.readings import Reading, Readings
from legsleeve.safety.trip import Trip


class OverPressure:
    """SAFE-4: a zone above its trip level - min(configured max, its highest target + margin) - for longer than the
    debounce trips. A faulted reading neither starts nor clears the count (the sensor rule judges it).

    `corrections_mmhg` (SAFE-15, with a manifold sensor): how far the manifold read above each zone when the two were
    last compared; a zone is judged at its reading plus that, the higher of its two measurements."""

    raw = True

    rule = "SAFE-4"

    def __init__(
        self,
        names: Sequence[str],
        trip_levels_mmhg: Sequence[float],
        debounce_s: float,
        corrections_mmhg: Sequence[float] | None = None,
    ):
        self.names = list(names)
        self.levels = list(trip_levels_mmhg)
        self.debounce_s = debounce_s
        self.corrections = corrections_mmhg if corrections_mmhg is not None else [0.0] * len(self.names)
        self.reset()

    def reset(self) -> None:
        """Forget everything seen: the monitor is as new (SAFE-13's explicit reset)."""
        self._above_since: list[float | None] = [None] * len(self.names)

    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None:
        levels, corrections, above_since = self.levels, self.corrections, self._above_since
        for i, r in enumerate(readings.zones):
            if r.fault is not None:  # not r.ok
                continue
            mmhg = r.mmhg + corrections[i]  # self.judged(i, r), written out: every zone, every tick
            if mmhg <= levels[i]:
                above_since[i] = None
                continue
            since = self._above_since[i]
            if since is None:
                since = self._above_since[i] = r.t_s
            if mmhg > ABS_MAX_MMHG or r.t_s - since >= self.debounce_s:
                corrected = (
                    f" (read {r.mmhg:.1f} + {self.corrections[i]:.1f} the manifold read more)" if mmhg != r.mmhg else ""
                )
                return Trip(
                    self.rule,
                    self.names[i],
                    mmhg,
                    now_s,
                    f"over-pressure: {mmhg:.1f} mmHg{corrected} above the {self.levels[i]:g} mmHg trip level for "
                    f"{r.t_s - since:.2f} s",
                    "check the profile's targets, and the zone's inlet valve (stuck open?) and hose (kinked "
                    "between sensor and bladder?)",
                )
        return None

    def judged(self, i: int, reading: Reading) -> float:
        """The zone's pressure as this rule judges it: its reading, plus the manifold's excess at the last check."""
        return reading.mmhg + self.corrections[i]

    def above(self, i: int, reading: Reading) -> bool:
        return reading.ok and self.judged(i, reading) > self.levels[i]


class PumpCheck:
    """SAFE-4 at the manifold sensor: with the pump off and every inlet closed the manifold cannot gain air, so a
    rise of `rise_mmhg` above the lowest it read since the pump went off means the pump runs anyway (a shorted
    MOSFET) - and only the E-stop can stop it. A pump coasts for a moment after switch-off: the verdict waits
    SETTLE_S, but the measure starts at switch-off (a runaway pump reaches the relief valve within that moment)."""

    raw = False
    rule = "SAFE-4"
    SETTLE_S = 0.5

    def __init__(self, rise_mmhg: float):
        self.rise = rise_mmhg
        self.reset()

    def reset(self) -> None:
        """Forget everything seen: the monitor is as new (SAFE-13's explicit reset)."""
        self._off_since: float | None = None
        self._low = math.inf

    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None:
        m = readings.manifold
        if m is None:
            return None
        if applied.pump_duty > 0 or FILL in applied.zones:
            self._off_since, self._low = None, math.inf
            return None
        if self._off_since is None:
            self._off_since = now_s
        if not m.ok:
            return None
        self._low = min(self._low, m.mmhg)
        if now_s - self._off_since >= self.SETTLE_S and m.mmhg > self._low + self.rise:
            return pump_runs(now_s, m.mmhg, m.mmhg - self._low, "with every inlet closed")
        return None


def pump_runs(now_s: float, manifold_mmhg: float, rise_mmhg: float, how: str) -> Trip:
    """SAFE-4's verdict on air that keeps coming into the manifold with the pump commanded off."""
    return Trip(
        "SAFE-4",  # PumpCheck.rule (spelled out: mypyc, which may compile this package, reads no rule off a class)
        "manifold",
        manifold_mmhg,
        now_s,
        f"pump runs while commanded off: manifold up {rise_mmhg:.1f} mmHg to {manifold_mmhg:.1f} {how}",
        "the pump's MOSFET may be shorted: press the E-stop or unplug the 12 V supply; the closed "
        "inlets and the relief valve hold it off the sleeve",
    )
