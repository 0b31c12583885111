"""Whole-session validation before anything moves: plan a profile's session on a pneumatic model and refuse what
would certainly trip, naming the profile's file and line.

`plan_session` runs the session's own controller and supervisor (`legsleeve.app.builder.build_plan_loop`) tick by
tick on the pneumatic model of a `SimSpec` (`legsleeve.sim.physics.Pneumatics`: the simulated rig's air without its
chips, bus and pins, which cost most of a simulated tick), reading the model's pressures with the sensors' noise. It
plans the ramp's cycles, then cycles at full pressure until one has started and ended at rest (or two of them, so
that a zone still squeezed at a cycle's end is counted on into the next), and extrapolates whole cycles to the
session's end by the controller's own rule (`legsleeve.core.controller.session_over`). What it refuses:

- a session asked for longer than `limits.session_max_min` (minutes), or whose cycles would not all end, vented,
  inside it (cycles) (SAFE-10);
- a zone above `limits.venous_safe_mmhg` for longer than `limits.max_above_venous_s` without a break, counted
  across cycles; a zone filled but vented nowhere in the cycle is named as such (SAFE-10);
- whatever the supervisor trips on the model: a fill the build cannot complete within `limits.fill_timeout_s`, or
  that gains less than `limits.min_fill_rate_mmhg_s` a second (SAFE-5), and any other rule.

A plan is as good as its model: `sim` is handed in (today the config's `simulation` section). The supervisor still
judges every real session, tick by tick.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from legsleeve.app.builder import build_plan_loop, session_deadline_s
from legsleeve.app.runner import END_VENT_GRACE_S
from legsleeve.config.model import HardwareConfig, SimSpec
from legsleeve.core.commands import FILL, VENT, Commands
from legsleeve.core.controller import Status, session_over
from legsleeve.core.limits import VENTED_MMHG
from legsleeve.core.plan import Profile, Step, StepKind
from legsleeve.core.readings import Reading, Readings
from legsleeve.safety.plausibility import is_check
from legsleeve.safety.trip import Trip
from legsleeve.sim.physics import Pneumatics

SEED = 0  # the plan's sensor noise: the same plan every time
MIN_NOISE_MMHG = 0.01  # a live sensor never repeats its reading for long (SAFE-9): nor do the plan's


@dataclass(frozen=True)
class Finding:
    """One thing the session would certainly trip on: where (the profile's file, line and key, or the command-line
    option), the rule, and what and why, with figures."""

    rule: str
    message: str
    path: Path | None = None
    line: int = 0
    key: str = ""
    zone: str | None = None

    def __str__(self) -> str:
        where = [f"{self.path}:{self.line}" if self.line else str(self.path)] if self.path is not None else []
        return ": ".join([*where, *([self.key] if self.key else []), f"{self.message} ({self.rule})"])


@dataclass(frozen=True)
class ZonePlan:
    """One zone's figures over the planned session."""

    name: str
    above_venous_s: float  # its longest time above limits.venous_safe_mmhg without a break, across cycles, s
    above_from: str  # where that stretch begins ("'fill ankle' in cycle 2"); "" if never above
    slowest_fill_s: float | None  # pumping time of its slowest fill as SAFE-5 counts it, s (None: never filled)
    slowest_fill_to_mmhg: float | None  # that fill's target
    never_vented: bool  # filled in the cycle, vented nowhere in it


@dataclass(frozen=True)
class SessionPlan:
    """A session planned on the model: its cycles, its end, each zone's figures, and what it would trip on."""

    profile: Profile
    asked: str  # the session length asked for, in words
    cycles_s: tuple[float, ...]  # the planned cycles' lengths, s: the ramp's, then at full pressure
    cycle_s: float | None  # a cycle at full pressure, s (None: none was planned to its end)
    session_cycles: int | None  # whole cycles the session runs (None: it would trip first)
    session_s: float | None  # when its last cycle ends, s from its start
    limited: bool  # ended by the session limit rather than by the length asked for
    zones: tuple[ZonePlan, ...]
    findings: tuple[Finding, ...]
    trip: Trip | None  # the supervisor's verdict on the model, if it tripped
    simulated_s: float  # model time planned, s
    manifold_peak_mmhg: float = 0.0  # the manifold's highest pressure in the plan (it runs above a filling zone)
    relief_mmhg: float = 0.0  # the model's relief valve setting

    @property
    def pump_check_room_mmhg(self) -> float:
        """How far the manifold can rise above its planned peak before the relief valve caps it: SAFE-4's pump check
        (a pump running while told off) needs limits.pump_off_rise_mmhg of it."""
        return self.relief_mmhg - self.manifold_peak_mmhg

    @property
    def ok(self) -> bool:
        return not self.findings


