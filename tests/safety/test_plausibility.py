"""SAFE-15, sensor plausibility: the supervisor calls pump-off equalisation checks during and at the end of every fill,
compares each zone sensor with the manifold sensor there, and judges SAFE-4 on the higher of the two.

The unit tests drive the supervisor with a toy sleeve: one zone's true pressure rises at 10 mmHg/s while the pump
pushes into it (through its open inlet), the manifold reads 25 mmHg above it while the pump runs and settles onto it
within a tick when the pump stops; the zone's sensor reads what the test's `sensor` makes of the truth."""

from __future__ import annotations

import math

import pytest

from legsleeve.core.commands import FILL, HOLD, VENT, Commands
from legsleeve.safety.plausibility import Plausibility
from legsleeve.safety.supervisor import Supervisor
from tests.helpers import TICK, rd

FILL_ANKLE = Commands(1.0, (FILL, VENT, VENT, VENT))
HOLD_ANKLE = Commands(0.0, (HOLD, VENT, VENT, VENT))
RATE_MMHG_S, DROP_MMHG = 10.0, 25.0


def toy_fill(sup, sensor, *, target_mmhg=45.0, seconds=20.0, hold_s=3.0, vent_at_first_check=False):
    """Fill the ankle by its own (possibly lying) reading to target, then hold; return (trip, true peak, outputs)."""
    truth, t = 0.0, 0.0
    outputs: list[Commands] = []
    reached_at = None
    applied = Commands()
    while t < seconds:
        inlet_open = applied.action(0) is FILL
        pumping = inlet_open and applied.pump_duty > 0
        if pumping:
            truth += RATE_MMHG_S * TICK
        manifold = truth + DROP_MMHG if pumping else truth if inlet_open else 0.0
        reading = sensor(truth, t)
        if reached_at is None and reading >= target_mmhg:
            reached_at = t
        wish = FILL_ANKLE if reached_at is None else HOLD_ANKLE
        if reached_at is not None and t - reached_at > hold_s:
            break
        if vent_at_first_check and any(o.pump_duty == 0 and o.action(0) is FILL for o in outputs):
            wish = Commands()
        applied = sup.review(t, rd(t, ankle=reading, manifold=manifold), wish)
        outputs.append(applied)
        if wish.is_safe():
            break
        if sup.tripped:
            break
        t += TICK
    return sup.tripped, truth, outputs


def test_a_healthy_fill_is_checked_and_passes(sup):
    trip, truth, outputs = toy_fill(sup, lambda p, t: p)
    assert trip is None
    assert 45.0 <= truth < 47.0
    checks = [o for o in outputs if o.pump_duty == 0 and o.action(0) is FILL]
    assert checks, "no check was made"
    # a check: pump off, the checked zone's inlet open, nothing else filling
    assert all(sum(o.action(i) is FILL for i in range(4)) == 1 for o in checks)
    assert sup.plausibility.checks >= 4  # every 10 mmHg of rise, and the end of the fill
    assert sup.plausibility.corrections_mmhg[0] == pytest.approx(0.0, abs=0.01)
    # the checks cost little: at most a tenth of the fill's time
    assert len(checks) <= 0.15 * len([o for o in outputs if o.action(0) is FILL])


@pytest.mark.parametrize(
    "label, sensor",
    [
        ("gain 0.6", lambda p, t: 0.6 * p),
        ("gain 0.3", lambda p, t: 0.3 * p),
        ("offset -13 mid-fill", lambda p, t: p - (13.0 if t > 2.0 else 0.0)),
        ("offset -25 mid-fill", lambda p, t: p - (25.0 if t > 2.0 else 0.0)),
        ("drift -2 mmHg/s", lambda p, t: p - 2.0 * t),
        ("gain 1.5", lambda p, t: 1.5 * p),
        ("frozen with noise", lambda p, t: 2.0 + 0.1 * math.sin(37.0 * t)),
    ],
)
def test_a_lying_zone_sensor_trips_before_the_truth_passes_its_trip_level(sup, label, sensor):
    trip, truth, _ = toy_fill(sup, sensor)
    assert trip is not None, label
    assert trip.rule in ("SAFE-15", "SAFE-4") and trip.zone == "ankle", trip
    level = sup.trip_levels_mmhg[0]
    assert truth <= level + 5.0, f"{label}: the truth reached {truth:.1f} mmHg (trip level {level:g})"


