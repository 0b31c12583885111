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
from typing import NamedTuple

from legsleeve.core.commands import FILL, HOLD, VENT, Commands
from legsleeve.core.limits import VENTED_MMHG
from legsleeve.core.readings import UNMEASURED, Reading, Readings
from legsleeve.safety.trip import Trip

PEEK_MIN_S = 0.035  # the manifold's time constant is ~16 ms on the reference: two ticks at 50 Hz
PEEK_MAX_S = 0.3  # a manifold still moving after this is read anyway (and is an upper bound of the zone)
SETTLED_MMHG = 0.3  # two successive readings this close, and the approach's rest as small (its steps' ratio): settled
MAX_STEP_RATIO = 0.9  # a ratio of steps above this (noise, once settled) counts as this
PEEK_FILL_S = 0.5  # the zone being filled, this often (its pumping time between peeks)
PEEK_HOLD_S = 1.0  # each held zone, this often
PEEK_VENT_S = 0.5  # each venting zone until it reads vented
# A held zone more than FAR_BELOW_MMHG below the zone being filled is looked at every PEEK_HOLD_FAR_S instead: each
# look opens it to a manifold at least at the filling zone's pressure, and a big manifold's air then goes into it
# (0.4 mmHg a look at 30 mmHg apart, with four times the reference's manifold behind a tenth of its inlet; 5 mmHg
# over a 20 s fill at a look a second, which SAFE-8 reads, rightly, as a held zone gaining). A stuck inlet there is
# seen a few seconds later, and the manifold's ceiling bounds it meanwhile.
PEEK_HOLD_FAR_S = 3.0
FAR_BELOW_MMHG = 10.0
CEILING_MARGIN_MMHG = 3.0  # the pump stops this far below the filling zone's trip level
# A look of at least FIT_MIN_SAMPLES readings is read through the manifold's approach (see `approach`), not its last
# reading, where that fit is sound: its time constant within FIT_TAU_S, what is left of the approach at most
# FIT_MAX_LEFT_MMHG, its residuals within FIT_NOISE_RMS times the sensor's noise (and FIT_MIN_RMS_MMHG).
FIT_MIN_SAMPLES = 4
LOOK_TAUS = 3.0  # a look lasts at least this many of its zone's time constants (5 % of the gap left), once known
TAU_FROM_GAP_MMHG = 5.0  # a fit that closed at least this gap teaches the zone's time constant
# Where a zone's approach is known to be slow (tau at least QUICK_LOOK_TAU_S: three ticks), its look ends as soon as
# FIT_MIN_SAMPLES readings fit that approach with at most QUICK_LOOK_LEFT_MMHG to go: a 0.3 s look for every tick
# of pumping (a strong pump meets the ceiling in a tick) left a big manifold's zone filling at a twentieth of its pace.
QUICK_LOOK_TAU_S = 0.06
QUICK_LOOK_LEFT_MMHG = 10.0
FIT_TAU_S = (0.005, 1.0)
FIT_MAX_LEFT_MMHG = 3.0
FIT_NOISE_RMS = 3.0
FIT_MIN_RMS_MMHG = 0.1


class SharedSensor:
    """The peeks, the manifold's ceiling and one inlet at a time, and the per-zone readings they give.

    `max_rise_mmhg_s`: the fastest a bladder fills (`limits.occlusion_rate_mmhg_s`, SAFE-6's premise: faster is a
    hose). With it, the pump may run past the filling zone's ceiling while the zone's bound - its last look plus that
    rate times the pumping since - stays below the ceiling: the zone cannot have got there, whatever the manifold
    reads. The manifold itself then stops at the highest zone's ceiling (`hard_ceiling_mmhg`). Without it (None) the
    filling zone's ceiling holds the manifold at every moment."""

    def __init__(
        self,
        names: Sequence[str],
        trip_levels_mmhg: Sequence[float],
        max_rise_mmhg_s: float | None = None,
        noise_mmhg: float = 0.08,
    ):
        self.names = list(names)
        self.noise_mmhg = noise_mmhg  # one reading's noise: how closely a look's fit must follow its readings
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
        self._peek_samples: list[tuple[float, float]] = []  # (t, mmHg) of the look under way
        self._peek_step = math.inf
        self._tau_s: list[float | None] = [None] * n  # each zone's approach time constant, learnt from its looks
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
            self._peek_samples.append((t, m.mmhg))
            settled = False
            quick: float | None = None
            tau = self._tau_s[p]
            if prev is not None:
                step = abs(m.mmhg - prev)
                # Two readings within SETTLED_MMHG, and what is left of the approach no more: a step of 0.3 mmHg
                # where each step is 0.8 of the one before (tau ~0.1 s at 50 Hz) leaves 1.2 mmHg to go.
                ratio = min(step / self._peek_step, MAX_STEP_RATIO) if self._peek_step > 0.0 else 0.0
                self._peek_step = step
                if tau is not None and tau >= QUICK_LOOK_TAU_S:
                    if len(self._peek_samples) >= FIT_MIN_SAMPLES:
                        fit = approach(self._peek_samples, self.noise_mmhg, tau, QUICK_LOOK_LEFT_MMHG)
                        quick = fit.mmhg if fit is not None else None
                elif elapsed >= max(PEEK_MIN_S, LOOK_TAUS * (tau or 0.0)):
                    settled = step <= SETTLED_MMHG and step * ratio / (1.0 - ratio) <= SETTLED_MMHG
            if quick is not None or settled or elapsed >= PEEK_MAX_S:
                mmhg = quick if quick is not None else self._read_look(p, m.mmhg)
                fresh[p] = Reading(mmhg, t)
                self._known[p] = (mmhg, t)
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

    def _read_look(self, zone: int, last_mmhg: float) -> float:
        """The zone's pressure from its look: where the readings were heading (`approach`), or the last reading."""
        samples = self._peek_samples
        if len(samples) < FIT_MIN_SAMPLES:
            return last_mmhg
        tau = self._tau_s[zone]
        fit = approach(samples, self.noise_mmhg, tau)
        if fit is None and tau is not None:
            fit = approach(samples, self.noise_mmhg)  # the zone's approach changed (its volume, a fault): fit anew
        if fit is None:
            return last_mmhg
        if abs(fit.gap_mmhg) >= TAU_FROM_GAP_MMHG:
            # a long approach tells its time constant clearly; a short one is mostly noise and keeps the last
            self._tau_s[zone] = fit.tau_s if tau is None else (tau + fit.tau_s) / 2.0
        return fit.mmhg

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
        self._peek_samples = []
        self._peek_step = math.inf  # the step between the look's last two readings
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
            if action is HOLD and age >= (PEEK_HOLD_FAR_S if self._far_below(i, f) else PEEK_HOLD_S):
                pass
            elif action is VENT and age >= PEEK_VENT_S and not self._vented(i):
                pass
            else:
                continue
            if oldest is None or age > oldest[0]:
                oldest = (age, i)
        return oldest[1] if oldest is not None else None

    def _far_below(self, i: int, f: int | None) -> bool:
        """Held more than FAR_BELOW_MMHG below the zone being filled (whose pressure the manifold holds after its
        look, or more while pumping)."""
        if f is None:
            return False
        ki, kf = self._known[i], self._known[f]
        return ki is not None and kf is not None and kf[0] - ki[0] > FAR_BELOW_MMHG

    def _vented(self, i: int) -> bool:
        """Read empty (a margin below 5 mmHg, for the zero's uncertainty) while venting: no more looks needed."""
        k = self._known[i]
        return k is not None and k[0] < VENTED_MMHG - 1.0 and self._venting_since_peek[i]


