"""The supervisor core: each SAFE rule on both sides of its threshold, latching, and a guard that only makes safer."""

from __future__ import annotations

import itertools
import math

import pytest

from legsleeve.core.commands import FILL, HOLD, SAFE, VENT, Commands
from legsleeve.core.limits import ABS_MAX_MMHG
from legsleeve.core.readings import Reading, Readings
from legsleeve.safety.supervisor import OverPressure, Supervisor, VentCheck
from legsleeve.safety.trip import Priority

TICK = 0.02
_jitter = itertools.count()


def rd(t, ankle=0.0, calf=0.0, knee=0.0, thigh=0.0, manifold=0.0, faults=None):
    """Readings with a microscopic jitter, as real sensors have (identical values would read as stuck)."""
    faults = faults or {}
    out = []
    for name, p in (("ankle", ankle), ("calf", calf), ("knee", knee), ("thigh", thigh), ("manifold", manifold)):
        if name in faults or p is None:
            out.append(Reading(math.nan, t, faults.get(name, "sensor: NACK")))
        else:
            out.append(Reading(p + 1e-6 * (next(_jitter) % 7), t))
    return Readings(t, tuple(out[:4]), out[4])


@pytest.fixture
def sup(cfg):
    return Supervisor(cfg, [45.0, 40.0, 35.0, 30.0])


def drive(sup, t0, t1, wish, **pressures):
    """Review every tick from t0 to t1 (exclusive) with fixed pressures; return (last output, trip time)."""
    t = t0
    out = None
    while t < t1 - 1e-9:
        out = sup.review(t, rd(t, **pressures), wish)
        if sup.tripped:
            return out, t
        t += TICK
    return out, None


HOLD_ALL = Commands(0.0, (HOLD, HOLD, HOLD, HOLD))
FILL_ANKLE = Commands(1.0, (FILL, VENT, VENT, VENT))


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


# -- SAFE-5 fill progress ---------------------------------------------------------------------------------------


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


# -- SAFE-8 vent check ------------------------------------------------------------------------------------------


def _vent_from_hold(sup, tail_mmhg, seconds):
    """Held at 40, then vented: the pressure falls like a bladder's towards `tail_mmhg` and stays there."""
    sup.review(0.0, rd(0.0, ankle=40.0), Commands(0.0, (HOLD,)))
    t = TICK
    while t < seconds:
        sup.review(t, rd(t, ankle=tail_mmhg + (40.0 - tail_mmhg) * math.exp(-t / 2.0)), SAFE)
        if sup.tripped:
            return t
        t += TICK
    return None


def test_safe8_zone_that_vents_is_fine(sup, cfg):
    assert _vent_from_hold(sup, 0.0, cfg.limits.vent_timeout_s + 5) is None


def test_safe8_vent_that_levels_off_above_5_cannot_vent(sup):
    t = _vent_from_hold(sup, 6.0, 30)
    assert t is not None and t < 15
    assert sup.tripped.rule == "SAFE-8" and "cannot vent ankle: stays at" in sup.tripped.reason
    assert sup.cannot_vent is sup.tripped and sup.tripped.priority is Priority.HIGH


def test_safe8_vent_timeout_both_sides(cfg):
    """The slow net: a zone still above 5 mmHg a full vent timeout after venting began (the rule on its own)."""
    limit = cfg.limits.vent_timeout_s
    for rate, trips in ((40 / (limit - 1), False), (30 / (limit + 1), True)):  # 40 -> 5 before, or after, the limit
        rule = VentCheck(cfg.zone_names, limit)
        rule.check(0.0, rd(0.0, ankle=40.0), Commands(0.0, (HOLD,)))
        t, trip = TICK, None
        while t < limit + 3 and trip is None:
            trip = rule.check(t, rd(t, ankle=max(40.0 - rate * t, 0.5)), SAFE)
            t += TICK
        assert (trip is not None) == trips
        if trips:
            assert "cannot vent ankle" in trip.reason and trip.cannot_vent and limit < trip.t_s <= limit + 2 * TICK


# -- SAFE-9 sensor faults ---------------------------------------------------------------------------------------


