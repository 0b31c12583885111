"""Alarms on mock pins: the buzzer and LED patterns by priority, latched until acknowledged, silenced for a while;
and a trip sounding on the simulated rig's buzzer."""

from __future__ import annotations

import pytest

from legsleeve.app.alarms import Annunciator
from legsleeve.app.session import run_session
from legsleeve.config.profiles import load_profile
from legsleeve.hw.backends import open_sim
from legsleeve.hw.drivers import Panel
from legsleeve.safety.trip import Priority
from legsleeve.sim.faults import FaultSpec
from tests.helpers import CONFIG_DIR


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
