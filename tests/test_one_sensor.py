"""One-sensor builds (config/examples/one-sensor): every zone read through the manifold's sensor at its peeks, the
manifold's ceiling below the filling zone's trip level, one inlet at a time while pumping - judged on the
simulator's true bladder pressures."""

from __future__ import annotations

import math
import random

import pytest

from legsleeve.config.hardware import load_hardware
from legsleeve.config.profiles import load_profile
from legsleeve.core.commands import FILL, HOLD, VENT, Commands
from legsleeve.core.readings import Reading, Readings
from legsleeve.errors import ConfigError
from legsleeve.safety.shared import (
    CEILING_MARGIN_MMHG,
    PEEK_HOLD_FAR_S,
    PEEK_HOLD_S,
    PEEK_MAX_S,
    SharedSensor,
    approach,
)
from tests.helpers import CONFIG_DIR, SHIPPED, TICK, edited_config

ONE = CONFIG_DIR / "examples" / "one-sensor"


@pytest.fixture(scope="module")
def one():
    return load_hardware(ONE)


def _edited(tmp_path, old: str, new: str):
    return edited_config(ONE, tmp_path, old, new)


def test_the_example_has_one_sensor_on_the_manifold(one):
    assert one.shared_sensor and one.has_manifold_sensor
    assert all(z.sensor_channel is None for z in one.zones) and one.i2c.mux_addresses == ()
    assert one.limits.max_mmhg == 60
    (warning,) = [w for w in one.warnings if "one sensor, on the manifold" in w]
    # what check-config says such a build gives up (docs/one-sensor.md has the figures)
    for given_up in ("capped at 60 mmHg", "reading low", "blocked hose", "another zone", "no vent is confirmed"):
        assert given_up in warning, given_up


