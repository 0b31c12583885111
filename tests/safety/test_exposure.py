"""SAFE-10 exposure: a reverse gradient (a zone held well above the one below it) for over a second, too long above
the venous level without a break, and the session limit."""

from __future__ import annotations

import math

import pytest

from legsleeve.core.commands import FILL, HOLD, SAFE, VENT, Commands
from legsleeve.safety.supervisor import Supervisor
from tests.helpers import HOLD_CALF, TICK, rd, run_until_trip

BOTH_HELD = Commands(0.0, (HOLD, HOLD, VENT, VENT))


def test_safe10_reverse_gradient_within_10_mmhg_is_fine(sup):
    assert run_until_trip(sup, 0, 5, BOTH_HELD, lambda t: {"ankle": 30.0, "calf": 39.9}) is None


def test_safe10_reverse_gradient_beyond_10_for_under_a_second_is_fine(sup):
    assert run_until_trip(sup, 0, 0.9, BOTH_HELD, lambda t: {"ankle": 30.0, "calf": 41.0}) is None


def test_safe10_reverse_gradient_beyond_10_for_over_a_second_trips(sup):
    t = run_until_trip(sup, 0, 5, BOTH_HELD, lambda t: {"ankle": 30.0, "calf": 41.0})
    assert t == pytest.approx(1.0 + TICK, abs=2 * TICK)
    assert sup.tripped.rule == "SAFE-10" and sup.tripped.zone == "calf"


def test_safe10_distal_release_is_not_a_reverse_gradient(sup):
    # the ankle vented while the calf works: allowed (it is what recovery boots do)
    assert run_until_trip(sup, 0, 5, HOLD_CALF, lambda t: {"ankle": 0.5, "calf": 40.0}) is None


def _squeeze(sup, seconds, pattern):
    """pattern(t) -> (action for the ankle, ankle mmHg)."""
    t = 0.0
    while t < seconds:
        action, p = pattern(t)
        sup.review(t, rd(t, ankle=p), Commands(0.0, (action,)))
        if sup.tripped:
            return t
        t += TICK
    return None


def test_safe10_time_above_venous_level(cfg):
    limit = cfg.limits.max_above_venous_s
    held = lambda t: (HOLD, 30.0)  # noqa: E731
    assert _squeeze(Supervisor(cfg, [45.0, 40.0, 35.0, 30.0]), limit - 1, held) is None
    sup = Supervisor(cfg, [45.0, 40.0, 35.0, 30.0])
    assert _squeeze(sup, limit + 3, held) == pytest.approx(limit + TICK, abs=2 * TICK)
    assert sup.tripped.rule == "SAFE-10" and "without a break" in sup.tripped.reason
    # a break below the venous level (vented for 10 s) resets the count
    cycle = limit - 20

    def with_breaks(t):
        phase = t % cycle
        if phase < 0.6:
            start = 30.0 * math.exp(-10 / 2.9)
            return FILL, start + (30.0 - start) * phase / 0.6  # refill at ~48 mmHg/s
        if phase < cycle - 10:
            return HOLD, 30.0
        return VENT, 30.0 * math.exp(-(phase - (cycle - 10)) / 2.9)  # empties like a bladder

    assert _squeeze(Supervisor(cfg, [45.0, 40.0, 35.0, 30.0]), 3 * limit, with_breaks) is None


def test_safe10_session_limit(cfg):
    sup = Supervisor(cfg, [45.0, 40.0, 35.0, 30.0])
    limit_s = cfg.limits.session_max_min * 60
    sup.review(0.0, rd(0.0), SAFE)
    sup.review(limit_s, rd(limit_s), SAFE)
    assert sup.tripped is None
    sup.review(limit_s + TICK, rd(limit_s + TICK), SAFE)
    assert sup.tripped.rule == "SAFE-10" and "session limit" in sup.tripped.reason
