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

from legsleeve.commands import FILL, HOLD, SAFE, VENT, Commands, ZoneAction
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
    cannot_vent: bool = False  # the zone stays under pressure whatever the outputs do: the worst news there is

    def __str__(self) -> str:
        where = f" {self.zone}" if self.zone else ""
        return f"{self.rule}{where}: {self.reason}"


class Monitor(Protocol):
    rule: str
    raw: bool  # True: sees every reading as it came; False: sees the median of each sensor's last three

    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None: ...


def _all_readings(readings: Readings) -> list[Reading]:
    return [*readings.zones, *([readings.manifold] if readings.manifold else [])]


# -- SAFE-4 ------------------------------------------------------------------------------------------------------


class OverPressure:
    """SAFE-4: a zone above its trip level - min(configured max, its highest target + margin) - for longer than the
    debounce trips. A faulted reading neither starts nor clears the count (the sensor rule judges it)."""

    raw = True

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

    raw = False

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
                            "check the pump runs, the hose is on the bladder, and the bladder does not leak",
                            priority=MEDIUM)
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
                                "check the hose to this zone is on and not kinked, the bladder for leaks, that the "
                                "pump runs, and that no other zone's inlet is stuck open", priority=MEDIUM)
                self._window[i] = (now_s, r.mmhg)
        return None


# -- SAFE-8 ------------------------------------------------------------------------------------------------------


class VentCheck:
    """SAFE-8: once a zone is told to vent it must fall below 5 mmHg within the vent timeout, else it cannot vent
    (a stuck exhaust) - the highest-priority alarm."""

    raw = False

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
                            "release the sleeve by hand", cannot_vent=True)
        return None


# -- SAFE-9 ------------------------------------------------------------------------------------------------------


class SensorHealth:
    """SAFE-9: a sensor with no good reading for longer than `stale_s` (read deadline missed, I2C error, status
    bits, out of range, NaN), one stuck on the same value for `stuck_s`, or one that keeps spiking, trips."""

    raw = True

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
        self._spikes: list[list[tuple[float, bool]]] = [[] for _ in range(n)]  # (time, with the valves?)
        self._actions: list[list[ZoneAction]] = [[] for _ in range(n)]

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
                                "check the sensor's wiring (SDA/SCL, power), its multiplexer channel and its hose",
                                priority=MEDIUM)
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
                                "a live MPRLS never repeats its count for long: replace or reseat the sensor",
                                priority=MEDIUM)
            else:
                self._same_since[i] = None
            # a spike: the previous sample jumped far from the one before and this one came straight back
            actions = self._actions[i]
            if i < len(readings.zones):
                actions.append(applied.action(i))
                del actions[:-3]
            if (math.isfinite(before) and abs(previous - before) > SPIKE_MMHG
                    and abs(r.mmhg - before) < SPIKE_MMHG / 2):
                # up as its inlet opened, down as its exhaust did: air in a hose, not a sensor's fault
                hose = (len(actions) == 3 and actions[0] is not FILL and actions[1] is FILL
                        and actions[2] is not FILL)  # a one-tick fill made it, not a fill long under way
                spikes = [(t, h) for t, h in self._spikes[i] if now_s - t < SPIKE_WINDOW_S] + [(now_s, hose)]
                self._spikes[i] = spikes
                if len(spikes) >= SPIKES_TO_TRIP:
                    if sum(h for _, h in spikes) * 2 > len(spikes):
                        return Trip(Occlusion.rule, name, previous, now_s,
                                    f"pressure jumps with each fill and falls with each vent ({len(spikes)} times in "
                                    f"{SPIKE_WINDOW_S:g} s): the sensor sees only the hose",
                                    f"the hose of {name} is kinked, blocked or pulled off between the valve block and "
                                    "the bladder: straighten or refit it, and check the bladder is not still pressed",
                                    priority=MEDIUM)
                    return Trip(self.rule, name, previous, now_s,
                                f"{len(spikes)} readings jumped by more than {SPIKE_MMHG:g} mmHg and straight back "
                                f"within {SPIKE_WINDOW_S:g} s",
                                "erratic sensor: check its wiring and connector for intermittent contact",
                                priority=MEDIUM)
        return None


