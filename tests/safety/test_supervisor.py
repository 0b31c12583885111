"""The supervisor itself: latching (SAFE-13) and the explicit reset, a guard that only makes safer, one spike left
to SAFE-9, property tests (whatever comes in, what comes out is never less safe), and SAFE-14: every tick reviewed,
no off switch."""

from __future__ import annotations

import inspect
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from legsleeve.app.session import run_session
from legsleeve.config.profiles import load_profile
from legsleeve.core.commands import FILL, HOLD, SAFE, VENT, Commands, ZoneAction
from legsleeve.core.limits import ABS_MAX_MMHG, MAX_SENSOR_NOISE_MMHG
from legsleeve.core.readings import Reading, Readings
from legsleeve.hw.backends import open_sim
from legsleeve.safety.supervisor import Supervisor
from tests.helpers import (
    CONFIG_DIR,
    FILL_ANKLE,
    FILL_CALF,
    HOLD_ALL,
    HOLD_CALF,
    TICK,
    drive,
    rd,
    run_until_trip,
)

# -- SAFE-13 latching, and the reset ----------------------------------------------------------------------------


def test_safe13_trip_latches_until_an_explicit_reset(sup):
    drive(sup, 0, 1.0, HOLD_ALL, ankle=60.0)
    assert sup.tripped is not None
    out, _ = drive(sup, 1.0, 5.0, FILL_ANKLE, ankle=1.0)  # all looks well again
    assert out == SAFE and sup.tripped.rule == "SAFE-4"
    sup.reset()
    assert sup.review(5.0, rd(5.0, ankle=1.0), FILL_ANKLE) == FILL_ANKLE


def _through(sup, t, phases):
    """Tick through (wish, pressure_at, seconds) phases with no trip; return the time after them."""
    for wish, pressure_at, seconds in phases:
        assert run_until_trip(sup, t, seconds, wish, pressure_at) is None, sup.tripped
        t += seconds
    return t


def _state(obj) -> dict:
    """An object's attributes: its `__dict__`, or a class mypyc compiled (which has none) by the names it declares,
    less what the class body sets (a rule's `raw` and `rule`, its CONSTANTS), which compiled become an instance's."""
    names = getattr(type(obj), "__mypyc_attrs__", None)
    if names is None:
        return dict(vars(obj))
    metadata = {"__dict__", "raw", "rule"}
    return {n: getattr(obj, n) for n in names if n not in metadata and not n.isupper() and hasattr(obj, n)}


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN (compiled code boxes a float anew, so two NaNs are no longer one object)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _unlike(monitors, as_new) -> list[str]:
    """The monitors whose state is not as new."""
    return [type(m).__name__ for m, new in zip(monitors, as_new, strict=True) if not _same(_state(m), new)]