def plan_session(
    cfg: HardwareConfig,
    profile: Profile,
    *,
    cycles: int | None = None,
    minutes: float | None = None,
    sim: SimSpec,
) -> SessionPlan:
    """Plan a session of `profile` (`cycles` or `minutes`, else the profile's own length) on the pneumatic model
    `sim`, with the controller, supervisor and limits of the build `cfg`."""
    asked_cycles, asked_minutes = cycles, minutes
    cycles, minutes = profile.session_length(cycles, minutes)
    run = _ModelRun(cfg, profile, cycles, minutes, sim)
    with _planned_trips_unlogged():
        run.run()
    lim = cfg.limits
    names = cfg.zone_names

    durations = tuple(b - a for a, b in zip([0.0, *run.cycle_ends], run.cycle_ends, strict=False))
    full = durations[profile.ramp_cycles :]
    session_cycles: int | None = None
    session_s: float | None = None
    limited = False
    if run.ended == "done" and run.done_s is not None:
        session_cycles, session_s, limited = run.status.cycle, run.done_s, run.status.limited
    elif run.ended == "steady":
        session_cycles, session_s, limited = _extrapolate(durations, cycles, minutes, session_deadline_s(cfg))

    findings = _length_findings(cfg, profile, asked_cycles, asked_minutes, cycles, minutes, durations, run, limited)
    never = never_vented(profile)
    zones = []
    squeezed: set[str] = set()  # zones found above the venous-safe level for too long
    for i, name in enumerate(names):
        stretch = run.longest_above[i]
        length_s = 0.0
        if stretch is not None:
            length_s = stretch.length_s
            if run.unbounded[i] and session_s is not None:
                length_s = max(length_s, session_s - stretch.since_s)  # squeezed at every cycle's end, to the end
        fill = run.slowest_fill[i]
        zones.append(
            ZonePlan(
                name,
                length_s,
                _where(profile, stretch.cycle, stretch.step_index) if stretch is not None else "",
                fill.pumped_s if fill is not None else None,
                fill.target_mmhg if fill is not None else None,
                i in never,
            )
        )
        if stretch is not None and length_s > lim.max_above_venous_s:
            findings.append(_above_finding(cfg, profile, i, length_s, stretch, never.get(i), run.above_at_trip[i]))
            squeezed.add(name)

    trip = run.supervisor.tripped
    said = trip is not None and trip.rule == "SAFE-10" and trip.zone in squeezed  # the squeeze it tripped on
    if trip is not None and not (said and trip.zone is not None and run.above_at_trip[names.index(trip.zone)]):
        findings.append(_trip_finding(cfg, profile, trip, run))

    return SessionPlan(
        profile=profile,
        asked=_asked(asked_cycles, asked_minutes, cycles, minutes),
        cycles_s=durations,
        cycle_s=full[-1] if full else None,
        session_cycles=session_cycles,
        session_s=session_s,
        limited=limited,
        zones=tuple(zones),
        findings=tuple(findings),
        trip=trip,
        simulated_s=run.t_s,
        manifold_peak_mmhg=run.manifold_peak_mmhg,
        relief_mmhg=sim.relief_mmhg,
    )


def never_vented(profile: Profile) -> dict[int, Step]:
    """Zones the cycle fills but vents nowhere (no vent or rest step names them), each with its first fill step:
    from that fill on, such a zone stays squeezed until the session ends (static: no model needed)."""
    filled: dict[int, Step] = {}
    vented: set[int] = set()
    for step in profile.steps:
        if step.kind is StepKind.FILL:
            for z in step.zones:
                filled.setdefault(z, step)
        elif step.kind in (StepKind.VENT, StepKind.REST):
            vented.update(step.zones)
    return {z: step for z, step in filled.items() if z not in vented}


# -- the run on the model ----------------------------------------------------------------------------------------


@dataclass
class _Stretch:
    """A zone above the venous-safe level: since when, from which cycle and step; how long (once over)."""

    since_s: float
    cycle: int
    step_index: int
    length_s: float = 0.0


