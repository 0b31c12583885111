"""The simulated MPRLS's sensor errors - plausible readings of the wrong pressure - measured against the truth on the
virtual clock: at the chip (its conversions, byte for byte), and through the real driver on the simulated rig where
they fire at their time. And their `NAME[:ZONE]@SECONDS=VALUE` text form."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from legsleeve.core.clock import VirtualClock
from legsleeve.core.commands import FILL, HOLD, VENT, Commands
from legsleeve.core.units import HPA_PER_PSI, hpa_to_mmhg, mmhg_to_hpa
from legsleeve.hw.backends import open_sim
from legsleeve.sim.chips import CMD_MEASURE, COUNT_MAX, COUNT_MIN, MAX_LAG_S, PSI_MAX, SimMPRLS
from legsleeve.sim.faults import SENSOR_ERRORS, VALUES, FaultSpec, check_value, parse_fault

ZONES = ("ankle", "calf", "knee", "thigh")
AMBIENT_HPA = 1013.25
CONVERSION_S = 0.005


def ramp(t_s: float) -> float:
    """A true gauge pressure that moves: up 4 mmHg/s for 20 s, then down again."""
    return 4.0 * t_s if t_s < 20.0 else max(0.0, 80.0 - 4.0 * (t_s - 20.0))


class Bench:
    """One chip on a virtual clock, fed `truth(t)` (gauge mmHg); `convert()` is a conversion read back from its
    bytes, as gauge mmHg."""

    def __init__(self, truth=ramp, noise_mmhg: float = 0.0, seed: int = 1):
        self.clock = VirtualClock()
        self.truth = truth
        self.chip = SimMPRLS(
            "ankle",
            self.clock,
            lambda: AMBIENT_HPA + mmhg_to_hpa(truth(self.clock.now())),
            conversion_s=CONVERSION_S,
            noise_mmhg=noise_mmhg,
            offset_mmhg=0.0,
            rng=random.Random(seed),
            ambient_hpa=AMBIENT_HPA,
        )

    def convert(self) -> float:
        self.chip.write(bytes((CMD_MEASURE, 0, 0)))
        self.clock.advance(CONVERSION_S)
        status, *count = self.chip.read(4)
        assert status == 0x40, hex(status)
        c = (count[0] << 16) | (count[1] << 8) | count[2]
        psi = (c - COUNT_MIN) * PSI_MAX / (COUNT_MAX - COUNT_MIN)
        return hpa_to_mmhg(psi * HPA_PER_PSI - AMBIENT_HPA)

    def run(self, until_s: float, every_s: float = 0.02) -> list[tuple[float, float, float]]:
        """Convert every `every_s` until `until_s`: (time, truth, reading) each."""
        out = []
        while self.clock.now() < until_s - 1e-9:
            reading = self.convert()
            t = self.clock.now()
            out.append((t, self.truth(t), reading))
            self.clock.advance(every_s - CONVERSION_S)
        return out


RESOLUTION = 0.01  # mmHg: a count is ~1e-4 mmHg; this leaves room for float rounding only


def test_a_healthy_chip_reads_the_truth():
    bench = Bench()
    assert all(abs(r - p) < RESOLUTION for _, p, r in bench.run(30.0))


@pytest.mark.parametrize("step", [-13.0, 25.0])
def test_offset_steps_the_zero_at_its_time(step):
    bench = Bench()
    before = bench.run(5.0)
    bench.chip.shift_zero(step)
    after = bench.run(15.0)
    assert all(abs(r - p) < RESOLUTION for _, p, r in before)
    assert all(abs(r - (p + step)) < RESOLUTION for _, p, r in after)


@pytest.mark.parametrize("rate", [-1.0, 0.2])
def test_drift_moves_the_zero_from_its_time_on(rate):
    bench = Bench()
    bench.run(5.0)
    t0 = bench.clock.now()
    bench.chip.drift_zero(rate)
    after = bench.run(25.0)
    assert all(abs(r - (p + rate * (t - t0))) < RESOLUTION for t, p, r in after)
    assert abs(after[-1][2] - after[-1][1]) > 3.0  # it has gone somewhere


def test_offsets_and_drifts_add_up():
    bench = Bench()
    bench.chip.shift_zero(-6.0)
    bench.run(2.0)
    t0 = bench.clock.now()
    bench.chip.drift_zero(-0.5)
    bench.chip.shift_zero(-7.0)
    t, p, r = bench.run(12.0)[-1]
    assert r == pytest.approx(p - 13.0 - 0.5 * (t - t0), abs=RESOLUTION)


@pytest.mark.parametrize("gain", [0.3, 0.6, 1.5])
def test_gain_scales_the_gauge_pressure_around_ambient(gain):
    bench = Bench()
    bench.chip.set_gain(gain)
    out = bench.run(42.0)  # up to 80 mmHg and back to ambient
    assert all(abs(r - gain * p) < RESOLUTION for _, p, r in out)
    assert abs(out[-1][1]) < RESOLUTION and abs(out[-1][2]) < RESOLUTION  # ambient reads as ambient: the zero holds


@pytest.mark.parametrize("lag_s", [1.0, 3.0])
def test_lag_reports_the_truth_of_that_long_ago(lag_s):
    bench = Bench()
    bench.run(10.0)  # history to look back into
    bench.chip.set_lag(lag_s)
    out = bench.run(30.0)
    # conversions every 20 ms on a piecewise-linear truth: interpolation is exact except across the apex at 20 s
    assert all(abs(r - ramp(t - lag_s)) < RESOLUTION for t, _, r in out if abs(t - lag_s - 20.0) > 0.05)
    peak_t = max(out, key=lambda row: row[2])[0]
    assert peak_t == pytest.approx(20.0 + lag_s, abs=0.05)  # the reading peaks lag_s after the truth did


def test_lag_history_is_bounded():
    bench = Bench(truth=lambda t: 30.0 + 10.0 * math.sin(t))
    bench.run(3 * MAX_LAG_S, every_s=0.01)
    chip = bench.chip
    assert len(chip._hist_t) < MAX_LAG_S / 0.01 + 2 * 512 + 1
    chip.set_lag(MAX_LAG_S)
    t, _, r = bench.run(3 * MAX_LAG_S + 1.0, every_s=0.01)[-1]
    assert r == pytest.approx(30.0 + 10.0 * math.sin(t - MAX_LAG_S), abs=0.01)
    with pytest.raises(ValueError):
        chip.set_lag(MAX_LAG_S + 1.0)


@pytest.mark.parametrize("noise_mmhg", [None, 0.5])
def test_frozen_reports_the_pressure_of_that_moment_with_fresh_noise(noise_mmhg):
    """Frozen, yet never the same count twice: SAFE-9's "stuck on one value" cannot see it."""
    bench = Bench(noise_mmhg=0.08)
    bench.run(5.0)
    frozen_at = bench.truth(bench.clock.now())
    bench.chip.freeze(noise_mmhg)
    out = bench.run(15.0)
    readings = [r for _, _, r in out]
    assert max(p for _, p, _ in out) > frozen_at + 30  # the truth went on
    assert statistics.mean(readings) == pytest.approx(frozen_at, abs=0.2)
    assert statistics.stdev(readings) == pytest.approx(noise_mmhg or 0.08, rel=0.25)
    assert all(a != b for a, b in zip(readings, readings[1:], strict=False))  # never the same count twice in a row


