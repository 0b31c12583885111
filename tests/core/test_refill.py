"""Refill-adaptive rest's estimator (legsleeve.core.refill) on synthetic sleeves: a vent, a held sleeve over
refilling veins, the air rewarming after the vent, the sleeve's own loss, sensor noise."""

from __future__ import annotations

import math
import random

import pytest

from legsleeve.core.refill import (
    LEARN_HOLDS,
    LN10,
    RefillMeasure,
    Rewarming,
    RewarmLearner,
    SleeveLoss,
    fit_refill,
)

TICK_S = 0.02
THETA_S = 5.0  # the synthetic sleeve's rewarming time constant, as the measure assumes (REWARM_S)


def _sleeve(
    refill_s: float,
    *,
    rise_mmhg: float = 1.5,
    rewarm: float = 0.011,
    loss_per_s: float = 0.0,
    noise_mmhg: float = 0.04,
    until_s: float = 90.0,
    seed: int = 1,
):
    """(t, mean mmHg, held) every tick of a sleeve released at t=0 from 37 mmHg: vented (time constant 1.2 s) down
    to 10 mmHg and then held closed. The veins under it refill with T90 `refill_s`, worth `rise_mmhg` to the held
    sleeve (what refills during the vent is vented away); each mmHg fallen cools the air by `rewarm` mmHg of
    pressure it regains, closed, with THETA_S; the sleeve loses `loss_per_s` of its pressure each second."""
    rng = random.Random(seed)
    tau = refill_s / LN10
    p, deficit, held, t = 37.0, 0.0, False, 0.0
    while t < until_s:
        yield t, p + rng.gauss(0.0, noise_mmhg), held
        t += TICK_S
        fade = math.exp(-TICK_S / THETA_S)
        if not held:
            fall = p * (1.0 - math.exp(-TICK_S / 1.2))
            p -= fall
            deficit = deficit * fade + rewarm * fall
            held = p <= 10.0
        else:
            regain = deficit * (1.0 - fade)
            deficit -= regain
            refill = rise_mmhg * (math.exp(-(t - TICK_S) / tau) - math.exp(-t / tau))
            p += regain + refill - loss_per_s * p * TICK_S


def _learner(rewarm: float, sd: float = 0.001) -> RewarmLearner:
    """A learner that has been told κ = `rewarm` within `sd` (as by earlier holds)."""
    learner = RewarmLearner()
    learner.add(Rewarming(rewarm, sd**2, 0.006**2))
    return learner


def _measure(refill_s: float, *, min_s=10.0, max_s=120.0, told_loss=None, learner=None, stop=True, **sleeve):
    """Feed a measure the synthetic sleeve until it ends. It is told the sleeve's loss (`told_loss` if given)."""
    own_loss = sleeve.get("loss_per_s", 0.0)
    m = RefillMeasure(
        0.0, min_s=min_s, max_s=max_s, loss_per_s=own_loss if told_loss is None else told_loss, learner=learner
    )
    for t, mmhg, held in _sleeve(refill_s, **sleeve):
        if stop and m.done(t):
            break
        if held:
            m.add(t, mmhg)
        else:
            m.vent(t, mmhg)
    return m


def test_fit_recovers_the_refill_and_the_rewarming_from_noisy_points():
    rng = random.Random(3)
    tau = 40.0 / LN10
    points = [
        (s, 1.4 * (1 - math.exp(-s / tau)) + 0.2 * (1 - math.exp(-s / THETA_S)) + rng.gauss(0, 0.006))
        for s in [0.8 + k for k in range(70)]
    ]
    fit = fit_refill(points, THETA_S)
    assert fit is not None and fit.trusted
    assert fit.refill_s == pytest.approx(40.0, rel=0.05)
    assert fit.rise_mmhg == pytest.approx(1.4, rel=0.05)
    assert fit.rewarm_mmhg == pytest.approx(0.2, rel=0.2)


