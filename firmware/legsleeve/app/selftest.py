"""The start-up self-test, before any session: sensors, zero, and (optionally) each zone's valves and hose.

1. Every sensor answers at its channel (probed when the rig was built), reports the powered status bit, and gives a
   plausible ambient pressure; the sleeve vents and the zero is taken (`Rig.zero_sensors`, SAFE-9 checks inside).
2. Right after the zero every zone reads within ±2 mmHg of it.
3. With `selftest.valves`, each zone in turn is filled to a few mmHg and vented, under the full supervisor plus one
   more rule: while a zone fills, no other zone may rise; and no zone may get there faster than a bladder can.
   That catches swapped hoses, swapped valve wires, swapped sensor channels, a dead pump, a stuck inlet and a
   kinked hose before anything is squeezed hard.

A failure raises SelfTestFailed saying what to check; nothing further runs. The stop button, the E-stop and a stop
from the control socket act in every part of it (SAFE-12): a stopped self-test raises SelfTestStopped, never counts
as passed, and starts nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from legsleeve.app.builder import build_session
from legsleeve.app.runner import Runner
from legsleeve.config.model import HardwareConfig
from legsleeve.core.commands import FILL, Commands
from legsleeve.core.limits import MAX_SENSOR_NOISE_MMHG
from legsleeve.core.plan import Profile, Step, StepKind
from legsleeve.core.readings import Readings
from legsleeve.errors import SensorFault, SleeveError
from legsleeve.hw.rig import Rig
from legsleeve.safety.trip import Trip

ZERO_SANITY_MMHG = 2.0


class SelfTestFailed(SleeveError, RuntimeError):
    def __init__(self, message: str, trip: Trip | None = None):
        self.trip = trip
        super().__init__(message)


class SelfTestStopped(SleeveError):
    """A person stopped the self-test (the button, or `legsleeve stop`): the sleeve was vented, no session begins."""


class CrossTalk:
    """Self-test only: while one zone fills, every other zone must not rise above the lowest it read since that
    fill began (it may still be emptying from its own check)."""

    raw = False
    rule = "SELF-TEST"

    def __init__(self, names: Sequence[str], limit_mmhg: float):
        self.names = list(names)
        self.limit = limit_mmhg
        self.reset()

    def reset(self) -> None:
        self._filling: int | None = None
        self._low: list[float] = []

    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None:
        filling = [i for i in range(len(self.names)) if applied.action(i) is FILL]
        if len(filling) != 1:
            self._filling = None
            return None
        (f,) = filling
        if f != self._filling:
            self._filling = f
            self._low = [r.mmhg if r.ok else float("inf") for r in readings.zones]
        for i, r in enumerate(readings.zones):
            if i == f or not r.ok:
                continue
            self._low[i] = min(self._low[i], r.mmhg)
            if r.mmhg > self._low[i] + self.limit:
                return Trip(
                    self.rule,
                    self.names[i],
                    r.mmhg,
                    now_s,
                    f"filling {self.names[f]} raised {self.names[i]} by {r.mmhg - self._low[i]:.1f} mmHg",
                    f"the hoses, the inlet valve wires or the sensor channels of {self.names[f]} and "
                    f"{self.names[i]} are swapped, or the inlet of {self.names[i]} is stuck open",
                )
        return None


@dataclass(frozen=True)
class SelfTestResult:
    """What a passed self-test saw: the zero baselines (hPa), each zone's fill time to the self-test pressure (s),
    and what changed since calibration (words; empty without calibration.yaml)."""

    baselines: dict[str, float]
    fill_times_s: dict[str, float] = field(default_factory=dict)
    changes: tuple[str, ...] = ()


# Against calibration.yaml's baseline: a fill this much slower or faster is named; twice is refused.
CHANGE_SLOWER, CHANGE_FASTER = 1.3, 1 / 1.3
REFUSE_SLOWER, REFUSE_FASTER = 2.0, 0.5


def self_test(
    rig: Rig,
    *,
    liveness: Callable[[], None] | None = None,
    poll: Callable[[], str | None] | None = None,
    on_tick: Callable[[Runner, Readings], None] | None = None,
) -> SelfTestResult:
    """Run the self-test. Raises SelfTestFailed, SelfTestStopped or SensorFault.

    `liveness` is called every tick (the systemd watchdog), `poll` too: a reason it returns stops the self-test, as
    the stop button does; the E-stop fails it (SAFE-12). `on_tick` sees every tick of the valve check (the service's
    status)."""
    cfg = rig.config
    panel = rig.panel

    def waiting() -> None:  # every sweep of the zero's wait: the panel and the socket are heard, the watchdog fed
        if panel.estop_pressed:
            raise SelfTestFailed("self-test: E-stop pressed (SAFE-12): release it when the sleeve is safe")
        why = "stop button pressed" if panel.button is not None and panel.button.is_pressed else None
        why = why or (poll() if poll is not None else None)
        if why:
            raise SelfTestStopped(f"{why} during the self-test: no session was started")
        if liveness is not None:
            liveness()

    try:
        baselines = rig.zero_sensors(on_wait=waiting)
    except SensorFault as fault:
        raise SelfTestFailed(
            f"self-test: {fault}. Check that sensor's wiring, its multiplexer channel and that its zone is empty"
        ) from fault
    for sensor in rig.sensors.all if rig.sensors is not None else ():
        if sensor.noise_mmhg > MAX_SENSOR_NOISE_MMHG:
            raise SelfTestFailed(
                f"self-test: sensor {sensor.name} is noisy ({sensor.noise_mmhg:.2f} mmHg at rest, at most "
                f"{MAX_SENSOR_NOISE_MMHG:g}): the safety rules could not tell a leak from its noise. "
                "Check its supply, its wiring and its I2C pull-ups"
            )
    readings = rig.read()
    waiting()
    for name, r in zip(cfg.zone_names, readings.zones, strict=False):
        if not r.ok:
            raise SelfTestFailed(f"self-test: {r.fault}")
        if abs(r.mmhg) > ZERO_SANITY_MMHG:
            raise SelfTestFailed(
                f"self-test: {name} reads {r.mmhg:+.1f} mmHg right after its zero: the sleeve is "
                "not settled or the sensor drifts; try again with the sleeve off the leg"
            )
    if not cfg.selftest.valves:
        return SelfTestResult(baselines)
    target = cfg.selftest.fill_mmhg
    steps: list[Step] = []
    for i in range(len(cfg.zones)):
        steps += [
            Step(StepKind.FILL, (i,), target_mmhg=target, source="self-test"),
            Step(StepKind.VENT, (i,), wait=True, source="self-test"),
        ]
    plan = Profile.of_steps("self-test", cfg.zone_names, tuple(steps), target, path=cfg.path)
    runner = build_session(
        rig,
        plan,
        liveness=liveness,
        poll=poll,
        on_tick=on_tick,
        extra_monitors=[CrossTalk(cfg.zone_names, cfg.selftest.crosstalk_mmhg)],
    )
    outcome = runner.run()
    if outcome.stopped:
        raise SelfTestStopped(f"{runner.stop_reason} during the self-test's valve check: no session was started")
    if outcome.trip is not None:
        t = outcome.trip
        raise SelfTestFailed(f"self-test failed at {t.zone or 'the sleeve'}: {t.reason}. Check: {t.hint}", t)
    if not outcome.vented:
        raise SelfTestFailed("self-test: the sleeve did not vent after the valve check: check the exhaust valves")
    # A bladder takes most of a second to reach a few mmHg; a hose on its own fills within a tick (SAFE-6).
    fastest_s = target / cfg.limits.occlusion_rate_mmhg_s
    for name, zone in zip(cfg.zone_names, outcome.status.zones, strict=False):
        if zone.fill_times_s and min(zone.fill_times_s) < fastest_s:
            raise SelfTestFailed(
                f"self-test failed at {name}: reached {target:g} mmHg in {min(zone.fill_times_s):.2f} s, faster than "
                f"any bladder fills (SAFE-6). Check: the hose of {name} is kinked, blocked or pulled off between the "
                "valve block and the bladder"
            )
    fills = {name: min(z.fill_times_s) for name, z in zip(cfg.zone_names, outcome.status.zones, strict=False)}
    return SelfTestResult(baselines, fills, compare_with_calibration(cfg, fills))


def compare_with_calibration(cfg: HardwareConfig, fills: dict[str, float]) -> tuple[str, ...]:
    """Each zone's self-test fill against the one calibration measured: what changed, in words. A fill twice as slow
    (a leak, a hose half off) or twice as fast (a kinked hose, a smaller bladder) fails the self-test."""
    cal = cfg.calibration
    if cal is None:
        return ()
    changes = []
    refused = []
    for name, t in fills.items():
        then = cal.zone(name).selftest_fill_s
        if not (then > 0 and math.isfinite(then)):
            continue
        ratio = t / then
        if ratio >= CHANGE_SLOWER:
            words = f"{name} fills {ratio - 1:.0%} slower than at calibration ({t:.2f} s, then {then:.2f} s)"
            hint = "check its hose, the bladder for a leak, and the pump"
        elif ratio <= CHANGE_FASTER:
            words = f"{name} fills {1 - ratio:.0%} faster than at calibration ({t:.2f} s, then {then:.2f} s)"
            hint = "check its hose is not kinked and that the same bladder is connected"
        else:
            continue
        changes.append(f"{words}: {hint}")
        if ratio >= REFUSE_SLOWER or ratio <= REFUSE_FASTER:
            refused.append(f"{words}: {hint}")
    if refused:
        raise SelfTestFailed(
            "self-test: the sleeve is not the one calibrated - "
            + "; ".join(refused)
            + " (or run `legsleeve calibrate` again if you changed the build)"
        )
    return tuple(changes)
