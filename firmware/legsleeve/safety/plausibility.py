"""SAFE-15, sensor plausibility: no zone reading is trusted alone. Each is confirmed against the manifold sensor, an
independent measurement of the same air whenever the two are connected and the air between them has settled.

How: while a zone fills, its inlet joins it to the manifold. With the pump stopped for a moment the manifold falls to
the zone's pressure within a few time constants (about 16 ms on the reference build: 20 mL of manifold behind a
0.1 L/min/mmHg inlet), and the zone's far larger bladder barely moves. Then both sensors read the same air, and they
must agree within `limits.plausibility_tol_mmhg` plus 5 % of the pressure.

When: the supervisor, not the controller, calls the checks (the controller cannot forget one), always while the
controller still wishes the zone filled. A zone is checked during a fill

- when its reading has risen `limits.plausibility_step_mmhg` since its last check, counted across top-ups (a sensor
  reading low: offset, drift, gain below 1, lag);
- when the manifold has risen that much since the pump settled (the zone rose with it, whatever its own sensor
  says: a frozen sensor);
- after `CHECK_EVERY_S` of pumping;
- once as the fill nears its end (the controller tapers the pump, `pump_duty` below 1), if it rose at all since its
  last check: the last few mmHg of a fill, and every top-up, are confirmed before the zone is held.

A check stops the pump, keeps the zone's inlet open as wished and holds every other filling zone: an output never
less safe than the wish. A zone the controller stops filling meanwhile ends its check unconfirmed.

The check's verdict: the readings disagree beyond the tolerance -> trip (the zone sensor's zero, gain or response is
wrong, or the manifold's). Within it, the zone's *correction* becomes how far the manifold read above the zone, and
SAFE-4 judges the zone at its reading plus that correction: the higher of the two sensors decides. In between
checks, a zone reading more than the tolerance above the manifold that fills it alone trips too (air does not flow
uphill). A zone whose check failed is not trusted again: its vent is reported unconfirmed, not judged on its reading.

A build without a manifold sensor has no independent measurement: this rule cannot run there, and
`legsleeve.config.hardware` caps such a build's pressures instead (docs/safety-requirements.md, SAFE-15).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from legsleeve.core.commands import FILL, HOLD, VENT, Commands
from legsleeve.core.readings import Reading, Readings
from legsleeve.safety.overpressure import pump_runs
from legsleeve.safety.trip import Trip

TOL_FRACTION = 0.05  # on top of the tolerance in mmHg: each sensor's span is good to a few percent
MIN_SETTLE_S = 0.1  # the manifold's time constant is ~16 ms on the reference build: six of them, less a tick
MAX_SETTLE_S = 1.0  # a manifold still moving after this is compared anyway
SETTLED_MMHG_S = 20.0  # the manifold moving slower than this (0.4 mmHg a tick at 50 Hz) has settled
PUMP_SETTLE_S = 0.3  # after the pump starts, the manifold's rise to its working pressure is not the zone's
CHECK_EVERY_S = 2.0  # of pumping, however little the readings moved
ABOVE_DEBOUNCE_S = 0.5  # a zone above its own filling manifold: the first moment of a fill may backflow
TAPER_RISE_MMHG = 0.5  # a fill nearing its end is checked if it rose at least this since its last check
# A manifold above its zone after settling: kept joined, pump off, up to CONFIRM_S to see whether air comes in.
# Averages of CONFIRM_AVG_N readings at each end of that window; the median's noise is ~0.06 mmHg on the reference.
CONFIRM_S = 1.0
CONFIRM_AVG_N = 5
FED_RISE_MMHG = 1.0  # the manifold rising: a weak pump (1.5 L/min) stuck on fills the reference calf at ~3 mmHg/s
FED_FALL_MMHG = 0.5  # a held zone falling into the manifold through its inlet: ~0.8 mmHg/s on the reference
FED_VENTING_MMHG = 5.0  # a venting zone held above this while the manifold drains: fed through a stuck inlet
FED_GAIN_MMHG = 0.15  # a zone gaining this much (mean of five against mean of five) while the manifold drains


def is_check(applied: Commands) -> bool:
    """Whether these outputs are a SAFE-15 check: pump off with an inlet open. The controller never asks for that
    (it pumps whenever it fills), so the other rules can tell a check's moment from a hold or the end of a fill."""
    return applied.pump_duty <= 0 and FILL in applied.zones


