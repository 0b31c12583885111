"""The simulated world's pins (sim/pins.py `SimPin`): gpiozero's MockPWMPin, telling the world when they move, with
a bounded history - a long `serve --sim` grew by every pin change it ever made (issue 15)."""

from __future__ import annotations

from legsleeve.hw.backends import open_sim
from legsleeve.sim.pins import PIN_HISTORY, SimPin


def test_a_pins_history_stays_bounded_and_keeps_its_latest(cfg):
    rig = open_sim(cfg, seed=0)
    try:
        pin = rig.world.pin_factory.pin(cfg.controls.led.pin.name)
        assert isinstance(pin, SimPin)
        led = rig.panel.led
        for k in range(5 * PIN_HISTORY):
            led.value = k % 2 == 0
        assert PIN_HISTORY <= len(pin.states) <= 2 * PIN_HISTORY
        assert [s.state for s in pin.states[-2:]] == [True, False]  # the latest kept, in order
    finally:
        rig.close()


def test_the_air_follows_a_valve_as_it_moves(cfg):
    """No history is summed: the world hears the change itself, and the air feels it from that moment."""
    rig = open_sim(cfg, seed=0)
    try:
        world = rig.world
        rig.pump.set_duty(1.0)
        rig.zones[0].exhaust.close()
        rig.zones[0].inlet.open()
        rig.clock.sleep(1.0)
        filled = world.zone_mmhg(cfg.zone_names[0])
        assert filled > 5.0
        rig.drive_safe()
        rig.clock.sleep(2.0)
        assert world.zone_mmhg(cfg.zone_names[0]) < filled
    finally:
        rig.close()