@dataclass
class _Fill:
    """A zone's fill as SAFE-5 counts it: one continuous FILL, its pumping time (checks left out)."""

    cycle: int
    step_index: int
    target_mmhg: float
    from_mmhg: float
    pumped_s: float = 0.0


class _ModelRun:
    """The session's controller and supervisor, tick by tick, on the pneumatic model; what it saw, kept as it goes."""

    def __init__(self, cfg: HardwareConfig, profile: Profile, cycles: int | None, minutes: float | None, sim: SimSpec):
        self.cfg = cfg
        self.profile = profile
        self.controller, self.supervisor = build_plan_loop(cfg, profile, cycles=cycles, minutes=minutes)
        self.model = Pneumatics(sim, cfg.zone_names, pump_stall_duty=sim.pump_stall_duty)
        self.rng = random.Random(SEED)
        self.noise_mmhg = max(sim.sensor_noise_mmhg, MIN_NOISE_MMHG)
        n = self.n = len(cfg.zones)
        self.status: Status = self.controller.status
        self.t_s = 0.0
        self.ended = ""  # "done" (the whole session planned), "steady" (cycles repeat from here), "tripped"
        self.done_s: float | None = None
        self.cycle_ends: list[float] = []  # when each cycle ended, s
        self.rest_at_start = [True]  # each cycle: did it start at rest (every zone empty)?
        self.above: list[_Stretch | None] = [None] * n  # each zone's stretch under way
        self.longest_above: list[_Stretch | None] = [None] * n
        self.unbounded = [False] * n  # above it through the whole of a cycle that repeats
        self.filling: list[_Fill | None] = [None] * n
        self.slowest_fill: list[_Fill | None] = [None] * n
        self.fills_at_trip: list[_Fill | None] = [None] * n
        self.above_at_trip = [False] * n  # its stretch was at the limit when the plan tripped (SAFE-10's trip)
        self.manifold_peak_mmhg = 0.0

    def run(self) -> None:
        tick_s = 1.0 / self.cfg.tick_hz
        ramp = self.profile.ramp_cycles
        vent_wait_s = self.cfg.limits.vent_timeout_s + END_VENT_GRACE_S
        zones = range(self.n)
        t = 0.0
        while True:
            self.model.advance_to(t)
            self.manifold_peak_mmhg = max(self.manifold_peak_mmhg, self.model.manifold_mmhg)
            true = [self.model.zone_mmhg(i) for i in zones]
            raw = self._readings(t, true)
            out = self.controller.step(t, self.supervisor.observe(raw))
            self.status = status = out.status
            cmd = self.supervisor.review(t, raw, out.commands)
            self.t_s = t
            if self.supervisor.tripped is not None:
                self.ended = "tripped"
                self._close_tripped(t)
                return
            self.model.set_inputs(
                cmd.pump_duty, [cmd.action(i) is FILL for i in zones], [cmd.action(i) is VENT for i in zones]
            )
            self._track(t, tick_s, true, cmd, status)
            if status.cycle > len(self.cycle_ends):
                self.cycle_ends.append(t)
                rest = all(p < VENTED_MMHG for p in true)  # every zone empty as the next cycle begins
                self.rest_at_start.append(rest)
                k = status.cycle
                if not status.done and k > ramp and ((rest and self.rest_at_start[k - 1]) or k > ramp + 1):
                    self.ended = "steady"
                    self._close_steady(t)
                    return
            if status.done:
                # As the runner does: tick on in the safe state until every zone reads empty, or the vent's time.
                if self.done_s is None:
                    self.done_s = t
                if all(p < VENTED_MMHG - 1.0 for p in true) or t - self.done_s > vent_wait_s:
                    self.ended = "done"
                    self._close(t)
                    return
            t += tick_s

    def _readings(self, t: float, true: Sequence[float]) -> Readings:
        gauss, noise = self.rng.gauss, self.noise_mmhg
        # a one-sensor build's only sensor is the manifold's: its zones are read through it (legsleeve.safety.shared)
        zones = () if self.cfg.shared_sensor else tuple(Reading(p + gauss(0.0, noise), t) for p in true)
        manifold = Reading(self.model.manifold_mmhg + gauss(0.0, noise), t) if self.cfg.has_manifold_sensor else None
        return Readings(t, zones, manifold)

    def _track(self, t: float, tick_s: float, true: Sequence[float], cmd: Commands, status: Status) -> None:
        venous = self.cfg.limits.venous_safe_mmhg
        checking = is_check(cmd)
        for i, p in enumerate(true):
            if p > venous:
                if self.above[i] is None:
                    self.above[i] = _Stretch(t, status.cycle, status.step_index)
            elif self.above[i] is not None:
                self._end_stretch(i, t)
            fill = self.filling[i]
            if cmd.action(i) is FILL:
                if fill is None:
                    fill = self.filling[i] = _Fill(status.cycle, status.step_index, status.zones[i].target_mmhg, p)
                if not checking:  # a SAFE-15 check stops the pump: not filling time (SAFE-5)
                    fill.pumped_s += tick_s
            elif fill is not None and not checking:  # held for another zone's check: its fill goes on after
                self._end_fill(i)

    def _end_stretch(self, i: int, t: float) -> None:
        stretch = self.above[i]
        assert stretch is not None
        stretch.length_s = t - stretch.since_s
        best = self.longest_above[i]
        if best is None or stretch.length_s > best.length_s:
            self.longest_above[i] = stretch
        self.above[i] = None

    def _end_fill(self, i: int) -> None:
        fill = self.filling[i]
        assert fill is not None
        slowest = self.slowest_fill[i]
        if slowest is None or fill.pumped_s > slowest.pumped_s:
            self.slowest_fill[i] = fill
        self.filling[i] = None

    def _close(self, t: float) -> None:
        for i in range(self.n):
            if self.above[i] is not None:
                self._end_stretch(i, t)
            if self.filling[i] is not None:
                self._end_fill(i)

    def _close_tripped(self, t: float) -> None:
        """The session stops at a trip: what was under way is kept for the finding, and ends here."""
        max_s = self.cfg.limits.max_above_venous_s
        self.fills_at_trip = list(self.filling)
        # at the limit, give or take a second: the rule judges the sensors' median, the plan the model's pressure
        self.above_at_trip = [a is not None and t - a.since_s >= max_s - 1.0 for a in self.above]
        self._close(t)

    def _close_steady(self, t: float) -> None:
        """The planned cycles repeat from here. A zone squeezed through the whole of the last one stays squeezed to
        the session's end. One squeezed since within it goes on into the next cycle as the same squeeze of the cycle
        before went on into this one: the plan stops at rest, or after two cycles at full pressure, so that join
        has been measured already."""
        last_start = self.cycle_ends[-2] if len(self.cycle_ends) > 1 else 0.0
        for i in range(self.n):
            stretch = self.above[i]
            if stretch is not None and stretch.since_s <= last_start:
                self.unbounded[i] = True
        self._close(t)


