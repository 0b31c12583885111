"""The compression controller: a pure step function `step(now_s, readings) -> Commands`.

It reads no clock, sleeps never and does no I/O, so a 30-minute session is a sub-second test. Each zone is
regulated on its measured pressure: fill with the pump to the step's target (duty tapering near it, and the inlet
closing one tick early at the present rate of rise, so overshoot stays small), hold with both valves closed, top
up when it sags below a hysteresis band, bleed through the exhaust when a lower target follows a higher one, vent.
The profile's steps advance on measured pressure (a fill is done when its zones are full) and on time.

With refill-adaptive rest (a profile's `refill:`, docs/refill.md) each limb is measured after its compression
(`legsleeve.core.refill`) and compressed again once refilled; before the first compression every limb's sleeve is
held at the refill level for its loss check. An alternating cycle's turns (one per limb) then go by readiness, not
strictly in turn: at the end of a turn the limb refilled soonest goes next, so a leg refilling in 20 s beside one
taking 60 s is compressed about twice as often, and each rests its own refill time (as far as the other leg's
compression, under way when it refills, allows). A cycle ends when every limb has had a turn in it.

What the controller commands is a wish: the supervisor sees it, and every reading, and may only make it safer.
Beside it, each step returns a frozen `Status` (the step, the cycle, each zone's phase, target, fill times and
top-ups): the only view of the controller that anything else reads.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import NamedTuple

from legsleeve.core.commands import FILL, HOLD, SAFE, VENT, Commands, ZoneAction
from legsleeve.core.limits import VENTED_MMHG
from legsleeve.core.plan import Profile, Step, StepKind, Turn
from legsleeve.core.readings import Readings
from legsleeve.core.refill import RefillMeasure, RewarmLearner, SleeveLoss


class Phase(enum.Enum):
    """What the controller is doing with one zone."""

    VENTED = "vented"  # exhaust open
    FILLING = "filling"  # inlet open, pump on: a fill or a top-up
    HOLDING = "holding"  # both valves closed at the target
    BLEEDING = "bleeding"  # exhaust open down to a lower target
    MEASURING = "measuring"  # held closed after a compression while its limb's refill is measured (no top-ups)


# The phases and step kinds as module names, as commands.py has VENT, HOLD and FILL: on Python 3.11 an enum member
# looked up on its class (`Phase.FILLING`) costs about 0.25 µs, ten times a module name, and a step asked for some
# thirty of them every tick (issue 15). The members are the same objects: `FILLING is Phase.FILLING`.
VENTED, FILLING, HOLDING, BLEEDING, MEASURING = (
    Phase.VENTED,
    Phase.FILLING,
    Phase.HOLDING,
    Phase.BLEEDING,
    Phase.MEASURING,
)
_REFILL_STEP, _MEASURE_STEP, _FILL_STEP, _HOLD_STEP, _REST_STEP, _VENT_STEP = (
    StepKind.REFILL,
    StepKind.MEASURE,
    StepKind.FILL,
    StepKind.HOLD,
    StepKind.REST,
    StepKind.VENT,
)


def _action(phase: Phase) -> ZoneAction:
    """What the valves of a zone in this phase do: filling fills; holding and measuring hold; vented and bleeding vent.
    (Asked of every zone every tick: identity tests, where a dict of phases would hash each member in Python.)"""
    if phase is FILLING:
        return FILL
    return HOLD if phase is HOLDING or phase is MEASURING else VENT


@dataclass(frozen=True)
class Refill:
    """A limb's rest as refill-adaptive rest ended it, s from its release: its measured refill time (T90; None when
    the rise could not be trusted), how long it rested (to its next compression), and when it was judged ready. The
    rest is longer than `ready_s` where another limb's turn was under way then."""

    limb: str
    refill_s: float | None
    rest_s: float
    ready_s: float
    rewarm_holds: int = 0  # how many earlier holds' rewarming its fit leaned on (0: its own hold's alone)


@dataclass(frozen=True)
class ZoneStatus:
    """One zone as the controller sees it after a step."""

    phase: Phase
    target_mmhg: float  # what it is regulated to (meaningful while not VENTED)
    fill_times_s: tuple[float, ...]  # each fill from vented to target this session, s (top-ups not counted)
    topups: int  # top-ups this session

    @property
    def inflated(self) -> bool:
        return self.phase is not VENTED


