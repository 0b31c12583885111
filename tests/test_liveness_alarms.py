"""SAFE-11 liveness over a real notify socket, alarms on mock pins, the stop button, and the self-test's diagnoses."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from legsleeve.app.alarms import Annunciator
from legsleeve.app.notify import Notifier
from legsleeve.app.selftest import SelfTestFailed, self_test
from legsleeve.app.session import run_session
from legsleeve.config.profiles import load_profile
from legsleeve.core.clock import VirtualClock
from legsleeve.errors import SensorFault
from legsleeve.hw.backends import open_sim
from legsleeve.hw.drivers import Panel
from legsleeve.hw.rig import build_rig
from legsleeve.safety.trip import Priority
from legsleeve.sim.faults import FaultSpec
from legsleeve.sim.world import SimWorld
from tests.conftest import CONFIG_DIR


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0)
    yield str(path), sock
    sock.close()


def _drain(sock):
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_notifier_speaks_the_systemd_protocol(notify_socket):
    path, sock = notify_socket
    clock = VirtualClock()
    n = Notifier({"NOTIFY_SOCKET": path}, clock=clock, min_interval_s=0.1)
    n.ready("idle")
    for _ in range(5):  # five ticks within 0.1 s: one ping
        n.watchdog()
        clock.advance(0.02)
    clock.advance(0.02)
    n.watchdog()
    n.stopping()
    assert _drain(sock) == ["READY=1\nSTATUS=idle", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]


def test_notifier_without_socket_does_nothing():
    n = Notifier({})
    assert not n.enabled
    n.ready()
    n.watchdog()  # no error, no effect


def test_abstract_socket_address(tmp_path):
    name = f"legsleeve-test-{id(tmp_path)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_session_pings_after_completed_ticks_and_a_stalled_tick_stops_them(cfg, notify_socket):
    path, sock = notify_socket
    rig = open_sim(cfg, seed=1)
    pings: list[float] = []
    notifier = Notifier({"NOTIFY_SOCKET": path}, clock=rig.clock, min_interval_s=0.1)

    def liveness():
        before = len(pings)
        notifier.watchdog()
        if _drain(sock):
            pings.append(rig.clock.now())
        assert len(pings) >= before

    real_read = rig.read
    stalled = {"done": False}

    def read():
        if rig.clock.now() > 30 and not stalled["done"]:
            stalled["done"] = True
            rig.clock.sleep(3.0)  # a tick stuck for 3 s (a kernel I2C timeout and more)
        return real_read()

    rig.read = read
    try:
        run_session(rig, load_profile(CONFIG_DIR, "gradient", cfg), cycles=1, liveness=liveness)
    finally:
        rig.close()
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    assert len(pings) > 500
    assert max(gaps) >= 3.0  # systemd's WatchdogSec=2 would have killed us here: that is the point
    assert sorted(gaps)[-2] < 0.2  # otherwise a ping every 0.1 s or so


# -- alarms -----------------------------------------------------------------------------------------------------


@pytest.fixture
def panel(cfg, mock_factory):
    c = cfg.controls
    p = Panel(c.button, c.estop, c.led, c.buzzer, pin_factory=mock_factory)
    yield p, mock_factory.pin(c.buzzer.pin.name), mock_factory.pin(c.led.pin.name)
    p.close()


def _trace(ann, pin, t0, t1, dt=0.05):
    out = []
    t = t0
    while t < t1 - 1e-9:
        ann.update(t)
        out.append(bool(pin.state))
        t += dt
    return out


def test_high_alarm_pattern_and_latched_until_acknowledged(panel):
    p, buzzer, led = panel
    ann = Annunciator(p, silence_s=120)
    ann.raise_alarm(0.0, Priority.HIGH, "over-pressure")
    sound = _trace(ann, buzzer, 0.0, 3.0)
    # two bursts in the first 1.5 s of every 3 s period, silent after
    assert any(sound[:30]) and not any(sound[30:60])
    assert sum(a != b for a, b in zip(sound, sound[1:], strict=False)) >= 8
    light = _trace(ann, led, 3.0, 4.0, dt=0.0625)
    assert light.count(True) == light.count(False)  # 4 Hz blink
    assert any(_trace(ann, buzzer, 300.0, 301.5))  # still sounding minutes later: latched
    ann.acknowledge()
    assert not any(_trace(ann, buzzer, 302.0, 305.0))


def test_silence_stops_the_buzzer_not_the_led_and_expires(panel):
    p, buzzer, led = panel
    ann = Annunciator(p, silence_s=120)
    ann.raise_alarm(0.0, Priority.MEDIUM, "sensor calf")
    ann.silence(1.5)
    assert not any(_trace(ann, buzzer, 1.5, 121.0, dt=0.1))
    assert any(_trace(ann, led, 1.5, 5.0))
    assert any(_trace(ann, buzzer, 121.6, 130.0, dt=0.1))  # sounds again within 120 s


def test_a_lower_priority_never_masks_a_higher_one(panel):
    p, buzzer, led = panel
    ann = Annunciator(p, silence_s=60)
    ann.raise_alarm(0.0, Priority.HIGH, "cannot vent ankle")
    ann.raise_alarm(1.0, Priority.LOW, "session complete")
    assert ann.priority == Priority.HIGH and ann.message == "cannot vent ankle"


def test_low_alarm_beeps_once(panel):
    p, buzzer, led = panel
    ann = Annunciator(p, silence_s=60)
    ann.raise_alarm(0.0, Priority.LOW, "session complete")
    sound = _trace(ann, buzzer, 0.0, 20.0)
    assert sound[:6] == [True] * 6 and not any(sound[6:])


def test_idle_and_running_led(panel):
    p, buzzer, led = panel
    ann = Annunciator(p, silence_s=60)
    idle = _trace(ann, led, 0.0, 4.0, dt=0.05)
    assert 0 < idle.count(True) <= 6  # a short blink every 2 s
    ann.running = True
    assert all(_trace(ann, led, 4.0, 6.0))


def test_a_trip_sounds_on_the_simulated_buzzer(cfg):
    rig = open_sim(cfg, seed=1, faults=[FaultSpec("sensor-dead", "knee", 20.0)])
    try:
        result = run_session(rig, load_profile(CONFIG_DIR, "gradient", cfg), cycles=1)
        buzzer = rig.world.pin_factory.pin(cfg.controls.buzzer.pin.name)
        assert result.outcome.trip.rule == "SAFE-9"
        assert sum(1 for s in buzzer.states if s.state) >= 3  # it beeped, more than once
    finally:
        rig.close()


# -- the stop button (SAFE-12) ----------------------------------------------------------------------------------


def test_stop_button_ends_the_session_safe(cfg, tmp_path):
    rig = open_sim(cfg, seed=1, faults=[FaultSpec("button", None, 20.0)])
    try:
        result = run_session(rig, load_profile(CONFIG_DIR, "gradient", cfg), cycles=3, log_path=tmp_path / "s.csv")
    finally:
        rig.close()
    o = result.outcome
    assert o.stopped and o.trip is None and o.vented and result.exit_code == 0
    assert 20.0 < o.end_s < 20.0 + cfg.limits.vent_timeout_s
    rows = (tmp_path / "s.csv").read_text().splitlines()
    stopped = [r for r in rows if ",stopped," in r]
    assert stopped and all(",0.000," in r for r in stopped)


def test_estop_trips_safe12(cfg):
    rig = open_sim(cfg, seed=1, faults=[FaultSpec("estop", None, 20.0)])
    try:
        result = run_session(rig, load_profile(CONFIG_DIR, "gradient", cfg), cycles=1)
    finally:
        rig.close()
    assert result.outcome.trip.rule == "SAFE-12" and result.outcome.vented


# -- the self-test ----------------------------------------------------------------------------------------------


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
