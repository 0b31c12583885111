"""Bring-up checks a maker runs on a new sleeve, one part at a time, under the full supervisor.

`run_valve_test`: fill one zone gently, hold, vent, and say what every zone did - a swapped hose or valve wire shows as
the wrong zone rising - and how fast the held zone lost pressure: with a long hold (`--hold-s 60`) that is the zone's
leak test, judged against LEAK_BOUND_FRACTION of SAFE-7's own limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from legsleeve.app.builder import build_session
from legsleeve.app.runner import Runner
from legsleeve.core.commands import HOLD
from legsleeve.core.plan import Profile, Step, StepKind
from legsleeve.core.readings import Readings
from legsleeve.errors import ConfigError
from legsleeve.hw.rig import Rig
from legsleeve.safety.trip import Trip

ROW_EVERY_S = 0.5
# The leak test. A held zone's loss is measured over each stretch with both its valves closed, from SETTLE_S after the
# stretch begins (the hose evens out with the bladder, as calibrate's SETTLE_S) to its end, between top-ups; each
# stretch's loss is the mean of its first AVERAGE_S of readings less the mean of its last (the sensor's noise, ~0.1
# mmHg, averages out). Only stretches of at least MIN_STRETCH_S count, and a loss is judged over JUDGE_MIN_S of them.
SETTLE_S = 0.5
AVERAGE_S = 0.5
MIN_STRETCH_S = 2.0
JUDGE_MIN_S = 20.0
# A sound zone loses less than a tenth of what SAFE-7 trips on (limits.leak_rate_mmhg_s, 1 mmHg/s on the reference:
# 0.1 mmHg/s, 6 mmHg a minute). Such a zone needs a top-up at most every ~20 s of a hold (the controller's band is
# ~2 mmHg), far from SAFE-7's top-up count; the simulated reference bladder loses ~0.01 mmHg/s at 20 mmHg.
LEAK_BOUND_FRACTION = 0.1
MAX_HOLD_S = 600.0


@dataclass(frozen=True)
class ValveTest:
    """What `run_valve_test` saw: the trip if any, the zone's fill time, each zone's peak (mmHg), and its leak test:
    the loss while held (mmHg/s, None if no stretch was long enough), over how many seconds, the bound it is judged
    against, and the top-ups the hold needed."""

    zone: str
    trip: Trip | None
    fill_s: float | None
    peaks_mmhg: dict[str, float]
    loss_mmhg_s: float | None = None
    measured_s: float = 0.0
    leak_bound_mmhg_s: float = math.inf
    topups: int = 0

    @property
    def leak_judged(self) -> bool:
        """Whether the hold was long enough to judge a leak by (use --hold-s 60)."""
        return self.loss_mmhg_s is not None and self.measured_s >= JUDGE_MIN_S

    @property
    def leaks(self) -> bool:
        """The zone loses more than the bound: find the leak before a session."""
        return self.leak_judged and self.loss_mmhg_s is not None and self.loss_mmhg_s > self.leak_bound_mmhg_s

    @property
    def others_peak_mmhg(self) -> float:
        others = [p for n, p in self.peaks_mmhg.items() if n != self.zone]
        return max(others) if others else 0.0


def check_valve_args(zone_names: tuple[str, ...], max_mmhg: float, zone: str, mmhg: float, hold_s: float = 3.0) -> None:
    """Refuse a test that names no zone, asks for more than the build allows, or a hold that is not a number of
    seconds (SAFE-2, SAFE-3): before anything is actuated."""
    if zone not in zone_names:
        raise ConfigError([f"test-valve: no zone {zone!r} (zones: {', '.join(zone_names)})"])
    if not 0 < mmhg <= max_mmhg:
        raise ConfigError(
            [f"test-valve: --mmhg must be above 0 and at most limits.max_mmhg ({max_mmhg:g}), got {mmhg:g}"]
        )
    if not 0 < hold_s <= MAX_HOLD_S:
        raise ConfigError([f"test-valve: --hold-s must be above 0 and at most {MAX_HOLD_S:g} s, got {hold_s:g}"])


class _HoldLoss:
    """The held zone's loss over its closed stretches (see SETTLE_S): fed every tick, read at the end."""

    def __init__(self) -> None:
        self.stretch: list[tuple[float, float]] = []
        self.start_s: float | None = None
        self.loss_mmhg = 0.0
        self.measured_s = 0.0

    def tick(self, t_s: float, held: bool, mmhg: float | None) -> None:
        if not held:
            self.close()
            return
        if self.start_s is None:
            self.start_s = t_s
        if mmhg is not None and t_s >= self.start_s + SETTLE_S:
            self.stretch.append((t_s, mmhg))

    def close(self) -> None:
        samples, self.stretch, self.start_s = self.stretch, [], None
        if not samples or samples[-1][0] - samples[0][0] < MIN_STRETCH_S:
            return
        first = [p for t, p in samples if t <= samples[0][0] + AVERAGE_S]
        last = [p for t, p in samples if t >= samples[-1][0] - AVERAGE_S]
        self.loss_mmhg += sum(first) / len(first) - sum(last) / len(last)
        self.measured_s += (samples[-1][0] - samples[0][0]) - AVERAGE_S  # between the two windows' centres

    @property
    def rate_mmhg_s(self) -> float | None:
        return self.loss_mmhg / self.measured_s if self.measured_s > 0 else None


