"""SAFE-7, leak in hold: a held zone loses pressure too fast, falls too far, or needs too many top-ups."""

from __future__ import annotations

import math
from collections.abc import Sequence

from legsleeve.core.commands import FILL, HOLD, VENT, Commands, ZoneAction
from legsleeve.core.readings import UNMEASURED, Reading, Readings
from legsleeve.safety.plausibility import is_check
from legsleeve.safety.trip import Priority, Trip


class _Slope:
    """A least-squares fit of pressure against time, with one slope shared by separate stretches (the holds between
    top-ups, each with its own level), in running sums. The noise of a sensor moves two samples half a second apart
    by as much as a slow leak; a fit over every sample does not."""

    __slots__ = ("_origin", "_runs")

    def __init__(self) -> None:
        self._origin = math.nan
        self._runs: list[list[float]] = []  # per stretch: n, Σt, Σp, Σt², Σtp

    def __eq__(self, other: object) -> bool:  # as new equals as new (the supervisor's reset is checked so)
        if not isinstance(other, _Slope):
            return NotImplemented
        same_origin = self._origin == other._origin or (math.isnan(self._origin) and math.isnan(other._origin))
        return same_origin and self._runs == other._runs

    __hash__ = None  # type: ignore[assignment]

    def clear(self) -> None:
        self._origin = math.nan
        self._runs.clear()

    def new_run(self) -> None:
        if not self._runs or self._runs[-1][0]:
            self._runs.append([0.0] * 5)

    def add(self, t_s: float, mmhg: float, sign: float = 1.0) -> None:
        """Add a sample to the latest stretch (sign -1 takes one back out: a window sliding over one stretch)."""
        if math.isnan(self._origin):
            self._origin = t_s
        if not self._runs:
            self.new_run()
        t = t_s - self._origin
        run = self._runs[-1]
        # n, Σt, Σp, Σt², Σtp: each term as `sign * v` for v in (1, t, p, t², tp), written out (every held zone, every
        # tick, twice)
        run[0] += sign * 1.0
        run[1] += sign * t
        run[2] += sign * mmhg
        run[3] += sign * (t * t)
        run[4] += sign * (t * mmhg)

    def fit(self) -> tuple[float, float] | None:
        """(slope mmHg/s, Σ(t - t̄)² in s² within the stretches), or None with too few samples to say."""
        sxx = sxy = 0.0
        for n, st, sp, stt, stp in self._runs:
            if n < 1.5:
                continue
            sxx += stt - st * st / n
            sxy += stp - st * sp / n
        if sxx <= 1e-12:
            return None
        return sxy / sxx, sxx