# -- through the real driver on the simulated rig, firing at their virtual time ------------------------------------

T_FAULT = 12.0


def _through_the_rig(cfg, fault: FaultSpec, zone: int = 0, *, scheduled: bool = False):
    """Zero, fill `fault.zone` from 10 s for 6 s, hold 6 s: (t, true mmHg, reading) every tick; manifold too. The
    fault given to open_sim, or `scheduled` on the world after."""
    if scheduled:
        rig = open_sim(cfg, seed=4)
        rig.world.schedule(fault)
    else:
        rig = open_sim(cfg, seed=4, faults=[fault])
    world = rig.world
    rows = []
    try:
        rig.zero_sensors()
        rig.clock.sleep(10.0 - rig.clock.now())
        actions = [VENT] * 4
        for action, pump, seconds in ((FILL, 1.0, 6.0), (HOLD, 0.0, 6.0)):
            actions[zone] = action
            rig.apply(Commands(pump, tuple(actions)))
            end = rig.clock.now() + seconds
            while rig.clock.now() < end:
                r = rig.read()
                if fault.zone == "manifold":
                    rows.append((r.t_s, world.manifold_mmhg(), r.manifold.mmhg))
                else:
                    rows.append((r.t_s, world.zone_mmhg(fault.zone), r.zones[zone].mmhg))
                rig.clock.sleep(0.02)
    finally:
        rig.close()
    return rows


def _split(rows, at_s=T_FAULT):
    return [row for row in rows if row[0] < at_s], [row for row in rows if row[0] >= at_s + 0.01]


NOISE = 0.5  # mmHg: the simulated sensors' noise (0.08 sd) and the sweep's few ms between truth and conversion