def run_valve_test(
    rig: Rig, zone: str, *, mmhg: float, hold_s: float, row: Callable[[float, str, Readings], None] | None = None
) -> ValveTest:
    """Zero, fill `zone` to `mmhg`, hold `hold_s`, vent; `row(t_s, step, readings)` every ROW_EVERY_S."""
    cfg = rig.config
    names = cfg.zone_names
    check_valve_args(names, cfg.limits.max_mmhg, zone, mmhg, hold_s)
    i = names.index(zone)
    rig.zero_sensors()
    plan = Profile.of_steps(
        "test-valve",
        names,
        (
            Step(StepKind.FILL, (i,), target_mmhg=mmhg),
            Step(StepKind.HOLD, duration_s=hold_s),
            Step(StepKind.VENT, (i,), wait=True),
        ),
        mmhg,
        path=cfg.path,
    )
    peaks = dict.fromkeys(names, 0.0)
    next_row_s = [0.0]
    loss = _HoldLoss()

    def watch(runner: Runner, readings: Readings) -> None:
        for n, r in zip(names, readings.zones, strict=False):
            if r.ok:
                peaks[n] = max(peaks[n], r.mmhg)
        held = runner.status.kind is StepKind.HOLD and runner.applied.action(i) is HOLD
        reading = readings.zones[i] if i < len(readings.zones) else None
        loss.tick(readings.t_s, held, reading.mmhg if reading is not None and reading.ok else None)
        if row is not None and readings.t_s >= next_row_s[0]:
            next_row_s[0] = readings.t_s + ROW_EVERY_S
            row(readings.t_s, runner.status.step, readings)

    try:
        outcome = build_session(rig, plan, trip_targets_mmhg=[mmhg] * len(names), on_tick=watch).run()
    except BaseException:
        # SAFE-1: the runner drives the safe state on its own way out; this covers what fails around it (a session
        # that cannot be built, say) - a leak test ends vented whatever happens.
        rig.drive_safe()
        raise
    loss.close()
    fills = outcome.status.zones[i].fill_times_s
    return ValveTest(
        zone,
        outcome.trip,
        fills[0] if fills else None,
        peaks,
        loss.rate_mmhg_s,
        loss.measured_s,
        LEAK_BOUND_FRACTION * cfg.limits.leak_rate_mmhg_s,
        outcome.status.zones[i].topups,
    )


def leak_report(test: ValveTest) -> str:
    """The leak test's verdict in words: the loss rate against the bound, or why it was not judged."""
    bound = test.leak_bound_mmhg_s
    if test.loss_mmhg_s is None:
        return f"leak: not measured (the hold had no closed stretch of {MIN_STRETCH_S:g} s); use --hold-s 60"
    rate = (
        f"lost {test.loss_mmhg_s:.3f} mmHg/s ({60 * test.loss_mmhg_s:.1f} mmHg/min) over {test.measured_s:.0f} s held, "
        f"{test.topups} top-up(s)"
    )
    if not test.leak_judged:
        return f"leak: {rate}; too short to judge (at least {JUDGE_MIN_S:g} s): use --hold-s 60"
    limit = f"bound {bound:.2f} mmHg/s, a tenth of limits.leak_rate_mmhg_s (SAFE-7's trip)"
    if test.leaks:
        return (
            f"leak: LEAKS - {rate}; {limit}. Find it before a session: soapy water on the bladder's seams, the hose "
            f"barbs and tees; then the exhaust valve's seat (hardware/troubleshooting.md)"
        )
    return f"leak: sound - {rate}; {limit}"
