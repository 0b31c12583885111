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