class HoldLeak:
    """SAFE-7: a held zone (both valves closed) must not lose pressure faster than `max_rate` - judged on the time it
    has spent held since it was inflated, added up across the short holds between top-ups, once that reaches
    MIN_SPAN_S and then over each `window` - nor fall more than `max_drop` below the highest it reached (top-ups
    keep a sound zone within 2 mmHg), nor need more than `max_topups` top-ups in any `topup_window`. A leak that
    starts late in a window is diluted there by the sound time before it, so a hold that has settled (SETTLE_S: the
    hose evening out with its bladder after a fill) is also judged on its last MIN_SPAN_S alone. Rates are
    least-squares fits over every sample (one level per stretch between top-ups), judged clear of what the sensor's
    noise (`noise_mmhg`, one reading's standard deviation) could make of them."""

    raw = False
    rule = "SAFE-7"
    MIN_SPAN_S = 0.5
    SETTLE_S = 0.5
    # A loss is a leak once it stands clear of the sensor's noise: the fitted rate, less NOISE_SE of the slope's
    # spread that noise alone gives (noise / sqrt(Σ(t - t̄)²): measured on the median of three of white noise, the
    # median's smaller spread and its neighbours' shared samples cancel), above max_rate. With 0.3 mmHg of noise, over
    # half a second, that is 1.2 mmHg/s; over the 2 s window 0.14 mmHg/s.
    NOISE_SE = 3.0
    # A fill after a hold shorter than this, while a zone PAUSE_ABOVE_MMHG above it was filled, is no top-up: a fill
    # paused while another zone's top-up has the pump (the controller pauses fills more than 5 mmHg below a top-up).
    # (A leak fast enough to need a top-up within it loses 4 mmHg/s: the fitted rate trips on it.)
    TOPUP_MIN_HOLD_S = 0.5
    PAUSE_ABOVE_MMHG = 5.0
    # A hold too short to be judged on its own (under SETTLE_S + MIN_SPAN_S: the leak's top-ups come that often)
    # that ends in a top-up is judged whole: from its first reading to its last it lost at least QUICK_DROP_MMHG, at
    # more than QUICK_FACTOR x the bound. (A sound zone tops up only after its slow loss has added up; the hose
    # evening out after a fill costs a fraction of a mmHg.) Found on two legs, where a shared pump's top-ups are slow:
    # a 4 mmHg/s leak took 2 s top-ups every 0.5 s of hold, three in a 5 s hold step, and was never judged.
    QUICK_DROP_MMHG = 1.5
    QUICK_FACTOR = 2.0
    FLOOR_MMHG_S = 0.5  # the pressure-scaled bound's floor (calibrated builds)

    def __init__(
        self,
        names: Sequence[str],
        *,
        max_rate_mmhg_s: float,
        window_s: float,
        max_topups: int,
        topup_window_s: float,
        max_drop_mmhg: float,
        rate_per_mmhg_s: float = 0.0,  # (after the required ones: mypyc 2.4 misreads a default before them)
        noise_mmhg: float = 0.0,
    ):
        self.names = list(names)
        self.noise = noise_mmhg
        self.max_rate = max_rate_mmhg_s
        self.per_mmhg = rate_per_mmhg_s
        self.window_s = window_s
        self.max_topups = max_topups
        self.topup_window_s = topup_window_s
        self.max_drop = max_drop_mmhg
        self.reset()

    def reset(self) -> None:
        """Forget everything seen: the monitor is as new (SAFE-13's explicit reset)."""
        n = len(self.names)
        self._previous = [VENT] * n
        self._last: list[tuple[float, float] | None] = [None] * n  # the previous held sample
        self._fit = [_Slope() for _ in range(n)]  # every held sample since the window began
        self._held_s = [0.0] * n  # time held, summed
        self._topups: list[list[float]] = [[] for _ in range(n)]
        self._held_since = [0.0] * n  # when the latest hold began
        self._paused = [False] * n  # ...and whether a zone above it was being filled meanwhile
        self._peak = [-math.inf] * n
        self._held_once = [False] * n
        self._hold_start: list[float | None] = [None] * n  # when this uninterrupted hold began
        self._hold_first: list[tuple[float, float] | None] = [None] * n  # its first reading (t, p)
        self._ended: list[tuple[float, tuple[float, float], tuple[float, float]] | None] = [None] * n  # the last hold
        self._recent: list[list[tuple[float, float]]] = [[] for _ in range(n)]  # (t, p) over its last MIN_SPAN_S
        self._recent_fit = [_Slope() for _ in range(n)]

    def _trip(self, i: int, r: Reading, now_s: float, reason: str) -> Trip:
        return Trip(
            self.rule,
            self.names[i],
            r.mmhg if r.ok else None,
            now_s,
            reason,
            "a leaking bladder, seam or fitting, a hose kinked or come off, or an inlet valve that does not close (air "
            "going back to the manifold): check the zone, its hose connections and its inlet valve",
            priority=Priority.MEDIUM,
        )

    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None:
        checking = is_check(applied)
        zones = readings.zones
        actions = applied.actions(len(zones))
        for i, r in enumerate(zones):
            action = actions[i]
            if checking and (action is FILL or self._previous[i] is FILL):
                # A SAFE-15 check: the zone checked joined to the manifold for a moment (it may gain or lose a little
                # to its few millilitres), the zones it interrupted held. Neither a top-up nor a hold: passed over.
                self._end_hold(i)
                continue
            if action is not HOLD:
                self._end_hold(i)
            previous, self._previous[i] = self._previous[i], action
            if action is HOLD and previous is not HOLD:
                self._held_since[i] = now_s
                self._paused[i] = False
            if action is HOLD and not self._paused[i] and r.ok and self._fed_above(i, r.mmhg, zones, actions):
                self._paused[i] = True
            paused = self._paused[i] and now_s - self._held_since[i] < self.TOPUP_MIN_HOLD_S
            if action is FILL and previous is HOLD and not paused:
                trip = self._quick_loss(i, r, now_s)
                if trip is not None:
                    return trip
                topups = [t for t in self._topups[i] if now_s - t < self.topup_window_s] + [now_s]
                self._topups[i] = topups
                if len(topups) > self.max_topups:
                    return self._trip(
                        i,
                        r,
                        now_s,
                        f"needed {len(topups)} top-ups in {self.topup_window_s:g} s (at most {self.max_topups})",
                    )
            if action is VENT:
                self._ended[i] = None
                self._peak[i] = -math.inf
                self._held_once[i] = False
                self._last[i] = self._hold_start[i] = None
                self._held_s[i] = 0.0
                self._fit[i].clear()
                continue
            fault = r.fault
            if fault == UNMEASURED:  # r.unmeasured
                continue  # a one-sensor build's zone not read this tick: its hold goes on, judged at its next reading
            if fault is not None:  # not r.ok
                self._last[i] = self._hold_start[i] = None
                continue
            self._peak[i] = max(self._peak[i], r.mmhg)
            if action is HOLD:
                self._held_once[i] = True
            # once full, a zone's top-ups keep it within 2 mmHg: a fall past max_drop is air escaping, top-up or not
            if self._held_once[i] and self._peak[i] - r.mmhg > self.max_drop:
                return self._trip(
                    i, r, now_s, f"lost {self._peak[i] - r.mmhg:.1f} mmHg since it was full (at most {self.max_drop:g})"
                )
            if action is not HOLD:
                self._last[i] = self._hold_start[i] = None
                continue
            trip = self._recent_loss(i, r, now_s)
            if trip is not None:
                return trip
            last = self._last[i]
            self._last[i] = (now_s, r.mmhg)
            fit = self._fit[i]
            if last is None:
                fit.new_run()  # a new stretch of hold, at its own level
            fit.add(now_s, r.mmhg)
            if last is None:
                continue
            self._held_s[i] += now_s - last[0]
            if self._held_s[i] >= self.MIN_SPAN_S:
                trip = self._judge(i, r, now_s, fit)
                if trip is not None:
                    return trip
                if self._held_s[i] >= self.window_s:
                    self._held_s[i] = 0.0
                    fit.clear()
        return None

    def _fed_above(self, i: int, mmhg: float, zones: Sequence[Reading], actions: Sequence[ZoneAction]) -> bool:
        """Another zone, well above this one, being filled: this one's hold is a pause while it has the pump."""
        above = mmhg + self.PAUSE_ABOVE_MMHG
        return any(j != i and actions[j] is FILL and r.ok and r.mmhg > above for j, r in enumerate(zones))

    def _judge(self, i: int, r: Reading, now_s: float, fit: _Slope) -> Trip | None:
        result = fit.fit()
        if result is None:
            return None
        slope, sxx = result
        bound = self.bound(r.mmhg)
        if -slope - self.NOISE_SE * self.noise / math.sqrt(sxx) <= bound:
            return None
        return self._trip(
            i, r, now_s, f"loses {-slope:.1f} mmHg/s while held at {r.mmhg:.0f} mmHg (at most {bound:.2g})"
        )

    def bound(self, mmhg: float) -> float:
        """The fastest loss allowed at this pressure: max_rate; on a calibrated build, where a sound zone's loss grows
        with its pressure, also no more than FLOOR_MMHG_S plus `rate_per_mmhg` per mmHg (a leak at a low target is
        then caught as soon as one at a high one)."""
        if self.per_mmhg <= 0.0:
            return self.max_rate
        return min(self.max_rate, self.FLOOR_MMHG_S + self.per_mmhg * max(mmhg, 0.0))

    def _end_hold(self, i: int) -> None:
        """The zone leaves its hold (a top-up, a check, a vent): keep the hold's ends for `_quick_loss`."""
        start, first, last = self._hold_start[i], self._hold_first[i], self._last[i]
        if start is not None and first is not None and last is not None:
            self._ended[i] = (start, first, last)
        self._last[i] = self._hold_start[i] = self._hold_first[i] = None

    def _quick_loss(self, i: int, r: Reading, now_s: float) -> Trip | None:
        """A top-up ends a hold: if that hold was too short to be judged, judge it whole (QUICK_DROP_MMHG)."""
        ended, self._ended[i] = self._ended[i], None
        if ended is None:
            return None
        start, first, last = ended
        if last[0] - start >= self.SETTLE_S + self.MIN_SPAN_S:
            return None
        dt = last[0] - first[0]
        drop = first[1] - last[1]
        if dt <= 0.0 or drop < self.QUICK_DROP_MMHG:
            return None
        bound = self.bound(last[1])
        rate = (drop - 2.0 * self.NOISE_SE * self.noise) / dt  # each end's noise, clear of it
        if rate <= self.QUICK_FACTOR * bound:
            return None
        return self._trip(
            i,
            r,
            now_s,
            f"loses {drop / dt:.1f} mmHg/s between top-ups ({drop:.1f} mmHg in {dt:.1f} s held at {last[1]:.0f} mmHg; "
            f"at most {bound:.2g})",
        )

    def _recent_loss(self, i: int, r: Reading, now_s: float) -> Trip | None:
        start = self._hold_start[i]
        if start is None:
            self._hold_start[i] = now_s
            self._hold_first[i] = (now_s, r.mmhg)
            self._recent[i].clear()
            self._recent_fit[i].clear()
            return None
        if now_s - start < self.SETTLE_S:
            return None
        recent, fit = self._recent[i], self._recent_fit[i]
        recent.append((now_s, r.mmhg))
        fit.add(now_s, r.mmhg)
        while len(recent) > 2 and now_s - recent[1][0] >= self.MIN_SPAN_S:
            fit.add(*recent.pop(0), -1.0)
        if now_s - recent[0][0] < self.MIN_SPAN_S:
            return None
        return self._judge(i, r, now_s, fit)
