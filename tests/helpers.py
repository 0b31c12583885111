"""Small builders shared by the control-core tests: readings and profiles without files or hardware."""

from __future__ import annotations

import math
from pathlib import Path

from legsleeve.core.plan import Profile, Step, StepKind
from legsleeve.core.readings import Reading, Readings

NAMES = ("ankle", "calf")


def readings(t_s: float, *mmhg: float, manifold: float | None = None) -> Readings:
    """Readings at t_s; a None pressure is a faulted reading."""
    zones = tuple(Reading(math.nan, t_s, "sensor: NACK") if p is None else Reading(float(p), t_s) for p in mmhg)
    m = None if manifold is None else Reading(manifold, t_s)
    return Readings(t_s, zones, m)


def profile(steps, targets=(40.0, 35.0), cycles=1, minutes=None, **kw) -> Profile:
    return Profile(
        name="t",
        description="t",
        path=Path("t.yaml"),
        zone_names=NAMES[: len(targets)],
        targets_mmhg=tuple(targets),
        steps=tuple(steps),
        session_minutes=minutes,
        session_cycles=cycles,
        **kw,
    )


FILL0 = Step(StepKind.FILL, (0,))
FILL1 = Step(StepKind.FILL, (1,))
VENT_ALL = Step(StepKind.VENT, (0, 1))
