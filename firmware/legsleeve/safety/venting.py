"""SAFE-8, valves that do not do what they are told: a zone that cannot vent (stuck exhaust, blocked outlet) or
gains pressure with its inlet closed (stuck or leaking inlet). "Cannot vent" is the highest-priority alarm."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from legsleeve.core.commands import FILL, VENT, Commands, ZoneAction
from legsleeve.core.limits import VENTED_MMHG
from legsleeve.core.readings import UNMEASURED, Readings
from legsleeve.safety.trip import Trip


def exhaust_stuck(name: str, mmhg: float, now_s: float, how: str) -> Trip:
    """SAFE-8's "cannot vent" verdict on a zone whose exhaust does not let its air out: `how` says what was seen."""
    return Trip(
        "SAFE-8",  # VentCheck.rule, spelled out as in overpressure.pump_runs
        name,
        mmhg,
        now_s,
        f"cannot vent {name}: {how}",
        f"the exhaust valve of {name} may be stuck closed or its outlet blocked: release the sleeve by hand",
        cannot_vent=True,
    )


class VentCheck:
    """SAFE-8: once a zone is told to vent it must fall below 5 mmHg within the vent timeout, else it cannot vent
    (a stuck exhaust) - the highest-priority alarm."""

    raw = False

    rule = "SAFE-8"

    def __init__(self, names: Sequence[str], timeout_s: float):
        self.names = list(names)
        self.timeout_s = timeout_s
        self.reset()

    def reset(self) -> None:
        """Forget everything seen: the monitor is as new (SAFE-13's explicit reset)."""
        self._since: list[float | None] = [None] * len(self.names)
        self._previous: list[ZoneAction] = [VENT] * len(self.names)

    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None:
        zones = readings.zones
        actions = applied.actions(len(zones))
        sinces, previous = self._since, self._previous
        for i, r in enumerate(zones):
            action = actions[i]
            if action is VENT and previous[i] is not VENT:
                sinces[i] = now_s
            elif action is not VENT:
                sinces[i] = None
            previous[i] = action
            since = sinces[i]
            if since is None:
                continue
            if r.fault is not None:  # not r.ok
                continue  # no pressure, no verdict: the sensor rule (SAFE-9) speaks for a dead sensor
            if r.mmhg < VENTED_MMHG:
                self._since[i] = None  # vented: nothing more to watch
            elif now_s - since > self.timeout_s:
                return exhaust_stuck(
                    self.names[i],
                    r.mmhg,
                    now_s,
                    f"still {r.mmhg:.1f} mmHg {self.timeout_s:g} s after opening its exhaust",
                )
        return None