def test_reset_makes_every_rule_as_new(cfg):
    """After fills, holds, vents and a trip, reset() leaves every monitor exactly as a fresh supervisor's - twice, so
    that between them the two drives leave their marks on every rule that keeps any state."""
    targets = [45.0, 40.0, 35.0, 30.0]
    sup, fresh = Supervisor(cfg, targets), Supervisor(cfg, targets)
    as_new = [_state(m) for m in fresh.monitors]
    stirred = set()
    hold_ankle = Commands(0.0, (HOLD, VENT, VENT, VENT))
    fill_ankle_hold_calf = Commands(1.0, (FILL, HOLD, VENT, VENT))
    ankle_venting = lambda t: 31.6 * math.exp(-(t - 6.0) / 2.0)  # noqa: E731

    # 1: the ankle filled, held and vented; the calf filled; the ankle refilling below the held calf: the E-stop
    t = _through(
        sup,
        0.0,
        [
            (FILL_ANKLE, lambda t: {"ankle": 8.0 * t, "manifold": 8.0 * t + 2.0}, 4.0),
            (hold_ankle, lambda t: {"ankle": 32.0 - 0.2 * (t - 4.0), "manifold": 30.0}, 2.0),
            (SAFE, lambda t: {"ankle": ankle_venting(t), "manifold": 30.0}, 3.0),
            (
                FILL_CALF,
                lambda t: {"ankle": ankle_venting(t), "calf": 8.0 * (t - 9.0), "manifold": 8.0 * (t - 9.0) + 2.0},
                4.0,
            ),
            (fill_ankle_hold_calf, lambda t: {"ankle": 4.0 + 8.0 * (t - 13.0), "calf": 32.0, "manifold": 20.0}, 0.5),
        ],
    )
    r = rd(t, ankle=8.0, calf=32.0, manifold=20.0)
    sup.review(t, Readings(t, r.zones, r.manifold, estop_pressed=True), fill_ankle_hold_calf)
    assert sup.tripped.rule == "SAFE-12"
    drive(sup, t + TICK, t + 3.0, FILL_ANKLE, manifold=0.5)  # latched (the vent still watched), the sleeve empty
    stirred |= set(_unlike(sup.monitors, as_new))
    sup.reset()
    assert _unlike(sup.monitors, as_new) == []
    assert sup.tripped is None and sup.cannot_vent is None and sup.applied == SAFE

    # 2: the calf filled and held, the pump off: a reading above the absolute ceiling
    t = _through(
        sup,
        t + 3.0,
        [
            (FILL_CALF, lambda t, t0=t + 3.0: {"calf": 8.0 * (t - t0), "manifold": 8.0 * (t - t0) + 2.0}, 4.0),
            (HOLD_CALF, lambda t: {"calf": 32.0, "manifold": 30.0}, 1.0),
        ],
    )
    sup.review(t, rd(t, calf=ABS_MAX_MMHG + 1, manifold=30.0), HOLD_CALF)
    assert sup.tripped.rule == "SAFE-4"
    stirred |= set(_unlike(sup.monitors, as_new))
    sup.reset()
    assert _unlike(sup.monitors, as_new) == []
    assert sup.tripped is None and sup.cannot_vent is None and sup.applied == SAFE

    # every rule that keeps anything was left different from new by one drive or the other
    assert stirred == {type(m).__name__ for m, new in zip(fresh.monitors, as_new, strict=True) if new}


def test_reset_starts_the_over_pressure_debounce_over(cfg):
    """An over-pressure 90 % into its debounce before the reset counts from zero after it: no trip 20 ms after the
    reset (without the reset there would be one), a trip once it has lasted the full debounce after it."""
    debounce = cfg.limits.overpressure_debounce_s
    before = [0.0, 0.3 * debounce, 0.6 * debounce, 0.9 * debounce]  # above the 55 mmHg trip level all along
    after = before[-1] + TICK
    assert after - before[0] > debounce  # 20 ms on: past the debounce, counted from before the reset

    unreset = Supervisor(cfg, [45.0, 40.0, 35.0, 30.0])
    for t in [*before, after]:
        unreset.review(t, rd(t, ankle=55.5), HOLD_ALL)
    assert unreset.tripped is not None and unreset.tripped.rule == "SAFE-4"  # the control: no reset, a trip

    sup = Supervisor(cfg, [45.0, 40.0, 35.0, 30.0])
    for t in before:
        sup.review(t, rd(t, ankle=55.5), HOLD_ALL)
    assert sup.tripped is None
    sup.reset()
    sup.review(after, rd(after, ankle=55.5), HOLD_ALL)
    assert sup.tripped is None  # 20 ms after the reset: the count started over
    k = 0
    while sup.tripped is None and k < 100:
        k += 1
        t = after + k * TICK
        sup.review(t, rd(t, ankle=55.5), HOLD_ALL)
        if k * TICK < debounce - 1e-9:
            assert sup.tripped is None, t  # not yet the full debounce since the reset
    assert (sup.tripped.rule, sup.tripped.zone) == ("SAFE-4", "ankle")
    assert sup.tripped.t_s == pytest.approx(after + debounce, abs=1e-9)  # the first tick a full debounce on