def test_one_zone_without_a_sensor_among_others_names_it(tmp_path):
    cfg = _edited(tmp_path, "manifold_sensor: {}", "manifold_sensor: {}")  # a copy to edit
    text = (CONFIG_DIR / "hardware.yaml").read_text().replace("    sensor_channel: 2\n", "", 1)
    (cfg / "hardware.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_hardware(cfg)
    assert "zones[2].sensor_channel: missing (required): the other zones name theirs" in str(err.value)


def test_no_sensor_anywhere_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no zone names a sensor_channel, and there is no manifold_sensor"):
        load_hardware(_edited(tmp_path, "manifold_sensor: {}\n", ""))


def test_above_60_mmhg_is_refused_on_one_sensor(tmp_path):
    with pytest.raises(ConfigError, match="on a one-sensor build: nothing confirms its one sensor"):
        load_hardware(_edited(tmp_path, "  max_mmhg: 60", "  max_mmhg: 90"))


def test_every_shipped_profile_loads_but_pulse_which_is_refused_at_its_line(one):
    for name in SHIPPED:
        if name == "pulse":
            with pytest.raises(ConfigError) as err:
                load_profile(ONE, name, one)
            assert "pulse.yaml:9: targets.default_mmhg: must be <= 60 mmHg (got 80)" in str(err.value)
        else:
            load_profile(ONE, name, one)


# -- the layer on its own ---------------------------------------------------------------------------------------


def _tick(layer, t, manifold, intent):
    layer.observe(Readings(t, (), Reading(manifold, t)))
    return layer.shape(t, intent)


def test_two_fills_take_turns_and_held_zones_are_peeked_every_second():
    layer = SharedSensor(("ankle", "calf", "knee"), [55.0, 50.0, 45.0])
    intent = Commands(1.0, (FILL, FILL, HOLD))
    t, peeks_of_knee = 0.0, []
    for _ in range(200):  # 4 s
        out = _tick(layer, t, 20.0, intent)
        assert sum(a is FILL for a in out.zones) == 1  # one inlet at a time, pumping or peeking
        if out.pump_duty > 0:
            assert out.action(0) is FILL and out.action(1) is HOLD  # the lower one fills first; the other waits
        if out.pump_duty == 0 and out.action(2) is FILL and (not peeks_of_knee or t - peeks_of_knee[-1] > 0.5):
            peeks_of_knee.append(t)
        t += TICK
    assert len(peeks_of_knee) >= 3
    assert all(b - a <= PEEK_HOLD_S + 0.4 for a, b in zip(peeks_of_knee, peeks_of_knee[1:], strict=False))


def test_the_pump_stops_at_the_manifolds_ceiling():
    layer = SharedSensor(("ankle",), [55.0])
    out = _tick(layer, 0.0, 40.0, Commands(1.0, (FILL,)))
    assert out.pump_duty == 1.0
    out = _tick(layer, TICK, 55.0 - CEILING_MARGIN_MMHG + 0.1, Commands(1.0, (FILL,)))
    assert out == Commands(0.0, (FILL,))  # a peek: pump off, the inlet open


def test_the_pump_runs_past_a_low_zones_ceiling_while_the_zone_cannot_have_got_there():
    """The thigh (trip level 40) filling from a look at 20 mmHg, beside an ankle whose trip level is 55: at the
    fastest a bladder fills (60 mmHg/s) the thigh cannot pass 37 for (37 - 20) / 60 = 0.28 s of pumping, so the pump
    runs on with the manifold at 45 (its inlet's drop); then the thigh's own ceiling holds. Past the highest zone's
    ceiling (52) it never runs; SAFE-4 judges the manifold against the thigh's trip level once the bound is spent."""
    from legsleeve.safety.shared import ManifoldBound

    layer = SharedSensor(("ankle", "thigh"), [55.0, 40.0], max_rise_mmhg_s=60.0)
    bound = ManifoldBound(("ankle", "thigh"), [55.0, 40.0], 0.1, layer)
    layer.observe(Readings(0.0, (), Reading(20.0, 0.0)))
    layer._known = [(0.0, 0.0), (20.0, 0.0)]  # the thigh's last look: 20 mmHg; the ankle read vented...
    layer._venting_since_peek[0] = True  # ...and venting since: no more looks at it
    fill = Commands(1.0, (VENT, FILL))
    t, pumped = 0.02, 0.0
    while pumped < 0.26:
        out = _tick(layer, t, 45.0, fill)
        assert out.pump_duty == 1.0, (t, pumped)
        assert bound.check(t, Readings(t, (), Reading(45.0, t)), out) is None
        pumped += TICK
        t += TICK
    for _ in range(3):  # the bound spent: the thigh's ceiling (37) stops the pump and looks
        out = _tick(layer, t, 45.0, fill)
        t += TICK
    assert out == Commands(0.0, (VENT, FILL))
    fresh = SharedSensor(("ankle", "thigh"), [55.0, 40.0], max_rise_mmhg_s=60.0)
    fresh.observe(Readings(0.0, (), Reading(0.0, 0.0)))
    fresh._venting_since_peek[0] = True
    assert _tick(fresh, TICK, 52.1, fill).pump_duty == 0.0  # the highest zone's ceiling: never past it
    held = ManifoldBound(("ankle", "thigh"), [55.0, 40.0], 0.1, None)  # without bounds: the thigh's own level
    trip = None
    for k in range(10):
        trip = trip or held.check(k * TICK, Readings(k * TICK, (), Reading(45.0, k * TICK)), fill)
    assert trip is not None and trip.zone == "thigh"


class _Manifold:
    """A manifold joined through one inlet at a time to zones at fixed pressures: with the pump off it approaches the
    open zone's pressure with time constant `tau_s`; each reading has Gaussian noise (seeded)."""

    def __init__(self, zones_mmhg, tau_s, mmhg, noise_mmhg=0.08, seed=1):
        self.zones, self.tau, self.mmhg, self.noise = list(zones_mmhg), tau_s, mmhg, noise_mmhg
        self.random = random.Random(seed)

    def reading(self):
        return self.mmhg + self.random.gauss(0.0, self.noise)

    def follow(self, out, dt=TICK, pump_rise_mmhg=0.0):
        open_ = [i for i, a in enumerate(out.zones) if a is FILL]
        if out.pump_duty > 0:
            self.mmhg += pump_rise_mmhg
        elif len(open_) == 1:
            z = self.zones[open_[0]]
            self.mmhg = z + (self.mmhg - z) * math.exp(-dt / self.tau)


def _looks(layer, manifold, intent, seconds, pump_rise_mmhg=0.0):
    """Run the layer against the manifold; each look's (zone, end time, reading, ticks it lasted)."""
    looks, t, started = [], 0.0, None
    for _ in range(round(seconds / TICK)):
        fresh, _ = layer.observe(Readings(t, (), Reading(manifold.reading(), t)))
        for i, r in enumerate(fresh.zones):
            if not r.unmeasured:
                looks.append((i, t, r.mmhg, round((t - started) / TICK) if started is not None else None))
        out = layer.shape(t, intent)
        started = t if (out.pump_duty == 0 and started is None and any(a is FILL for a in out.zones)) else started
        if out.pump_duty > 0 or not any(a is FILL for a in out.zones):
            started = None
        manifold.follow(out, pump_rise_mmhg=pump_rise_mmhg)
        t += TICK
    return looks


@pytest.mark.parametrize("gap_mmhg", [15.0, -30.0])
def test_a_look_reads_where_a_slow_manifold_is_heading_not_its_last_reading(gap_mmhg):
    """A big manifold behind a narrow inlet closes on the zone with tau 0.1 s, from above after pumping or from below
    after a look at a lower zone: after PEEK_MAX_S the last reading is still 0.05 of the gap off (0.7 and 1.5 mmHg
    here). The look reads the approach's end instead, within a few tenths; once the zone's time constant is learnt,
    its looks end after four to seven readings instead of fifteen."""
    layer = SharedSensor(("ankle",), [55.0])
    held = Commands(0.0, (HOLD,))
    layer.observe(Readings(0.0, (), Reading(0.0, 0.0)))
    readings = []
    for k in range(3):
        manifold = _Manifold([40.0], 0.1, 40.0 + gap_mmhg, seed=k)
        layer._last_peek = [-math.inf]  # a look due now
        look = _looks(layer, manifold, held, PEEK_MAX_S + 0.1)[0]
        readings.append(look)
        last_reading_error = abs(gap_mmhg) * math.exp(-look[3] * TICK / 0.1)
        assert abs(look[2] - 40.0) < 0.3, (k, look)
        if k == 0:
            assert last_reading_error > 0.5  # what the old look would have read
    assert readings[0][3] >= PEEK_MAX_S / TICK - 2  # the first look, to PEEK_MAX_S, teaches the time constant
    # then four to seven readings do: as soon as what is left of the gap is within QUICK_LOOK_LEFT_MMHG (10)
    assert all(r[3] <= 7 for r in readings[1:]), readings


def test_a_fast_manifold_is_read_as_before():
    """The reference's manifold closes in 16 ms: its looks settle within a handful of ticks and read the last value,
    as they did before looks were fitted."""
    layer = SharedSensor(("ankle",), [55.0])
    layer.observe(Readings(0.0, (), Reading(0.0, 0.0)))
    layer._last_peek = [-math.inf]
    manifold = _Manifold([40.0], 0.016, 55.0)
    zone, _, mmhg, ticks = _looks(layer, manifold, Commands(0.0, (HOLD,)), 0.4)[0]
    assert ticks <= 6 and abs(mmhg - 40.0) < 0.3


def test_approach_refuses_readings_that_are_not_one_approach():
    """A manifold still rising (the pump running), or one that jumps (a valve changing under it), is no approach: the
    fit declines, and the look keeps its last reading, an honest bound."""
    ramp = [(k * TICK, 30.0 + 0.8 * k) for k in range(15)]
    assert approach(ramp, 0.08) is None
    jump = [(k * TICK, 40.0 + 15.0 * math.exp(-k * TICK / 0.1) + (6.0 if k >= 8 else 0.0)) for k in range(15)]
    assert approach(jump, 0.08) is None
    clean = [(k * TICK, 40.0 + 15.0 * math.exp(-k * TICK / 0.1)) for k in range(15)]
    fit = approach(clean, 0.08)
    assert fit is not None and abs(fit.mmhg - 40.0) < 0.01 and abs(fit.tau_s - 0.1) < 0.005


def test_a_zone_held_far_below_the_filling_one_is_looked_at_less_often():
    """A look opens a held zone to the manifold, which holds the filling zone's pressure or more: far below it
    (dvt's legs held at 10 mmHg to watch the refill while the ankle fills to 45), each look puts air into the zone.
    Those zones are looked at every PEEK_HOLD_FAR_S; a held zone near the filling one, every PEEK_HOLD_S."""
    for held_mmhg, period_s in ((10.0, PEEK_HOLD_FAR_S), (38.0, PEEK_HOLD_S)):
        layer = SharedSensor(("ankle", "calf"), [55.0, 50.0])
        manifold = _Manifold([40.0, held_mmhg], 0.016, 40.0)
        layer.observe(Readings(0.0, (), Reading(0.0, 0.0)))
        layer._known = [(40.0, 0.0), (held_mmhg, 0.0)]
        looks = _looks(layer, manifold, Commands(1.0, (FILL, HOLD)), 10.0, pump_rise_mmhg=0.0)
        calf = [t for i, t, _, _ in looks if i == 1]
        gaps = [b - a for a, b in zip(calf, calf[1:], strict=False)]
        assert gaps and all(period_s - 0.05 <= g <= period_s + 0.7 for g in gaps), (held_mmhg, gaps)


def test_no_peek_when_not_measuring_and_none_in_the_safe_state():
    """A stop or a trip keeps every inlet closed: the supervisor does not shape those outputs at all."""
    from legsleeve.safety.supervisor import Supervisor

    cfg = load_hardware(ONE)
    sup = Supervisor(cfg, [45.0, 40.0, 35.0, 30.0])
    safe = Commands(0.0, (VENT,) * 4)
    t = 0.0
    for _ in range(100):
        out = sup.review(t, Readings(t, (), Reading(20.0 + 1e-3 * (t % 0.1), t)), safe, measure=False)
        assert out == safe
        t += TICK


# -- whole sessions on the simulated rig ---------------------------------------------------------------------------


def _session(profile: str, cycles: int = 1, faults=()):
    from tests.fault_matrix import run_followed

    return run_followed(ONE, profile, faults)


@pytest.mark.slow
@pytest.mark.parametrize("profile", [p for p in SHIPPED if p != "pulse"])
def test_every_profile_it_can_run_runs_without_a_trip_and_below_every_trip_level(profile):
    """Two cycles of each profile on the one-sensor example: no trip, vented at the end (confirmed by peeks), and
    no bladder ever above its zone's trip level - on the simulator's truth, not the peeks. ~1 min for all."""
    cfg, outcome, rows, truth = _session(profile)
    assert outcome.trip is None, outcome.trip
    assert outcome.vented and not outcome.unconfirmed
    prof = load_profile(ONE, profile, cfg)
    levels = [min(cfg.limits.max_mmhg, prof.peak_target_mmhg(i) + cfg.limits.trip_margin_mmhg) for i in range(4)]
    for _, pressures in truth:
        for p, level in zip(pressures, levels, strict=True):
            assert p <= level, (profile, p, level)


@pytest.mark.slow
def test_a_blocked_hose_is_found_at_its_fill_and_its_vent_reported_not_confirmed_aloud(caplog):
    """A hose blocked while its zone fills: the fill's next look sees the hose alone (SAFE-6). The bladder beyond
    keeps its air, which no peek can see (none after a trip, and a peek reads the hose): the session ends with the
    vent not confirmed for it, said as an alarm of high priority, and it is what the leg still feels."""
    from legsleeve.sim.faults import FaultSpec
    from tests.fault_matrix import reference

    at_s, zone = reference("gradient", config_dir=ONE).injections()["fill"]
    with caplog.at_level("CRITICAL", logger="legsleeve.app.alarms"):
        cfg, outcome, _rows, truth = _session("gradient", faults=[FaultSpec("blocked", zone, at_s)])
    assert outcome.trip is not None and (outcome.trip.rule, outcome.trip.zone) == ("SAFE-6", zone), outcome.trip
    assert zone in outcome.unconfirmed
    assert "an inlet stuck open elsewhere" in outcome.trip.hint  # one sensor cannot tell which: the hint says so
    i = cfg.zone_names.index(zone)
    assert truth[-1][1][i] > 5.0  # the truth: still squeezed, 15 s after the trip
    alarms = [r.getMessage() for r in caplog.records if "vent not confirmed" in r.getMessage()]
    assert alarms and "ALARM (high)" in alarms[-1] and zone in alarms[-1], alarms