@contextlib.contextmanager
def _planned_trips_unlogged() -> Iterator[None]:
    """A trip on the model is a finding, not an event on the sleeve: the supervisor's log of it (CRITICAL) is
    left out, for this thread only, while the plan runs."""
    logger = logging.getLogger("legsleeve.safety.supervisor")
    me = threading.get_ident()

    def not_mine(record: logging.LogRecord) -> bool:
        return record.thread != me

    logger.addFilter(not_mine)
    try:
        yield
    finally:
        logger.removeFilter(not_mine)


def _extrapolate(
    durations: Sequence[float], cycles: int | None, minutes: float | None, deadline_s: float
) -> tuple[int, float, bool]:
    """(whole cycles, end s, limited): the controller's rule applied to the planned cycles, the last one repeated.
    A cycle that starts but would run past the deadline is cut there (and not counted)."""
    session_s = minutes * 60.0 if minutes is not None else None
    elapsed = longest = 0.0
    k = 0
    while True:
        d = durations[k] if k < len(durations) else durations[-1]
        if elapsed + d > deadline_s:
            return k, deadline_s, True
        elapsed += d
        k += 1
        longest = max(longest, d)
        if session_over(k, elapsed, longest, cycles=cycles, session_s=session_s, deadline_s=deadline_s):
            asked = session_over(k, elapsed, longest, cycles=cycles, session_s=session_s, deadline_s=None)
            return k, elapsed, not asked


# -- findings ----------------------------------------------------------------------------------------------------