@pytest.mark.parametrize("zone", ["ankle", "manifold"])
def test_offset_fires_at_its_time_through_the_driver(cfg, zone):
    before, after = _split(_through_the_rig(cfg, FaultSpec("sensor-offset", zone, T_FAULT, -13.0)))
    assert before and all(abs(r - p) < NOISE for _, p, r in before)
    assert after and all(abs(r - (p - 13.0)) < NOISE for _, p, r in after)


def test_drift_through_the_driver(cfg):
    before, after = _split(_through_the_rig(cfg, FaultSpec("sensor-drift", "ankle", T_FAULT, 1.0)))
    assert all(abs(r - p) < NOISE for _, p, r in before)
    assert all(abs(r - (p + (t - T_FAULT))) < NOISE for t, p, r in after)


def test_gain_through_the_driver(cfg):
    """Relative to ambient: the rig's zero (taken vented) is still right, the span is not."""
    before, after = _split(_through_the_rig(cfg, FaultSpec("sensor-gain", "ankle", T_FAULT, 0.6)))
    assert all(abs(r - p) < NOISE for _, p, r in before)
    assert all(abs(r - 0.6 * p) < NOISE for _, p, r in after)
    assert max(p for _, p, _ in after) > 30


def test_lag_through_the_driver(cfg):
    rows = _through_the_rig(cfg, FaultSpec("sensor-lag", "ankle", T_FAULT, 2.0))
    truth = {round(t, 2): p for t, p, _ in rows}
    _, after = _split(rows)
    late = [(t, r) for t, _, r in after if t >= 10.0 + 2.0 + 0.1]
    assert late and all(abs(r - truth[min(truth, key=lambda s, t=t: abs(s - (t - 2.0)))]) < 1.0 for t, r in late)
    assert all(r < p - 3 for t, p, r in after if t < 15.5)  # filling: it reads behind the truth


def test_frozen_through_the_driver(cfg):
    """The reading stays at the pressure of the moment it froze while the zone fills on; its noise keeps the count
    moving, so the driver and SAFE-9's stuck check see a healthy sensor."""
    before, after = _split(_through_the_rig(cfg, FaultSpec("sensor-frozen", "ankle", T_FAULT)))
    frozen = before[-1][1]
    assert all(abs(r - frozen) < 2.0 for _, _, r in after)
    assert max(p for _, p, _ in after) > frozen + 15
    assert all(a[2] != b[2] for a, b in zip(after, after[1:], strict=False))


# -- the text form -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("sensor-offset:ankle@20=-13", FaultSpec("sensor-offset", "ankle", 20.0, -13.0)),
        ("sensor-offset:ankle@20=+25", FaultSpec("sensor-offset", "ankle", 20.0, 25.0)),
        ("sensor-drift:calf@0=0.2", FaultSpec("sensor-drift", "calf", 0.0, 0.2)),
        ("sensor-drift:calf@5=-1e0", FaultSpec("sensor-drift", "calf", 5.0, -1.0)),
        ("sensor-gain:ankle@0=0.6", FaultSpec("sensor-gain", "ankle", 0.0, 0.6)),
        ("sensor-gain:manifold@3=1.5", FaultSpec("sensor-gain", "manifold", 3.0, 1.5)),
        ("sensor-lag:thigh@1.5=3", FaultSpec("sensor-lag", "thigh", 1.5, 3.0)),
        ("sensor-frozen:knee@12", FaultSpec("sensor-frozen", "knee", 12.0)),
        ("sensor-frozen:knee@12=0.5", FaultSpec("sensor-frozen", "knee", 12.0, 0.5)),
        ("leak:calf@60", FaultSpec("leak", "calf", 60.0)),  # the old forms are untouched
        ("estop@3", FaultSpec("estop", None, 3.0)),
    ],
)
def test_parse_values(text, expected):
    spec = parse_fault(text, ZONES, has_manifold_sensor=True)
    assert spec == expected
    assert parse_fault(str(spec), ZONES, has_manifold_sensor=True) == spec  # __str__ round-trips


@pytest.mark.parametrize(
    "spec",
    [
        FaultSpec("sensor-offset", "ankle", 12.345678901, -13.123456789),
        FaultSpec("sensor-gain", "calf", 0.1, 1 / 3),
        FaultSpec("leak", "calf", 60.0),
        FaultSpec("pump-dead", None, 2.5),
    ],
)
def test_str_round_trips_every_digit(spec):
    assert parse_fault(str(spec), ZONES, has_manifold_sensor=True) == spec


