"""SAFE-5 fill progress: a fill that gains too slowly, or takes too long, trips; only zones being filled count."""

from __future__ import annotations

import pytest

from legsleeve.safety.supervisor import Supervisor
from tests.helpers import FILL_ANKLE, HOLD_ALL, TICK, drive, rd


def _fill_ramp(sup, rate_mmhg_s, seconds, start=0.0):
    t, p = 0.0, start
    while t < seconds:
        sup.review(t, rd(t, ankle=p), FILL_ANKLE)
        if sup.tripped:
            return t
        t += TICK
        p += rate_mmhg_s * TICK
    return None


def test_safe5_fill_gaining_faster_than_the_minimum_rate_is_fine(sup):
    assert _fill_ramp(sup, 1.1, 9.0) is None


def test_safe5_fill_gaining_too_slowly_trips_at_the_end_of_a_window(sup):
    t = _fill_ramp(sup, 0.9, 9.0)
    assert t == pytest.approx(3.02, abs=0.03)  # the first window closes 3 s after the first filled reading
    assert sup.tripped.rule == "SAFE-5" and sup.tripped.zone == "ankle" and "gained only" in sup.tripped.reason


def test_safe5_fill_timeout(cfg):
    sup = Supervisor(cfg, [90.0, 40.0, 35.0, 30.0])  # trip level 90: a slow fill from 0 stays under it
    limit = cfg.limits.fill_timeout_s
    assert _fill_ramp(sup, 1.5, limit - 0.5, start=0.0) is None
    t = _fill_ramp(Supervisor(cfg, [90.0, 40.0, 35.0, 30.0]), 1.5, limit + 1.0, start=0.0)
    assert t is not None and limit < t <= limit + 0.1


def test_safe5_only_watches_zones_being_filled(sup):
    _, tripped = drive(sup, 0, 20, HOLD_ALL, ankle=30.0)  # holding, not gaining: nothing to say
    assert tripped is None


def test_safe5_the_pump_stopped_for_a_safe15_check_is_not_counted_against_the_fill(cfg):
    """A fill at 1.1 mmHg/s, stopped 2 s in the middle for a check (pump off, the inlet open: no gain), passes; the
    same fill at 0.9 mmHg/s still trips, the check's time left out of its window."""
    from legsleeve.core.commands import FILL, VENT, Commands
    from legsleeve.safety.progress import FillProgress

    fill = Commands(1.0, (FILL, VENT, VENT, VENT))
    check = Commands(0.0, (FILL, VENT, VENT, VENT))

    def run(rate):
        rule = FillProgress(cfg.zone_names, min_rate_mmhg_s=1.0, window_s=3.0, timeout_s=60.0)
        t, p = 0.0, 0.0
        while t < 12.0:
            applied = check if 4.0 <= t < 6.0 else fill
            trip = rule.check(t, rd(t, ankle=p), applied)
            if trip:
                return t
            t += TICK
            p += 0.0 if applied is check else rate * TICK
        return None

    assert run(1.1) is None
    t = run(0.9)
    assert t is not None and t == pytest.approx(3.02, abs=0.03)
