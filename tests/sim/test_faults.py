"""Every fault name does what it says, through the simulated rig; and the NAME[:ZONE]@SECONDS form parses."""

from __future__ import annotations

import pytest

from legsleeve.core.commands import FILL, HOLD, SAFE, VENT, Commands
from legsleeve.hw.backends import open_sim
from legsleeve.sim.faults import FAULT_NAMES, FaultSpec, parse_fault

ZONES = ("ankle", "calf", "knee", "thigh")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("leak:calf@60", FaultSpec("leak", "calf", 60.0)),
        ("pump-dead@12.5", FaultSpec("pump-dead", None, 12.5)),
        ("sensor-stuck:manifold@0", FaultSpec("sensor-stuck", "manifold", 0.0)),
        (" inlet-stuck-open:thigh@1e1 ", FaultSpec("inlet-stuck-open", "thigh", 10.0)),
    ],
)
def test_parse(text, expected):
    assert parse_fault(text, ZONES, has_manifold_sensor=True) == expected


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("leak@60", "leak needs a zone"),
        ("leak:shin@60", "no zone 'shin'"),
        ("leak:manifold@60", "no zone 'manifold'"),
        ("pump-dead:calf@3", "concerns the whole sleeve"),
        ("explode:calf@3", "unknown fault 'explode'"),
        ("leak:calf", "expected NAME[:ZONE]@SECONDS"),
        ("leak:calf@-1", "finite number of seconds >= 0"),
        ("leak:calf@nan", "expected NAME[:ZONE]@SECONDS"),
        ("leak:calf@1e999", "finite"),
    ],
)
def test_parse_rejects(text, fragment):
    with pytest.raises(ValueError) as err:
        parse_fault(text, ZONES, has_manifold_sensor=True)
    assert fragment in str(err.value)


def test_parse_two_limb_zone():
    """A two-limb build's zone ids are `limb.name`, and the CLI's --fault takes them as the docs say."""
    two = ("left.ankle", "left.calf", "right.ankle", "right.calf")
    assert parse_fault("leak:left.calf@60", two) == FaultSpec("leak", "left.calf", 60.0)
    with pytest.raises(ValueError, match="no zone 'calf'"):
        parse_fault("leak:calf@60", two)


# the size of each sensor error in this pattern (a value is what their FaultSpec carries)
VALUES = {"sensor-offset": -13.0, "sensor-drift": -1.0, "sensor-gain": 0.6, "sensor-lag": 6.0, "sensor-frozen": None}


def _rig(cfg, fault):
    zone = "calf" if fault not in ("pump-dead", "pump-stuck-on") else None
    rig = open_sim(cfg, seed=2, faults=[FaultSpec(fault, zone, 8.0, VALUES.get(fault))])
    rig.zero_sensors()
    rig.clock.sleep(8.0 - rig.clock.now())  # the fault fires now
    return rig


def _fill_calf(rig, seconds=4.0):
    rig.apply(Commands(1.0, (VENT, FILL)))
    rig.clock.sleep(seconds)


def _observe(fault, cfg):
    """Run a fixed pattern after the fault and report what the air and the sensor did."""
    rig = _rig(cfg, fault)
    w = rig.world
    try:
        out = {}
        _fill_calf(rig)
        out["filled"] = w.zone_mmhg("calf")
        out["bladder"] = w.physics.bladder_mmhg(1)
        rig.apply(Commands(0.0, (VENT, HOLD)))
        rig.clock.sleep(5.0)
        out["held"] = w.zone_mmhg("calf")
        readings = []
        for _ in range(8):
            readings.append(rig.read().zones[1])
            rig.clock.sleep(0.02)
        out["readings"] = readings
        rig.apply(SAFE)
        rig.clock.sleep(10.0)
        out["vented"] = w.zone_mmhg("calf")
        out["manifold_safe"] = w.manifold_mmhg()
        out["relief"] = cfg.simulation.relief_mmhg  # follows limits.max_mmhg: 110 on the reference build
        out["others"] = max(w.zone_mmhg(n) for n in ("ankle", "knee", "thigh"))
        rig.apply(Commands(1.0, (FILL, HOLD)))  # fill the ankle; the calf, closed both ways, must not move
        rig.clock.sleep(3.0)
        out["cross"] = w.zone_mmhg("calf") - out["vented"]
        return out
    finally:
        rig.close()


def test_healthy_rig_baseline(cfg):
    """The same pattern with no fault: what each fault below is a departure from."""
    rig = open_sim(cfg, seed=2)
    rig.zero_sensors()
    try:
        _fill_calf(rig)
        assert rig.world.zone_mmhg("calf") > 20
    finally:
        rig.close()


def test_every_fault_name_is_covered():
    assert set(FAULT_NAMES) == set(EFFECTS)


EFFECTS = {
    "leak": lambda o: o["filled"] - o["held"] > 10,
    "blocked": lambda o: o["filled"] > 100 and o["bladder"] < 20,  # the hose stub fills at once, the leg does not
    "disconnected": lambda o: o["filled"] < 5 and o["bladder"] < 1,
    "inlet-stuck-open": lambda o: o["cross"] > 10,  # fills with the ankle though its inlet is told to close
    "exhaust-stuck-closed": lambda o: o["vented"] > 15,
    "pump-dead": lambda o: o["filled"] < 1,
    # pushes against the relief valve with the pump "off", and no further (the valve passes its flow ~2 mmHg above)
    "pump-stuck-on": lambda o: o["relief"] - 10 < o["manifold_safe"] < o["relief"] + 5,
    "sensor-dead": lambda o: all("NACK" in r.fault for r in o["readings"]),
    "sensor-stuck": lambda o: len({r.mmhg for r in o["readings"]}) == 1,
    "sensor-busy": lambda o: all("deadline missed" in r.fault for r in o["readings"]),
    "sensor-integrity": lambda o: all("Integrity failure" in r.fault for r in o["readings"]),
    "sensor-spike": lambda o: sum(r.mmhg > o["held"] + 40 for r in o["readings"]) == 2,
    # sensor errors: plausible readings of the wrong pressure (tests/sim/test_sensor_errors.py measures each)
    "sensor-offset": lambda o: all(abs(r.mmhg - (o["held"] - 13.0)) < 1.0 for r in o["readings"]),
    "sensor-drift": lambda o: all(o["held"] - 12.0 < r.mmhg < o["held"] - 8.0 for r in o["readings"]),  # ~9 s in
    "sensor-gain": lambda o: all(abs(r.mmhg - 0.6 * o["held"]) < 1.0 for r in o["readings"]),
    "sensor-lag": lambda o: all(5.0 < r.mmhg < o["held"] - 5.0 for r in o["readings"]),  # still filling, 6 s ago
    "sensor-frozen": lambda o: (
        all(abs(r.mmhg) < 1.0 for r in o["readings"]) and len({r.mmhg for r in o["readings"]}) == 8
    ),
}


@pytest.mark.parametrize("fault", FAULT_NAMES)
def test_fault_does_what_it_says(cfg, fault):
    observed = _observe(fault, cfg)
    assert EFFECTS[fault](observed), observed
    if fault not in ("exhaust-stuck-closed", "pump-stuck-on", "inlet-stuck-open"):
        assert observed["vented"] < 2.0  # the rest still vents
        assert observed["cross"] < 0.5


def test_sensor_faults_leave_the_air_alone(cfg):
    a = _observe("sensor-dead", cfg)
    assert a["filled"] > 20 and a["vented"] < 2.0 and abs(a["cross"]) < 0.5
