"""SAFE-9, sensor faults: no good reading for too long, a reading stuck on one value, or one that keeps spiking."""

from __future__ import annotations

import math
from collections.abc import Sequence

from legsleeve.core.commands import FILL, Commands, ZoneAction
from legsleeve.core.readings import Readings
from legsleeve.safety.trip import Priority, Trip

IMPLAUSIBLE_BELOW_MMHG = -15.0  # a bladder cannot pull a vacuum: this far below the zero is a broken sensor
SPIKE_MMHG = 25.0  # a one-sample excursion this large that returns at once is not air moving
SPIKES_TO_TRIP, SPIKE_WINDOW_S = 3, 5.0


class SensorHealth:
    """SAFE-9: a sensor with no good reading for longer than `stale_s` (read deadline missed, I2C error, status
    bits, out of range, NaN), one stuck on the same value for `stuck_s`, or one that keeps spiking, trips."""

    raw = True

    rule = "SAFE-9"

    def __init__(self, names: Sequence[str], *, stale_s: float, stuck_s: float):
        self.names = list(names)
        self.stale_s = stale_s
        self.stuck_s = stuck_s
        self.reset()

    def reset(self) -> None:
        """Forget everything seen: the monitor is as new (SAFE-13's explicit reset)."""
        n = len(self.names)
        self._last_good: list[float | None] = [None] * n
        self._last_fault: list[str] = [""] * n
        self._same_since: list[float | None] = [None] * n
        self._history: list[tuple[float, float]] = [(math.nan, math.nan)] * n  # (previous, one before)
        self._spikes: list[list[tuple[float, bool]]] = [[] for _ in range(n)]  # (time, with the valves?)
        self._actions: list[list[ZoneAction]] = [[] for _ in range(n)]
        self._pump: list[float] = []  # the pump's duty since each of the last readings, oldest first

    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None:
        self._pump.append(applied.pump_duty)
        del self._pump[:-2]
        zones, m = readings.zones, readings.manifold
        n_zones = len(zones)
        actions_now = applied.actions(n_zones)
        # (the names bound locally, and `r.fault is None` for `r.ok`: this runs for every sensor every tick)
        last_goods, histories = self._last_good, self._history
        for i, r in enumerate(zones if m is None else (*zones, m)):
            last_good = last_goods[i]
            if last_good is None:
                last_good = last_goods[i] = now_s  # the clock starts at the first sweep
            mmhg = r.mmhg
            good = r.fault is None and math.isfinite(mmhg) and mmhg >= IMPLAUSIBLE_BELOW_MMHG
            if not good:
                self._last_fault[i] = r.fault or f"implausible reading {mmhg:.1f} mmHg"
                if now_s - last_good > self.stale_s:
                    return Trip(
                        self.rule,
                        self.names[i],
                        None,
                        now_s,
                        f"no good reading for {now_s - last_good:.2f} s: {self._last_fault[i]}",
                        "check the sensor's wiring (SDA/SCL, power), its multiplexer channel and its hose",
                        priority=Priority.MEDIUM,
                    )
                continue
            last_goods[i] = now_s
            previous, before = histories[i]
            histories[i] = (mmhg, previous)
            name = self.names[i]
            if r.mmhg == previous:
                same_since = self._same_since[i]
                if same_since is None:
                    self._same_since[i] = now_s
                elif now_s - same_since >= self.stuck_s:
                    return Trip(
                        self.rule,
                        name,
                        r.mmhg,
                        now_s,
                        f"reading stuck at {r.mmhg:.2f} mmHg for {now_s - same_since:.1f} s",
                        "a live MPRLS never repeats its count for long: replace or reseat the sensor",
                        priority=Priority.MEDIUM,
                    )
            else:
                self._same_since[i] = None
            # a spike: the previous sample jumped far from the one before and this one came straight back
            actions = self._actions[i]
            if i < n_zones:
                actions.append(actions_now[i])
                if len(actions) > 3:  # (`del actions[:-3]`: one appended to three at most)
                    del actions[0]
            # the manifold up as the pump ran for a tick, and down as a one-sensor build's peek joined it to a zone:
            # air, not a sensor's fault (a 5 L/min pump raises it 25 mmHg in a tick against a small inlet)
            if (
                math.isfinite(before)
                and abs(previous - before) > SPIKE_MMHG
                and abs(r.mmhg - before) < SPIKE_MMHG / 2
                and not (i >= n_zones and len(self._pump) == 2 and self._pump[0] > 0.0)  # pumped
            ):
                # up as its inlet opened, down as its exhaust did: air in a hose, not a sensor's fault
                hose = (
                    len(actions) == 3 and actions[0] is not FILL and actions[1] is FILL and actions[2] is not FILL
                )  # a one-tick fill made it, not a fill long under way
                spikes = [(t, h) for t, h in self._spikes[i] if now_s - t < SPIKE_WINDOW_S] + [(now_s, hose)]
                self._spikes[i] = spikes
                if len(spikes) >= SPIKES_TO_TRIP:
                    if sum(h for _, h in spikes) * 2 > len(spikes):
                        return Trip(
                            "SAFE-6",  # Occlusion.rule, spelled out as in overpressure.pump_runs
                            name,
                            previous,
                            now_s,
                            f"pressure jumps with each fill and falls with each vent ({len(spikes)} times in "
                            f"{SPIKE_WINDOW_S:g} s): the sensor sees only the hose",
                            f"the hose of {name} is kinked, blocked or pulled off between the valve block and "
                            "the bladder: straighten or refit it, and check the bladder is not still pressed",
                            priority=Priority.MEDIUM,
                        )
                    return Trip(
                        self.rule,
                        name,
                        previous,
                        now_s,
                        f"{len(spikes)} readings jumped by more than {SPIKE_MMHG:g} mmHg and straight back "
                        f"within {SPIKE_WINDOW_S:g} s",
                        "erratic sensor: check its wiring and connector for intermittent contact",
                        priority=Priority.MEDIUM,
                    )
        return None