def test_safe9_a_bad_reading_shorter_than_stale_limit_is_tolerated(sup, cfg):
    drive(sup, 0, 0.1, HOLD_ALL, knee=20.0)
    _, tripped = drive(sup, 0.1, 0.1 + cfg.limits.sensor_stale_s - TICK, HOLD_ALL, knee=None)
    assert tripped is None
    _, tripped = drive(sup, 0.3, 1.0, HOLD_ALL, knee=20.0)
    assert tripped is None


def test_safe9_no_good_reading_for_longer_than_stale_limit_trips(sup, cfg):
    drive(sup, 0, 0.1, HOLD_ALL, knee=20.0)
    _, tripped = drive(sup, 0.1, 1.0, HOLD_ALL, knee=None)
    assert tripped == pytest.approx(0.08 + cfg.limits.sensor_stale_s + TICK, abs=TICK + 1e-9)
    assert sup.tripped.rule == "SAFE-9" and sup.tripped.zone == "knee" and "NACK" in sup.tripped.reason


def test_safe9_manifold_sensor_is_watched_too(sup):
    _, tripped = drive(sup, 0, 1.0, HOLD_ALL, manifold=None)
    assert sup.tripped.zone == "manifold"


@pytest.mark.parametrize("value, trips", [(-14.0, False), (-16.0, True), (math.nan, True)])
def test_safe9_implausible_values_count_as_bad(sup, value, trips):
    _, tripped = drive(sup, 0, 1.0, HOLD_ALL, thigh=value)
    assert (tripped is not None) == trips


def test_safe9_stuck_reading(sup, cfg):
    stuck = Reading(20.123456, 0.0)
    t = 0.0
    while t < cfg.limits.sensor_stuck_s - TICK / 2:
        r = rd(t, ankle=20.0)
        sup.review(t, Readings(t, (Reading(stuck.mmhg, t), *r.zones[1:]), r.manifold), HOLD_ALL)
        t += TICK
    assert sup.tripped is None  # identical for just under the limit
    for _ in range(3):
        r = rd(t, ankle=20.0)
        sup.review(t, Readings(t, (Reading(stuck.mmhg, t), *r.zones[1:]), r.manifold), HOLD_ALL)
        t += TICK
    assert sup.tripped.rule == "SAFE-9" and "stuck" in sup.tripped.reason


def _spiky(sup, n_spikes):
    t = 0.0
    for k in range(200):
        p = 30.0 + (60.0 if k % 20 == 10 and k // 20 < n_spikes else 0.0)
        sup.review(t, rd(t, ankle=p), HOLD_ALL)
        if sup.tripped:
            return True
        t += TICK
    return False


def test_safe9_two_spikes_are_tolerated_three_trip(cfg):
    assert not _spiky(Supervisor(cfg, [45.0, 40.0, 35.0, 30.0]), 2)
    sup = Supervisor(cfg, [45.0, 40.0, 35.0, 30.0])
    assert _spiky(sup, 3)
    assert sup.tripped.rule == "SAFE-9" and "jumped" in sup.tripped.reason


# -- SAFE-13 latching, and the guard ----------------------------------------------------------------------------


def test_safe13_trip_latches_until_an_explicit_reset(sup):
    drive(sup, 0, 1.0, HOLD_ALL, ankle=60.0)
    assert sup.tripped is not None
    out, _ = drive(sup, 1.0, 5.0, FILL_ANKLE, ankle=1.0)  # all looks well again
    assert out == SAFE and sup.tripped.rule == "SAFE-4"
    sup.reset()
    assert sup.review(5.0, rd(5.0, ankle=1.0), FILL_ANKLE) == FILL_ANKLE


def test_guard_never_fills_above_trip_level_or_blind(sup):
    out = sup.review(0.0, rd(0.0, ankle=55.5, calf=10.0, knee=None), Commands(1.0, (FILL, FILL, FILL, VENT)))
    assert out.zones == (HOLD, FILL, HOLD, VENT) and out.pump_duty == 1.0


def test_guard_stops_the_pump_when_nothing_fills(sup):
    out = sup.review(0.0, rd(0.0), Commands(0.8, (HOLD, VENT, HOLD, VENT)))
    assert out.pump_duty == 0.0
    out = sup.review(0.02, rd(0.02, ankle=1.0), Commands(float("nan"), (FILL,)))
    assert out.pump_duty == 0.0