def test_old_specs_print_as_before():
    assert str(FaultSpec("leak", "calf", 60.0)) == "leak:calf@60"
    assert str(FaultSpec("pump-dead", None, 12.5)) == "pump-dead@12.5"
    assert str(FaultSpec("sensor-offset", "ankle", 20.0, -13.0)) == "sensor-offset:ankle@20=-13"


@pytest.mark.parametrize(
    "text, fragment",
    [
        (
            "sensor-offset:ankle@20",
            "sensor-offset needs a value (a step of the zero in mmHg, both signs), e.g. sensor-offset:ankle@20=-13",
        ),
        ("sensor-gain:ankle@0", "needs a value (a factor on the gauge pressure)"),
        ("sensor-lag:ankle@0", "needs a value (a delay in seconds)"),
        ("leak:calf@60=3", "leak takes no value; leave out '=3'"),
        ("sensor-stuck:calf@6=1", "sensor-stuck takes no value"),
        ("estop@3=1", "estop takes no value"),
        ("sensor-offset:ankle@20=abc", "'abc' is not a number (sensor-offset takes a step of the zero in mmHg"),
        ("sensor-offset:ankle@20=", "'' is not a number"),
        ("sensor-offset:ankle@20=nan", "must be >= -200 and <= 200 mmHg (got nan)"),
        ("sensor-offset:ankle@20=-250", "must be >= -200 and <= 200 mmHg (got -250)"),
        ("sensor-drift:ankle@20=11", "must be >= -10 and <= 10 mmHg/s"),
        ("sensor-gain:ankle@20=-0.5", "must be >= 0 and <= 5 (got -0.5)"),
        ("sensor-gain:ankle@20=inf", "must be >= 0 and <= 5"),
        ("sensor-lag:ankle@20=0", "must be > 0 and <= 30 s (got 0)"),
        ("sensor-lag:ankle@20=45", "must be > 0 and <= 30 s"),
        ("sensor-frozen:ankle@20=-1", "must be >= 0 and <= 10 mmHg"),
        ("sensor-offset@20=-13", "sensor-offset needs a zone, e.g. sensor-offset:ankle@20=-13"),
        ("sensor-offset:shin@20=-13", "no zone 'shin'"),
        ("sensor-wobble:ankle@20=1", "unknown fault 'sensor-wobble'; known: leak, "),
        ("sensor-offset:ankle@20=1=2", "expected NAME[:ZONE]@SECONDS[=VALUE]"),
        ("sensor-offset:ankle=1@20", "expected NAME[:ZONE]@SECONDS[=VALUE]"),
    ],
)
def test_parse_value_rejects(text, fragment):
    with pytest.raises(ValueError) as err:
        parse_fault(text, ZONES, has_manifold_sensor=True)
    assert fragment in str(err.value)


def test_unknown_name_lists_every_sensor_error():
    with pytest.raises(ValueError) as err:
        parse_fault("bogus:ankle@1", ZONES)
    assert all(name in str(err.value) for name in SENSOR_ERRORS)


def test_manifold_only_with_a_manifold_sensor():
    with pytest.raises(ValueError, match="no zone 'manifold'"):
        parse_fault("sensor-gain:manifold@3=0.6", ZONES, has_manifold_sensor=False)


def test_every_sensor_error_has_a_value_range():
    assert set(VALUES) == set(SENSOR_ERRORS)


@pytest.mark.parametrize(
    "spec",
    [
        FaultSpec("sensor-offset", "ankle", 1.0),
        FaultSpec("sensor-gain", "ankle", 1.0, -1.0),
        FaultSpec("leak", "ankle", 1.0, 3.0),
    ],
)
def test_a_spec_built_in_code_is_checked_before_the_run(cfg, spec):
    with pytest.raises(ValueError):
        check_value(spec)
    with pytest.raises(ValueError):
        open_sim(cfg, faults=[spec])


def test_a_scheduled_fault_fires_as_one_given_at_the_start(cfg):
    """SimWorld.schedule (the red-team matrix forks a healthy run and schedules the fault): the same readings as a
    rig opened with the fault; and its value is checked as at the start."""
    fault = FaultSpec("sensor-offset", "ankle", T_FAULT, -13.0)
    assert _through_the_rig(cfg, fault, scheduled=True) == _through_the_rig(cfg, fault)
    rig = open_sim(cfg, seed=4)
    try:
        with pytest.raises(ValueError, match="needs a value"):
            rig.world.schedule(FaultSpec("sensor-gain", "ankle", 1.0))
    finally:
        rig.close()
