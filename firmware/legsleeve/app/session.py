"""One therapy session on an open rig: self-test, then the session built by `build_session` with its log and stats,
and the report. The same code serves `run` (the sleeve), `serve`, `simulate` and `profile show` (the simulated
rig)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from legsleeve.app.alarms import Annunciator
from legsleeve.app.builder import build_session
from legsleeve.app.runner import Outcome, Runner
from legsleeve.app.selftest import self_test
from legsleeve.app.sessionlog import SessionLog
from legsleeve.app.summary import SessionStats
from legsleeve.core.clock import RealTimePacer, VirtualClock
from legsleeve.core.controller import Refill
from legsleeve.core.plan import Profile
from legsleeve.core.readings import Readings
from legsleeve.hw.rig import Rig

log = logging.getLogger(__name__)


@dataclass
class SessionResult:
    outcome: Outcome
    stats: SessionStats
    log_path: Path | None
    steps: list[tuple[float, str]]  # (t_s from start, state) at each change

    @property
    def exit_code(self) -> int:
        return 3 if self.outcome.trip is not None else 0


def run_session(
    rig: Rig,
    profile: Profile,
    *,
    cycles: int | None = None,
    minutes: float | None = None,
    log_path: Path | None = None,
    status: Callable[[str], None] | None = None,
    realtime: bool = False,
    liveness: Callable[[], None] | None = None,
    poll: Callable[[], str | None] | None = None,
    annunciator: Annunciator | None = None,
    tick_costs_ns: list[int] | None = None,
    on_start: Callable[[float], None] | None = None,
    on_tick: Callable[[Runner, Readings], None] | None = None,
) -> SessionResult:
    """Self-test, then the session. SelfTestFailed, SelfTestStopped or SensorFault before it means nothing was
    squeezed. `poll` is called every tick of both: a reason it returns stops them (the control socket's stop, a
    signal). `on_start` is told the clock's time the session starts at, once the self-test has passed: the time
    the progress lines, the log's plot and `simulate --fault` count from. `on_tick` sees every tick of the
    self-test's valve check and of the session (the service's status)."""
    cfg = rig.config
    selftest_start = rig.clock.now()
    if status is not None:
        status("self-test: sensors, zero" + (", valves and hoses zone by zone" if cfg.selftest.valves else ""))
    checked = self_test(rig, liveness=liveness, poll=poll, on_tick=on_tick)
    for change in checked.changes:
        log.warning("self-test: %s", change)
        if status is not None:
            status(f"self-test: {change}")
    stats = SessionStats(profile)
    session_log = SessionLog(log_path, cfg.zone_names, cfg.has_manifold_sensor) if log_path else None
    try:  # the log is closed whatever happens from here on (it holds a descriptor of its own)
        steps: list[tuple[float, str]] = []
        reported: list[Refill] = []
        losses: list[str] = []  # the limbs whose sleeve loss check has been reported
        start = rig.clock.now()
        if status is not None:
            status(
                f"self-test passed in {start - selftest_start:.1f} s; session {profile.name} starts: 0:00.0 from here"
            )
        if on_start is not None:
            on_start(start)
        cycles, minutes = profile.session_length(cycles, minutes)
        total = f"/{cycles}" if cycles is not None else f" of {minutes:g} min" if minutes else ""

        def each_tick(runner: Runner, readings: Readings) -> None:
            if on_tick is not None:
                on_tick(runner, readings)
            refills = runner.status.refills
            if len(refills) > len(reported):
                for refill in refills[len(reported) :]:
                    if status is not None:
                        status(f"        {_mmss(readings.t_s - start)}  {describe_refill(refill)}")
                    else:
                        log.info("%s", describe_refill(refill))
                reported[:] = refills
            for limb, loss in runner.status.sleeve_losses[len(losses) :]:
                if status is not None:
                    status(f"        {_mmss(readings.t_s - start)}  {describe_loss(limb, loss)}")
                else:
                    log.info("%s", describe_loss(limb, loss))
                losses.append(limb)
            state = "tripped" if runner.supervisor.tripped else runner.status.step
            if not steps or steps[-1][1] != state:
                steps.append((readings.t_s - start, state))
                if status is not None and (state.startswith("fill") or state in ("done", "tripped")):
                    status(
                        f"cycle {min(runner.status.cycle + (state != 'done'), cycles or 10**9)}{total} "
                        f"{_mmss(readings.t_s - start)}  {state}"
                    )

        if realtime and isinstance(rig.clock, VirtualClock):
            RealTimePacer(rig.clock)
        if annunciator is None:
            annunciator = Annunciator(rig.panel, silence_s=cfg.limits.alarm_silence_s)
        runner = build_session(
            rig,
            profile,
            cycles=cycles,
            minutes=minutes,
            session_log=session_log,
            stats=stats,
            on_tick=each_tick,
            liveness=liveness,
            annunciator=annunciator,
            poll=poll,
            tick_costs_ns=tick_costs_ns,
        )
        outcome = runner.run()
    finally:
        if session_log is not None:
            session_log.close()
    return SessionResult(outcome, stats, log_path, steps)


WAITED_S = 1.0  # a rest this much longer than the limb took to be ready was a wait for another limb's turn


def describe_refill(refill: Refill) -> str:
    """A refill-adaptive rest in words: "left refilled in 31.2 s (rested 31.5 s)"; where the limb was ready well
    before it was compressed again (another limb's turn under way), when it was ready too."""
    if refill.refill_s is None:
        return f"{refill.limb}: refill not detected; rested {refill.rest_s:.1f} s (the bound)"
    rest = f"rested {refill.rest_s:.1f} s"
    if refill.rest_s - refill.ready_s >= WAITED_S:
        rest += f"; ready at {refill.ready_s:.1f} s, the other limb's turn under way"
    return f"{refill.limb} refilled in {refill.refill_s:.1f} s ({rest})"


def describe_loss(limb: str, loss_per_s: float | None) -> str:
    """A limb's sleeve loss check in words: "left sleeve loses 0.12 %/s of its pressure when held (checked)"."""
    if loss_per_s is None:
        return f"{limb} sleeve: loss check could not read the held sleeve long enough; none allowed for"
    return f"{limb} sleeve loses {100.0 * loss_per_s:.2f} %/s of its pressure when held (loss check)"


def refill_table(refills: tuple[Refill, ...]) -> str:
    """Each limb's refill-adaptive rests over a session: how many, the measured refill times, the rests."""
    lines = []
    for limb in dict.fromkeys(r.limb for r in refills):
        mine = [r for r in refills if r.limb == limb]
        measured = [r.refill_s for r in mine if r.refill_s is not None]
        rests = [r.rest_s for r in mine]
        found = (
            f"refill measured {min(measured):.1f}-{max(measured):.1f} s (mean {sum(measured) / len(measured):.1f})"
            if measured
            else "refill never detected"
        )
        lines.append(
            f"{limb}: {len(mine)} rest(s), {found}; rested {min(rests):.1f}-{max(rests):.1f} s"
            + (f", {len(mine) - len(measured)} at the bound" if len(measured) < len(mine) else "")
            + (f", {waited} longer, waiting for another limb's turn" if (waited := _waited(mine)) else "")
        )
    return "\n".join(lines)


def _waited(refills: list[Refill]) -> int:
    return sum(1 for r in refills if r.refill_s is not None and r.rest_s - r.ready_s >= WAITED_S)


def _mmss(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def report(result: SessionResult, profile: Profile, out=None) -> None:
    out = out or sys.stdout
    o = result.outcome
    trip = o.trip
    faults = {}
    if trip is not None and trip.zone:
        faults[trip.zone] = trip.rule
    if o.cannot_vent is not None and o.cannot_vent.zone:
        faults[o.cannot_vent.zone] = "SAFE-8 cannot vent"
    verdict = "no trip" if trip is None else f"TRIPPED {trip}"
    if o.stopped and trip is None:
        verdict = f"stopped ({o.stop_reason or 'stop requested'})"
    print(
        f"\nsession: {profile.name}, {result.outcome.status.cycle} cycle(s) in {_mmss(o.duration_s)}, "
        f"{o.ticks} ticks ({o.late_ticks} late); {verdict}",
        file=out,
    )
    print(result.stats.table(faults), file=out)
    if o.status.refills:
        print("refill-adaptive rest:\n" + refill_table(o.status.refills), file=out)
    if o.status.limited and trip is None and not o.stopped:
        print(
            "ended early, at the session limit: one more cycle would not have ended, vented, inside "
            "limits.session_max_min (hardware.yaml)",
            file=out,
        )
    if trip is not None:
        print(f"hint: {trip.hint}", file=out)
    if o.cannot_vent is not None:
        print(f"ALARM: {o.cannot_vent.reason} - {o.cannot_vent.hint}", file=out)
    elif o.vented:
        print("ended vented: every zone below 5 mmHg, pump off, exhausts open", file=out)
    elif o.unconfirmed:
        print(
            f"ended with pump off and exhausts open; vent not confirmed for {', '.join(o.unconfirmed)} "
            "(no reading): check by hand that it has emptied",
            file=out,
        )
    if result.log_path is not None:
        print(f"log: {result.log_path}", file=out)