def test_a_small_disagreement_is_carried_into_the_over_pressure_rule(sup):
    """A sensor 5 mmHg low passes the check (tolerance 5 mmHg + 5 %), but SAFE-4 then judges its reading + 5."""
    level = sup.trip_levels_mmhg[0]
    trip, truth, _ = toy_fill(sup, lambda p, t: p - 5.0, target_mmhg=level - 3.0)
    assert sup.plausibility.corrections_mmhg[0] == pytest.approx(5.0, abs=0.5)
    assert trip is not None and trip.rule == "SAFE-4" and "the manifold read more" in trip.reason
    assert truth <= level + 5.0


def test_a_vent_is_never_held_up_by_a_check(sup):
    trip, _, outputs = toy_fill(sup, lambda p, t: p, vent_at_first_check=True)
    assert trip is None
    assert outputs[-2].pump_duty == 0 and outputs[-2].action(0) is FILL  # a check was under way
    assert outputs[-1].is_safe()  # and the vent asked for next came at once


def test_a_zone_above_the_manifold_that_fills_it_trips(sup):
    t, trip_t = 0.0, None
    while t < 3.0 and trip_t is None:
        sup.review(t, rd(t, ankle=40.0, manifold=20.0), FILL_ANKLE)
        trip_t = t if sup.tripped else None
        t += TICK
    assert sup.tripped is not None and sup.tripped.rule == "SAFE-15" and "reads high" in sup.tripped.hint
    assert trip_t is not None and trip_t <= 0.6


def test_without_a_manifold_sensor_there_is_no_check(cfg):
    import dataclasses

    sup = Supervisor(dataclasses.replace(cfg, manifold_channel=None), [60.0, 60.0, 60.0, 60.0])
    assert sup.plausibility is None
    assert not any(isinstance(m, Plausibility) for m in sup.monitors)


def test_no_manifold_sensor_caps_the_build(tmp_path):
    from legsleeve.config.hardware import load_hardware
    from legsleeve.errors import ConfigError
    from tests.helpers import CONFIG_DIR

    text = (CONFIG_DIR / "hardware.yaml").read_text()
    no_manifold = text.replace("manifold_sensor:\n  channel: 4\n", "")
    assert no_manifold != text
    (tmp_path / "hardware.yaml").write_text(no_manifold)
    with pytest.raises(ConfigError) as err:
        load_hardware(tmp_path)
    (problem,) = err.value.problems
    assert "hardware.yaml:" in problem and "limits.max_mmhg" in problem and "manifold sensor" in problem
    (tmp_path / "hardware.yaml").write_text(no_manifold.replace("max_mmhg: 90", "max_mmhg: 60"))
    cfg = load_hardware(tmp_path)
    assert cfg.limits.max_mmhg == 60 and any("SAFE-15" in w for w in cfg.warnings)


def _fill_calf_with(sup, *, pump_runs_anyway=False, ankle_inlet_stuck=False, seconds=10.0):
    """The calf filling while the ankle is held at 40 mmHg; the manifold above the calf reading 25 mmHg while the pump
    pushes. `pump_runs_anyway`: the pump keeps pushing when told to stop (a shorted MOSFET): the calf keeps filling
    and the manifold stays above it through a check. `ankle_inlet_stuck`: the held ankle's inlet is open whatever it
    is told, so when the pump stops the ankle drains through the manifold into the calf."""
    fill_calf = Commands(1.0, (HOLD, FILL, VENT, VENT))
    calf, ankle, t = 0.0, 40.0, 0.0
    applied = Commands()
    while t < seconds and sup.tripped is None:
        calf_open = applied.action(1) is FILL
        pushing = calf_open and (applied.pump_duty > 0 or pump_runs_anyway)
        if pushing:
            calf += RATE_MMHG_S * TICK
            manifold = calf + DROP_MMHG
        elif calf_open and ankle_inlet_stuck:
            manifold = calf + 0.6 * (ankle - calf)  # between the two, nearer the ankle (the calf is the bigger)
            ankle -= 0.8 * TICK  # into the manifold: slower than SAFE-7 looks for (1 mmHg/s)
            calf += 0.3 * TICK
        else:
            manifold = calf
        applied = sup.review(t, rd(t, ankle=ankle, calf=calf - 10.0 if t > 1.0 else calf, manifold=manifold), fill_calf)
        t += TICK
    return sup.tripped, t


def test_a_pump_running_through_a_check_is_named_as_the_pump_not_the_sensor(sup):
    """The manifold keeps rising with the pump told off: air comes in, so the zone sensor is not blamed (SAFE-4, the
    high alarm that asks for the E-stop), though the calf's sensor also reads 10 mmHg low here."""
    trip, _ = _fill_calf_with(sup, pump_runs_anyway=True)
    assert trip is not None and (trip.rule, trip.zone) == ("SAFE-4", "manifold"), trip
    assert "pump runs while commanded off" in trip.reason and "E-stop" in trip.hint