def _length_findings(
    cfg: HardwareConfig,
    profile: Profile,
    asked_cycles: int | None,
    asked_minutes: float | None,
    cycles: int | None,
    minutes: float | None,
    durations: Sequence[float],
    run: _ModelRun,
    limited: bool,
) -> list[Finding]:
    """The session's length against `limits.session_max_min` (SAFE-10)."""
    lim = cfg.limits
    limit = f"limits.session_max_min ({lim.session_max_min:g} min in {cfg.path})"
    from_profile = asked_cycles is None and asked_minutes is None
    path, line = (profile.path, profile.session_line) if from_profile else (None, 0)
    if minutes is not None:
        key = "session.minutes" if from_profile else f"--minutes {minutes:g}"
        if minutes > lim.session_max_min:
            message = (
                f"a session of {minutes:g} min is longer than {limit}: ask for at most {lim.session_max_min:g} "
                "(the session then ends with the last whole cycle that fits, vented, inside the limit)"
            )
            return [Finding("SAFE-10", message, path, line, key)]
    else:
        key = "session.cycles" if from_profile else f"--cycles {cycles}"
    if run.ended != "steady" and not (run.ended == "done" and limited):
        return []  # the whole session was planned and ends as asked, or it trips first (found elsewhere)
    deadline_s = session_deadline_s(cfg)
    fit = _extrapolate(durations, None, None, deadline_s)[0] if durations else 0
    if fit == 0:
        took = f"{_duration(durations[0])}" if durations else f"more than {_duration(deadline_s)}"
        message = f"one cycle takes {took}: not one fits, vented, inside {limit}"
        return [Finding("SAFE-10", message, path, line, key)]
    if cycles is not None and limited:
        planned = sum(durations[:cycles]) + max(0, cycles - len(durations)) * durations[-1]
        reserve_s = lim.session_max_min * 60.0 - deadline_s
        message = (
            f"{cycles} cycles would end at about {_mmss(planned)}, too late to be vented inside {limit}: the last "
            f"cycle must end {reserve_s:.0f} s before it, leaving time for the final vent. At most {fit} cycles fit"
        )
        return [Finding("SAFE-10", message, path, line, key)]
    return []


def _above_finding(
    cfg: HardwareConfig,
    profile: Profile,
    i: int,
    length_s: float,
    stretch: _Stretch,
    never: Step | None,
    tripped: bool,
) -> Finding:
    """`tripped`: the plan's supervisor stopped it on this stretch (which would have gone on)."""
    lim = cfg.limits
    name = cfg.zone_names[i]
    how_long = f"more than {lim.max_above_venous_s:g} s" if tripped else _duration(length_s)
    rule = (
        f"a zone may stay above {lim.venous_safe_mmhg:g} mmHg (limits.venous_safe_mmhg) for at most "
        f"{lim.max_above_venous_s:g} s at a stretch (limits.max_above_venous_s)"
    )
    if never is not None:
        message = (
            f"{name} is filled here but vented nowhere in the cycle, so it stays squeezed from cycle "
            f"{stretch.cycle + 1} on: on the model, above {lim.venous_safe_mmhg:g} mmHg for {how_long} without a "
            f"break; {rule}. Add a vent of {name} (or a rest) to the cycle"
        )
        return Finding("SAFE-10", message, profile.path, never.line, never.source, name)
    step = profile.steps[stretch.step_index]
    message = (
        f"{name} would stay above {lim.venous_safe_mmhg:g} mmHg for {how_long} without a break on the model, from "
        f"{_where(profile, stretch.cycle, stretch.step_index)} on; {rule}. Shorten its holds, or vent it for longer"
    )
    return Finding("SAFE-10", message, profile.path, step.line, step.source, name)


def _trip_finding(cfg: HardwareConfig, profile: Profile, trip: Trip, run: _ModelRun) -> Finding:
    lim = cfg.limits
    status = run.status
    zone = cfg.zone_names.index(trip.zone) if trip.zone in cfg.zone_names else None
    fill = run.fills_at_trip[zone] if zone is not None else None
    step_index = fill.step_index if fill is not None else status.step_index  # where its fill began, or now
    when = f"in cycle {status.cycle + 1} at {_mmss(trip.t_s)}"
    if fill is not None and trip.rule == "SAFE-5":
        topup = fill.from_mmhg > fill.target_mmhg / 2
        what = f"its top-up from {fill.from_mmhg:.0f} mmHg" if topup else "its fill"
        message = (
            f"{trip.zone} cannot be filled to {fill.target_mmhg:.0f} mmHg on this build: on the model, {when}, "
            f"{what}: {trip.reason} (a fill must gain {lim.min_fill_rate_mmhg_s:g} mmHg/s, "
            f"limits.min_fill_rate_mmhg_s, and end within {lim.fill_timeout_s:g} s, limits.fill_timeout_s). "
            "Lower the target, or check that hardware.yaml's simulation section matches the build"
        )
    else:
        message = (
            f"the session would trip on the model {when}, during '{status.step}': "
            f"{trip.zone + ': ' if trip.zone else ''}{trip.reason}; {trip.hint}"
        )
    step = profile.steps[step_index]
    return Finding(trip.rule, message, profile.path, step.line, step.source, trip.zone)