# -- SAFE-6 ------------------------------------------------------------------------------------------------------


class Occlusion:
    """SAFE-6: a zone whose pressure moves far faster than a bladder fills or empties is not connected to its
    bladder: the hose is kinked or blocked between the sensor tee and the bladder (the sensor then sees only the
    hose), or pulled off it. Filling, that is a rise; venting, a fall - and then the bladder beyond the kink may
    still hold its pressure, so it is raised as "cannot vent".

    It sees the median of three (a spike is SAFE-9's business), which shows a step one tick late; a hose fills
    within a tick and the controller closes the inlet on the next, so a fill or a vent is judged for GRACE_S after
    the zone goes to hold."""

    raw = False
    rule = "SAFE-6"
    SPAN_S = 0.1
    GRACE_S = 0.06
    MIN_CHANGE_MMHG = 5.0  # a real change, not noise or the manifold's few millilitres arriving

    def __init__(self, names: Sequence[str], max_rate_mmhg_s: float):
        self.names = list(names)
        self.max_rate = max_rate_mmhg_s
        n = len(self.names)
        self._history: list[list[tuple[float, float]]] = [[] for _ in range(n)]
        self._kind: list[ZoneAction] = [VENT] * n  # what is being judged: FILL, VENT, or HOLD (nothing)
        self._active_until = [0.0] * n

    def check(self, now_s, readings, applied):
        for i, r in enumerate(readings.zones):
            history = self._history[i]
            action = applied.action(i)
            if action is not HOLD:
                self._active_until[i] = now_s + self.GRACE_S
                kind = action
            else:
                kind = self._kind[i] if now_s <= self._active_until[i] else HOLD
            if kind is not self._kind[i]:
                self._kind[i] = kind
                last = history[-1] if history else None
                history.clear()
                if last is not None:
                    history.append(last)  # the pressure this action starts from
            if not r.ok:
                continue
            history.append((r.t_s, r.mmhg))
            while len(history) > 2 and r.t_s - history[1][0] >= self.SPAN_S:
                history.pop(0)
            if kind is HOLD:
                continue
            t0, p0 = history[0]
            change = r.mmhg - p0
            if r.t_s <= t0 or abs(change) < self.MIN_CHANGE_MMHG:
                continue
            rate = change / (r.t_s - t0)
            name = self.names[i]
            if kind is FILL and rate > self.max_rate:
                return Trip(self.rule, name, r.mmhg, now_s,
                            f"rose {rate:.0f} mmHg/s while filling, far faster than a bladder fills "
                            f"({self.max_rate:g} mmHg/s at most): the sensor sees only the hose",
                            f"the hose of {name} is kinked, blocked or pulled off between the valve block and the "
                            "bladder: straighten or refit it", priority=MEDIUM)
            if kind is VENT and -rate > self.max_rate:
                return Trip(self.rule, name, r.mmhg, now_s,
                            f"cannot vent {name}: it fell {-rate:.0f} mmHg/s, far faster than a bladder empties - "
                            "the bladder may still hold its pressure beyond a kinked or blocked hose",
                            f"release {name} by hand now, then straighten or refit its hose", cannot_vent=True)
        return None


# -- SAFE-7 ------------------------------------------------------------------------------------------------------


