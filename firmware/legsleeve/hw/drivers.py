"""Actuator drivers on gpiozero devices: the pump (PWM), the valves, and the panel (button, E-stop, LED, buzzer).

The valve's form (normally open or closed) and the coil's active level are wiring; they are turned into pneumatic
verbs here and nowhere else. Every output is created de-energised (`initial_value=False` / 0), which for the
reference build is the safe state: NC inlets closed, NO exhausts open, pump off.
"""

from __future__ import annotations

import math

from gpiozero import Button, DigitalInputDevice, DigitalOutputDevice, PWMOutputDevice

from legsleeve.config.model import InputSpec, OutputSpec, PumpSpec, ValveSpec, ZoneSpec
from legsleeve.core.commands import FILL, HOLD, VENT, ZoneAction


def valve_open_when(spec: ValveSpec, energised: bool) -> bool:
    """Whether the valve passes air with its coil energised or not: the one NO/NC mapping."""
    return energised != spec.normally_open


def coil_energised_at(active_high: bool, pin_level: bool) -> bool:
    """Whether a low-side driver powers its load at this GPIO level."""
    return pin_level == active_high


class Valve:
    """A 2/2 solenoid valve: `open()`, `close()`, `is_open`."""

    def __init__(self, spec: ValveSpec, *, pin_factory=None):
        self.spec = spec
        self._coil = DigitalOutputDevice(
            spec.pin.name, active_high=spec.active_high, initial_value=False, pin_factory=pin_factory
        )
        self._open = valve_open_when(spec, False)

    def set_open(self, open_: bool) -> None:
        # energise exactly when the resting form is not the state we want
        self._coil.value = open_ == (not self.spec.normally_open)
        self._open = open_

    def open(self) -> None:
        self.set_open(True)

    def close(self) -> None:
        self.set_open(False)

    @property
    def is_open(self) -> bool:
        return self._open

    def release(self) -> None:
        """De-energise (the valve's resting form) and free the pin."""
        try:
            self._coil.off()
        finally:
            self._coil.close()


class ZoneValves:
    """A zone's inlet and exhaust, driven together by pneumatic verbs."""

    def __init__(self, spec: ZoneSpec, *, pin_factory=None):
        self.spec = spec
        self.inlet = Valve(spec.inlet, pin_factory=pin_factory)
        self.exhaust = Valve(spec.exhaust, pin_factory=pin_factory)
        self.action = VENT

    def set(self, action: ZoneAction) -> None:
        if action is VENT:
            # exhaust first: a stuck inlet must not meet a closed exhaust
            self.exhaust.open()
            self.inlet.close()
        elif action is HOLD:
            self.inlet.close()
            self.exhaust.close()
        elif action is FILL:
            self.exhaust.close()
            self.inlet.open()
        else:  # pragma: no cover - ZoneAction is closed
            raise ValueError(action)
        self.action = action

    def release(self) -> None:
        try:
            self.exhaust.release()
        finally:
            self.inlet.release()


class Pump:
    """The diaphragm pump on a PWM output. Duty 0-1; any non-zero duty below `min_duty` runs at `min_duty`,
    because below it the motor stalls and heats without moving air (safety-requirements §B1)."""

    def __init__(self, spec: PumpSpec, *, pin_factory=None):
        self.spec = spec
        self._out = PWMOutputDevice(
            spec.pin.name,
            active_high=spec.active_high,
            initial_value=0,
            frequency=spec.pwm_hz,
            pin_factory=pin_factory,
        )
        self._duty = 0.0

    @property
    def duty(self) -> float:
        return self._duty

    def set_duty(self, duty: float) -> None:
        if not math.isfinite(duty) or duty <= 0.0:
            duty = 0.0  # NaN or anything below zero means off, never "some"
        elif duty < self.spec.min_duty:
            duty = self.spec.min_duty
        duty = min(duty, 1.0)
        if duty != self._duty:
            self._out.value = duty
            self._duty = duty

    def off(self) -> None:
        """Unconditional: writes the pin even if the driver believes it is already off."""
        self._duty = 0.0
        self._out.value = 0

    def release(self) -> None:
        try:
            self.off()
        finally:
            self._out.close()


class Panel:
    """The optional human interface: start/stop button, E-stop sense, status LED, buzzer."""

    def __init__(
        self,
        button: InputSpec | None,
        estop: InputSpec | None,
        led: OutputSpec | None,
        buzzer: OutputSpec | None,
        *,
        pin_factory=None,
    ):
        self.button = (
            Button(button.pin.name, pull_up=button.pull_up, bounce_time=None, hold_time=1.5, pin_factory=pin_factory)
            if button
            else None
        )
        # The E-stop's normally-closed contact holds the pin at its active level; pressing it, or a broken wire,
        # lets the pull resistor take it inactive - which reads as "stop".
        self.estop = (
            DigitalInputDevice(estop.pin.name, pull_up=estop.pull_up, pin_factory=pin_factory) if estop else None
        )
        self.led = (
            DigitalOutputDevice(led.pin.name, active_high=led.active_high, initial_value=False, pin_factory=pin_factory)
            if led
            else None
        )
        self.buzzer = (
            DigitalOutputDevice(
                buzzer.pin.name, active_high=buzzer.active_high, initial_value=False, pin_factory=pin_factory
            )
            if buzzer
            else None
        )

    @property
    def estop_pressed(self) -> bool:
        return self.estop is not None and not self.estop.is_active

    def close(self) -> None:
        for dev in (self.buzzer, self.led, self.button, self.estop):
            if dev is not None:
                try:
                    dev.close()
                except Exception:  # noqa: BLE001 - closing must reach every device
                    pass
