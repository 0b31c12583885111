"""The self-test before every session: passes on a healthy rig and leaves it safe; finds swapped hoses and the
faults a session would trip on, before the session starts."""

from __future__ import annotations

import dataclasses

import pytest

from legsleeve.app.selftest import SelfTestFailed, SelfTestStopped, self_test
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
        baselines = self_test(rig).baselines
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


def _selftest_length_s(cfg) -> float:
    rig = open_sim(cfg, seed=1)
    try:
        self_test(rig)
        return rig.clock.now()
    finally:
        rig.close()


@pytest.mark.parametrize("fraction", [0.02, 0.2, 0.4, 0.6, 0.8, 0.97])
def test_a_stop_pressed_at_any_time_in_the_self_test_stops_it(cfg, fraction):
    """SAFE-12 in the self-test: the button at any moment - the zero's wait, any zone's fill or vent - ends it as
    stopped, never passed, with the sleeve vented on the true pressures and the outputs safe."""
    at_s = fraction * _selftest_length_s(cfg)
    rig = open_sim(cfg, seed=1, faults=[FaultSpec("button", None, at_s)])
    try:
        with pytest.raises(SelfTestStopped, match="no session was started"):
            self_test(rig)
        assert rig.clock.now() - at_s < 20.0  # it waited at most for the vent, not for the rest of the test
        assert rig.pump.duty == 0 and not any(z.inlet.is_open for z in rig.zones)
        assert all(z.exhaust.is_open for z in rig.zones)
        world = rig.world
        assert world is not None
        # the button's 0.2 s press fell inside the self-test, and after it nothing was filled again
        rig.clock.sleep(5.0)
        assert all(world.zone_mmhg(n) < 5.0 for n in cfg.zone_names)
    finally:
        rig.close()


@pytest.mark.parametrize("fraction", [0.05, 0.5])
def test_a_stop_from_the_control_socket_stops_the_self_test(cfg, fraction):
    at_s = fraction * _selftest_length_s(cfg)
    rig = open_sim(cfg, seed=1)
    asked = []

    def poll():
        asked.append(rig.clock.now())
        return "stopped from the control socket" if rig.clock.now() >= at_s else None

    try:
        with pytest.raises(SelfTestStopped, match="control socket"):
            self_test(rig, poll=poll)
        assert asked and rig.clock.now() - at_s < 20.0
        assert rig.pump.duty == 0 and not any(z.inlet.is_open for z in rig.zones)
    finally:
        rig.close()


@pytest.mark.parametrize("fraction", [0.05, 0.5])
def test_the_estop_in_the_self_test_fails_it(cfg, fraction):
    at_s = fraction * _selftest_length_s(cfg)
    rig = open_sim(cfg, seed=1, faults=[FaultSpec("estop", None, at_s)])
    try:
        with pytest.raises(SelfTestFailed, match="E-stop|SAFE-12"):
            self_test(rig)
        assert rig.pump.duty == 0 and not any(z.inlet.is_open for z in rig.zones)
    finally:
        rig.close()


def test_the_zero_wait_feeds_the_watchdog(cfg):
    """SAFE-11: the zero waits up to the vent time; the watchdog must hear from it every sweep meanwhile."""
    rig = open_sim(cfg, seed=1)
    pings: list[float] = []
    try:
        self_test(rig, liveness=lambda: pings.append(rig.clock.now()))
        gaps = [b - a for a, b in zip([0.0, *pings], pings, strict=False)]
        assert pings and max(gaps) < 0.2, max(gaps)
    finally:
        rig.close()


def test_a_sensor_too_noisy_for_the_safety_rules_fails_the_self_test(cfg):
    """Past MAX_SENSOR_NOISE_MMHG (0.5) SAFE-7 and SAFE-8 could not tell a leak from noise: refused, naming it."""
    noisy = dataclasses.replace(cfg, simulation=dataclasses.replace(cfg.simulation, sensor_noise_mmhg=0.8))
    rig = open_sim(noisy, seed=1)
    try:
        with pytest.raises(SelfTestFailed, match=r"sensor \w+ is noisy \(0\.\d\d mmHg at rest, at most 0\.5\)"):
            self_test(rig)
        assert rig.pump.duty == 0 and not any(z.inlet.is_open for z in rig.zones)
    finally:
        rig.close()


@pytest.mark.parametrize("noise_mmhg", [0.02, 0.3])
def test_the_sessions_rules_allow_for_the_noise_measured_at_the_zero(cfg, noise_mmhg):
    """SAFE-7 and SAFE-8 judge a loss clear of what the zero measured where that is clearly (NOISE_CLEARLY_ABOVE) more
    than limits.sensor_noise_mmhg: a build much noisier than configured (uncalibrated, or one sensor, which
    calibration refuses) no longer reads its noise as a leak; a quieter one keeps the configured figure."""
    from legsleeve.app.builder import build_session
    from legsleeve.config.profiles import load_profile
    from legsleeve.safety.leak import HoldLeak
    from legsleeve.safety.supervisor import NOISE_CLEARLY_ABOVE
    from legsleeve.safety.venting import ValveCheck
    from tests.helpers import CONFIG_DIR

    sim = dataclasses.replace(cfg.simulation, sensor_noise_mmhg=noise_mmhg)
    rig = open_sim(dataclasses.replace(cfg, simulation=sim), seed=2)
    try:
        self_test(rig)
        measured = rig.measured_noise_mmhg
        assert measured is not None and 0.6 * noise_mmhg < measured < 1.5 * noise_mmhg
        supervisor = build_session(rig, load_profile(CONFIG_DIR, "gradient", cfg), cycles=1).supervisor
        if noise_mmhg < cfg.limits.sensor_noise_mmhg:
            assert supervisor.noise_mmhg == cfg.limits.sensor_noise_mmhg
        else:
            assert measured > NOISE_CLEARLY_ABOVE * cfg.limits.sensor_noise_mmhg
            assert supervisor.noise_mmhg == measured
        (leak,) = [m for m in supervisor.monitors if isinstance(m, HoldLeak)]
        (valves,) = [m for m in supervisor.monitors if isinstance(m, ValveCheck)]
        assert leak.noise == supervisor.noise_mmhg
        assert valves.quick_floor == pytest.approx(ValveCheck.QUICK_NOISE * supervisor.noise_mmhg)
    finally:
        rig.close()