class HoldLeak:
    """SAFE-7: a held zone (both valves closed) must not lose pressure faster than `max_rate` - judged on the time it
    has spent held since it was inflated, added up across the short holds between top-ups, once that reaches
    MIN_SPAN_S and then over each `window` - nor fall more than `max_drop` below the highest it reached (top-ups
    keep a sound zone within 2 mmHg), nor need more than `max_topups` top-ups in any `topup_window`."""

    raw = False
    rule = "SAFE-7"
    MIN_SPAN_S = 0.5

    def __init__(self, names: Sequence[str], *, max_rate_mmhg_s: float, window_s: float, max_topups: int,
                 topup_window_s: float, max_drop_mmhg: float):
        self.names = list(names)
        self.max_rate = max_rate_mmhg_s
        self.window_s = window_s
        self.max_topups = max_topups
        self.topup_window_s = topup_window_s
        self.max_drop = max_drop_mmhg
        n = len(self.names)
        self._previous = [VENT] * n
        self._last: list[tuple[float, float] | None] = [None] * n  # the previous held sample
        self._drop = [0.0] * n  # pressure lost while held, summed
        self._held_s = [0.0] * n  # time held, summed
        self._topups: list[list[float]] = [[] for _ in range(n)]
        self._peak = [-math.inf] * n
        self._held_once = [False] * n

    def _trip(self, i, r, now_s, reason):
        return Trip(self.rule, self.names[i], r.mmhg if r.ok else None, now_s, reason,
                    "a leaking bladder, seam or fitting, a hose kinked or come off, or an inlet valve that does not close (air "
                    "going back to the manifold): check the zone, its hose connections and its inlet valve",
                    priority=MEDIUM)

    def check(self, now_s, readings, applied):
        for i, r in enumerate(readings.zones):
            action = applied.action(i)
            previous, self._previous[i] = self._previous[i], action
            if action is FILL and previous is HOLD:
                topups = [t for t in self._topups[i] if now_s - t < self.topup_window_s] + [now_s]
                self._topups[i] = topups
                if len(topups) > self.max_topups:
                    return self._trip(i, r, now_s, f"needed {len(topups)} top-ups in {self.topup_window_s:g} s "
                                                   f"(at most {self.max_topups})")
            if action is VENT:
                self._peak[i] = -math.inf
                self._held_once[i] = False
                self._last[i] = None
                self._drop[i] = self._held_s[i] = 0.0
                continue
            if not r.ok:
                self._last[i] = None
                continue
            self._peak[i] = max(self._peak[i], r.mmhg)
            if action is HOLD:
                self._held_once[i] = True
            # once full, a zone's top-ups keep it within 2 mmHg: a fall past max_drop is air escaping, top-up or not
            if self._held_once[i] and self._peak[i] - r.mmhg > self.max_drop:
                return self._trip(i, r, now_s, f"lost {self._peak[i] - r.mmhg:.1f} mmHg since it was full "
                                               f"(at most {self.max_drop:g})")
            if action is not HOLD:
                self._last[i] = None
                continue
            last = self._last[i]
            self._last[i] = (now_s, r.mmhg)
            if last is None:
                continue
            self._drop[i] += last[1] - r.mmhg
            self._held_s[i] += now_s - last[0]
            if self._held_s[i] >= self.MIN_SPAN_S:
                rate = self._drop[i] / self._held_s[i]
                if rate > self.max_rate:
                    return self._trip(i, r, now_s, f"loses {rate:.1f} mmHg/s while held (at most {self.max_rate:g})")
                if self._held_s[i] >= self.window_s:
                    self._drop[i] = self._held_s[i] = 0.0
        return None


# -- SAFE-8, continued: valves that do not do what they are told ---------------------------------------------------


