"""Bring-up checks a maker runs on a new sleeve, one part at a time, under the full supervisor.

`run_valve_test`: fill one zone gently, hold, vent, and say what every zone did - a swapped hose or valve wire shows as
the wrong zone rising.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from legsleeve.app.builder import build_session
from legsleeve.app.runner import Runner
from legsleeve.core.plan import Profile, Step, StepKind
from legsleeve.core.readings import Readings
from legsleeve.errors import ConfigError
from legsleeve.hw.rig import Rig
from legsleeve.safety.trip import Trip

ROW_EVERY_S = 0.5


@dataclass(frozen=True)
class ValveTest:
    """What `run_valve_test` saw: the trip if any, the zone's fill time, each zone's peak (mmHg)."""

    zone: str
    trip: Trip | None
    fill_s: float | None
    peaks_mmhg: dict[str, float]

    @property
    def others_peak_mmhg(self) -> float:
        others = [p for n, p in self.peaks_mmhg.items() if n != self.zone]
        return max(others) if others else 0.0


def check_valve_args(zone_names: tuple[str, ...], max_mmhg: float, zone: str, mmhg: float) -> None:
    """Refuse a test that names no zone or asks for more than the build allows (SAFE-2, SAFE-3)."""
    if zone not in zone_names:
        raise ConfigError([f"test-valve: no zone {zone!r} (zones: {', '.join(zone_names)})"])
    if not 0 < mmhg <= max_mmhg:
        raise ConfigError(
            [f"test-valve: --mmhg must be above 0 and at most limits.max_mmhg ({max_mmhg:g}), got {mmhg:g}"]
        )


def run_valve_test(
    rig: Rig, zone: str, *, mmhg: float, hold_s: float, row: Callable[[float, str, Readings], None] | None = None
) -> ValveTest:
    """Zero, fill `zone` to `mmhg`, hold `hold_s`, vent; `row(t_s, step, readings)` every ROW_EVERY_S."""
    cfg = rig.config
    names = cfg.zone_names
    check_valve_args(names, cfg.limits.max_mmhg, zone, mmhg)
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

    def watch(runner: Runner, readings: Readings) -> None:
        for n, r in zip(names, readings.zones, strict=False):
            if r.ok:
                peaks[n] = max(peaks[n], r.mmhg)
        if row is not None and readings.t_s >= next_row_s[0]:
            next_row_s[0] = readings.t_s + ROW_EVERY_S
            row(readings.t_s, runner.status.step, readings)

    outcome = build_session(rig, plan, trip_targets_mmhg=[mmhg] * len(names), on_tick=watch).run()
    fills = outcome.status.zones[i].fill_times_s
    return ValveTest(zone, outcome.trip, fills[0] if fills else None, peaks)