class Plausibility:
    """SAFE-15 with a manifold sensor: schedules the equalisation checks (`shape`) and judges them (`check`)."""

    raw = False
    rule = "SAFE-15"

    def __init__(self, names: Sequence[str], *, tol_mmhg: float, step_mmhg: float):
        self.names = list(names)
        self.tol_mmhg = tol_mmhg
        self.step_mmhg = step_mmhg
        self.corrections_mmhg = [0.0] * len(self.names)  # how far the manifold read above each zone at its check
        self.reset()

    def reset(self) -> None:
        """Forget everything seen: the monitor is as new (SAFE-13's explicit reset)."""
        n = len(self.names)
        self.corrections_mmhg[:] = [0.0] * n  # in place: SAFE-4 holds this list
        self.checks = 0  # confirmations so far, for the report and the tests
        self._unconfirmed = [False] * n
        self._risen_mmhg = [0.0] * n  # reading gained while pumped since the last check, across top-ups
        self._previous_mmhg = [math.nan] * n
        self._tapered = [False] * n  # checked once this fill's pump has begun to taper
        self._pumped_s = [0.0] * n
        self._last_s: float | None = None
        self._dt = 0.0
        self._seen_zones: tuple[Reading, ...] = ()
        self._manifold: Reading | None = None
        self._checking: int | None = None
        self._check_since = 0.0
        self._confirm_since: float | None = None
        self._confirm: list[tuple[float, tuple[float, ...]]] = []
        self._confirm_venting: set[int] = set()  # zones venting yet above FED_VENTING_MMHG at any tick of the wait
        self._settle_prev: float | None = None
        self._pump_since: float | None = None
        self._pump_base: float | None = None
        self._above_since: list[float | None] = [None] * n

    def tolerance(self, mmhg: float) -> float:
        return self.tol_mmhg + TOL_FRACTION * abs(mmhg)

    # -- judging -----------------------------------------------------------------------------------------------
    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None:
        dt = self._dt = 0.0 if self._last_s is None else max(now_s - self._last_s, 0.0)
        self._last_s = now_s
        self._seen_zones, m = readings.zones, readings.manifold
        self._manifold = m
        pumping = applied.pump_duty > 0
        zones = readings.zones
        actions = applied.actions(len(zones))
        for i, r in enumerate(zones):
            action = actions[i]
            ok = r.fault is None  # r.ok
            if action is FILL and pumping:
                self._pumped_s[i] += dt
                self._unconfirmed[i] = True
                if ok and r.mmhg > self._previous_mmhg[i]:
                    self._risen_mmhg[i] += r.mmhg - self._previous_mmhg[i]
            elif action is not FILL:
                self._tapered[i] = False  # the fill is over: the next one may taper again
            self._previous_mmhg[i] = r.mmhg if ok else math.nan
            if action is VENT:  # emptying: nothing left to confirm until it is filled again
                self._unconfirmed[i] = False
                self._pumped_s[i] = self._risen_mmhg[i] = 0.0
        self._track_pump(now_s, pumping, m)
        if m is None or not m.ok:
            return None  # SAFE-9 judges a manifold sensor without a good reading
        trip = self._above_manifold(now_s, readings.zones, m, applied)
        if trip is not None:
            return trip
        return self._judge_check(now_s, m, applied)

    def _track_pump(self, now_s: float, pumping: bool, m: Reading | None) -> None:
        if not pumping:
            self._pump_since = self._pump_base = None
            return
        if self._pump_since is None:
            self._pump_since = now_s
        if self._pump_base is None and m is not None and m.ok and now_s - self._pump_since >= PUMP_SETTLE_S:
            self._pump_base = m.mmhg

    def _above_manifold(self, now_s: float, zones: Sequence[Reading], m: Reading, applied: Commands) -> Trip | None:
        """Between checks: a zone joined alone to the manifold by its open inlet cannot sit well above it for long.
        (With two inlets open the higher zone can drain through the manifold into the lower one.)"""
        open_inlets = [i for i, action in enumerate(applied.actions(len(zones))) if action is FILL]
        alone = open_inlets[0] if len(open_inlets) == 1 else None  # the zone whose inlet alone is open
        for i, r in enumerate(zones):
            confirming = i == self._checking and self._confirm_since is not None  # the check's own wait judges it
            if i != alone or not r.ok or r.mmhg <= m.mmhg + self.tolerance(m.mmhg) or confirming:
                self._above_since[i] = None
                continue
            since = self._above_since[i]
            if since is None:
                self._above_since[i] = now_s
            elif now_s - since >= ABOVE_DEBOUNCE_S:
                return self._disagree(now_s, i, r, m, f"while its inlet was open for {now_s - since:.1f} s")
        return None

    def _judge_check(self, now_s: float, m: Reading, applied: Commands) -> Trip | None:
        c = self._checking
        if c is None:
            return None
        if applied.action(c) is not FILL or applied.pump_duty > 0:
            self._checking = None  # the check was not applied (a vent came first): the zone stays unconfirmed
            return None
        elapsed = now_s - self._check_since
        prev, self._settle_prev = self._settle_prev, m.mmhg
        z = self._seen_zones[c]
        if elapsed < MIN_SETTLE_S or not z.ok:
            return None
        settled = prev is not None and abs(m.mmhg - prev) <= SETTLED_MMHG_S * max(self._dt, 0.005)
        if not settled and elapsed < MAX_SETTLE_S:
            return None
        if abs(z.mmhg - m.mmhg) > self.tolerance(m.mmhg):
            if m.mmhg > z.mmhg:  # before blaming the zone's sensor: is the manifold being fed?
                waiting, fed = self._fed(now_s, c, m, applied)
                # Meanwhile, once the wait has seen the manifold hold level (nothing feeding it: no flow through the
                # inlet, so no drop across it), the zone joined to it is at the manifold's pressure whichever sensor
                # is wrong: the higher decides for SAFE-4 while the wait goes on, as after a check. A manifold still
                # rising is the wait's to judge (a pump running anyway: the E-stop).
                level = self._confirm_level()
                if level is not None and math.isfinite(level):
                    self.corrections_mmhg[c] = max(self.corrections_mmhg[c], level - z.mmhg)
                if waiting or fed is not None:
                    return fed
            else:  # the manifold below the zone: is air leaving through it, to a zone whose inlet is stuck open?
                waiting, drained = self._drained(now_s, c, m, applied)
                if waiting or drained is not None:
                    return drained
            self._checking = None
            how = f"after {elapsed:.2f} s joined with the pump off" + (
                ", nothing feeding the manifold" if self._confirm_since is not None else ""
            )
            return self._disagree(now_s, c, z, m, how)
        self._checking = None
        self.corrections_mmhg[c] = max(0.0, m.mmhg - z.mmhg)
        self._unconfirmed[c] = False
        self._pumped_s[c] = self._risen_mmhg[c] = 0.0
        self._pump_base = None  # the next rise of the manifold counts from the next settled pump
        self.checks += 1
        return None

    def _confirm_level(self) -> float | None:
        """The manifold's mean over the wait's latest readings, once it has enough to show it is not rising (else
        None)."""
        if len(self._confirm) < 2 * CONFIRM_AVG_N:
            return None
        first, last = self._confirm[:CONFIRM_AVG_N], self._confirm[-CONFIRM_AVG_N:]
        rise = _mean(s[0] for s in last) - _mean(s[0] for s in first)
        # level: a quarter of the rise that names a running pump (a pump feeding a joined bladder raises the manifold
        # ~0.5 mmHg between the two means; a manifold with nothing feeding it moves by its noise, ~0.03)
        return _mean(s[0] for s in last) if rise < FED_RISE_MMHG / 4 else None

    def _fed(self, now_s: float, c: int, m: Reading, applied: Commands) -> tuple[bool, Trip | None]:
        """The manifold reads above the zone it should have equalised with. A sensor reading low, or air coming in
        with the pump off: the pump runs anyway (the manifold keeps rising) or a held zone's inlet is stuck open (it
        drains into the manifold). The pump stays off and the zone gains nothing meanwhile, so the check is kept up
        to CONFIRM_S to tell. Returns (still waiting, the Trip naming the source if one was found)."""
        zones = self._seen_zones
        if self._sample(now_s, m):
            return True, None
        assert self._confirm_since is not None  # the wait began at an earlier tick
        first, last = self._confirm[:CONFIRM_AVG_N], self._confirm[-CONFIRM_AVG_N:]
        if len(self._confirm) >= 2 * CONFIRM_AVG_N:
            rise = _mean(s[0] for s in last) - _mean(s[0] for s in first)
            if rise >= FED_RISE_MMHG:
                how = f"in {now_s - self._confirm_since:.2f} s with only {self.names[c]}'s inlet open"
                return False, pump_runs(now_s, m.mmhg, rise, how)
            for j, name in enumerate(self.names):
                if j == c or applied.action(j) is not HOLD or not zones[j].ok:
                    continue
                fall = _mean(s[1][j] for s in first) - _mean(s[1][j] for s in last)
                if first[0][1][j] > first[0][0] + self.tolerance(first[0][0]) and fall >= FED_FALL_MMHG:
                    return False, Trip(
                        "SAFE-8",
                        name,
                        zones[j].mmhg,
                        now_s,
                        f"loses {fall:.1f} mmHg held with both valves closed while the manifold, {m.mmhg:.1f} mmHg "
                        f"with the pump off, fills {self.names[c]}: its inlet is stuck open or leaks",
                        f"the inlet valve of {name} does not close: check its wiring and replace the valve",
                    )
        return now_s - self._confirm_since < CONFIRM_S, None

    def _drained(self, now_s: float, c: int, m: Reading, applied: Commands) -> tuple[bool, Trip | None]:
        """The manifold reads below the zone it should have equalised with. A sensor reading high - or the manifold
        joined to another zone through an inlet stuck open, lower or venting, so air leaves through it: the zone
        checked then falls while it stays joined (the pump is off and nothing else is open). Kept up to CONFIRM_S to
        tell. Returns (still waiting, the Trip naming where the air goes if it is found to leave)."""
        zones = self._seen_zones
        starting = self._sample(now_s, m)
        if starting:
            self._confirm_venting = set()
        # a zone venting yet fed stays up; one bleeding to a lower target that ends its bleed within the wait (held
        # closed again, as a refill measure's sleeve is) counts as venting for the whole wait
        self._confirm_venting.update(
            j
            for j in range(len(self.names))
            if j != c and zones[j].ok and applied.action(j) is VENT and zones[j].mmhg > FED_VENTING_MMHG
        )
        if starting:
            return True, None
        assert self._confirm_since is not None  # the wait began at an earlier tick
        if len(self._confirm) >= 2 * CONFIRM_AVG_N:
            first, last = self._confirm[:CONFIRM_AVG_N], self._confirm[-CONFIRM_AVG_N:]
            fall = _mean(s[1][c] for s in first) - _mean(s[1][c] for s in last)
            if fall >= FED_FALL_MMHG:
                # where it goes: a zone gaining meanwhile, else one venting yet above 5 mmHg (fed), else unknown
                gains = {
                    j: _mean(s[1][j] for s in last) - _mean(s[1][j] for s in first)
                    for j in range(len(self.names))
                    if j != c and zones[j].ok
                }
                # the air went somewhere: the zone that gained most, if one gained clearly more than its noise
                # (a big bladder takes the manifold's few millilitres with little rise); else one venting yet fed
                gainer = max(gains, key=gains.__getitem__, default=None)
                venting = [j for j in gains if j in self._confirm_venting]
                if gainer is not None and gains[gainer] >= FED_GAIN_MMHG:
                    suspect: int | None = gainer
                else:
                    suspect = max(venting, key=lambda j: zones[j].mmhg) if venting else None
                name = self.names[suspect] if suspect is not None else None
                where = f"into {name}" if name else "through the manifold"
                return False, Trip(
                    "SAFE-8",
                    name or "manifold",
                    zones[suspect].mmhg if suspect is not None else m.mmhg,
                    now_s,
                    f"{self.names[c]} loses {fall:.1f} mmHg joined to the manifold with the pump off and only its "
                    f"inlet open: air leaves {where}, so an inlet that should be closed is stuck open or leaks",
                    (
                        f"the inlet valve of {name} does not close: check its wiring and replace the valve"
                        if name
                        else "an inlet valve does not close, or the manifold leaks: check each zone's inlet valve"
                    ),
                )
        return now_s - self._confirm_since < CONFIRM_S, None

    def _sample(self, now_s: float, m: Reading) -> bool:
        """Keep this tick's manifold and zone readings for a check's confirm wait; True when the wait begins here."""
        sample = (m.mmhg, tuple(r.mmhg if r.ok else math.nan for r in self._seen_zones))
        if self._confirm_since is None:
            self._confirm_since, self._confirm = now_s, [sample]
            return True
        self._confirm.append(sample)
        return False

    def _disagree(self, now_s: float, i: int, z: Reading, m: Reading, how: str) -> Trip:
        name = self.names[i]
        low = z.mmhg < m.mmhg
        return Trip(
            self.rule,
            name,
            z.mmhg,
            now_s,
            f"{name} sensor reads {z.mmhg:.1f} mmHg, the manifold {m.mmhg:.1f}, {how}: they differ by "
            f"{abs(z.mmhg - m.mmhg):.1f} mmHg (tolerance {self.tolerance(m.mmhg):.1f})",
            (
                f"the {name} sensor reads {'low' if low else 'high'}: its zero, its gain or its response is off, "
                f"or the manifold sensor's is. Check with a gauge before trusting either; check the {name} sensor's "
                "tube is on its tee and not pinched"
            ),
        )

    # -- scheduling ----------------------------------------------------------------------------------------------
    def shape(self, wish: Commands) -> Commands:
        """The supervisor's guarded wish, with a check laid over it when one is due: pump off, the zone's inlet open
        (as wished), every other filling zone held. Never less safe than the wish."""
        c = self._checking
        if c is not None and wish.action(c) is not FILL:
            self._checking = None  # the controller stopped filling it (a hold, a vent): it is not kept open
            c = None
        if c is None:
            c = self._due(wish)
            if c is None:
                return wish
            self._checking, self._check_since, self._settle_prev = c, self._last_s or 0.0, None
            self._confirm_since, self._confirm = None, []
        actions = tuple(
            FILL if i == c else (HOLD if wish.action(i) is FILL else wish.action(i)) for i in range(len(self.names))
        )
        return Commands(0.0, actions)

    def _due(self, wish: Commands) -> int | None:
        if self._manifold is None:
            return None
        pumping = wish.pump_duty > 0
        m = self._manifold
        manifold_rose = self._pump_base is not None and m.ok and m.mmhg >= self._pump_base + self.step_mmhg and pumping
        if not pumping:
            return None
        for i in range(len(self._seen_zones)):
            if not self._unconfirmed[i] or wish.action(i) is not FILL:
                continue
            tapering = wish.pump_duty < 1.0 and not self._tapered[i] and self._risen_mmhg[i] >= TAPER_RISE_MMHG
            if tapering:
                self._tapered[i] = True
            if tapering or manifold_rose or self._risen_mmhg[i] >= self.step_mmhg or self._pumped_s[i] >= CHECK_EVERY_S:
                return i
        return None


def _mean(values: Iterable[float]) -> float:
    v = list(values)
    return sum(v) / len(v)