class ValveCheck:
    """SAFE-8 (stuck valves): a zone told to vent must have lost a fifth of its pressure within `check_s` (the
    vent timeout catches the slow ones); and no zone may gain pressure with its inlet closed - venting or holding -
    which means air comes through an inlet that is stuck open or leaks."""

    raw = False

    rule = "SAFE-8"
    RISE_MMHG = 2.5  # below the controller's 3 mmHg bleed band (which would hide it); the median's noise is ~0.06
    # Quick look: 0.4 s into a vent from above 15 mmHg, the slowest reference zone (thigh, ~2.9 s time constant) has
    # lost 13 %; a stuck exhaust loses nothing. Pulses vent for as little as 0.5 s, so the 3 s check alone misses them.
    QUICK_S, QUICK_FROM_MMHG, QUICK_MIN_FALL = 0.4, 15.0, 0.03
    # A vent that levels off above 5 mmHg is being fed: at 5 mmHg a sound zone still falls ~1.7 mmHg/s.
    STALL_S, STALL_MMHG = 1.0, 0.3

    def __init__(self, names: Sequence[str], check_s: float):
        self.names = list(names)
        self.check_s = check_s
        n = len(self.names)
        self._previous = [VENT] * n
        self._start: list[tuple[float, float] | None] = [None] * n  # (t, p) when the inlet closed
        self._low = [math.inf] * n
        self._fall_checked = [False] * n
        self._moved = [False] * n
        self._last = [math.nan] * n
        self._level: list[tuple[float, float] | None] = [None] * n  # (since, at) while a vent holds level
        self._level_seen: list[set[float]] = [set() for _ in range(n)]

    def check(self, now_s, readings, applied):
        for i, r in enumerate(readings.zones):
            action = applied.action(i)
            previous, self._previous[i] = self._previous[i], action
            if action is FILL or not r.ok:
                self._start[i] = None
                continue
            if self._start[i] is None or action is not previous:
                self._start[i] = (now_s, r.mmhg)
                self._low[i] = r.mmhg
                self._fall_checked[i] = False
                self._moved[i] = False
                self._last[i] = r.mmhg
                self._level[i] = None
                continue
            t0, p0 = self._start[i]
            self._low[i] = min(self._low[i], r.mmhg)
            name = self.names[i]
            if r.mmhg != self._last[i]:
                self._moved[i] = True
            self._last[i] = r.mmhg
            if not self._moved[i]:
                continue  # not one count of change: a frozen sensor, not a valve (SAFE-9 judges it)
            if action is VENT and r.mmhg > VENTED_MMHG:
                ts, ps = self._level[i] if self._level[i] is not None else (now_s, r.mmhg)
                if abs(r.mmhg - ps) > self.STALL_MMHG:
                    self._level[i] = (now_s, r.mmhg)
                    self._level_seen[i] = {r.mmhg}
                else:
                    self._level_seen[i].add(r.mmhg)
                    if self._level[i] is None:
                        self._level[i] = (now_s, r.mmhg)
                    elif now_s - ts >= self.STALL_S and len(self._level_seen[i]) > 2:  # alive, yet level
                        return Trip(self.rule, name, r.mmhg, now_s,
                                    f"cannot vent {name}: stays at {r.mmhg:.1f} mmHg with its exhaust open",
                                    f"air keeps coming in: the inlet valve of {name} is stuck open or leaks (or its "
                                    "exhaust is blocked): release the sleeve by hand", cannot_vent=True)
            else:
                self._level[i] = None
            if r.mmhg > self._low[i] + self.RISE_MMHG and r.mmhg > VENTED_MMHG:
                doing = "venting" if action is VENT else "held with both valves closed"
                return Trip(self.rule, name, r.mmhg, now_s,
                            f"gains pressure while {doing} (+{r.mmhg - self._low[i]:.1f} mmHg): its inlet is stuck "
                            "open or leaks",
                            f"the inlet valve of {name} does not close: check its wiring and replace the valve")
            if action is VENT and p0 > self.QUICK_FROM_MMHG and self.QUICK_S <= now_s - t0 < self.QUICK_S + 0.03 \
                    and p0 - r.mmhg < max(1.0, self.QUICK_MIN_FALL * p0):
                return Trip(self.rule, name, r.mmhg, now_s,
                            f"cannot vent {name}: {r.mmhg:.1f} mmHg {now_s - t0:.1f} s after opening its exhaust "
                            f"(from {p0:.1f}, a vent loses 13 % by now)",
                            f"the exhaust valve of {name} may be stuck closed or its outlet blocked: release the "
                            "sleeve by hand", cannot_vent=True)
            if (action is VENT and not self._fall_checked[i] and now_s - t0 >= self.check_s
                    and p0 > 2 * VENTED_MMHG):
                self._fall_checked[i] = True
                if r.mmhg > VENTED_MMHG and r.mmhg > 0.8 * p0:
                    return Trip(self.rule, name, r.mmhg, now_s,
                                f"cannot vent {name}: {r.mmhg:.1f} mmHg {now_s - t0:.1f} s after opening its exhaust "
                                f"(from {p0:.1f})",
                                f"the exhaust valve of {name} may be stuck closed or its outlet blocked: release the "
                                "sleeve by hand", cannot_vent=True)
        return None


# -- SAFE-10 -----------------------------------------------------------------------------------------------------