@pytest.mark.parametrize("refill_s", [20.0, 30.0, 45.0, 60.0])
@pytest.mark.parametrize("rise_mmhg", [0.8, 1.5, 3.0])
def test_the_rest_ends_near_the_limbs_refill_time_once_the_rewarming_is_known(refill_s, rise_mmhg):
    """The example's artefact (0.5 mmHg per 45 mmHg fallen) and loss, κ learned from earlier holds."""
    m = _measure(refill_s, rise_mmhg=rise_mmhg, loss_per_s=6e-4, learner=_learner(0.011))
    assert m.detected and m.ended_s is not None and m.refill_s is not None
    assert m.refill_s == pytest.approx(refill_s, rel=0.1)
    assert m.ended_s == pytest.approx(refill_s, rel=0.15)  # the rest: release to next compression
    assert m.rewarm_holds == 1


def test_a_slow_leg_tells_the_rewarming_on_its_own():
    """No earlier hold: the fit finds B from this one. A leg refilling in 45 s (τ ~4 θ) tells it well enough."""
    m = _measure(45.0, loss_per_s=6e-4)
    assert m.detected and m.refill_s == pytest.approx(45.0, rel=0.1)
    assert m.rewarm_holds == 0


def test_the_rewarming_left_out_reads_the_refill_short():
    """Morris 2002: the air rewarming after the vent reads as a quick refill. A fit without the rewarming term
    (rewarm_s 0) takes it for one."""
    with_it = _measure(45.0, learner=_learner(0.011))
    m = RefillMeasure(0.0, min_s=10.0, max_s=120.0, rewarm_s=0.0)
    for t, mmhg, held in _sleeve(45.0):
        if m.done(t):
            break
        if held:
            m.add(t, mmhg)
    assert with_it.refill_s == pytest.approx(45.0, rel=0.1)
    assert m.refill_s is not None and m.refill_s < 0.85 * 45.0


def test_the_sleeves_own_loss_is_put_back():
    """A held sleeve loses a little through its seams (the example's ~0.06 %/s of its pressure): told the loss, the
    measure reads true; not told, the sagging plateau reads as an early one."""
    told = _measure(45.0, loss_per_s=6e-4, rise_mmhg=1.2, learner=_learner(0.011))
    assert told.refill_s == pytest.approx(45.0, rel=0.1)
    untold = _measure(45.0, loss_per_s=6e-4, told_loss=0.0, rise_mmhg=1.2, learner=_learner(0.011))
    assert untold.refill_s is not None and untold.refill_s < 0.85 * 45.0


def test_the_vent_gives_the_fall_the_air_regains():
    m = _measure(45.0, until_s=10.0, stop=False)
    # 27 mmHg fallen over ~1.5 s, faded by exp(-age / 5 s) to the anchor a second after the close
    assert 10.0 < m.drop_mmhg < 27.0


def test_a_long_hold_tells_the_rewarming_and_a_short_one_hardly():
    long = _measure(45.0, loss_per_s=6e-4, stop=False, until_s=60.0)
    told = long.rewarming()
    assert told is not None and told.fraction == pytest.approx(0.011, rel=0.3)
    short = _measure(20.0, loss_per_s=6e-4, stop=False, until_s=22.0).rewarming()
    assert short is None or short.variance > 4.0 * told.variance  # a quick leg hides it: it weighs little


def test_no_vent_tells_no_rewarming():
    m = RefillMeasure(0.0, min_s=10.0, max_s=60.0)
    for k in range(3000):
        m.add(k * TICK_S, 10.0 + 1.5 * (1 - math.exp(-k * TICK_S / 15.0)))
    assert m.rewarming() is None


