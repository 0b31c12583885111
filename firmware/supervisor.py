"""The safety supervisor (SAFE-14): separate from the controller, sees every reading and every command, and can
only make outputs safer. It runs identically on the sleeve and on the simulated rig, and there is no switch to
turn it off.

Each rule is a small monitor object with its DESIGN.md ID, checked every tick on time handed in by the caller:
`check(now_s, readings, applied) -> Trip | None`, where `applied` is what the outputs did since the last readings.
The first trip latches (SAFE-13): from then on every tick's output is the safe state until an explicit `reset()`,
and the trip carries the rule, the zone, the reading and a hint at what to check.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Protocol, Sequence

from legsleeve.commands import FILL, SAFE, VENT, Commands, ZoneAction
from legsleeve.config import ABS_MAX_MMHG, VENTED_MMHG, HardwareConfig
from legsleeve.sensors import Reading, Readings

log = logging.getLogger(__name__)

HIGH, MEDIUM, LOW = "high", "medium", "low"  # alarm priorities
IMPLAUSIBLE_BELOW_MMHG = -15.0  # a bladder cannot pull a vacuum: this far below the zero is a broken sensor
SPIKE_MMHG = 25.0  # a one-sample excursion this large that returns at once is not air moving
SPIKES_TO_TRIP, SPIKE_WINDOW_S = 3, 5.0


@dataclass(frozen=True)
class Trip:
    rule: str  # "SAFE-4"
    zone: str | None
    reading_mmhg: float | None
    t_s: float
    reason: str
    hint: str
    priority: str = HIGH

    def __str__(self) -> str:
        where = f" {self.zone}" if self.zone else ""
        return f"{self.rule}{where}: {self.reason}"


class Monitor(Protocol):
    rule: str

    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None: ...


def _all_readings(readings: Readings) -> list[Reading]:
    return [*readings.zones, *([readings.manifold] if readings.manifold else [])]


# -- SAFE-4 ------------------------------------------------------------------------------------------------------


class OverPressure:
    """SAFE-4: a zone above its trip level - min(configured max, its highest target + margin) - for longer than the
    debounce trips. A faulted reading neither starts nor clears the count (the sensor rule judges it)."""

    rule = "SAFE-4"

    def __init__(self, names: Sequence[str], trip_levels_mmhg: Sequence[float], debounce_s: float):
        self.names = list(names)
        self.levels = list(trip_levels_mmhg)
        self.debounce_s = debounce_s
        self._above_since: list[float | None] = [None] * len(self.names)

    def check(self, now_s, readings, applied):
        for i, r in enumerate(readings.zones):
            if not r.ok:
                continue
            if r.mmhg <= self.levels[i]:
                self._above_since[i] = None
                continue
            since = self._above_since[i]
            if since is None:
                since = self._above_since[i] = r.t_s
            if r.mmhg > ABS_MAX_MMHG or r.t_s - since >= self.debounce_s:
                return Trip(self.rule, self.names[i], r.mmhg, now_s,
                            f"over-pressure: {r.mmhg:.1f} mmHg above the {self.levels[i]:g} mmHg trip level for "
                            f"{r.t_s - since:.2f} s",
                            "check the profile's targets, and the zone's inlet valve (stuck open?) and hose (kinked "
                            "between sensor and bladder?)")
        return None

    def above(self, i: int, reading: Reading) -> bool:
        return reading.ok and reading.mmhg > self.levels[i]


# -- SAFE-5 ------------------------------------------------------------------------------------------------------


class FillProgress:
    """SAFE-5: while a zone is being filled it must gain at least `min_rate` over every `window`, and no fill may
    last longer than `timeout` (a pulled-off hose, a dead pump, a big leak)."""

    rule = "SAFE-5"

    def __init__(self, names: Sequence[str], *, min_rate_mmhg_s: float, window_s: float, timeout_s: float):
        self.names = list(names)
        self.min_rate = min_rate_mmhg_s
        self.window_s = window_s
        self.timeout_s = timeout_s
        n = len(self.names)
        self._since: list[float | None] = [None] * n
        self._window: list[tuple[float, float] | None] = [None] * n

    def check(self, now_s, readings, applied):
        for i, r in enumerate(readings.zones):
            if applied.action(i) is not FILL:
                self._since[i] = self._window[i] = None
                continue
            if self._since[i] is None:
                self._since[i] = now_s
            if now_s - self._since[i] > self.timeout_s:
                return Trip(self.rule, self.names[i], r.mmhg if r.ok else None, now_s,
                            f"still filling after {self.timeout_s:g} s (at {r.mmhg:.1f} mmHg)",
                            "check the pump runs, the hose is on the bladder, and the bladder does not leak")
            if not r.ok:
                continue
            if self._window[i] is None:
                self._window[i] = (now_s, r.mmhg)
                continue
            t0, p0 = self._window[i]
            if now_s - t0 >= self.window_s:
                gained = r.mmhg - p0
                if gained < self.min_rate * (now_s - t0):
                    return Trip(self.rule, self.names[i], r.mmhg, now_s,
                                f"filling gained only {gained:.1f} mmHg in {now_s - t0:.1f} s (needs "
                                f"{self.min_rate:g} mmHg/s)",
                                "check the hose to this zone is on and not kinked, the bladder for leaks, and that "
                                "the pump runs")
                self._window[i] = (now_s, r.mmhg)
        return None


# -- SAFE-8 ------------------------------------------------------------------------------------------------------


class VentCheck:
    """SAFE-8: once a zone is told to vent it must fall below 5 mmHg within the vent timeout, else it cannot vent
    (a stuck exhaust) - the highest-priority alarm."""

    rule = "SAFE-8"

    def __init__(self, names: Sequence[str], timeout_s: float):
        self.names = list(names)
        self.timeout_s = timeout_s
        self._since: list[float | None] = [None] * len(self.names)
        self._previous: list[ZoneAction] = [VENT] * len(self.names)

    def check(self, now_s, readings, applied):
        for i, r in enumerate(readings.zones):
            action = applied.action(i)
            if action is VENT and self._previous[i] is not VENT:
                self._since[i] = now_s
            elif action is not VENT:
                self._since[i] = None
            self._previous[i] = action
            since = self._since[i]
            if since is None:
                continue
            if not r.ok:
                continue  # no pressure, no verdict: the sensor rule (SAFE-9) speaks for a dead sensor
            if r.mmhg < VENTED_MMHG:
                self._since[i] = None  # vented: nothing more to watch
            elif now_s - since > self.timeout_s:
                return Trip(self.rule, self.names[i], r.mmhg, now_s,
                            f"cannot vent {self.names[i]}: still {r.mmhg:.1f} mmHg {self.timeout_s:g} s after "
                            "opening its exhaust",
                            f"the exhaust valve of {self.names[i]} may be stuck closed or its outlet blocked: "
                            "release the sleeve by hand")
        return None

    def venting(self) -> list[str]:
        return [n for n, s in zip(self.names, self._since) if s is not None]


# -- SAFE-9 ------------------------------------------------------------------------------------------------------


class SensorHealth:
    """SAFE-9: a sensor with no good reading for longer than `stale_s` (read deadline missed, I2C error, status
    bits, out of range, NaN), one stuck on the same value for `stuck_s`, or one that keeps spiking, trips."""

    rule = "SAFE-9"

    def __init__(self, names: Sequence[str], *, stale_s: float, stuck_s: float):
        self.names = list(names)
        self.stale_s = stale_s
        self.stuck_s = stuck_s
        n = len(self.names)
        self._last_good: list[float | None] = [None] * n
        self._last_fault: list[str] = [""] * n
        self._same_since: list[float | None] = [None] * n
        self._history: list[tuple[float, float]] = [(math.nan, math.nan)] * n  # (previous, one before)
        self._spikes: list[list[float]] = [[] for _ in range(n)]

    def check(self, now_s, readings, applied):
        for i, r in enumerate(_all_readings(readings)):
            name = self.names[i]
            if self._last_good[i] is None:
                self._last_good[i] = now_s  # the clock starts at the first sweep
            good = r.ok and math.isfinite(r.mmhg) and r.mmhg >= IMPLAUSIBLE_BELOW_MMHG
            if not good:
                self._last_fault[i] = r.fault or f"implausible reading {r.mmhg:.1f} mmHg"
                if now_s - self._last_good[i] > self.stale_s:
                    return Trip(self.rule, name, None, now_s,
                                f"no good reading for {now_s - self._last_good[i]:.2f} s: {self._last_fault[i]}",
                                "check the sensor's wiring (SDA/SCL, power), its multiplexer channel and its hose")
                continue
            self._last_good[i] = now_s
            previous, before = self._history[i]
            self._history[i] = (r.mmhg, previous)
            if r.mmhg == previous:
                if self._same_since[i] is None:
                    self._same_since[i] = now_s
                elif now_s - self._same_since[i] >= self.stuck_s:
                    return Trip(self.rule, name, r.mmhg, now_s,
                                f"reading stuck at {r.mmhg:.2f} mmHg for {now_s - self._same_since[i]:.1f} s",
                                "a live MPRLS never repeats its count for long: replace or reseat the sensor")
            else:
                self._same_since[i] = None
            # a spike: the previous sample jumped far from the one before and this one came straight back
            if (math.isfinite(before) and abs(previous - before) > SPIKE_MMHG
                    and abs(r.mmhg - before) < SPIKE_MMHG / 2):
                spikes = [t for t in self._spikes[i] if now_s - t < SPIKE_WINDOW_S] + [now_s]
                self._spikes[i] = spikes
                if len(spikes) >= SPIKES_TO_TRIP:
                    return Trip(self.rule, name, previous, now_s,
                                f"{len(spikes)} readings jumped by more than {SPIKE_MMHG:g} mmHg and straight back "
                                f"within {SPIKE_WINDOW_S:g} s",
                                "erratic sensor: check its wiring and connector for intermittent contact",
                                priority=MEDIUM)
        return None


# -- the supervisor ------------------------------------------------------------------------------------------------


class Supervisor:
    """Runs every monitor on every tick, guards the controller's wish, and latches the first trip."""

    def __init__(self, config: HardwareConfig, peak_targets_mmhg: Sequence[float], *,
                 extra_monitors: Sequence[Monitor] = ()):
        lim = config.limits
        names = config.zone_names
        sensor_names = [*names, *(["manifold"] if config.manifold_channel is not None else [])]
        self.trip_levels_mmhg = [min(lim.max_mmhg, t + lim.trip_margin_mmhg, ABS_MAX_MMHG)
                                 for t in peak_targets_mmhg]
        self.over_pressure = OverPressure(names, self.trip_levels_mmhg, lim.overpressure_debounce_s)
        self.vent_check = VentCheck(names, lim.vent_timeout_s)
        self.monitors: list[Monitor] = [
            SensorHealth(sensor_names, stale_s=lim.sensor_stale_s, stuck_s=lim.sensor_stuck_s),
            self.over_pressure,
            FillProgress(names, min_rate_mmhg_s=lim.min_fill_rate_mmhg_s, window_s=lim.fill_rate_window_s,
                         timeout_s=lim.fill_timeout_s),
            self.vent_check,
            *extra_monitors,
        ]
        self.n_zones = len(names)
        self.tripped: Trip | None = None
        self.cannot_vent: Trip | None = None  # raised after a trip, while the sleeve is meant to be emptying
        self.applied: Commands = SAFE

    def review(self, now_s: float, readings: Readings, wish: Commands) -> Commands:
        """Check every rule against these readings and what was applied since; return `wish` made no less safe."""
        if self.tripped is not None:
            # Latched: safe state, but keep watching the vent (a stuck exhaust is the worst news there is).
            if self.cannot_vent is None:
                trip = self.vent_check.check(now_s, readings, self.applied)
                if trip is not None:
                    self.cannot_vent = trip
                    log.critical("%s - %s", trip, trip.hint)
            self.applied = SAFE
            return SAFE
        for monitor in self.monitors:
            trip = monitor.check(now_s, readings, self.applied)
            if trip is not None:
                self.trip(trip)
                return SAFE
        out = self._guard(readings, wish)
        self.applied = out
        return out

    def _guard(self, readings: Readings, wish: Commands) -> Commands:
        """Never fill a zone that reads above its trip level or has no reading; no pump without a zone to fill."""
        actions = []
        filling = False
        for i in range(self.n_zones):
            action = wish.action(i)
            if action is FILL:
                r = readings.zones[i]
                if not r.ok or self.over_pressure.above(i, r):
                    action = ZoneAction.HOLD
                else:
                    filling = True
            actions.append(action)
        duty = wish.pump_duty if filling and math.isfinite(wish.pump_duty) else 0.0
        return Commands(min(max(duty, 0.0), 1.0), tuple(actions))

    def trip(self, trip: Trip) -> None:
        """Latch (the first trip wins), log with the hint. The caller applies SAFE at once."""
        if self.tripped is None:
            self.tripped = trip
            self.applied = SAFE
            if trip.rule == VentCheck.rule:
                self.cannot_vent = trip
            log.critical("TRIP %s - %s", trip, trip.hint)

    def reset(self) -> None:
        """The explicit reset SAFE-13 asks for: only a person, after checking the sleeve, should call this."""
        self.tripped = None
        self.cannot_vent = None