class ReverseGradient:
    """SAFE-10: of two inflated zones, the proximal one must not read more than `margin` above the distal one for
    longer than `max_s` (DESIGN §3: a proximal cuff above a lower distal one traps blood). A vented distal zone is
    distal release, not a reversal."""

    raw = False

    rule = "SAFE-10"

    def __init__(self, names: Sequence[str], margin_mmhg: float, max_s: float):
        self.names = list(names)
        self.margin = margin_mmhg
        self.max_s = max_s
        self._since: dict[tuple[int, int], float] = {}

    def check(self, now_s, readings, applied):
        zones = readings.zones
        inflated = [i for i, r in enumerate(zones) if applied.action(i) is not VENT and r.ok]
        seen = set()
        for a in inflated:
            for b in inflated:
                if b <= a or zones[b].mmhg <= zones[a].mmhg + self.margin:
                    continue
                seen.add((a, b))
                since = self._since.setdefault((a, b), now_s)
                if now_s - since > self.max_s:
                    return Trip(self.rule, self.names[b], zones[b].mmhg, now_s,
                                f"reverse gradient: {self.names[b]} {zones[b].mmhg:.1f} mmHg above "
                                f"{self.names[a]} {zones[a].mmhg:.1f} mmHg for {now_s - since:.1f} s",
                                f"a proximal zone above a distal one traps blood: check {self.names[a]} for a leak")
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
        self._above: list[float | None] = [None] * len(self.names)
        self._start: float | None = None

    def check(self, now_s, readings, applied):
        if self._start is None:
            self._start = now_s
        if now_s - self._start > self.session_max_s:
            return Trip(self.rule, None, None, now_s,
                        f"session limit: running for {(now_s - self._start) / 60:.1f} min "
                        f"(at most {self.session_max_s / 60:g})",
                        "sessions are limited by limits.session_max_min in hardware.yaml", priority=LOW)
        for i, r in enumerate(readings.zones):
            if not r.ok:
                continue
            if r.mmhg <= self.venous:
                self._above[i] = None
                continue
            since = self._above[i]
            if since is None:
                since = self._above[i] = now_s
            if now_s - since > self.max_s:
                return Trip(self.rule, self.names[i], r.mmhg, now_s,
                            f"above {self.venous:g} mmHg for {now_s - since:.0f} s without a break "
                            f"(at most {self.max_s:g})",
                            "blood needs time to refill the leg between squeezes: shorten holds or add rests",
                            priority=MEDIUM)
        return None


# -- SAFE-4, the pump side -----------------------------------------------------------------------------------------


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
        self._off_since: float | None = None
        self._low = math.inf

    def check(self, now_s, readings, applied):
        m = readings.manifold
        if m is None:
            return None
        if applied.pump_duty > 0 or any(applied.action(i) is FILL for i in range(len(readings.zones))):
            self._off_since, self._low = None, math.inf
            return None
        if self._off_since is None:
            self._off_since = now_s
        if not m.ok:
            return None
        self._low = min(self._low, m.mmhg)
        if now_s - self._off_since >= self.SETTLE_S and m.mmhg > self._low + self.rise:
            return Trip(self.rule, "manifold", m.mmhg, now_s,
                        f"pump runs while commanded off: manifold up {m.mmhg - self._low:.1f} mmHg to "
                        f"{m.mmhg:.1f} with every inlet closed",
                        "the pump's MOSFET may be shorted: press the E-stop or unplug the 12 V supply; the closed "
                        "inlets and the relief valve hold it off the sleeve")
        return None


# -- SAFE-12 -----------------------------------------------------------------------------------------------------


class EStop:
    """SAFE-12: the E-stop (which also cuts the 12 V actuator supply in hardware) means the safe state now."""

    raw = True

    rule = "SAFE-12"

    def check(self, now_s, readings, applied):
        if readings.estop_pressed:
            return Trip(self.rule, None, None, now_s, "E-stop pressed",
                        "release the E-stop when the sleeve is safe; a new session starts from idle",
                        priority=MEDIUM)
        return None


# -- the supervisor ------------------------------------------------------------------------------------------------


