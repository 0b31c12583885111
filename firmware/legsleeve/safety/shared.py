"""One sensor for every zone (a one-sensor build): the sensor on the manifold measures a zone while that zone's inlet
alone is open and the pump is stopped, once the manifold has settled to the zone's pressure.

Air reaches a zone only from the manifold, and the pump's check valve stops it going back, so while a zone's inlet is
open the manifold's pressure is at least the zone's: the one sensor bounds every zone it feeds from above, always.
This layer, on the supervisor's output path, builds on that:

1. **Peeks.** It lays measuring moments over the outputs: pump off, one zone's inlet open (exhaust closed), every
   other inlet closed, until the manifold reading has settled (two readings within SETTLED_MMHG, at least
   PEEK_MIN_S in, at most PEEK_MAX_S); that reading is the zone's. The zone being filled is peeked every
   PEEK_FILL_S of pumping, each held zone every PEEK_HOLD_S, each venting zone every PEEK_VENT_S until it reads
   below 5 mmHg (a vented zone with its inlet closed cannot gain, so it is then left alone).
2. **A ceiling on the manifold while pumping.** The pump stops (a peek begins) once the manifold reaches the filling
   zone's trip level less CEILING_MARGIN_MMHG; SAFE-4 then judges the manifold against the trip level of every zone
   whose inlet is open (`ManifoldBound`), which only a pump running anyway can reach.
3. **One inlet at a time while pumping**: two zones on one manifold cannot be told apart. Fills asked together take
   turns (the lowest zone first); the others are held meanwhile.

Each tick `observe` turns the one reading into per-zone readings: `fresh`, the zone whose peek settled this tick
(every other zone UNMEASURED), which the rules judge; and `known`, each zone's last measured pressure at the time it
was measured, which the controller regulates on. (A fill therefore ends at the first look that finds it full: the
ceiling bounds how far past its target a zone can go between looks.)

No peek ever happens once the supervisor has tripped or a stop was asked for: the safe state keeps every inlet closed,
so such a build cannot confirm its vent after a trip (docs/one-sensor.md lists what a one-sensor build gives up).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from legsleeve.core.commands import FILL, HOLD, VENT, Commands
from legsleeve.core.limits import VENTED_MMHG
from legsleeve.core.readings import UNMEASURED, Reading, Readings
from legsleeve.safety.trip import Trip

PEEK_MIN_S = 0.035  # the manifold's time constant is ~16 ms on the reference: two ticks at 50 Hz
PEEK_MAX_S = 0.3  # a manifold still moving after this is read anyway (and is an upper bound of the zone)
SETTLED_MMHG = 0.3  # two successive readings this close: settled
PEEK_FILL_S = 0.5  # the zone being filled, this often (its pumping time between peeks)
PEEK_HOLD_S = 1.0  # each held zone, this often
PEEK_VENT_S = 0.5  # each venting zone until it reads vented
CEILING_MARGIN_MMHG = 3.0  # the pump stops this far below the filling zone's trip level


class SharedSensor:
    """The peeks, the manifold's ceiling and one inlet at a time, and the per-zone readings they give.

    `max_rise_mmhg_s`: the fastest a bladder fills (`limits.occlusion_rate_mmhg_s`, SAFE-6's premise: faster is a
    hose). With it, the pump may run past the filling zone's ceiling while the zone's bound - its last look plus that
    rate times the pumping since - stays below the ceiling: the zone cannot have got there, whatever the manifold
    reads. The manifold itself then stops at the highest zone's ceiling (`hard_ceiling_mmhg`). Without it (None) the
    filling zone's ceiling holds the manifold at every moment."""

    def __init__(self, names: Sequence[str], trip_levels_mmhg: Sequence[float], max_rise_mmhg_s: float | None = None):
        self.names = list(names)
        self.trip_levels = list(trip_levels_mmhg)
        self.max_rise_mmhg_s = max_rise_mmhg_s
        self.hard_ceiling_mmhg = max(self.trip_levels) - CEILING_MARGIN_MMHG
        self.reset()

    def reset(self) -> None:
        n = len(self.names)
        self._known: list[tuple[float, float] | None] = [None] * n  # (mmHg, t) of each zone's last peek
        self._last_peek = [-math.inf] * n
        self._peek: int | None = None
        self._peek_of_venting = False
        self._peek_since = 0.0
        self._peek_prev: float | None = None
        self._pumping: int | None = None  # the zone the pump last filled
        self._pumped_s = [0.0] * n  # pumping time since the zone's last peek
        self._venting_since_peek = [False] * n  # the zone has been told to vent at every tick since its last peek
        self._last_t: float | None = None
        self._m: Reading | None = None
        self._observed_t: float | None = None
        self.fresh: Readings | None = None
        self.known: Readings | None = None
        self.peeks = 0

    # -- readings ------------------------------------------------------------------------------------------------
    def observe(self, readings: Readings) -> tuple[Readings, Readings]:
        """(fresh, known) zone readings for this tick, from the manifold's reading and the peek under way."""
        if self._observed_t == readings.t_s and self.fresh is not None and self.known is not None:
            return self.fresh, self.known
        t = readings.t_s
        m = readings.manifold
        n = len(self.names)
        if self._last_t is None:
            self._known = [(0.0, t)] * n  # the self-test and the zero were taken on a vented sleeve
        dt = 0.0 if self._last_t is None else max(t - self._last_t, 0.0)
        self._last_t = t
        self._m = m
        if self._pumping is not None:
            self._pumped_s[self._pumping] += dt
        fresh = [Reading(math.nan, t, UNMEASURED) for _ in range(n)]
        if m is None or not m.ok:
            fault = m.fault if m is not None else "no manifold sensor"
            bad = Reading(math.nan, t, f"manifold sensor: {fault}")
            self._peek = None
            self.fresh = Readings(t, tuple(bad for _ in range(n)), m, readings.estop_pressed, readings.stop_pressed)
            self.known = self.fresh
            self._observed_t = t
            return self.fresh, self.known
        p = self._peek
        if p is not None:
            elapsed = t - self._peek_since
            prev, self._peek_prev = self._peek_prev, m.mmhg
            settled = prev is not None and abs(m.mmhg - prev) <= SETTLED_MMHG and elapsed >= PEEK_MIN_S
            if settled or elapsed >= PEEK_MAX_S:
                fresh[p] = Reading(m.mmhg, t)
                self._known[p] = (m.mmhg, t)
                self._venting_since_peek[p] = self._peek_of_venting
                self._last_peek[p] = t
                self._pumped_s[p] = 0.0
                self._peek = None
                self.peeks += 1
        known = [Reading(*(self._known[i] or (math.nan, t))) for i in range(n)]
        self.fresh = Readings(t, tuple(fresh), m, readings.estop_pressed, readings.stop_pressed)
        self.known = Readings(t, tuple(known), m, readings.estop_pressed, readings.stop_pressed)
        self._observed_t = t
        return self.fresh, self.known

    def confirmed_below(self, mmhg: float, since_s: float) -> list[bool]:
        """Each zone: did a peek read it below `mmhg`, since `since_s` or while it has been venting ever since (a
        venting zone, its inlet closed, cannot gain)?"""
        return [
            k is not None and k[0] < mmhg and (k[1] >= since_s or vented)
            for k, vented in zip(self._known, self._venting_since_peek, strict=True)
        ]

    # -- outputs -------------------------------------------------------------------------------------------------
    def shape(self, now_s: float, intent: Commands) -> Commands:
        """The outputs for `intent` (the supervisor's guarded wish): a peek when one is due, else one inlet at a
        time while pumping, the pump stopped at the manifold's ceiling. Never less safe than the intent: a peek
        stops the pump and opens one inlet; everything else only holds."""
        n = len(self.names)
        for i in range(n):
            if intent.action(i) is not VENT:
                self._venting_since_peek[i] = False
        fills = [i for i in range(n) if intent.action(i) is FILL]
        pumping = intent.pump_duty > 0 and bool(fills)
        done = self._pumping
        if done is not None and done not in fills:
            self._last_peek[done] = -math.inf  # its fill is over: the first look goes to it
            self._pumping = None
        f = None
        if pumping:
            f = self._pumping if self._pumping in fills else fills[0]
        if self._peek is None:
            due = self._due(now_s, intent, f)
            if due is None and f is not None and self._at_ceiling(f):
                due = f  # the manifold at the filling zone's ceiling: stop the pump and look
            if due is not None:
                self._start_peek(now_s, due, intent)
        if self._peek is not None:
            actions = tuple(
                FILL if i == self._peek else (HOLD if intent.action(i) is FILL else intent.action(i)) for i in range(n)
            )
            self._pumping = None
            return Commands(0.0, actions)
        if f is None:
            self._pumping = None
            return Commands(0.0, intent.zones) if not pumping and fills else intent
        self._pumping = f
        actions = tuple(HOLD if (intent.action(i) is FILL and i != f) else intent.action(i) for i in range(n))
        return Commands(intent.pump_duty, actions)

    def _start_peek(self, now_s: float, zone: int, intent: Commands) -> None:
        self._peek, self._peek_since, self._peek_prev = zone, now_s, None
        self._peek_of_venting = intent.action(zone) is VENT

    def _at_ceiling(self, f: int) -> bool:
        m = self._m
        if m is None or not m.ok:
            return False
        if m.mmhg >= self.hard_ceiling_mmhg:
            return True
        return m.mmhg >= self.trip_levels[f] - CEILING_MARGIN_MMHG and not self.bounded_below(f, CEILING_MARGIN_MMHG)

    def bounded_below(self, zone: int, margin_mmhg: float = 0.0) -> bool:
        """Whether the zone is surely more than `margin_mmhg` below its trip level, whatever the manifold reads: its
        last look, plus the fastest a bladder fills times the pumping since (False without that rate)."""
        k = self._known[zone]
        if self.max_rise_mmhg_s is None or k is None or not math.isfinite(k[0]):
            return False
        bound = k[0] + self.max_rise_mmhg_s * self._pumped_s[zone]
        return bound < self.trip_levels[zone] - margin_mmhg

    def _due(self, now_s: float, intent: Commands, f: int | None) -> int | None:
        if f is not None and self._pumped_s[f] >= PEEK_FILL_S:
            return f
        oldest: tuple[float, int] | None = None
        for i in range(len(self.names)):
            action = intent.action(i)
            age = now_s - self._last_peek[i]
            if i == f:
                continue
            if action is HOLD and age >= PEEK_HOLD_S:
                pass
            elif action is VENT and age >= PEEK_VENT_S and not self._vented(i):
                pass
            else:
                continue
            if oldest is None or age > oldest[0]:
                oldest = (age, i)
        return oldest[1] if oldest is not None else None

    def _vented(self, i: int) -> bool:
        """Read empty (a margin below 5 mmHg, for the zero's uncertainty) while venting: no more looks needed."""
        k = self._known[i]
        return k is not None and k[0] < VENTED_MMHG - 1.0 and self._venting_since_peek[i]