def test_a_held_zone_draining_into_the_checked_one_is_named(sup):
    trip, _ = _fill_calf_with(sup, ankle_inlet_stuck=True)
    assert trip is not None and (trip.rule, trip.zone) == ("SAFE-8", "ankle"), trip
    assert "inlet is stuck open" in trip.reason


def test_a_sensor_reading_low_with_nothing_feeding_the_manifold_is_blamed_within_the_confirm_time(sup):
    from legsleeve.safety.plausibility import CONFIRM_S, MIN_SETTLE_S

    trip, t = _fill_calf_with(sup)
    assert trip is not None and (trip.rule, trip.zone) == ("SAFE-15", "calf"), trip
    # the first check after the offset: the pump stopped, then settle and confirm
    assert "reads low" in trip.hint
    assert t <= 1.0 + 2.0 + MIN_SETTLE_S + CONFIRM_S + 4 * TICK


def _fill_ankle_with_calf_stuck_open(
    sup, *, calf_sensor_high=False, seconds=10.0, calf_gain_mmhg_s=0.3, calf_bleeds_s=0.0
):
    """The ankle filling while the calf, held at 20 mmHg, has its inlet stuck open: whenever the pump stops for a
    check, the ankle drains through the manifold into the calf, and the manifold reads between the two, below the
    ankle. `calf_sensor_high` instead: nothing drains (no stuck inlet), the ankle's sensor reads 25 % high. With
    `calf_bleeds_s` the calf is bled (exhaust open) for that long after the pump stops, then held again."""
    fill_ankle = Commands(1.0, (FILL, HOLD, VENT, VENT))
    bleed_calf = Commands(1.0, (FILL, VENT, VENT, VENT))
    ankle, calf, t = 25.0, 20.0, 0.0  # the ankle topped up from 25 above the calf held at 20: no reverse gradient
    applied = Commands()
    off_since: float | None = None
    while t < seconds and sup.tripped is None:
        off_since = None if applied.pump_duty > 0 else t if off_since is None else off_since
        bleeding = off_since is not None and t - off_since < calf_bleeds_s
        ankle_open = applied.action(0) is FILL
        if ankle_open and applied.pump_duty > 0:
            ankle += RATE_MMHG_S * TICK
            manifold = ankle + DROP_MMHG
        elif ankle_open and not calf_sensor_high and ankle > calf:
            manifold = calf + 0.5 * (ankle - calf)
            ankle -= 0.8 * TICK
            calf += calf_gain_mmhg_s * TICK
        else:
            manifold = ankle
        shown = ankle * 1.25 if calf_sensor_high else ankle
        applied = sup.review(
            t, rd(t, ankle=shown, calf=calf, manifold=manifold), bleed_calf if bleeding else fill_ankle
        )
        t += TICK
    return sup.tripped


def test_a_checked_zone_draining_through_the_manifold_names_the_stuck_inlet_not_its_sensor(sup):
    """The mirror of the drain above: the manifold below the zone it was joined to. The zone falling while joined,
    with the pump off and nothing else open, is air leaving - not a sensor reading high (found on two legs, where
    one leg's stuck inlet drained the other leg's ankle during its check)."""
    trip = _fill_ankle_with_calf_stuck_open(sup)
    assert trip is not None and (trip.rule, trip.zone) == ("SAFE-8", "calf"), trip
    assert "stuck open" in trip.reason and "air leaves into calf" in trip.reason


def test_a_zone_bled_then_held_during_the_wait_is_named_where_its_gain_is_too_small_to_see(cfg):
    """Two legs: the held leg's ankle, its inlet stuck open, was still bleeding to the refill level when the other
    leg's check began, and held closed again within the wait. Its big bladder gains too little to see; it is named
    as the zone venting yet fed during the wait (it was named "manifold" before)."""
    targets = [45.0, 40.0, 35.0, 30.0]
    trip = _fill_ankle_with_calf_stuck_open(Supervisor(cfg, targets), calf_gain_mmhg_s=0.05, calf_bleeds_s=0.1)
    assert trip is not None and (trip.rule, trip.zone) == ("SAFE-8", "calf"), trip
    held = _fill_ankle_with_calf_stuck_open(Supervisor(cfg, targets), calf_gain_mmhg_s=0.05)
    assert held is not None and (held.rule, held.zone) == ("SAFE-8", "manifold"), held  # never seen venting


def test_a_sensor_reading_high_with_nothing_draining_is_still_blamed(sup):
    trip = _fill_ankle_with_calf_stuck_open(sup, calf_sensor_high=True)
    assert trip is not None and (trip.rule, trip.zone) == ("SAFE-15", "ankle"), trip
    assert "reads high" in trip.hint
