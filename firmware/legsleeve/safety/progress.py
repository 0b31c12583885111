"""SAFE-5, fill progress: a zone being filled must gain pressure at a minimum rate and reach its target in time."""

from __future__ import annotations

from collections.abc import Sequence

from legsleeve.core.commands import FILL, Commands
from legsleeve.core.readings import Reading, Readings
from legsleeve.safety.plausibility import is_check
from legsleeve.safety.trip import Priority, Trip


class FillProgress:
    """SAFE-5: while a zone is being filled it must gain at least `min_rate` over every `window`, and no fill may
    last longer than `timeout` (a pulled-off hose, a dead pump, a big leak). The moments the pump is stopped for a
    SAFE-15 check are not counted."""

    raw = False

    rule = "SAFE-5"

    def __init__(
        self,
        names: Sequence[str],
        *,
        min_rate_mmhg_s: float,
        window_s: float,
        timeout_s: float,
        judge_checks: bool = False,
    ):
        """`judge_checks`: a one-sensor build reads a zone only while it is looked at with the pump stopped (the
        moments a check's are), so its fill is judged then."""
        self.names = list(names)
        self.judge_checks = judge_checks
        self.min_rate = min_rate_mmhg_s
        self.window_s = window_s
        self.timeout_s = timeout_s
        self.reset()

    def reset(self) -> None:
        """Forget everything seen: the monitor is as new (SAFE-13's explicit reset)."""
        n = len(self.names)
        self._since: list[float | None] = [None] * n
        self._window: list[tuple[float, float] | None] = [None] * n
        self._last_s: float | None = None

    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None:
        dt = 0.0 if self._last_s is None else max(now_s - self._last_s, 0.0)
        self._last_s = now_s
        if is_check(applied):
            # The pump stopped for a SAFE-15 check: that time is not filling time, for the zone checked or the ones
            # held meanwhile - their fills go on after it.
            for i in range(len(self.names)):
                since, window = self._since[i], self._window[i]
                if since is not None:
                    self._since[i] = since + dt
                if window is not None:
                    self._window[i] = (window[0] + dt, window[1])
            if not self.judge_checks:
                return None
            for i, r in enumerate(readings.zones):
                if applied.action(i) is FILL and r.ok and self._since[i] is not None:
                    trip = self._judge_window(i, r, now_s)
                    if trip is not None:
                        return trip
            return None
        zones = readings.zones
        actions = applied.actions(len(zones))
        for i, r in enumerate(zones):
            if actions[i] is not FILL:
                self._since[i] = self._window[i] = None
                continue
            since = self._since[i]
            if since is None:
                since = self._since[i] = now_s
            if now_s - since > self.timeout_s:
                return Trip(
                    self.rule,
                    self.names[i],
                    r.mmhg if r.ok else None,
                    now_s,
                    f"still filling after {self.timeout_s:g} s (at {r.mmhg:.1f} mmHg)",
                    "check the pump runs, the hose is on the bladder, and the bladder does not leak",
                    priority=Priority.MEDIUM,
                )
            if not r.ok:
                continue
            trip = self._judge_window(i, r, now_s)
            if trip is not None:
                return trip
        return None

    def _judge_window(self, i: int, r: Reading, now_s: float) -> Trip | None:
        window = self._window[i]
        if window is None:
            self._window[i] = (now_s, r.mmhg)
            return None
        t0, p0 = window
        if now_s - t0 < self.window_s:
            return None
        gained = r.mmhg - p0
        if gained < self.min_rate * (now_s - t0):
            return Trip(
                self.rule,
                self.names[i],
                r.mmhg,
                now_s,
                f"filling gained only {gained:.1f} mmHg in {now_s - t0:.1f} s (needs {self.min_rate:g} mmHg/s)",
                "check the hose to this zone is on and not kinked, the bladder for leaks, that the "
                "pump runs, and that no other zone's inlet is stuck open",
                priority=Priority.MEDIUM,
            )
        self._window[i] = (now_s, r.mmhg)
        return None