class _Median3:
    """Each sensor's median of its last three good readings: one spike (SAFE-9's business) must not look like a
    rise, an occlusion or the start of a slow fill to the rules that measure rates and windows. A step change
    passes one tick later; a faulted reading stays faulted."""

    def __init__(self, n: int):
        self._last: list[list[float]] = [[] for _ in range(n)]

    def update(self, readings: Readings) -> Readings:
        out = []
        for last, r in zip(self._last, _all_readings(readings)):
            if not r.ok:
                out.append(r)
                continue
            last.append(r.mmhg)
            if len(last) > 3:
                del last[0]
            value = sorted(last)[len(last) // 2] if len(last) == 3 else r.mmhg
            out.append(r if value == r.mmhg else Reading(value, r.t_s))
        n = len(readings.zones)
        manifold = out[n] if readings.manifold is not None else None
        return Readings(readings.t_s, tuple(out[:n]), manifold, readings.estop_pressed, readings.stop_pressed)




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
        # Order matters only when two rules see the same tick: the most specific diagnosis speaks first.
        self.monitors: list[Monitor] = [
            EStop(),
            SensorHealth(sensor_names, stale_s=lim.sensor_stale_s, stuck_s=lim.sensor_stuck_s),
            Occlusion(names, lim.occlusion_rate_mmhg_s),
            self.over_pressure,
            PumpCheck(lim.pump_off_rise_mmhg),
            ValveCheck(names, lim.vent_check_s),
            HoldLeak(names, max_rate_mmhg_s=lim.leak_rate_mmhg_s, window_s=lim.leak_window_s,
                     max_topups=lim.max_topups, topup_window_s=lim.topup_window_s, max_drop_mmhg=lim.max_drop_mmhg),
            FillProgress(names, min_rate_mmhg_s=lim.min_fill_rate_mmhg_s, window_s=lim.fill_rate_window_s,
                         timeout_s=lim.fill_timeout_s),
            self.vent_check,
            ReverseGradient(names, lim.reverse_gradient_mmhg, lim.reverse_gradient_s),
            TimeUnderPressure(names, venous_mmhg=lim.venous_safe_mmhg, max_s=lim.max_above_venous_s,
                              session_max_s=lim.session_max_min * 60.0),
            *extra_monitors,
        ]
        self.n_zones = len(names)
        self._median = _Median3(len(sensor_names))
        self.tripped: Trip | None = None
        self.cannot_vent: Trip | None = None  # raised after a trip, while the sleeve is meant to be emptying
        self.applied: Commands = SAFE

    def review(self, now_s: float, readings: Readings, wish: Commands) -> Commands:
        """Check every rule against these readings and what was applied since; return `wish` made no less safe."""
        smooth = self._median.update(readings)
        if self.tripped is not None:
            # Latched: safe state, but keep watching the vent (a stuck exhaust is the worst news there is).
            if self.cannot_vent is None:
                trip = self.vent_check.check(now_s, self._trusted(smooth), self.applied)
                if trip is not None:
                    self.cannot_vent = trip
                    log.critical("%s - %s", trip, trip.hint)
            self.applied = SAFE
            return SAFE
        for monitor in self.monitors:
            trip = monitor.check(now_s, readings if monitor.raw else smooth, self.applied)
            if trip is not None:
                self.trip(trip)
                return SAFE
        out = self._guard(readings, wish)
        self.applied = out
        return out

    def untrusted(self) -> set[str]:
        """Sensors a SAFE-9 trip declared bad: after it, their readings decide nothing."""
        t = self.tripped
        return {t.zone} if t is not None and t.rule == SensorHealth.rule and t.zone else set()

    def _trusted(self, readings: Readings) -> Readings:
        bad = self.untrusted()
        if not bad:
            return readings
        zones = tuple(Reading(math.nan, r.t_s, "untrusted") if n in bad else r
                      for n, r in zip(self.vent_check.names, readings.zones))
        return Readings(readings.t_s, zones, readings.manifold, readings.estop_pressed, readings.stop_pressed)

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
            if trip.cannot_vent:
                self.cannot_vent = trip
            log.critical("TRIP %s - %s", trip, trip.hint)

    def reset(self) -> None:
        """The explicit reset SAFE-13 asks for: only a person, after checking the sleeve, should call this."""
        self.tripped = None
        self.cannot_vent = None
