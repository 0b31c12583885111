"""The loop: read sensors -> supervisor + controller -> apply -> log -> prove liveness, at a fixed tick.

Time comes from the rig's clock (monotonic on the sleeve, virtual in simulation). Every way out - the end of the
session, a trip, a signal, an exception - drives the safe state before anything else happens (SAFE-1). After a
trip the loop keeps reading and logging, in the safe state, until the sleeve is vented (or the vent check raises
"cannot vent"), so the log shows the sleeve emptying.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Protocol

from legsleeve.app.sessionlog import SessionLog
from legsleeve.app.summary import SessionStats
from legsleeve.core.commands import SAFE
from legsleeve.core.controller import Output, Status
from legsleeve.core.limits import VENTED_MMHG
from legsleeve.core.readings import Readings
from legsleeve.hw.rig import Rig
from legsleeve.safety.supervisor import Supervisor
from legsleeve.safety.trip import Priority, Trip

log = logging.getLogger(__name__)

END_VENT_GRACE_S = 1.0  # at the end, the loop waits for the vent up to limits.vent_timeout_s and this much more


class Controller(Protocol):
    """What the runner needs of a controller (`legsleeve.core.controller.Controller` is the one that ships)."""

    @property
    def status(self) -> Status: ...

    def step(self, now_s: float, readings: Readings) -> Output: ...


@dataclass
class Outcome:
    """How a run ended: the trip, ticks, times, whether the vent was confirmed, the controller's last status."""

    trip: Trip | None
    cannot_vent: Trip | None
    ticks: int
    late_ticks: int
    start_s: float
    end_s: float
    vented: bool
    unconfirmed: list[str]
    status: Status  # the controller's, at the end (cycles done, fill times, top-ups)
    stopped: bool = False  # by a person: the stop button, the control socket, a signal
    stop_reason: str = ""  # in words ("stop button pressed", "SIGINT received")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class Runner:
    def __init__(
        self,
        rig: Rig,
        controller: Controller,
        supervisor: Supervisor,
        *,
        tick_s: float,
        session_log: SessionLog | None = None,
        stats: SessionStats | None = None,
        on_tick: Callable[[Runner, Readings], None] | None = None,
        liveness: Callable[[], None] | None = None,
        annunciator=None,
        poll: Callable[[], str | None] | None = None,
        tick_costs_ns: list[int] | None = None,
    ):
        self.rig = rig
        self.controller = controller
        self.supervisor = supervisor
        self.tick_s = tick_s
        self.session_log = session_log
        self.stats = stats
        self.on_tick = on_tick
        self.liveness = liveness
        self.annunciator = annunciator
        self.poll = poll
        self.tick_costs_ns = tick_costs_ns  # when given: the firmware's own work per tick, sensor waits excluded
        self.status: Status = controller.status  # the controller's, as of its last step
        self.applied = SAFE  # what the outputs were last set to (the supervisor's verdict on the wish)
        self.stopped = False
        self.stop_reason = ""
        self._button_was_down = False
        self._last_readings: Readings | None = None
        self._targets: tuple[float | None, ...] = ()  # the log's targets...
        self._targets_of: Status | None = None  # ...for this status...
        self._targets_live = False  # ...untripped
        self.ticks = 0
        self.late_ticks = 0
        self.unconfirmed: list[str] = []  # zones whose vent could not be confirmed (no reading) at the end

    def run(self) -> Outcome:
        clock = self.rig.clock
        start = clock.now()
        if self.annunciator is not None:
            self.annunciator.running = True
        try:
            vented = self._loop(start)
        except BaseException as exc:
            self.rig.drive_safe()  # first: whatever broke, the sleeve vents before anyone hears of it
            self._log_last(f"stopped: {type(exc).__name__}: {exc}")
            raise
        finally:
            self.rig.drive_safe()
            if self.annunciator is not None:
                self.annunciator.running = False
            if self.stats is not None:
                self.stats.finish(self.status)
        sup = self.supervisor
        return Outcome(
            sup.tripped,
            sup.cannot_vent,
            self.ticks,
            self.late_ticks,
            start,
            clock.now(),
            vented,
            self.unconfirmed,
            self.status,
            self.stopped,
            self.stop_reason,
        )

    def _loop(self, start_s: float) -> bool:
        clock = self.rig.clock
        sup, ctl = self.supervisor, self.controller
        next_s = start_s
        ending_since: float | None = None  # time the session or a trip ended; we then wait for the vent
        vent_limit_s = self.rig.config.limits.vent_timeout_s
        costs = self.tick_costs_ns
        while True:
            raw = self.rig.read()
            started_ns = perf_counter_ns() if costs is not None else 0
            readings = sup.observe(raw)  # a one-sensor build: each zone's last reading through the manifold
            self._last_readings = readings
            now = readings.t_s
            pressed = readings.stop_pressed and not self._button_was_down
            self._button_was_down = readings.stop_pressed
            if pressed:
                self._on_button(now)
            if self.poll is not None:
                why = self.poll()  # a stop asked from outside the panel (the control socket): acted on this tick
                if why:
                    self.request_stop(now, why)
            if sup.tripped is None and not self.stopped:
                wish, self.status = ctl.step(now, readings)
            else:
                wish = SAFE
            tripped_before = sup.tripped
            cmd = sup.review(now, raw, wish, measure=not self.stopped)
            self.rig.apply(cmd)
            self.applied = cmd
            self.ticks += 1
            self._annunciate(now, tripped_before)
            if self.stats is not None and sup.tripped is None:
                self.stats.update(readings, self.status)
            if self.session_log is not None:
                self._log_row(now, readings, cmd)
                if sup.tripped is not None and tripped_before is None:
                    self.session_log.sync()  # SAFE-13: the trip's evidence on the disk now; outputs are already safe
            if self.on_tick is not None:
                self.on_tick(self, readings)
            if self.liveness is not None:
                self.liveness()  # SAFE-11: a tick completed, outputs applied; a stalled loop never gets here
            if costs is not None:
                costs.append(perf_counter_ns() - started_ns)

            if sup.tripped is not None or self.status.done or self.stopped:
                # The end: keep ticking in the safe state until every zone reads empty (with a 1 mmHg margin for the
                # zero's uncertainty), or the vent time has passed. A zone that cannot vent, or whose sensor was
                # declared bad, is not waited for: it is reported.
                if ending_since is None:
                    ending_since = now
                names = self.rig.config.zone_names
                untrusted = sup.untrusted()
                cannot_vent = {sup.cannot_vent.zone} if sup.cannot_vent is not None else set()
                skip = untrusted | cannot_vent
                if sup.shared is not None:
                    # one sensor: a zone is seen empty only by a peek since the end (none once tripped or stopped)
                    seen = sup.shared.confirmed_below(VENTED_MMHG - 1.0, ending_since)
                    self.unconfirmed = [n for n, ok in zip(names, seen, strict=True) if not ok and n not in skip]
                    emptied = all(seen)
                else:
                    self.unconfirmed = [
                        n for n, r in zip(names, readings.zones, strict=False) if n not in skip and not r.ok
                    ]
                    watched = [r for n, r in zip(names, readings.zones, strict=False) if n not in skip]
                    emptied = all(r.ok and r.mmhg < VENTED_MMHG - 1.0 for r in watched)
                self.unconfirmed += sorted(untrusted - cannot_vent)  # the zone that cannot vent is reported by its trip
                if emptied and not skip:
                    return True
                waited_s = now - ending_since
                if waited_s > vent_limit_s + END_VENT_GRACE_S or (emptied and waited_s > vent_limit_s):
                    self._unconfirmed_alarm(now)
                    return False  # what could empty has; the rest is reported, after a full vent time open

            next_s += self.tick_s
            delay = next_s - clock.now()
            if delay < 0:
                self.late_ticks += 1
                next_s = clock.now()  # do not try to catch up: a burst of ticks helps nobody
            else:
                clock.sleep(delay)

    def request_stop(self, now: float, why: str = "stop requested") -> None:
        """End the session in the safe state at the next tick (the button, or the control socket)."""
        if not self.stopped and self.supervisor.tripped is None:
            self.stopped = True
            self.stop_reason = why
            log.warning("%s: session stopped, venting (SAFE-12)", why)

    def _on_button(self, now: float) -> None:
        """SAFE-12: the stop button ends the session in the safe state at once; during an alarm it silences."""
        if self.supervisor.tripped is not None or self.stopped:
            if self.annunciator is not None:
                self.annunciator.silence(now)
            return
        self.request_stop(now, "stop button pressed")

    def _annunciate(self, now: float, tripped_before: Trip | None) -> None:
        ann = self.annunciator
        if ann is None:
            return
        sup = self.supervisor
        if sup.tripped is not None and tripped_before is None:
            ann.raise_alarm(now, sup.tripped.priority, f"{sup.tripped} - {sup.tripped.hint}")
        if sup.cannot_vent is not None and ann.message != f"{sup.cannot_vent} - {sup.cannot_vent.hint}":
            ann.raise_alarm(now, Priority.HIGH, f"{sup.cannot_vent} - {sup.cannot_vent.hint}")
        if ann.priority is None and sup.tripped is None and (self.status.done or self.stopped):
            ann.raise_alarm(
                now, Priority.LOW, f"session stopped ({self.stop_reason})" if self.stopped else "session complete"
            )
        ann.update(now)

    def _unconfirmed_alarm(self, now: float) -> None:
        """A vent that could not be confirmed is said aloud: after a trip as an alarm of high priority (a bladder
        beyond a blocked hose may still squeeze, and nothing here can see it), after a stop of medium."""
        if not self.unconfirmed or self.annunciator is None:
            return
        why = "no reading" if self.supervisor.shared is None else "one sensor cannot read a zone with its inlet closed"
        priority = Priority.HIGH if self.supervisor.tripped is not None else Priority.MEDIUM
        self.annunciator.raise_alarm(
            now,
            priority,
            f"vent not confirmed for {', '.join(self.unconfirmed)} ({why}): check by hand that every bladder has "
            "emptied, and release any that has not",
        )

    def _log_last(self, state: str) -> None:
        """After a signal or an exception: one more row, showing the outputs as they now are (safe)."""
        if self.session_log is None or self._last_readings is None:
            return
        try:
            self.session_log.row(
                self.rig.clock.now(),
                state,
                SAFE,
                self._last_readings,
                [None] * len(self.status.zones),
                self.status.cycle,
                state,
            )
        except Exception:
            log.exception("could not write the last log row")

    def _log_row(self, now: float, readings: Readings, cmd) -> None:
        sup, status = self.supervisor, self.status
        if sup.tripped is not None:
            state = "tripped"
            fault = str(sup.cannot_vent or sup.tripped)
        elif self.stopped:
            state, fault = "stopped", ""
        else:
            state = status.step
            fault = ""
        # a tuple, rebuilt only when the status is another (a frozen Status is rebuilt only when it changes) or a trip
        # came: the log then reuses its cells
        live = sup.tripped is None
        if status is not self._targets_of or live is not self._targets_live:
            self._targets = tuple(z.target_mmhg if z.inflated and live else None for z in status.zones)
            self._targets_of, self._targets_live = status, live
        targets = self._targets
        assert self.session_log is not None
        self.session_log.row(now, state, cmd, readings, targets, status.cycle, fault)
