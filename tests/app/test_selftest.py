"""The self-test before every session: passes on a healthy rig and leaves it safe; finds swapped hoses and the
faults a session would trip on, before the session starts."""

from __future__ import annotations

import dataclasses

import pytest

from legsleeve.app.selftest import SelfTestFailed, self_test
from legsleeve.errors import SensorFault
from legsleeve.hw.backends import open_sim
from legsleeve.hw.rig import build_rig
from legsleeve.sim.faults import FaultSpec
from legsleeve.sim.world import SimWorld


def _swapped(cfg, a, b):
    """The firmware's config with two zones' sensor channels swapped: as if the hoses went to the wrong zones."""
    zones = list(cfg.zones)
    ca, cb = zones[a].sensor_channel, zones[b].sensor_channel
    zones[a] = dataclasses.replace(zones[a], sensor_channel=cb)
    zones[b] = dataclasses.replace(zones[b], sensor_channel=ca)
    return dataclasses.replace(cfg, zones=tuple(zones))


def test_self_test_passes_on_a_healthy_rig(cfg):
    rig = open_sim(cfg, seed=1)
    try:
        baselines = self_test(rig)
        assert set(baselines) == {"ankle", "calf", "knee", "thigh", "manifold"}
        assert rig.pump.duty == 0 and not any(z.inlet.is_open for z in rig.zones)
    finally:
        rig.close()


def test_self_test_finds_swapped_hoses(cfg):
    world = SimWorld(cfg, seed=1)  # the sleeve as built: hoses to ankle and calf crossed
    rig = build_rig(
        _swapped(cfg, 0, 1), clock=world.clock, pin_factory=world.pin_factory, i2c_bus=world.bus, world=world
    )
    world.connect_panel()
    try:
        with pytest.raises(SelfTestFailed, match="filling ankle raised calf") as err:
            self_test(rig)
        assert "swapped" in str(err.value)
    finally:
        rig.close()


@pytest.mark.parametrize(
    "fault, fragment",
    [
        (FaultSpec("pump-dead", None, 0.0), "SAFE-5|filling gained only"),
        (FaultSpec("blocked", "calf", 0.0), "calf: reached 8 mmHg in 0.0. s, faster than any bladder fills"),
        (FaultSpec("inlet-stuck-open", "knee", 0.0), "raised knee|gains pressure"),
        (FaultSpec("sensor-dead", "thigh", 0.0), "not found on mux channel 3"),
    ],
)
def test_self_test_catches_faults_before_a_session(cfg, fault, fragment):
    try:
        rig = open_sim(cfg, seed=1, faults=[fault])
    except SensorFault as exc:  # a dead sensor is found while the rig is built
        assert fault.name == "sensor-dead" and "not found" in str(exc)
        return
    try:
        with pytest.raises(SelfTestFailed, match=fragment):
            self_test(rig)
    finally:
        rig.close()
