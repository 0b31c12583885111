"""The rest of the supervisor (SAFE-6, 7, 8 valves, 10, 12, and the pump check), each on both sides of its
threshold, and a property test: whatever comes in, what comes out is never less safe."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from legsleeve.core.commands import FILL, HOLD, SAFE, VENT, Commands, ZoneAction
from legsleeve.core.readings import Reading, Readings
from legsleeve.safety.supervisor import Supervisor
from tests.test_supervisor import TICK, rd


@pytest.fixture
def sup(cfg):
    return Supervisor(cfg, [45.0, 40.0, 35.0, 30.0])


def run(sup, t0, seconds, wish, pressure_at):
    """Tick for `seconds` with pressures from pressure_at(t) -> dict; return the trip time or None."""
    t = t0
    while t < t0 + seconds - 1e-9:
        sup.review(t, rd(t, **pressure_at(t)), wish)
        if sup.tripped:
            return t
        t += TICK
    return None


FILL_CALF = Commands(1.0, (VENT, FILL, VENT, VENT))
HOLD_CALF = Commands(0.0, (VENT, HOLD, VENT, VENT))


# -- SAFE-6 occlusion -------------------------------------------------------------------------------------------


def test_safe6_a_fast_but_bladder_like_fill_is_fine(sup):
    assert run(sup, 0, 5, FILL_CALF, lambda t: {"calf": min(50 * t, 39)}) is None  # 50 mmHg/s, under 60


def test_safe6_a_rise_far_faster_than_a_bladder_trips(sup):
    assert run(sup, 0, 5, FILL_CALF, lambda t: {"calf": min(70 * t, 39)}) is not None
    assert sup.tripped.rule == "SAFE-6" and sup.tripped.zone == "calf"


def test_safe6_a_small_jump_is_not_an_occlusion(sup):
    # the manifold's few millilitres arriving: a step of 3 mmHg at once, then a normal fill
    assert run(sup, 0, 3, FILL_CALF, lambda t: {"calf": 3 + 8 * t}) is None


def test_safe6_a_fall_far_faster_than_a_bladder_empties_is_cannot_vent(sup):
    sup.review(0.0, rd(0.0, calf=40.0), HOLD_CALF)
    sup.review(TICK, rd(TICK, calf=40.0), HOLD_CALF)
    t = run(sup, 2 * TICK, 2, SAFE, lambda t: {"calf": 0.3})  # the hose stub empties at once
    assert t is not None and sup.tripped.rule == "SAFE-6" and sup.tripped.cannot_vent


def test_safe6_a_normal_vent_is_fine(sup):
    sup.review(0.0, rd(0.0, calf=40.0), HOLD_CALF)
    assert run(sup, TICK, 10, SAFE, lambda t: {"calf": 40 * math.exp(-t / 2.9)}) is None


# -- SAFE-7 leak in hold ----------------------------------------------------------------------------------------


def test_safe7_slow_decay_in_hold_is_fine(sup):
    # 0.9 mmHg/s for 7 s: under the rate bound, and 6.3 mmHg is under the 8 mmHg drop
    assert run(sup, 0, 7, HOLD_CALF, lambda t: {"calf": 40 - 0.9 * t}) is None


def test_safe7_decay_faster_than_the_bound_trips(sup, cfg):
    t = run(sup, 0, 10, HOLD_CALF, lambda t: {"calf": 40 - 1.2 * t})
    assert t == pytest.approx(0.5 + 2 * TICK, abs=2 * TICK)  # judged after half a second of hold
    assert sup.tripped.rule == "SAFE-7" and "loses 1.2 mmHg/s" in sup.tripped.reason


def test_safe7_a_held_zone_falling_8_mmhg_below_its_peak_trips(cfg):
    # a slow fall (under the rate bound) that goes on: the drop from the peak speaks at 8 mmHg
    for seconds, trips in ((8.5, False), (9.5, True)):  # 0.9 mmHg/s: 7.65 and 8.55 mmHg
        sup = Supervisor(cfg, [45.0, 40.0, 35.0, 30.0])
        t = run(sup, 0, seconds, HOLD_CALF, lambda t: {"calf": 40.0 - 0.9 * t})
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


# -- SAFE-8 stuck valves ----------------------------------------------------------------------------------------


def test_safe8_gaining_while_held_means_an_inlet_lets_air_in(sup):
    assert run(sup, 0, 3, HOLD_CALF, lambda t: {"calf": 40 + 0.7 * t}) is None  # +2.1 mmHg: under the 2.5
    t = run(sup, 3, 3, HOLD_CALF, lambda t: {"calf": 42.1 + 2.0 * (t - 3)})
    assert t is not None and sup.tripped.rule == "SAFE-8" and "gains pressure while held" in sup.tripped.reason


def test_safe8_gaining_while_venting(sup):
    assert run(sup, 0, 2, SAFE, lambda t: {"knee": 4.0 + 4.5 * t}) is not None
    assert sup.tripped.rule == "SAFE-8" and sup.tripped.zone == "knee" and "venting" in sup.tripped.reason


def test_safe8_early_vent_check_both_sides(cfg):
    for fall_fraction, trips in ((0.25, False), (0.15, True)):
        sup = Supervisor(cfg, [45.0, 40.0, 35.0, 30.0])
        sup.review(0.0, rd(0.0, ankle=40.0), Commands(0.0, (HOLD,)))
        check_s = cfg.limits.vent_check_s

        def falling(t, f=fall_fraction, c=check_s):
            return {"ankle": 40 * (1 - f * min(t / c, 1))}

        t = run(sup, TICK, check_s + 0.5, SAFE, falling)
        assert (t is not None) == trips
        if trips:
            assert sup.tripped.cannot_vent and "cannot vent ankle" in sup.tripped.reason


# -- SAFE-10 ----------------------------------------------------------------------------------------------------

BOTH_HELD = Commands(0.0, (HOLD, HOLD, VENT, VENT))


def test_safe10_reverse_gradient_within_10_mmhg_is_fine(sup):
    assert run(sup, 0, 5, BOTH_HELD, lambda t: {"ankle": 30.0, "calf": 39.9}) is None


def test_safe10_reverse_gradient_beyond_10_for_under_a_second_is_fine(sup):
    assert run(sup, 0, 0.9, BOTH_HELD, lambda t: {"ankle": 30.0, "calf": 41.0}) is None


def test_safe10_reverse_gradient_beyond_10_for_over_a_second_trips(sup):
    t = run(sup, 0, 5, BOTH_HELD, lambda t: {"ankle": 30.0, "calf": 41.0})
    assert t == pytest.approx(1.0 + TICK, abs=2 * TICK)
    assert sup.tripped.rule == "SAFE-10" and sup.tripped.zone == "calf"


def test_safe10_distal_release_is_not_a_reverse_gradient(sup):
    # the ankle vented while the calf works: allowed (it is what recovery boots do)
    assert run(sup, 0, 5, HOLD_CALF, lambda t: {"ankle": 0.5, "calf": 40.0}) is None


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


# -- SAFE-12 and the pump ---------------------------------------------------------------------------------------


def test_safe12_estop(sup):
    r = rd(0.0)
    sup.review(0.0, r, FILL_CALF)
    assert sup.tripped is None
    pressed = Readings(TICK, r.zones, r.manifold, estop_pressed=True)
    assert sup.review(TICK, pressed, FILL_CALF) == SAFE and sup.tripped.rule == "SAFE-12"


def test_pump_check_manifold_holding_still_is_fine(sup):
    assert run(sup, 0, 10, SAFE, lambda t: {"manifold": 60.0}) is None


def test_pump_check_manifold_rising_with_the_pump_off_trips(sup):
    t = run(sup, 0, 10, SAFE, lambda t: {"manifold": 60.0 + 20.0 * max(t - 2, 0)})
    assert t == pytest.approx(2.5, abs=0.1)
    assert (sup.tripped.rule, sup.tripped.zone) == ("SAFE-4", "manifold") and "E-stop" in sup.tripped.hint


# -- one spike is SAFE-9's, never another rule's ----------------------------------------------------------------


@pytest.mark.parametrize(
    "wish, base",
    [
        (FILL_CALF, lambda t: 10.0 + 8.0 * t),  # filling like a bladder
        (HOLD_CALF, lambda t: 20.0),  # held
        (SAFE, lambda t: 20.0 * math.exp(-t / 2.0)),  # venting like a bladder
    ],
)
def test_a_single_spike_trips_nothing(sup, wish, base):
    assert run(sup, 0, 2, wish, lambda t: {"calf": base(t) + (60.0 if 1.0 <= t < 1.0 + TICK else 0.0)}) is None


# -- property: never less safe ----------------------------------------------------------------------------------

SAFETY = {VENT: 0, HOLD: 1, FILL: 2}  # how much pressure an action lets into a zone
pressures = st.one_of(st.floats(-30, 200), st.just(math.nan), st.none())
actions = st.sampled_from(list(ZoneAction))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(pressures, min_size=5, max_size=5),
            st.floats(0, 1) | st.just(math.nan) | st.floats(-1, 2),
            st.lists(actions, min_size=4, max_size=4),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_output_is_never_less_safe_than_the_wish(cfg, ticks):
    sup = Supervisor(cfg, [45.0, 40.0, 35.0, 30.0])
    for k, (ps, duty, acts) in enumerate(ticks):
        t = k * TICK
        zones = tuple(Reading(math.nan, t, "x") if p is None else Reading(p, t) for p in ps[:4])
        manifold = Reading(math.nan, t, "x") if ps[4] is None else Reading(ps[4], t)
        wish = Commands(duty, tuple(acts))
        out = sup.review(t, Readings(t, zones, manifold), wish)
        assert 0.0 <= out.pump_duty <= 1.0
        if math.isfinite(duty):
            assert out.pump_duty <= max(duty, 0.0)
        for i in range(4):
            assert SAFETY[out.action(i)] <= SAFETY[wish.action(i)]
        if sup.tripped is not None:
            assert out == SAFE


@settings(max_examples=80, deadline=None)
@given(st.floats(0, 80), st.floats(0.1, 40), st.integers(0, 3), st.sampled_from([VENT, HOLD]))
def test_over_pressure_beyond_the_debounce_always_trips(cfg, below, excess, zone, action):
    """Whatever the zone is doing, a pressure above its trip level for the debounce ends in a trip by then (another
    rule - a closed inlet letting air in, say - may well speak first)."""
    sup = Supervisor(cfg, [45.0, 40.0, 35.0, 30.0])
    level = sup.trip_levels_mmhg[zone]
    names = ("ankle", "calf", "knee", "thigh")
    wish = Commands(0.0, tuple(action if i == zone else VENT for i in range(4)))
    t = 0.0
    sup.review(t, rd(t, **{names[zone]: min(below, level)}), wish)
    while sup.tripped is None and t <= cfg.limits.overpressure_debounce_s + TICK:
        t += TICK
        sup.review(t, rd(t, **{names[zone]: level + excess}), wish)
    assert sup.tripped is not None and sup.tripped.zone == names[zone]
    assert t <= cfg.limits.overpressure_debounce_s + TICK + 1e-9
