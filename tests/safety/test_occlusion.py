"""SAFE-6 occlusion: a pressure that rises (or falls) far faster than a bladder can is a blocked or open hose."""

from __future__ import annotations

import math

from legsleeve.core.commands import SAFE
from tests.helpers import FILL_CALF, HOLD_CALF, TICK, rd, run_until_trip


def test_safe6_a_fast_but_bladder_like_fill_is_fine(sup):
    assert run_until_trip(sup, 0, 5, FILL_CALF, lambda t: {"calf": min(50 * t, 39)}) is None  # 50 mmHg/s, under 60


def test_safe6_a_rise_far_faster_than_a_bladder_trips(sup):
    assert run_until_trip(sup, 0, 5, FILL_CALF, lambda t: {"calf": min(70 * t, 39)}) is not None
    assert sup.tripped.rule == "SAFE-6" and sup.tripped.zone == "calf"


def test_safe6_a_small_jump_is_not_an_occlusion(sup):
    # the manifold's few millilitres arriving: a step of 3 mmHg at once, then a normal fill
    assert run_until_trip(sup, 0, 3, FILL_CALF, lambda t: {"calf": 3 + 8 * t}) is None


def test_safe6_a_fall_far_faster_than_a_bladder_empties_is_cannot_vent(sup):
    sup.review(0.0, rd(0.0, calf=40.0), HOLD_CALF)
    sup.review(TICK, rd(TICK, calf=40.0), HOLD_CALF)
    t = run_until_trip(sup, 2 * TICK, 2, SAFE, lambda t: {"calf": 0.3})  # the hose stub empties at once
    assert t is not None and sup.tripped.rule == "SAFE-6" and sup.tripped.cannot_vent


def test_safe6_a_normal_vent_is_fine(sup):
    sup.review(0.0, rd(0.0, calf=40.0), HOLD_CALF)
    assert run_until_trip(sup, TICK, 10, SAFE, lambda t: {"calf": 40 * math.exp(-t / 2.9)}) is None


def test_safe6_a_hose_jump_read_long_after_the_last_reading_counts_from_the_fill_start():
    """A one-sensor build reads a zone only at its peeks: the calf last read vented 20 s ago, then its fill's first
    look 0.1 s in finds the hose at 45 mmHg. Counted from the last reading that is 2 mmHg/s; from the fill's start
    (the calf, vented meanwhile, was no higher then), 450 mmHg/s: the hose alone."""
    from legsleeve.core.readings import UNMEASURED, Reading, Readings
    from legsleeve.safety.occlusion import Occlusion

    def one(t, calf):
        unseen = Reading(math.nan, t, UNMEASURED)
        return Readings(t, (unseen, Reading(calf, t) if calf is not None else unseen, unseen, unseen))

    rule = Occlusion(["ankle", "calf", "knee", "thigh"], 60.0)
    assert rule.check(0.0, one(0.0, 0.5), HOLD_CALF) is None
    t, trip = 0.02, None
    while t < 20.0:
        assert rule.check(t, one(t, None), HOLD_CALF) is None
        t += TICK
    while trip is None and t < 20.5:
        trip = rule.check(t, one(t, 45.0 if t >= 20.1 else None), FILL_CALF)
        t += TICK
    assert trip is not None and trip.rule == "SAFE-6" and trip.zone == "calf", trip


def test_safe6_a_fill_paused_for_another_zones_look_counts_its_rise_over_its_inlets_open_time():
    """A one-sensor build: the calf read at 9.5 mmHg, then pumped 0.46 s unread, held 0.1 s while the ankle is looked
    at, then its fill resumes and its look finds 18 mmHg. It can have risen only while its inlet was open, 0.5 s:
    17 mmHg/s. Restamped to the resumption, as if held since the reading, it read as 60-odd mmHg/s, a hose (the
    small-bladder build tripped on it). A hose jump after such a pause still trips: to 50 mmHg in 0.5 s of fill is
    81 mmHg/s (and counted over all the time since the reading, pause included, a jump read 0.08 s after it began
    was once missed: the noisy-sensor build's blocked calf, found 1.8 s late)."""
    from legsleeve.core.readings import UNMEASURED, Reading, Readings
    from legsleeve.safety.occlusion import Occlusion

    def one(t, calf):
        unseen = Reading(math.nan, t, UNMEASURED)
        return Readings(t, (unseen, Reading(calf, t) if calf is not None else unseen, unseen, unseen))

    for found_mmhg, trips in ((18.0, False), (50.0, True)):
        rule = Occlusion(["ankle", "calf", "knee", "thigh"], 60.0)
        t, trip = 0.0, None
        assert rule.check(t, one(t, 9.5), FILL_CALF) is None
        for action, seconds in ((FILL_CALF, 0.46), (HOLD_CALF, 0.1), (FILL_CALF, 0.04)):
            end = t + seconds
            while t < end - 1e-9:
                t += TICK
                trip = trip or rule.check(t, one(t, None), action)
        trip = trip or rule.check(t + TICK, one(t + TICK, found_mmhg), FILL_CALF)
        assert (trip is not None) == trips, (found_mmhg, trip)
