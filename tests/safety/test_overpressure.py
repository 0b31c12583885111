"""SAFE-4 over-pressure (and SAFE-3's trip levels it builds on), and the pump check: a manifold that rises with the
pump off. Each on both sides of its threshold."""

from __future__ import annotations

import pytest

from legsleeve.core.commands import SAFE
from legsleeve.core.limits import ABS_MAX_MMHG
from legsleeve.safety.overpressure import OverPressure
from legsleeve.safety.supervisor import Supervisor
from tests.helpers import HOLD_ALL, TICK, drive, rd, run_until_trip


def test_trip_levels_are_target_plus_margin_capped_by_max(cfg):
    sup = Supervisor(cfg, [45.0, 85.0, 200.0, 0.0])
    assert sup.trip_levels_mmhg == [55.0, 90.0, 90.0, 10.0]  # SAFE-3: the configured max (90) caps every level
    assert max(sup.trip_levels_mmhg) <= min(cfg.limits.max_mmhg, ABS_MAX_MMHG)


# -- SAFE-4 over-pressure ---------------------------------------------------------------------------------------


def test_safe4_below_trip_level_never_trips(sup):
    _, tripped = drive(sup, 0, 10, HOLD_ALL, ankle=54.9)
    assert tripped is None


def test_safe4_above_level_shorter_than_debounce_does_not_trip(cfg):
    # the rule on its own: any action would draw other rules' attention to these made-up pressures
    rule = OverPressure(cfg.zone_names, [55.0, 50.0, 45.0, 40.0], cfg.limits.overpressure_debounce_s)

    def feed(t0, t1, p):
        t = t0
        while t < t1 - 1e-9:
            trip = rule.check(t, rd(t, ankle=p), SAFE)
            if trip:
                return trip
            t += TICK
        return None

    assert feed(0, 0.09, 55.5) is None  # 0.08 s above
    assert feed(0.09, 1.0, 54.0) is None  # back below: the count restarts
    assert feed(1.0, 1.09, 55.5) is None
    assert feed(1.09, 1.2, 55.5) is not None  # ...and now it has lasted the debounce


def test_safe4_above_level_for_the_debounce_trips(sup):
    out, tripped = drive(sup, 0, 1.0, HOLD_ALL, ankle=55.5)
    assert tripped == pytest.approx(0.10) and out == SAFE
    trip = sup.tripped
    assert (trip.rule, trip.zone) == ("SAFE-4", "ankle") and trip.reading_mmhg == pytest.approx(55.5)
    assert "over-pressure" in trip.reason and trip.hint


def test_safe4_above_the_absolute_ceiling_trips_at_once(sup):
    sup.review(0.0, rd(0.0, calf=ABS_MAX_MMHG + 1), HOLD_ALL)
    assert sup.tripped.rule == "SAFE-4" and sup.tripped.zone == "calf"


# -- the pump check (SAFE-4 on the manifold) --------------------------------------------------------------------


def test_pump_check_manifold_holding_still_is_fine(sup):
    assert run_until_trip(sup, 0, 10, SAFE, lambda t: {"manifold": 60.0}) is None


def test_pump_check_manifold_rising_with_the_pump_off_trips(sup):
    t = run_until_trip(sup, 0, 10, SAFE, lambda t: {"manifold": 60.0 + 20.0 * max(t - 2, 0)})
    assert t == pytest.approx(2.5, abs=0.1)
    assert (sup.tripped.rule, sup.tripped.zone) == ("SAFE-4", "manifold") and "E-stop" in sup.tripped.hint
