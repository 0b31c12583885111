"""The session builder: the one place where a controller, a supervisor and a runner are wired to a rig.

Every run of the loop - a therapy session (`run`, `simulate`, `serve`), the self-test, `test-valve` and the bench -
is built here, so each gets the same supervisor with every rule on (SAFE-14) and the same runner with its safe
exits (SAFE-1). What differs between them is data: the plan, the trip levels, an extra rule, what to log. The
planner's run of a session on the pneumatic model, before anything moves, gets the same controller and supervisor
(`build_plan_loop`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from legsleeve.app.alarms import Annunciator
from legsleeve.app.runner import END_VENT_GRACE_S, Runner
from legsleeve.app.runner import Controller as ControllerLike
from legsleeve.app.sessionlog import SessionLog
from legsleeve.app.summary import SessionStats
from legsleeve.config.model import HardwareConfig
from legsleeve.core.controller import Controller
from legsleeve.core.plan import Profile
from legsleeve.core.readings import Readings
from legsleeve.hw.rig import Rig
from legsleeve.safety.supervisor import Supervisor
from legsleeve.safety.trip import Monitor

LATE_TICKS_S = 1.0  # margin for the tick that notices the deadline, and for late ones


def session_deadline_s(cfg: HardwareConfig) -> float:
    """How long into a session its controller may run: `limits.session_max_min` less the longest the loop then
    waits for the final vent and a margin, so that a session ends, vented, inside the limit. The supervisor's
    session limit (SAFE-10) is not moved: it stays the hard cut-off behind this."""
    lim = cfg.limits
    return lim.session_max_min * 60.0 - (lim.vent_timeout_s + END_VENT_GRACE_S + LATE_TICKS_S)


def build_session(
    rig: Rig,
    plan: Profile,
    *,
    cycles: int | None = None,
    minutes: float | None = None,
    trip_targets_mmhg: Sequence[float] | None = None,
    extra_monitors: Sequence[Monitor] = (),
    controller: ControllerLike | None = None,
    session_log: SessionLog | None = None,
    stats: SessionStats | None = None,
    on_tick: Callable[[Runner, Readings], None] | None = None,
    liveness: Callable[[], None] | None = None,
    annunciator: Annunciator | None = None,
    poll: Callable[[], str | None] | None = None,
    tick_costs_ns: list[int] | None = None,
) -> Runner:
    """A runner for `plan` on `rig`, ready to `run()`.

    `cycles` / `minutes`: the session's length (default: the plan's own). `trip_targets_mmhg`: each zone's highest
    target, on which its over-pressure trip level builds (default: the plan's peaks). `extra_monitors`: rules of this
    occasion on top of every standard one. `controller`: a stand-in for the plan's controller (the bench's runaway
    controller, which only the supervisor stands in the way of). The rest goes to the runner.
    """
    cfg = rig.config
    if controller is None:
        controller = _controller(cfg, plan, cycles, minutes)
    supervisor = _supervisor(cfg, plan, trip_targets_mmhg, extra_monitors, rig.measured_noise_mmhg)
    return Runner(
        rig,
        controller,
        supervisor,
        tick_s=1.0 / cfg.tick_hz,
        session_log=session_log,
        stats=stats,
        on_tick=on_tick,
        liveness=liveness,
        annunciator=annunciator,
        poll=poll,
        tick_costs_ns=tick_costs_ns,
    )


def build_plan_loop(
    cfg: HardwareConfig, plan: Profile, *, cycles: int | None = None, minutes: float | None = None
) -> tuple[Controller, Supervisor]:
    """The controller and the supervisor a session of `plan` would run with, as `build_session` wires them, for a
    run of the loop on a pneumatic model with no rig: the planner's (`legsleeve.app.validate`)."""
    return _controller(cfg, plan, cycles, minutes), _supervisor(cfg, plan, None, (), None)


def _controller(cfg: HardwareConfig, plan: Profile, cycles: int | None, minutes: float | None) -> Controller:
    return Controller(
        plan, min_duty=cfg.pump.min_duty, cycles=cycles, minutes=minutes, deadline_s=session_deadline_s(cfg)
    )


def _supervisor(
    cfg: HardwareConfig,
    plan: Profile,
    trip_targets_mmhg: Sequence[float] | None,
    extra_monitors: Sequence[Monitor],
    measured_noise_mmhg: float | None,
) -> Supervisor:
    if trip_targets_mmhg is None:
        trip_targets_mmhg = [plan.peak_target_mmhg(i) for i in range(len(cfg.zones))]
    return Supervisor(cfg, trip_targets_mmhg, extra_monitors=extra_monitors, measured_noise_mmhg=measured_noise_mmhg)