class Approach(NamedTuple):
    """A look's fit: the manifold heads for `mmhg` (the zone's pressure) from `gap_mmhg` away, with time constant
    `tau_s`."""

    mmhg: float
    gap_mmhg: float
    tau_s: float


def approach(
    samples: Sequence[tuple[float, float]],
    noise_mmhg: float,
    tau_s: float | None = None,
    max_left_mmhg: float = FIT_MAX_LEFT_MMHG,
) -> Approach | None:
    """Where a look's manifold readings (t, mmHg) are heading: the zone's pressure, or None where no sound fit says.

    With the pump stopped and one inlet open, the manifold and the zone share their air through the inlet, a first-
    order system: the manifold approaches the zone's pressure as p(t) = p_inf + A·exp(-t/tau), from above after
    pumping, from below after a look at a zone lower than this one. Where tau is long (a big manifold behind a narrow
    inlet: ~0.1 s, against 16 ms on the reference) the look's last reading is still 1-3 mmHg off when PEEK_MAX_S ends
    it. For each tau, p_inf and A are a linear least-squares fit; tau is `tau_s` where given (the zone's, learnt from
    earlier looks), else the best within FIT_TAU_S (a golden-section search on log tau). The fit counts only where
    it is sound: residuals within FIT_NOISE_RMS times the noise, and at most FIT_MAX_LEFT_MMHG left of the
    approach; otherwise the caller keeps the last reading (a bound, as before)."""
    t0 = samples[0][0]
    ts = [t - t0 for t, _ in samples]
    ps = [p for _, p in samples]
    n = len(ps)

    def solve(tau: float) -> tuple[float, float, float]:
        """(sum of squared residuals, p_inf, A) for this tau."""
        es = [math.exp(-t / tau) for t in ts]
        se, see = sum(es), sum(e * e for e in es)
        sp, sep = sum(ps), sum(e * q for e, q in zip(es, ps, strict=True))
        det = n * see - se * se
        if det <= 1e-12:
            return math.inf, math.nan, math.nan
        a = (n * sep - se * sp) / det
        p_inf = (sp - a * se) / n
        sse = sum((q - p_inf - a * e) ** 2 for e, q in zip(es, ps, strict=True))
        return sse, p_inf, a

    if tau_s is None:
        lo, hi = math.log(FIT_TAU_S[0]), math.log(FIT_TAU_S[1])
        golden = (math.sqrt(5.0) - 1.0) / 2.0
        x1, x2 = hi - golden * (hi - lo), lo + golden * (hi - lo)
        f1, f2 = solve(math.exp(x1))[0], solve(math.exp(x2))[0]
        for _ in range(30):
            if f1 <= f2:
                hi, x2, f2 = x2, x1, f1
                x1 = hi - golden * (hi - lo)
                f1 = solve(math.exp(x1))[0]
            else:
                lo, x1, f1 = x1, x2, f2
                x2 = lo + golden * (hi - lo)
                f2 = solve(math.exp(x2))[0]
        tau = math.exp((lo + hi) / 2.0)
        if not FIT_TAU_S[0] * 1.01 < tau < FIT_TAU_S[1] * 0.99:
            return None  # no time constant inside the range: not an approach this fit can speak for
    else:
        tau = tau_s
    sse, p_inf, a = solve(tau)
    if not math.isfinite(p_inf):
        return None
    if math.sqrt(sse / n) > max(FIT_NOISE_RMS * noise_mmhg, FIT_MIN_RMS_MMHG):
        return None  # the readings do not follow one exponential: something else moved the manifold
    if abs(p_inf - ps[-1]) > max_left_mmhg:
        return None
    return Approach(p_inf, a, tau)


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
