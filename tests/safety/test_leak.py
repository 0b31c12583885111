"""SAFE-7 leak in hold: a held zone losing pressure too fast, falling too far below its peak, or topped up too often."""

from __future__ import annotations

import pytest

from legsleeve.safety.supervisor import Supervisor
from tests.helpers import FILL_CALF, HOLD_CALF, TICK, rd, run_until_trip


def test_safe7_slow_decay_in_hold_is_fine(sup):
    # 0.9 mmHg/s for 7 s: under the rate bound, and 6.3 mmHg is under the 8 mmHg drop
    assert run_until_trip(sup, 0, 7, HOLD_CALF, lambda t: {"calf": 40 - 0.9 * t}) is None


def test_safe7_decay_faster_than_the_bound_trips(sup, cfg):
    t = run_until_trip(sup, 0, 10, HOLD_CALF, lambda t: {"calf": 40 - 1.2 * t})
    assert t == pytest.approx(0.5 + 2 * TICK, abs=2 * TICK)  # judged after half a second of hold
    assert sup.tripped.rule == "SAFE-7" and "loses 1.2 mmHg/s" in sup.tripped.reason


def test_safe7_a_held_zone_falling_8_mmhg_below_its_peak_trips(cfg):
    # a slow fall (under the rate bound) that goes on: the drop from the peak speaks at 8 mmHg
    for seconds, trips in ((8.5, False), (9.5, True)):  # 0.9 mmHg/s: 7.65 and 8.55 mmHg
        sup = Supervisor(cfg, [45.0, 40.0, 35.0, 30.0])
        t = run_until_trip(sup, 0, seconds, HOLD_CALF, lambda t: {"calf": 40.0 - 0.9 * t})
        assert (t is not None) == trips
    assert sup.tripped.rule == "SAFE-7" and "since it was full" in sup.tripped.reason


def _topups(sup, n):
    t = 0.0
    for _ in range(n):
        for wish in (HOLD_CALF, FILL_CALF):
            sup.review(t, rd(t, calf=39.0), wish)
            t += TICK
            sup.review(t, rd(t, calf=39.0), wish)
            t += TICK
    return sup.tripped


def test_safe7_top_up_budget(cfg):
    assert _topups(Supervisor(cfg, [45.0, 40.0, 35.0, 30.0]), 3) is None
    trip = _topups(Supervisor(cfg, [45.0, 40.0, 35.0, 30.0]), 4)
    assert trip.rule == "SAFE-7" and "4 top-ups" in trip.reason
