"""SAFE-10, how much and how long the leg is squeezed: a reverse gradient between inflated zones, time above the
venous-safe pressure, and the session time limit."""

from __future__ import annotations

from collections.abc import Sequence

from legsleeve.core.commands import VENT, Commands
from legsleeve.core.readings import Readings
from legsleeve.safety.trip import Priority, Trip


class ReverseGradient:
    """SAFE-10: of two inflated zones, the proximal one must not read more than `margin` above the distal one for
    longer than `max_s` (safety-requirements §B3: a proximal cuff above a lower distal one traps blood). A vented
    distal zone is distal release, not a reversal. Zones are compared within their own limb only."""

    raw = False

    rule = "SAFE-10"

    def __init__(self, names: Sequence[str], margin_mmhg: float, max_s: float, limbs: Sequence[str] = ()):
        self.names = list(names)
        self.margin = margin_mmhg
        self.max_s = max_s
        self.limbs = list(limbs) or [""] * len(self.names)
        self.reset()

    def reset(self) -> None:
        """Forget everything seen: the monitor is as new (SAFE-13's explicit reset)."""
        self._since: dict[tuple[int, int], float] = {}

    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None:
        zones = readings.zones
        actions = applied.actions(len(zones))
        inflated = [i for i, r in enumerate(zones) if actions[i] is not VENT and r.fault is None]
        seen = set()
        for k, a in enumerate(inflated):
            for b in inflated[k + 1 :]:  # every b > a (inflated is in zone order)
                if self.limbs[a] != self.limbs[b] or zones[b].mmhg <= zones[a].mmhg + self.margin:
                    continue
                seen.add((a, b))
                since = self._since.setdefault((a, b), now_s)
                if now_s - since > self.max_s:
                    return Trip(
                        self.rule,
                        self.names[b],
                        zones[b].mmhg,
                        now_s,
                        f"reverse gradient: {self.names[b]} {zones[b].mmhg:.1f} mmHg above "
                        f"{self.names[a]} {zones[a].mmhg:.1f} mmHg for {now_s - since:.1f} s",
                        f"a proximal zone above a distal one traps blood: check {self.names[a]} for a leak",
                    )
        if self._since:
            for pair in list(self._since):
                if pair not in seen:
                    del self._since[pair]
        return None


class TimeUnderPressure:
    """SAFE-10: no zone above the venous-safe level for longer than `max_s` at a stretch, and no session longer
    than `session_max_s`."""

    raw = False

    rule = "SAFE-10"

    def __init__(self, names: Sequence[str], *, venous_mmhg: float, max_s: float, session_max_s: float):
        self.names = list(names)
        self.venous = venous_mmhg
        self.max_s = max_s
        self.session_max_s = session_max_s
        self.reset()

    def reset(self) -> None:
        """Forget everything seen: the monitor is as new (SAFE-13's explicit reset)."""
        self._above: list[float | None] = [None] * len(self.names)
        self._start: float | None = None

    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None:
        if self._start is None:
            self._start = now_s
        if now_s - self._start > self.session_max_s:
            return Trip(
                self.rule,
                None,
                None,
                now_s,
                f"session limit: running for {(now_s - self._start) / 60:.1f} min "
                f"(at most {self.session_max_s / 60:g})",
                "sessions are limited by limits.session_max_min in hardware.yaml",
                priority=Priority.LOW,
            )
        venous, above = self.venous, self._above
        for i, r in enumerate(readings.zones):
            if r.fault is not None:  # not r.ok
                continue
            if r.mmhg <= venous:
                above[i] = None
                continue
            since = self._above[i]
            if since is None:
                since = self._above[i] = now_s
            if now_s - since > self.max_s:
                return Trip(
                    self.rule,
                    self.names[i],
                    r.mmhg,
                    now_s,
                    f"above {self.venous:g} mmHg for {now_s - since:.0f} s without a break (at most {self.max_s:g})",
                    "blood needs time to refill the leg between squeezes: shorten holds or add rests",
                    priority=Priority.MEDIUM,
                )
        return None
