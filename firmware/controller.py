"""The compression controller: a pure step function `step(now_s, readings) -> Commands`.

It reads no clock, sleeps never and does no I/O, so a 30-minute session is a sub-second test. Each zone is
regulated on its measured pressure: fill with the pump to the step's target (duty tapering near it, and the inlet
closing one tick early at the present rate of rise, so overshoot stays small), hold with both valves closed, top
up when it sags below a hysteresis band, bleed through the exhaust when a lower target follows a higher one, vent.
The profile's steps advance on measured pressure (a fill is done when its zones are full) and on time.

What the controller commands is a wish: the supervisor sees it, and every reading, and may only make it safer.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from legsleeve.commands import FILL, HOLD, SAFE, VENT, Commands
from legsleeve.config import VENTED_MMHG
from legsleeve.profiles import Profile, Step
from legsleeve.sensors import Readings


class Phase(enum.Enum):
    VENTED = "vented"
    FILLING = "filling"
    HOLDING = "holding"
    BLEEDING = "bleeding"


_ACTION = {Phase.VENTED: VENT, Phase.FILLING: FILL, Phase.HOLDING: HOLD, Phase.BLEEDING: VENT}


@dataclass
class ZoneState:
    phase: Phase = Phase.VENTED
    target_mmhg: float = 0.0
    topping_up: bool = False
    fill_started_s: float | None = None
    last_mmhg: float = math.nan
    last_t_s: float = math.nan
    rate_mmhg_s: float = 0.0
    fill_times_s: list[float] = field(default_factory=list)
    topups: int = 0


@dataclass(frozen=True)
class Tuning:
    """How the controller regulates; defaults suit the reference build (see docs/config-reference.md)."""

    hysteresis_mmhg: float = 2.0  # top up below target - this; plateau stays within ±3 mmHg
    bleed_mmhg: float = 3.0  # bleed when more than this above target (a lower target after a higher one)
    taper_mmhg: float = 4.0  # pump duty falls from 1 to min_duty over the last this-many mmHg
    lead_s: float = 0.02  # close the inlet this early at the present rate of rise (one 50 Hz tick)
    rate_smoothing: float = 0.3  # weight of the newest sample in the rate estimate


class Controller:
    """Runs a profile's cycles for a session of `cycles` cycles or `minutes` (the cycle under way finishes)."""

    def __init__(self, profile: Profile, *, min_duty: float, cycles: int | None = None,
                 minutes: float | None = None, tuning: Tuning = Tuning()):
        self.profile = profile
        self.min_duty = min_duty
        self.tuning = tuning
        if cycles is None and minutes is None:
            cycles, minutes = profile.session_cycles, profile.session_minutes
        self.max_cycles = cycles
        self.max_s = minutes * 60.0 if minutes is not None else None
        self.zones = [ZoneState() for _ in profile.zone_names]
        self.cycle = 0
        self.step_index = 0
        self.done = False
        self.state = "start"
        self._start_s: float | None = None
        self._step_start_s = 0.0

    # -- the step function ---------------------------------------------------------------------------------------
    def step(self, now_s: float, readings: Readings) -> Commands:
        if self._start_s is None:
            self._start_s = now_s
            self._enter(now_s)
        if self.done:
            return SAFE
        pressures = [r.mmhg if r.ok else math.nan for r in readings.zones]
        for zone, p, reading in zip(self.zones, pressures, readings.zones):
            self._regulate(zone, p, reading.t_s, now_s)
        for _ in range(len(self.profile.steps) + 1):  # zero-time steps chain within one tick, but never forever
            if self.done or not self._step_complete(now_s, pressures):
                break
            self._next_step(now_s)
        return SAFE if self.done else self._commands(pressures)

    @property
    def current_step(self) -> Step:
        return self.profile.steps[self.step_index]

    # -- zones -----------------------------------------------------------------------------------------------
    def _regulate(self, z: ZoneState, p: float, t_s: float, now_s: float) -> None:
        if math.isnan(p):
            return  # no pressure, no decision: _commands() stops filling it; the supervisor judges the fault
        if not math.isnan(z.last_mmhg) and t_s > z.last_t_s:
            rate = (p - z.last_mmhg) / (t_s - z.last_t_s)
            a = self.tuning.rate_smoothing
            z.rate_mmhg_s = a * rate + (1 - a) * z.rate_mmhg_s
        z.last_mmhg, z.last_t_s = p, t_s
        t = self.tuning
        if z.phase is Phase.FILLING:
            if p + max(z.rate_mmhg_s, 0.0) * t.lead_s >= z.target_mmhg:
                if not z.topping_up and z.fill_started_s is not None:
                    z.fill_times_s.append(now_s - z.fill_started_s)
                z.topping_up = False
                z.fill_started_s = None
                # overshot beyond the band (a hose, not a bladder, filled?): let it down to the target
                z.phase = Phase.BLEEDING if p > z.target_mmhg + t.bleed_mmhg else Phase.HOLDING
        elif z.phase is Phase.HOLDING:
            if p < z.target_mmhg - t.hysteresis_mmhg:
                z.phase, z.topping_up = Phase.FILLING, True
                z.topups += 1
            elif p > z.target_mmhg + t.bleed_mmhg:
                z.phase = Phase.BLEEDING
        elif z.phase is Phase.BLEEDING and p <= z.target_mmhg:
            z.phase = Phase.HOLDING

    def _commands(self, pressures: list[float]) -> Commands:
        actions = []
        worst_gap = -math.inf
        for z, p in zip(self.zones, pressures):
            action = _ACTION[z.phase]
            if action is FILL:
                if math.isnan(p):
                    action = HOLD  # never fill blind
                else:
                    worst_gap = max(worst_gap, z.target_mmhg - p)
            actions.append(action)
        duty = 0.0
        if worst_gap > -math.inf:
            taper = self.tuning.taper_mmhg
            fraction = min(max(worst_gap, 0.0) / taper, 1.0)
            duty = self.min_duty + (1.0 - self.min_duty) * fraction
        return Commands(duty, tuple(actions))

    # -- steps ---------------------------------------------------------------------------------------------------
    def _step_complete(self, now_s: float, pressures: list[float]) -> bool:
        step = self.current_step
        if step.kind == "fill":
            return all(self.zones[i].phase is Phase.HOLDING for i in step.zones)  # at target, not bleeding to it
        if step.kind in ("hold", "rest"):
            return now_s - self._step_start_s >= step.duration_s
        if step.kind == "vent":
            return not step.wait or all(pressures[i] < VENTED_MMHG for i in step.zones)
        raise ValueError(step.kind)  # pragma: no cover - profiles.py makes only these

    def _next_step(self, now_s: float) -> None:
        self.step_index += 1
        if self.step_index == len(self.profile.steps):
            self.step_index = 0
            self.cycle += 1
            if self._session_over(now_s):
                self._finish()
                return
        self._enter(now_s)

    def _session_over(self, now_s: float) -> bool:
        if self.max_cycles is not None and self.cycle >= self.max_cycles:
            return True
        return self.max_s is not None and now_s - self._start_s >= self.max_s

    def _finish(self) -> None:
        for z in self.zones:
            z.phase = Phase.VENTED
        self.done = True
        self.state = "done"

    def _enter(self, now_s: float) -> None:
        step = self.current_step
        self._step_start_s = now_s
        self.state = step.describe(self.profile.zone_names)
        if step.kind == "fill":
            for i in step.zones:
                z = self.zones[i]
                z.target_mmhg = self.profile.step_target(step, i, self.cycle)
                z.topping_up = False
                if z.last_mmhg > z.target_mmhg + self.tuning.bleed_mmhg:
                    z.phase, z.fill_started_s = Phase.BLEEDING, None  # already above a lower target
                elif z.phase is not Phase.VENTED and z.last_mmhg >= z.target_mmhg:
                    z.phase = Phase.HOLDING  # already there
                else:
                    if z.phase is Phase.VENTED:
                        z.fill_started_s = now_s
                    z.phase = Phase.FILLING
        elif step.kind in ("vent", "rest"):
            for i in step.zones:
                self.zones[i].phase = Phase.VENTED
