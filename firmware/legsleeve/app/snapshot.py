"""What the service says about itself: one snapshot of the sleeve - state, profile, step, cycle, times, each zone's
pressure, target and valves, the alarm - built in the loop from the loop's own objects (the runner, its last readings,
the service's state), as plain data that the control socket encodes off the loop.

The snapshot reads no clock and touches no device: the loop hands it `now_s`. The runner of the self-test's valve
check or of the session, and its last readings, come from `SessionTracker`, which `run_session` feeds every tick.
Pressures are gauge mmHg, times seconds. Pressures are only known while a session (or its self-test) runs: in idle
the sensors are not read, and the zone pressures are None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from legsleeve.core.commands import SAFE, Commands
from legsleeve.core.readings import Readings
from legsleeve.safety.trip import Priority, Trip


@dataclass(frozen=True)
class Alarm:
    """A latched alarm as the service reports it: the rule and zone when a rule tripped, the reason and what to
    check (`hint`)."""

    priority: Priority
    message: str
    rule: str | None = None
    zone: str | None = None
    hint: str | None = None

    @classmethod
    def of_trip(cls, trip: Trip, priority: Priority | None = None, extra: str = "") -> Alarm:
        return cls(priority or trip.priority, f"{trip}{extra}", trip.rule, trip.zone, trip.hint)

    def text(self) -> str:
        return f"{self.message} - {self.hint}" if self.hint else self.message

    def as_dict(self, silenced: bool = False) -> dict[str, Any]:
        return {
            "priority": self.priority.name.lower(),
            "rule": self.rule,
            "zone": self.zone,
            "message": self.message,
            "hint": self.hint,
            "silenced": silenced,
        }


@dataclass
class SessionTracker:
    """A session under way, from its self-test on, as the loop saw it at its last tick: `run_session` calls `tick`
    every tick (of the self-test's valve check and of the session) and `started` when the session proper begins."""

    profile: str
    intensity_pct: float
    cycles: int | None  # asked for, or the profile's; None: a session of `minutes`
    minutes: float | None
    selftest_started_s: float
    deadline_s: float  # the controller's own deadline: a session never runs past it
    started_s: float | None = None  # the session proper (after the self-test)
    runner: Any = None  # legsleeve.app.runner.Runner (of the self-test's valve check, then of the session)
    readings: Readings | None = None
    stop_asked: bool = False  # a stop was taken for it (the runner hears it at its next tick)
    cycle_ends_s: list[float] = field(default_factory=list)  # clock time each cycle was completed

    def started(self, t_s: float) -> None:
        self.started_s = t_s
        self.runner, self.readings = None, None  # the self-test's runner is over

    def tick(self, runner: Any, readings: Readings) -> None:
        self.runner, self.readings = runner, readings
        if self.started_s is not None:
            while runner.status.cycle > len(self.cycle_ends_s):
                self.cycle_ends_s.append(readings.t_s)

    @property
    def in_selftest(self) -> bool:
        return self.started_s is None

    def remaining_s(self, now_s: float) -> float | None:
        """An estimate of the time left, from the cycles so far: before the first cycle has ended, the minutes asked
        for less the time gone (None for a session of cycles); after it, the cycles still to run at the mean length
        of those done (a session of minutes runs the cycle under way at its end to its end), never past the
        controller's deadline."""
        if self.started_s is None:
            return None
        elapsed = now_s - self.started_s
        done = len(self.cycle_ends_s)
        if done == 0:
            return max(self.minutes * 60.0 - elapsed, 0.0) if self.minutes else None
        mean = (self.cycle_ends_s[-1] - self.started_s) / done
        if self.cycles is not None:
            total = self.cycles
        else:
            total = max(math.ceil((self.minutes or 0.0) * 60.0 / mean), done + 1) if mean > 0 else done + 1
        end = min(total * mean, self.deadline_s)
        return max(end - elapsed, 0.0)


def snapshot(
    *,
    now_s: float,
    zone_names: tuple[str, ...] | list[str],
    service_state: str,
    selected: str,
    sessions: int,
    last: str,
    alarm: Alarm | None,
    silenced: bool,
    tracker: SessionTracker | None,
) -> dict[str, Any]:
    """The sleeve now, as plain data (JSON-ready; the control protocol's `status`)."""
    state = service_state
    profile = intensity = step = cycle = cycles = elapsed = remaining = None
    readings: Readings | None = None
    applied: Commands = SAFE
    targets: list[float | None] = [None] * len(zone_names)
    if tracker is not None:
        profile, intensity = tracker.profile, tracker.intensity_pct
        runner = tracker.runner
        readings = tracker.readings
        if runner is not None:
            applied = runner.applied
            sup = runner.supervisor
            trip = sup.cannot_vent or sup.tripped
            if trip is not None and alarm is None:
                alarm = Alarm.of_trip(trip, Priority.HIGH if sup.cannot_vent is not None else None)
            status = runner.status
            targets = [
                z.target_mmhg if z.inflated and sup.tripped is None and not runner.stopped else None
                for z in status.zones
            ]
        if tracker.in_selftest:
            state = "selftest"
            elapsed = now_s - tracker.selftest_started_s
            step = f"valve check: {runner.status.step}" if runner is not None else "zero"
        else:
            state = "running"
            elapsed = now_s - (tracker.started_s or now_s)
            cycles = tracker.cycles
            remaining = tracker.remaining_s(now_s)
            if runner is not None:
                step = runner.status.step
                cycle = runner.status.cycle + (0 if runner.status.done else 1)
                if cycles is not None:
                    cycle = min(cycle, cycles)
        if runner is not None and (runner.supervisor.tripped is not None):
            state, step, remaining = "alarm", "venting after the trip", None
        elif tracker.stop_asked or (runner is not None and runner.stopped):
            state, step, remaining = "stopping", "venting after a stop", None
        elif runner is not None and not tracker.in_selftest and runner.status.done:
            state, step, remaining = "stopping", "venting: the session is complete", 0.0
    zones = []
    for i, name in enumerate(zone_names):
        r = readings.zones[i] if readings is not None and i < len(readings.zones) else None
        zones.append(
            {
                "name": name,
                "mmhg": _mmhg(r.mmhg) if r is not None and r.ok else None,
                "target_mmhg": _mmhg(targets[i]) if targets[i] is not None else None,
                "valve": applied.action(i).value,
            }
        )
    manifold = readings.manifold if readings is not None else None
    return {
        "state": state,
        "profile": profile,
        "selected": selected,
        "intensity_pct": intensity,
        "step": step,
        "cycle": cycle,
        "cycles": cycles,
        "elapsed_s": _s(elapsed),
        "remaining_s": _s(remaining),
        "zones": zones,
        "manifold_mmhg": _mmhg(manifold.mmhg) if manifold is not None and manifold.ok else None,
        "pump_duty": round(applied.pump_duty, 3),
        "alarm": alarm.as_dict(silenced) if alarm is not None else None,
        "last": last,
        "sessions": sessions,
        "t_s": round(now_s, 3),
    }


def _mmhg(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 2)


def _s(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def mmss(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


_DOING = {
    "selftest": "self-test before",
    "running": "running",
    "stopping": "stopping",
    "alarm": "alarm during",
    "idle": "idle",
}


def text(snap: dict[str, Any]) -> str:
    """A snapshot in one line, for a person (the text protocol, and the first line of `legsleeve status`)."""
    state = snap["state"]
    parts = []
    if snap["profile"] is not None:
        what = f"{_DOING[state]} {snap['profile']}"
        if snap["intensity_pct"] not in (None, 100):
            what += f" at {snap['intensity_pct']:g} %"
        parts.append(what)
        if snap["cycle"] is not None:
            parts.append(f"cycle {snap['cycle']}" + (f"/{snap['cycles']}" if snap["cycles"] else ""))
        if snap["step"]:
            parts.append(snap["step"])
        if snap["elapsed_s"] is not None:
            parts.append(f"{mmss(snap['elapsed_s'])} elapsed")
        if snap["remaining_s"] is not None:
            parts.append(f"about {mmss(snap['remaining_s'])} left")
    else:
        parts.append(state)
    out = ", ".join(parts)
    zones = [z for z in snap["zones"] if z["mmhg"] is not None]
    if zones:
        out += (
            "; "
            + ", ".join(
                f"{z['name']} {z['mmhg']:.1f}"
                + (f"/{z['target_mmhg']:.0f}" if z["target_mmhg"] is not None else "")
                + f" {z['valve']}"
                for z in zones
            )
            + " mmHg"
        )
    out += f"; selected for the button: {snap['selected']}; sessions {snap['sessions']}; last: {snap['last']}"
    alarm = snap["alarm"]
    if alarm is not None:
        out += f"; alarm: {alarm['message']}" + (f" - {alarm['hint']}" if alarm["hint"] else "")
        if alarm["silenced"]:
            out += " (buzzer silenced)"
    return out
