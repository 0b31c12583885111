"""Drivers on gpiozero's mock pins: whole pin histories, the NO/NC and active-level mapping, safe ordering."""

from __future__ import annotations

import dataclasses

import pytest

from legsleeve.config.model import PinSpec, ValveSpec
from legsleeve.core.commands import FILL, HOLD, SAFE, VENT, Commands
from legsleeve.hw.drivers import Panel, Pump, Valve, ZoneValves, valve_open_when
from legsleeve.hw.rig import build_rig


def states(pin):
    return [s.state for s in pin.states]


@pytest.mark.parametrize(
    "normally_open, active_high, resting, when_open, when_closed",
    [
        (False, True, False, True, False),  # NC inlet, active-high driver: energise (high) to open
        (False, False, True, False, True),  # NC inlet, active-low driver: pull low to open
        (True, True, False, False, True),  # NO exhaust, active-high: energise (high) to close
        (True, False, True, True, False),  # NO exhaust, active-low: pull low to close
    ],
)
def test_valve_mapping(mock_factory, normally_open, active_high, resting, when_open, when_closed):
    spec = ValveSpec(PinSpec("GPIO17", 17), normally_open=normally_open, active_high=active_high)
    valve = Valve(spec, pin_factory=mock_factory)
    pin = mock_factory.pin(17)
    # created de-energised (the valve's resting form), driven, never left floating
    assert pin.function == "output" and bool(pin.state) is resting
    assert valve.is_open is normally_open
    valve.open()
    assert bool(pin.state) is when_open and valve.is_open
    valve.close()
    assert bool(pin.state) is when_closed and not valve.is_open
    valve.release()
    assert pin.function == "input"


def test_nc_inlet_history_is_exact(mock_factory):
    valve = Valve(ValveSpec(PinSpec("GPIO17", 17), normally_open=False, active_high=True), pin_factory=mock_factory)
    pin = mock_factory.pin(17)
    valve.open()
    valve.close()
    valve.open()
    assert states(pin) == [False, True, False, True]


def test_no_exhaust_history_is_exact(mock_factory):
    valve = Valve(ValveSpec(PinSpec("GPIO27", 27), normally_open=True, active_high=True), pin_factory=mock_factory)
    pin = mock_factory.pin(27)
    valve.close()  # energise to close
    valve.open()
    assert states(pin) == [False, True, False]


def test_zone_verbs(mock_factory, cfg):
    zone = ZoneValves(cfg.zones[0], pin_factory=mock_factory)
    inlet, exhaust = mock_factory.pin(17), mock_factory.pin(27)
    zone.set(FILL)
    zone.set(HOLD)
    zone.set(VENT)
    # inlet: closed, open (fill), closed (hold)
    assert states(inlet) == [False, True, False]
    # exhaust (NO, energised = closed): open, closed for fill, stays closed for hold, open for vent
    assert states(exhaust) == [False, True, False]
    assert (zone.inlet.is_open, zone.exhaust.is_open) == (False, True)


def test_vent_opens_exhaust_before_closing_inlet(mock_factory, cfg):
    zone = ZoneValves(cfg.zones[0], pin_factory=mock_factory)
    zone.set(FILL)
    order = []
    for name in ("inlet", "exhaust"):
        valve = getattr(zone, name)
        real = valve.set_open
        valve.set_open = lambda open_, real=real, name=name: (order.append((name, open_)), real(open_))
    zone.set(VENT)
    assert order == [("exhaust", True), ("inlet", False)]
    order.clear()
    zone.set(FILL)
    assert order == [("exhaust", False), ("inlet", True)]


def test_pump_duty_and_min_duty(mock_factory, cfg):
    pump = Pump(cfg.pump, pin_factory=mock_factory)
    pin = mock_factory.pin(18)
    assert pin.frequency == cfg.pump.pwm_hz
    for duty in (0.5, 0.9, 0.9, 1.7, float("nan"), -1, 0.0):
        pump.set_duty(duty)
    # 0.5 is below min_duty 0.7: runs at 0.7; 1.7 clamps to 1; NaN and negatives mean off
    assert states(pin) == [0.0, 0.7, 0.9, 1.0, 0.0]
    pump.release()
    assert pin.function == "input"


def test_pump_active_low(mock_factory, cfg):
    spec = dataclasses.replace(cfg.pump, active_high=False)
    pump = Pump(spec, pin_factory=mock_factory)
    pin = mock_factory.pin(18)
    assert pin.state == 1.0  # off, on an active-low driver
    pump.set_duty(1.0)
    assert pin.state == 0.0


def test_rig_outputs_start_safe_and_apply_in_safe_order(mock_factory, cfg):
    rig = build_rig(cfg, clock=None, pin_factory=mock_factory, i2c_bus=None, with_sensors=False)
    try:
        pins = {n: mock_factory.pin(n) for n in (18, 17, 27, 22, 23, 24, 25, 16, 26)}
        assert all(p.function == "output" for p in pins.values())
        assert all(p.state == 0 for p in pins.values())  # de-energised: NC closed, NO open, pump off
        rig.apply(Commands(1.0, (FILL, HOLD)))
        assert states(pins[18]) == [0.0, 1.0]
        assert states(pins[17]) == [False, True] and states(pins[27]) == [False, True]  # ankle fills
        assert states(pins[22]) == [False] and states(pins[23]) == [False, True]  # calf holds
        rig.apply(SAFE)
        assert rig.pump.duty == 0.0
        assert [z.action for z in rig.zones] == [VENT] * 4
        assert pins[17].state == 0 and pins[27].state == 0
    finally:
        rig.close()
    assert all(p.function == "input" for p in pins.values())


def test_drive_safe_tries_every_output_even_when_one_fails(mock_factory, cfg):
    rig = build_rig(cfg, clock=None, pin_factory=mock_factory, i2c_bus=None, with_sensors=False)
    rig.apply(Commands(1.0, (FILL, FILL, FILL, FILL)))

    def broken():
        raise OSError(5, "gpiochip gone")

    rig.zones[1].exhaust.open = broken
    failures = rig.drive_safe()
    assert len(failures) == 1
    assert rig.pump.duty == 0.0 and mock_factory.pin(18).state == 0.0
    # every other exhaust opened and every inlet closed despite the failure
    assert [z.exhaust.is_open for z in rig.zones] == [True, False, True, True]
    assert not any(z.inlet.is_open for z in rig.zones)
    rig.close()


def test_valve_open_when_is_the_one_mapping():
    nc = ValveSpec(PinSpec("GPIO17", 17), normally_open=False, active_high=True)
    no = ValveSpec(PinSpec("GPIO27", 27), normally_open=True, active_high=True)
    assert (valve_open_when(nc, False), valve_open_when(nc, True)) == (False, True)
    assert (valve_open_when(no, False), valve_open_when(no, True)) == (True, False)


def test_panel_estop_reads_stop_when_contact_opens(mock_factory, cfg):
    c = cfg.controls
    panel = Panel(c.button, c.estop, c.led, c.buzzer, pin_factory=mock_factory)
    estop = mock_factory.pin(c.estop.pin.gpio)
    estop.drive_low()  # NC contact closed to ground: healthy
    assert not panel.estop_pressed
    estop.drive_high()  # pressed, or the wire broke: the pull-up wins
    assert panel.estop_pressed
    assert mock_factory.pin(c.led.pin.gpio).state == 0 and mock_factory.pin(c.buzzer.pin.gpio).state == 0
    panel.close()