def test_the_learner_pools_holds_by_their_precision_and_forgets_old_ones():
    learner = RewarmLearner()
    assert learner.prior is None
    learner.add(Rewarming(0.010, 1e-6, 4e-5))
    learner.add(Rewarming(0.020, 4e-6, 2e-5))
    prior = learner.prior
    assert prior is not None and learner.holds == 2
    assert prior.fraction == pytest.approx((0.010 / 1e-6 + 0.020 / 4e-6) / (1 / 1e-6 + 1 / 4e-6))  # 0.012
    assert prior.variance == pytest.approx(1 / (1 / 1e-6 + 1 / 4e-6))
    assert prior.bin_variance == pytest.approx(3e-5)
    for _ in range(LEARN_HOLDS):
        learner.add(Rewarming(0.0, 1e-6, 4e-5))
    assert learner.holds == LEARN_HOLDS and learner.prior is not None and learner.prior.fraction == 0.0
    # an estimate that cannot be weighed is not kept (it would make the pooled weight nothing, or NaN)
    for bad in (Rewarming(0.01, math.inf, 4e-5), Rewarming(0.01, 0.0, 4e-5), Rewarming(math.nan, 1e-6, 4e-5)):
        learner.add(bad)
    assert learner.prior is not None and learner.prior.fraction == 0.0


def test_the_learner_with_only_unweighable_estimates_has_no_prior():
    learner = RewarmLearner()
    learner.add(Rewarming(0.01, math.inf, 4e-5))
    assert learner.holds == 0 and learner.prior is None


def test_sleeve_loss_measures_the_fraction_lost_each_second():
    """After the fill: the veins settling (2 s), the pumped air cooling to the skin (5 s, the rewarming's time
    constant), then only the leak - 0.06 %/s of the pressure - and the sensors' noise."""
    rng = random.Random(2)
    check = SleeveLoss(40.0)
    t = 0.0
    check.hold(0.0)
    while not check.done(t):
        p = 10.0 * math.exp(-6e-4 * t) - 0.4 * (1 - math.exp(-t / 2.0)) + 0.3 * math.exp(-t / THETA_S)
        check.add(t, p + rng.gauss(0.0, 0.04))
        t += TICK_S
    assert t == pytest.approx(40.0, abs=TICK_S)
    assert check.loss_per_s == pytest.approx(6e-4, rel=0.1)


def test_sleeve_loss_seen_too_briefly_is_unknown():
    check = SleeveLoss(40.0)
    check.hold(0.0)
    for k in range(700):  # 14 s: 4 s after the settling
        check.add(k * TICK_S, 10.0)
    assert not check.done(14.0) and check.loss_per_s is None
    assert not SleeveLoss(40.0).done(100.0)  # never held: never done (its zones are still filling)


def test_bounds_hold_whatever_the_leg_does():
    fast = _measure(4.0, min_s=20.0, learner=_learner(0.011))
    assert fast.ended_s == pytest.approx(20.0, abs=TICK_S)  # refilled long before: still rests min_s
    slow = _measure(200.0, max_s=60.0, learner=_learner(0.011))
    assert slow.ended_s == pytest.approx(60.0, abs=TICK_S) and not slow.detected


def test_no_rise_is_no_refill_and_the_rest_runs_to_its_bound():
    m = _measure(30.0, rise_mmhg=0.0, rewarm=0.0, max_s=60.0)
    assert m.ended_s == pytest.approx(60.0, abs=TICK_S)
    assert not m.detected and m.refill_s is None


def test_a_rise_that_never_levels_off_is_not_a_refill():
    """A steady climb (air leaking in through an inlet, say) has no plateau: the fit's time constant runs off the
    grid and nothing is trusted."""
    m = RefillMeasure(0.0, min_s=10.0, max_s=60.0)
    t = 3.0
    while not m.done(t):
        m.add(t, 9.0 + 0.05 * t)
        t += TICK_S
    assert t == pytest.approx(60.0, abs=TICK_S) and not m.detected


def test_an_interrupted_hold_adds_nothing_more():
    m = RefillMeasure(0.0, min_s=10.0, max_s=60.0)
    for k in range(400):
        m.add(3.0 + k * TICK_S, 9.0)
    m.interrupt()
    m.add(12.0, 30.0)
    assert m.fit is None or m.fit.rise_mmhg < 1.0