class ValveCheck:
    """SAFE-8 (stuck valves): a zone told to vent must have lost a fifth of its pressure within `check_s` (the
    vent timeout catches the slow ones); and no zone may gain pressure with its inlet closed - venting or holding -
    which means air comes through an inlet that is stuck open or leaks."""

    raw = False

    rule = "SAFE-8"
    RISE_MMHG = 2.5  # below the controller's 3 mmHg bleed band (which would hide it); the median's noise is ~0.06
    # A sleeve held closed below venous pressure gains a few mmHg as the veins under it refill after a compression
    # (what refill-adaptive rest measures: ~2 mmHg on the simulated legs, rewarming included); above it the sleeve
    # itself keeps them empty. So a zone held from below `venous_mmhg` may rise REFILL_RISE_MMHG, and never past
    # `venous_mmhg`: a stuck inlet still trips, harmlessly low (docs/refill.md).
    REFILL_RISE_MMHG = 6.0
    # Quick look: 0.4 s into a vent from above 15 mmHg, the slowest zone (time constant `vent_tau_s`: the reference
    # thigh's ~2.9 s) has lost 1 - exp(-0.4 / tau) (13 %); a stuck exhaust loses nothing. A vent that has lost less
    # than a quarter of that, and less than QUICK_NOISE x the sensor noise, cannot vent; where a sound vent's own loss
    # would not stand twice clear of that noise, the look says nothing (the check at vent_check_s speaks). Pulses vent
    # for as little as 0.5 s, so the later check alone misses them.
    QUICK_S = 0.4
    QUICK_FROM_MMHG = 15.0
    QUICK_FRACTION = 0.25
    QUICK_NOISE: Final = 3.0 * math.sqrt(2.0)  # (Final: a computed default would be an instance's, compiled)
    # A vent that levels off above 5 mmHg is being fed: at 5 mmHg a sound zone still falls ~1.7 mmHg/s.
    STALL_S = 1.0
    STALL_MMHG = 0.3

    def __init__(
        self,
        names: Sequence[str],
        check_s: float,
        *,
        vent_tau_s: float = 2.9,
        noise_mmhg: float = 0.08,
        venous_mmhg: float = 20.0,
    ):
        self.names = list(names)
        self.check_s = check_s
        self.venous_mmhg = venous_mmhg
        self.quick_loss = 1.0 - math.exp(-self.QUICK_S / vent_tau_s)  # of p0, by QUICK_S into a sound vent
        self.quick_floor = self.QUICK_NOISE * noise_mmhg
        self.reset()

    def reset(self) -> None:
        """Forget everything seen: the monitor is as new (SAFE-13's explicit reset)."""
        n = len(self.names)
        self._previous = [VENT] * n
        self._start: list[tuple[float, float] | None] = [None] * n  # (t, p) when the inlet closed
        self._low = [math.inf] * n
        self._fall_checked = [False] * n
        self._moved = [False] * n
        self._last = [math.nan] * n
        self._level: list[tuple[float, float] | None] = [None] * n  # (since, at) while a vent holds level
        self._level_seen: list[set[float]] = [set() for _ in range(n)]

    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None:
        zones = readings.zones
        actions = applied.actions(len(zones))
        for i, r in enumerate(zones):
            fault = r.fault
            if fault == UNMEASURED:  # r.unmeasured
                continue  # a one-sensor build's zone not read this tick: judged at its next reading
            action = actions[i]
            previous, self._previous[i] = self._previous[i], action
            if action is FILL or fault is not None:
                self._start[i] = None
                continue
            start = self._start[i]
            if start is None or action is not previous:
                self._start[i] = (now_s, r.mmhg)
                self._low[i] = r.mmhg
                self._fall_checked[i] = False
                self._moved[i] = False
                self._last[i] = r.mmhg
                self._level[i] = None
                continue
            t0, p0 = start
            self._low[i] = min(self._low[i], r.mmhg)
            name = self.names[i]
            if r.mmhg != self._last[i]:
                self._moved[i] = True
            self._last[i] = r.mmhg
            if not self._moved[i]:
                continue  # not one count of change: a frozen sensor, not a valve (SAFE-9 judges it)
            if action is VENT and r.mmhg > VENTED_MMHG:
                level = self._level[i]
                ts, ps = level if level is not None else (now_s, r.mmhg)
                if abs(r.mmhg - ps) > self.STALL_MMHG:
                    self._level[i] = (now_s, r.mmhg)
                    self._level_seen[i] = {r.mmhg}
                else:
                    self._level_seen[i].add(r.mmhg)
                    if self._level[i] is None:
                        self._level[i] = (now_s, r.mmhg)
                    elif now_s - ts >= self.STALL_S and len(self._level_seen[i]) > 2:  # alive, yet level
                        return Trip(
                            self.rule,
                            name,
                            r.mmhg,
                            now_s,
                            f"cannot vent {name}: stays at {r.mmhg:.1f} mmHg with its exhaust open",
                            f"air keeps coming in: the inlet valve of {name} is stuck open or leaks (or its "
                            "exhaust is blocked): release the sleeve by hand",
                            cannot_vent=True,
                        )
            else:
                self._level[i] = None
            rise_to = self._low[i] + self.RISE_MMHG
            if action is not VENT and self._low[i] < self.venous_mmhg:  # a refilling leg under a sleeve held low
                rise_to = max(rise_to, min(self._low[i] + self.REFILL_RISE_MMHG, self.venous_mmhg))
            if r.mmhg > rise_to and r.mmhg > VENTED_MMHG:
                doing = "venting" if action is VENT else "held with both valves closed"
                return Trip(
                    self.rule,
                    name,
                    r.mmhg,
                    now_s,
                    f"gains pressure while {doing} (+{r.mmhg - self._low[i]:.1f} mmHg): its inlet is stuck "
                    "open or leaks",
                    f"the inlet valve of {name} does not close: check its wiring and replace the valve",
                )
            expected = self.quick_loss * p0
            if (
                action is VENT
                and p0 > self.QUICK_FROM_MMHG
                and self.QUICK_S <= now_s - t0 < self.QUICK_S + 0.03
                and expected >= 2.0 * self.quick_floor
                and p0 - r.mmhg < max(self.quick_floor, self.QUICK_FRACTION * expected)
            ):
                return exhaust_stuck(
                    name,
                    r.mmhg,
                    now_s,
                    f"{r.mmhg:.1f} mmHg {now_s - t0:.1f} s after opening its exhaust (from {p0:.1f}, a vent loses "
                    f"{self.quick_loss:.0%} by now)",
                )
            if action is VENT and not self._fall_checked[i] and now_s - t0 >= self.check_s and p0 > 2 * VENTED_MMHG:
                self._fall_checked[i] = True
                if r.mmhg > VENTED_MMHG and r.mmhg > 0.8 * p0:
                    return exhaust_stuck(
                        name,
                        r.mmhg,
                        now_s,
                        f"{r.mmhg:.1f} mmHg {now_s - t0:.1f} s after opening its exhaust (from {p0:.1f})",
                    )
        return None