# -- words -------------------------------------------------------------------------------------------------------


def headline(plan: SessionPlan, on: str = "the model") -> str:
    """The plan in one line: what it was planned on, its cycle, and the session's cycles and end."""
    ramp = plan.profile.ramp_cycles
    if plan.cycle_s is not None:
        cycle = f"a cycle takes {plan.cycle_s:.0f} s"
        if ramp and len(plan.cycles_s) > ramp:
            cycle += " (the ramp's: " + ", ".join(f"{d:.0f}" for d in plan.cycles_s[:ramp]) + " s)"
    else:
        cycle = "no cycle at full pressure ends"
    if plan.session_cycles is not None and plan.session_s is not None:
        session = f"{plan.asked}: {plan.session_cycles} cycle(s), ending at {_mmss(plan.session_s)}" + (
            " (the last whole cycle that fits the session limit)" if plan.limited else ""
        )
    else:
        session = f"{plan.asked}: would not run to its end"
    return f"planned on {on}: {cycle}; {session}"


def model_words(cfg: HardwareConfig) -> str:
    """What a plan for this config runs on, in words (the CLI plans on the twin once calibrated)."""
    return "your sleeve's twin (calibration.yaml)" if cfg.calibration is not None else "the model"


def describe(plan: SessionPlan, cfg: HardwareConfig) -> list[str]:
    """The plan's figures, for `check-config`: the headline, then each zone's longest squeeze and slowest fill."""
    lim = cfg.limits
    w = max([8, *(len(z.name) for z in plan.zones)])
    lines = [
        f"  {headline(plan, model_words(cfg))}",
        f"  {'zone':<{w}} {'longest above ' + f'{lim.venous_safe_mmhg:g} mmHg':<24} slowest fill",
    ]
    for z in plan.zones:
        above = f"{z.above_venous_s:.0f} s (limit {lim.max_above_venous_s:g})" if z.above_from else "never"
        fill = (
            f"{z.slowest_fill_s:.1f} s to {z.slowest_fill_to_mmhg:.0f} mmHg (limit {lim.fill_timeout_s:g})"
            if z.slowest_fill_s is not None and z.slowest_fill_to_mmhg is not None
            else "never filled"
        )
        lines.append(f"  {z.name:<{w}} {above:<24} {fill}")
    room, rise = plan.pump_check_room_mmhg, lim.pump_off_rise_mmhg
    if cfg.has_manifold_sensor and room < rise:
        lines.append(
            f"  warning: the manifold reaches {plan.manifold_peak_mmhg:.0f} mmHg filling, {room:.0f} mmHg below the "
            f"relief valve ({plan.relief_mmhg:g}): SAFE-4's pump check needs {rise:g} mmHg of rise there to find a "
            f"pump running while told off. Set the relief valve (and simulation.relief_mmhg) to at least "
            f"{plan.manifold_peak_mmhg + rise:.0f} mmHg and check again (the valve caps what the plan sees), or widen "
            "the inlets (hardware/bring-up.md check 9)"
        )
    return lines


def _asked(asked_cycles: int | None, asked_minutes: float | None, cycles: int | None, minutes: float | None) -> str:
    if asked_cycles is not None:
        return f"--cycles {asked_cycles}"
    if asked_minutes is not None:
        return f"--minutes {asked_minutes:g}"
    return f"{minutes:g} min (the profile's)" if minutes is not None else f"{cycles} cycle(s) (the profile's)"


def _where(profile: Profile, cycle: int, step_index: int) -> str:
    return f"'{profile.describe(profile.steps[step_index])}' in cycle {cycle + 1}"


def _mmss(seconds: float) -> str:
    """m:ss.s, or h:mm:ss.s from an hour on."""
    hours, rest = divmod(seconds, 3600.0)
    minutes = f"{int(hours)}:{int(rest // 60):02d}" if hours else f"{int(rest // 60)}"
    return f"{minutes}:{rest % 60:04.1f}"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