class ManifoldBound:
    """SAFE-4 on a one-sensor build: no zone is above the manifold that feeds it, so a manifold above the trip level
    of a zone whose inlet is open, for longer than the debounce, may be squeezing that zone too much. The layer's
    ceiling keeps a sound build below it; a pump running anyway does not stop there."""

    raw = True
    rule = "SAFE-4"

    def __init__(
        self,
        names: Sequence[str],
        trip_levels_mmhg: Sequence[float],
        debounce_s: float,
        shared: SharedSensor | None = None,
    ):
        self.names = list(names)
        self.trip_levels = list(trip_levels_mmhg)
        self.debounce_s = debounce_s
        self.shared = shared  # its bounds: a zone surely below its trip level is not judged by the manifold
        self.hard_level = max(self.trip_levels)
        self.reset()

    def reset(self) -> None:
        self._since: float | None = None

    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None:
        m = readings.manifold
        open_ = [i for i in range(len(self.names)) if applied.action(i) is FILL]
        if m is None or not m.ok or not open_:
            self._since = None
            return None
        # each open zone's level: its trip level, or the highest zone's where its bound keeps it surely below its own
        # (the layer lets the pump run past the filling zone's ceiling then; a pump running anyway passes this too)
        levels = {
            i: (self.hard_level if self.shared is not None and self.shared.bounded_below(i) else self.trip_levels[i])
            for i in open_
        }
        z = min(open_, key=levels.__getitem__)
        if m.mmhg <= levels[z]:
            self._since = None
            return None
        if self._since is None:
            self._since = now_s
        if now_s - self._since < self.debounce_s:
            return None
        return Trip(
            self.rule,
            self.names[z],
            m.mmhg,
            now_s,
            f"the manifold feeding {self.names[z]} reads {m.mmhg:.1f} mmHg, above "
            + (
                f"its trip level ({levels[z]:g})"
                if levels[z] == self.trip_levels[z]
                else f"every zone's ({levels[z]:g})"
            )
            + ": the zone may be above it too",
            "a one-sensor build stops its pump below this: check the pump's MOSFET and wiring",
        )