# -- the guard --------------------------------------------------------------------------------------------------


def test_guard_never_fills_above_trip_level_or_blind(sup):
    out = sup.review(0.0, rd(0.0, ankle=55.5, calf=10.0, knee=None), Commands(1.0, (FILL, FILL, FILL, VENT)))
    assert out.zones == (HOLD, FILL, HOLD, VENT) and out.pump_duty == 1.0


def test_guard_stops_the_pump_when_nothing_fills(sup):
    out = sup.review(0.0, rd(0.0), Commands(0.8, (HOLD, VENT, HOLD, VENT)))
    assert out.pump_duty == 0.0
    out = sup.review(0.02, rd(0.02, ankle=1.0), Commands(float("nan"), (FILL,)))
    assert out.pump_duty == 0.0


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
    assert (
        run_until_trip(sup, 0, 2, wish, lambda t: {"calf": base(t) + (60.0 if 1.0 <= t < 1.0 + TICK else 0.0)}) is None
    )


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


# -- SAFE-14: every tick reviewed, no off switch ----------------------------------------------------------------


@pytest.mark.pure_only  # it wraps Supervisor.review, which a compiled class does not allow
def test_safe14_the_supervisor_reviews_every_tick_and_has_no_off_switch(cfg):
    """SAFE-14: every tick's commands pass through the supervisor, on the simulated rig exactly as on the sleeve, and
    nothing in its construction can turn a rule off."""
    assert set(inspect.signature(Supervisor).parameters) == {
        "build",
        "peak_targets_mmhg",
        "extra_monitors",
        "measured_noise_mmhg",
    }
    # the noise measured at the zero loosens SAFE-7 and SAFE-8 no further than a config may (the self-test refuses
    # a sensor that noisy), never below the configured figure, and not at all within twice it
    lim = cfg.limits.sensor_noise_mmhg
    for measured, allowed in ((100.0, MAX_SENSOR_NOISE_MMHG), (0.0, lim), (1.9 * lim, lim), (2.5 * lim, 2.5 * lim)):
        assert Supervisor(cfg, [40.0] * 4, measured_noise_mmhg=measured).noise_mmhg == allowed
    reviewed, applied = [], []
    real = Supervisor.review

    def review(self, now_s, readings, wish, **kw):
        out = real(self, now_s, readings, wish, **kw)
        reviewed.append(out)
        return out

    Supervisor.review = review
    rig = open_sim(cfg, seed=1)
    real_apply = rig.apply
    rig.apply = lambda cmd: (applied.append(cmd), real_apply(cmd))
    try:
        result = run_session(rig, load_profile(CONFIG_DIR, "gradient", cfg), cycles=1)
    finally:
        Supervisor.review = real
        rig.close()
    # one review per tick (the self-test's ticks included), and what reached the outputs is exactly what the
    # supervisor returned, tick by tick: the controller never drives a pin itself
    assert len(reviewed) > result.outcome.ticks > 1000
    assert applied == reviewed


def test_after_a_stalled_tick_the_rules_see_the_pressure_of_now_not_a_median_with_then(sup):
    """The median of three hides one spike; across a 3 s stall its older samples are of another moment, so the
    reading after it is taken as it is (a fill gained 30 mmHg meanwhile: not "stuck at the old value")."""
    from legsleeve.safety.supervisor import _Median3

    med = _Median3(4)
    for t in (0.0, 0.02, 0.04):
        med.update(rd(t, ankle=10.0))
    step = med.update(rd(0.06, ankle=40.0)).zones[0].mmhg
    assert step == pytest.approx(10.0, abs=0.01)  # one step: a spike until it is confirmed
    med = _Median3(4)
    for t in (0.0, 0.02, 0.04):
        med.update(rd(t, ankle=10.0))
    assert med.update(rd(3.04, ankle=40.0)).zones[0].mmhg == pytest.approx(40.0, abs=0.01)