@dataclass(frozen=True)
class Status:
    """The controller after a step: the frozen view runner, log, summary and service read."""

    step: str  # the step under way in words ("fill ankle", "hold 10s"), "start" before the first, "done" after
    kind: StepKind | None  # the step's kind; None before the first step and once done
    step_index: int
    cycle: int  # completed cycles
    done: bool
    zones: tuple[ZoneStatus, ...]
    limited: bool = False  # done early, by the session deadline rather than the length asked for
    refills: tuple[Refill, ...] = ()  # every refill-adaptive rest so far, oldest first
    # each limb's sleeve loss as its check before the first compression found it: a fraction of its pressure per
    # second (None: the held sleeve could not be read long enough, and none is allowed for)
    sleeve_losses: tuple[tuple[str, float | None], ...] = ()


class Output(NamedTuple):
    """What one step returns: the wish for the outputs and the controller's status."""

    commands: Commands
    status: Status


class _Zone:
    """A zone's regulation state: the controller's own, never read from outside."""

    __slots__ = (
        "phase",
        "target_mmhg",
        "topping_up",
        "fill_started_s",
        "last_mmhg",
        "last_t_s",
        "rate_mmhg_s",
        "fill_times_s",
        "topups",
        "measuring",
    )

    def __init__(self) -> None:
        self.phase = VENTED
        self.target_mmhg = 0.0
        self.topping_up = False
        self.fill_started_s: float | None = None
        self.last_mmhg = math.nan
        self.last_t_s = math.nan
        self.rate_mmhg_s = 0.0
        self.fill_times_s: tuple[float, ...] = ()
        self.topups = 0
        self.measuring = False  # bled to the refill level, to be held there while its limb's refill is measured

    def status(self) -> ZoneStatus:
        return ZoneStatus(self.phase, self.target_mmhg, self.fill_times_s, self.topups)


@dataclass(frozen=True)
class Tuning:
    """How the controller regulates; defaults suit the reference build (see docs/config-reference.md)."""

    hysteresis_mmhg: float = 2.0  # top up below target - this; plateau stays within ±3 mmHg
    bleed_mmhg: float = 3.0  # bleed when more than this above target (a lower target after a higher one)
    taper_mmhg: float = 4.0  # pump duty falls from 1 to min_duty over the last this-many mmHg
    lead_s: float = 0.02  # close the inlet this early at the present rate of rise (one 50 Hz tick)
    rate_smoothing: float = 0.3  # weight of the newest sample in the rate estimate
    share_mmhg: float = 5.0  # a top-up pauses the fills of zones lower than it by more than this (one pump)


def session_over(
    cycles_done: int,
    elapsed_s: float,
    longest_cycle_s: float,
    *,
    cycles: int | None,
    session_s: float | None,
    deadline_s: float | None,
) -> bool:
    """Whether a session ends at this cycle boundary, `elapsed_s` into it with `cycles_done` whole cycles behind it:
    the cycles asked for are done, or the minutes asked for have passed (the cycle under way has finished), or
    another cycle as long as the longest so far would not end by `deadline_s`.

    The one rule of a session's length: the controller applies it as each cycle ends, and the planner
    (`legsleeve.app.validate`) to the cycles it plans."""
    if cycles is not None and cycles_done >= cycles:
        return True
    if session_s is not None and elapsed_s >= session_s:
        return True
    return deadline_s is not None and elapsed_s + longest_cycle_s > deadline_s


class Controller:
    """Runs a profile's cycles for a session of `cycles` cycles or `minutes` (the cycle under way finishes).

    `deadline_s`, seconds from the first step: the session is over by then, whatever was asked. No cycle starts
    that would not end by it (judged by the longest cycle so far), and a cycle still under way at the deadline ends
    there, every zone vented (`Status.limited`). The builder sets it so that the final vent, too, ends inside the
    supervisor's session limit (SAFE-10), which stays the hard cut-off."""

    def __init__(
        self,
        profile: Profile,
        *,
        min_duty: float,
        cycles: int | None = None,
        minutes: float | None = None,
        deadline_s: float | None = None,
        tuning: Tuning = Tuning(),
    ):
        self.profile = profile
        self.min_duty = min_duty
        self.tuning = tuning
        cycles, minutes = profile.session_length(cycles, minutes)
        self._session_cycles = cycles  # the session's length: cycles, or
        self._session_s = minutes * 60.0 if minutes is not None else None  # seconds
        self._deadline_s = deadline_s
        self._cycle_start_s = 0.0
        self._longest_cycle_s = 0.0
        self._limited = False
        self._zones = [_Zone() for _ in profile.zone_names]
        self._cycle = 0
        self._step_index = 0
        self._done = False
        self._step_words = "start"
        self._start_s: float | None = None
        self._step_start_s = 0.0
        self._status: Status | None = None  # rebuilt only when something in it changed
        self._measures: dict[str, tuple[RefillMeasure, tuple[int, ...]]] = {}  # limb: its refill since release
        self._loss_checks: dict[str, tuple[SleeveLoss, tuple[int, ...]]] = {}  # limb: its check before its first
        self._losses: dict[str, float | None] = {}  # limb: its sleeve's loss per second, as checked
        self._check_fills: list[int] = []  # zones still to be filled for their limb's check, in turn
        self._rewarm = RewarmLearner()  # the sleeves' rewarming after a vent, as the holds so far tell it
        self._refills: tuple[Refill, ...] = ()
        # An alternating cycle's turns, taken by readiness (see `_take_turn`); None: the steps run in order.
        self._turns = {turn.limb: turn for turn in profile.turns}
        self._turn: Turn | None = profile.turns[0] if profile.turns else None
        self._turned: set[str] = set()  # the limbs whose turn has ended in this cycle
        self._turn_ended_s: dict[str, float] = {}  # when each limb's last turn ended

    # -- the step function ---------------------------------------------------------------------------------------
    def step(self, now_s: float, readings: Readings) -> Output:
        """One tick: regulate every zone on its reading, advance the profile, and say what the outputs should do."""
        if self._start_s is None:
            self._start_s = self._cycle_start_s = now_s
            self._check_losses(now_s)
            self._enter(now_s)
        if not self._done and self._deadline_s is not None and now_s - self._start_s >= self._deadline_s:
            self._finish(limited=True)  # the cycle under way does not run past the deadline
        if self._done:
            return Output(SAFE, self.status)
        zones = readings.zones
        pressures = [r.mmhg if r.fault is None else math.nan for r in zones]  # (r.ok, written out: every zone)
        regulate = self._regulate
        for zone, p, reading in zip(self._zones, pressures, zones, strict=False):
            regulate(zone, p, reading.t_s, now_s)
        if self._check_fills and not any(z.phase is FILLING for z in self._zones):
            self._zones[self._check_fills.pop(0)].phase = FILLING  # one at a time: each at the pump's full rate
        if self._measures or self._loss_checks:
            self._measure(now_s, pressures)
        for _ in range(len(self.profile.steps) + 1):  # zero-time steps chain within one tick, but never forever
            if self._done or not self._step_complete(now_s, pressures):
                break
            self._next_step(now_s)
        return Output(SAFE if self._done else self._commands(pressures), self.status)

    @property
    def status(self) -> Status:
        """The controller as of its last step (before the first: "start", every zone vented)."""
        if self._status is None:
            started = self._start_s is not None and not self._done
            self._status = Status(
                self._step_words,
                self._current_step.kind if started else None,
                self._step_index,
                self._cycle,
                self._done,
                tuple(z.status() for z in self._zones),
                self._limited,
                self._refills,
                tuple(self._losses.items()),
            )
        return self._status

    @property
    def _current_step(self) -> Step:
        return self.profile.steps[self._step_index]

    # -- zones -----------------------------------------------------------------------------------------------
    def _regulate(self, z: _Zone, p: float, t_s: float, now_s: float) -> None:
        if math.isnan(p):
            return  # no pressure, no decision: _commands() stops filling it; the supervisor judges the fault
        t = self.tuning
        if not math.isnan(z.last_mmhg) and t_s > z.last_t_s:
            rate = (p - z.last_mmhg) / (t_s - z.last_t_s)
            a = t.rate_smoothing
            z.rate_mmhg_s = a * rate + (1 - a) * z.rate_mmhg_s
        z.last_mmhg, z.last_t_s = p, t_s
        before = z.phase
        if z.phase is FILLING:
            if p + max(z.rate_mmhg_s, 0.0) * t.lead_s >= z.target_mmhg:
                if not z.topping_up and z.fill_started_s is not None:
                    z.fill_times_s += (now_s - z.fill_started_s,)
                z.topping_up = False
                z.fill_started_s = None
                # overshot beyond the band (a hose, not a bladder, filled?): let it down to the target
                if p > z.target_mmhg + t.bleed_mmhg:
                    z.phase = BLEEDING
                else:
                    z.phase = MEASURING if z.measuring else HOLDING
        elif z.phase is HOLDING:
            if p < z.target_mmhg - t.hysteresis_mmhg:
                z.phase, z.topping_up = FILLING, True
                z.topups += 1
            elif p > z.target_mmhg + t.bleed_mmhg:
                z.phase = BLEEDING
        elif z.phase is BLEEDING and p <= z.target_mmhg:
            z.phase = MEASURING if z.measuring else HOLDING
        if z.phase is not before:
            self._status = None  # fill times and top-ups change only with a phase

    def _commands(self, pressures: list[float]) -> Commands:
        # Inlets open together share one pump, and the air goes to the lowest pressure: a top-up beside a lower
        # zone's fill would gain almost nothing (and stall). The top-up is short; the lower fill waits for it.
        topping = [
            p
            for z, p in zip(self._zones, pressures, strict=False)
            if z.phase is FILLING and z.topping_up and not math.isnan(p)
        ]
        floor = min(topping) - self.tuning.share_mmhg if topping else -math.inf
        actions = []
        worst_gap = -math.inf
        for z, p in zip(self._zones, pressures, strict=False):
            action = _action(z.phase)
            if action is FILL:
                if math.isnan(p) or p < floor:
                    action = HOLD  # never fill blind; a lower fill waits for a top-up
                else:
                    worst_gap = max(worst_gap, z.target_mmhg - p)
            actions.append(action)
        duty = 0.0
        if worst_gap > -math.inf:
            taper = self.tuning.taper_mmhg
            fraction = min(max(worst_gap, 0.0) / taper, 1.0)
            duty = self.min_duty + (1.0 - self.min_duty) * fraction
        return Commands(duty, tuple(actions))

    # -- refill-adaptive rest ------------------------------------------------------------------------------------
    def _check_losses(self, now_s: float) -> None:
        """At the session's start, with refill-adaptive rest: every limb's sleeve is filled to the refill level, zone
        by zone (alone, each fills at the pump's full rate, as SAFE-5 wants), and held closed for `leak_check_s`, to
        measure what it loses by itself (`SleeveLoss`) before its first compression. A one-off wait: the fills, then
        `leak_check_s` (the limbs' checks overlap)."""
        refill = self.profile.refill
        if refill is None or refill.leak_check_s <= 0.0:
            return
        for step in self.profile.steps:
            if step.kind is not _MEASURE_STEP or step.limb in self._loss_checks:
                continue
            self._loss_checks[step.limb] = (SleeveLoss(refill.leak_check_s, refill.rewarm_s), step.zones)
            for i in step.zones:
                z = self._zones[i]
                z.target_mmhg = refill.measure_mmhg
                z.measuring, z.topping_up, z.fill_started_s = True, False, None  # not a therapy fill: no fill time
                self._check_fills.append(i)  # filled in turn (step()), then held closed (MEASURING): no top-ups

    def _measure(self, now_s: float, pressures: list[float]) -> None:
        """Feed each limb's refill measure its held sleeve's mean pressure; a hold broken ends what it adds. Every
        measure is asked each tick whether its limb is ready, so that it says so when it is, whatever step is under
        way (on two legs, often the other leg's compression)."""
        for measure, zones in self._measures.values():
            phases = [self._zones[i].phase for i in zones]
            values = [pressures[i] for i in zones]
            mean = math.fsum(values) / len(values)  # NaN if any is
            if any(ph is not MEASURING and ph is not BLEEDING for ph in phases):
                measure.interrupt()
            elif all(ph is MEASURING for ph in phases):
                measure.add(now_s, mean)  # after its verdict too, until the hold ends: for what it tells of rewarming
            else:
                measure.vent(now_s, mean)  # let down to the refill level: the fall the air will regain
            measure.done(now_s)
        for check, zones in self._loss_checks.values():
            if all(self._zones[i].phase is MEASURING for i in zones):
                check.hold(now_s)
                values = [pressures[i] for i in zones]
                if all(math.isfinite(v) for v in values):
                    check.add(now_s, math.fsum(values) / len(values))

    def _refilled(self, now_s: float, limb: str) -> bool:
        """Whether the limb may be compressed: its sleeve's loss checked (before its first compression), and its
        refill measure says so (none: never compressed yet)."""
        check = self._loss_checks.get(limb)
        if check is not None and not check[0].done(now_s):
            return False
        entry = self._measures.get(limb)
        return entry is None or entry[0].done(now_s)

    def _end_rest(self, now_s: float, limb: str) -> None:
        """The limb's rest is over: its sleeve is being filled again. Its measure's verdict joins `Status.refills`;
        before its first compression, its sleeve's loss as checked (all of the wait) is what its measures allow for."""
        check = self._loss_checks.pop(limb, None)
        if check is not None:
            self._losses[limb] = check[0].loss_per_s
            self._status = None
        entry = self._measures.pop(limb, None)
        if entry is None:
            return
        measure = entry[0]
        ready_s = (now_s if measure.ended_s is None else measure.ended_s) - measure.release_s
        refill_s = measure.refill_s if measure.detected else None
        self._refills += (Refill(limb, refill_s, now_s - measure.release_s, ready_s, measure.rewarm_holds),)
        self._status = None
        rewarming = measure.rewarming()  # the whole hold: what it tells of the sleeves' rewarming
        if rewarming is not None:
            self._rewarm.add(rewarming)

    # -- turns: an alternating cycle's limbs, taken by readiness ----------------------------------------------
    def _take_turn(self, now_s: float) -> bool:
        """At a turn's REFILL step: whether a turn can start now, and if so the limb's whose. The limb refilled
        soonest goes next, so that each limb rests its own refill time rather than the slowest limb's. Of several
        ready at once, the one whose last turn ended longest ago (never: the first in the profile) - so two legs
        take turns when tied, and a limb at its `max_s` (ready, whatever its fit says) goes before any limb that
        became ready since, and never starves. None ready: wait, and say for which."""
        ready = [limb for limb in self._turns if self._refilled(now_s, limb)]
        if not ready:
            self._waiting(now_s, "refill " + " or ".join(self._turns))
            return False
        turn = self._turns[min(ready, key=self._turn_order)]
        if turn is not self._turn:
            self._turn, self._step_index = turn, turn.first  # its REFILL step: the turn goes on from there
            self._status = None
        return True

    def _waiting(self, now_s: float, words: str) -> None:
        """A REFILL step waits: say for what - the sleeves' loss checks at the start, else the limbs' refill."""
        checking = [limb for limb, (check, _) in self._loss_checks.items() if not check.done(now_s)]
        if checking:
            words = "leak check " + " ".join(checking)
        if words != self._step_words:
            self._step_words, self._status = words, None

    def _turn_order(self, limb: str) -> tuple[float, int]:
        return self._turn_ended_s.get(limb, -math.inf), list(self._turns).index(limb)

    def _end_turn(self, now_s: float, turn: Turn) -> bool:
        """A limb's turn has ended: the cycle ends with it if every limb has had its turn in this cycle (the rule
        of a cycle when turns go by readiness: each limb compressed at least once). Then the next turn, provisionally
        (its REFILL step picks again, by readiness). True when the session is over."""
        self._turn_ended_s[turn.limb] = now_s
        self._turned.add(turn.limb)
        if len(self._turned) == len(self._turns):
            self._turned.clear()
            if self._end_cycle(now_s):
                return True
        ready = [limb for limb in self._turns if self._refilled(now_s, limb)] or list(self._turns)
        self._turn = self._turns[min(ready, key=self._turn_order)]
        self._step_index = self._turn.first
        return False

    # -- steps ---------------------------------------------------------------------------------------------------
    def _step_complete(self, now_s: float, pressures: list[float]) -> bool:
        step = self._current_step
        if step.kind is _REFILL_STEP:
            if self._turn is not None:
                return self._take_turn(now_s)
            if self._refilled(now_s, step.limb):
                return True
            self._waiting(now_s, self.profile.describe(step))
            return False
        if step.kind is _MEASURE_STEP:
            return True
        if step.kind is _FILL_STEP:
            return all(self._zones[i].phase is HOLDING for i in step.zones)  # at target, not bleeding to it
        if step.kind is _HOLD_STEP or step.kind is _REST_STEP:
            return now_s - self._step_start_s >= step.duration_s
        if step.kind is _VENT_STEP:
            return not step.wait or all(pressures[i] < VENTED_MMHG for i in step.zones)
        raise ValueError(step.kind)  # pragma: no cover - StepKind has only these

    def _next_step(self, now_s: float) -> None:
        self._status = None
        self._step_index += 1
        if self._turn is not None and self._step_index == self._turn.stop:
            if self._end_turn(now_s, self._turn):
                return
        elif self._step_index == len(self.profile.steps):
            self._step_index = 0
            if self._end_cycle(now_s):
                return
        self._enter(now_s)

    def _end_cycle(self, now_s: float) -> bool:
        """A cycle has ended: count it, and end the session here if it is over (True)."""
        self._cycle += 1
        self._longest_cycle_s = max(self._longest_cycle_s, now_s - self._cycle_start_s)
        self._cycle_start_s = now_s
        assert self._start_s is not None
        elapsed_s = now_s - self._start_s
        if self._over(elapsed_s, self._deadline_s):
            self._finish(limited=not self._over(elapsed_s, None))  # limited: the deadline ended it
            return True
        return False

    def _over(self, elapsed_s: float, deadline_s: float | None) -> bool:
        return session_over(
            self._cycle,
            elapsed_s,
            self._longest_cycle_s,
            cycles=self._session_cycles,
            session_s=self._session_s,
            deadline_s=deadline_s,
        )

    def _finish(self, *, limited: bool = False) -> None:
        for z in self._zones:
            z.phase = VENTED
        self._done = True
        self._limited = limited
        self._step_words = "done"
        self._status = None

    def _enter(self, now_s: float) -> None:
        step = self._current_step
        self._step_start_s = now_s
        self._step_words = self.profile.describe(step)
        self._status = None
        if step.kind is _FILL_STEP:
            for limb in dict.fromkeys(self.profile.limb_of(i) for i in step.zones):
                self._end_rest(now_s, limb)  # the limb is being compressed (again)
            for i in step.zones:
                z = self._zones[i]
                z.target_mmhg = self.profile.step_target(step, i, self._cycle)
                z.topping_up = False
                z.measuring = False
                if z.last_mmhg > z.target_mmhg + self.tuning.bleed_mmhg:
                    z.phase, z.fill_started_s = BLEEDING, None  # already above a lower target
                elif z.phase is not VENTED and z.phase is not MEASURING and z.last_mmhg >= z.target_mmhg:
                    z.phase = HOLDING  # already there
                else:
                    if z.phase is VENTED or z.phase is MEASURING:
                        z.fill_started_s = now_s  # from empty (a measured limb is held near empty)
                    z.phase = FILLING
        elif step.kind is _VENT_STEP or step.kind is _REST_STEP:
            for i in step.zones:
                self._zones[i].phase = VENTED
                self._zones[i].measuring = False
        elif step.kind is _MEASURE_STEP:
            refill = self.profile.refill
            assert refill is not None  # the loader adds MEASURE steps only to a profile with `refill:`
            measure = RefillMeasure(
                now_s,
                min_s=refill.min_s,
                max_s=refill.max_s,
                loss_per_s=self._losses.get(step.limb) or 0.0,
                rewarm_s=refill.rewarm_s,
                learner=self._rewarm,
            )
            self._measures[step.limb] = (measure, step.zones)
            for i in step.zones:
                z = self._zones[i]
                z.target_mmhg = refill.measure_mmhg
                z.measuring, z.topping_up, z.fill_started_s = True, False, None
                # down to the refill level through the exhaust, then closed; a sleeve already below it closes now
                z.phase = BLEEDING if not z.last_mmhg <= refill.measure_mmhg else MEASURING
