"""The rig: every actuator and sensor of one sleeve behind one object, and the only place that drives pins.

`apply()` changes outputs in the safer order (pump down, exhausts open, inlets closed before anything opens an
inlet or speeds the pump up). `drive_safe()` reaches the safe state - pump off, every exhaust open, every inlet
closed - attempting every step even when one raises, and never relies on `__del__` (SAFE-1).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from legsleeve.config.model import HardwareConfig
from legsleeve.core.clock import Clock
from legsleeve.core.commands import FILL, HOLD, SAFE, VENT, Commands
from legsleeve.core.readings import Readings, new_readings
from legsleeve.hw.drivers import Panel, Pump, ZoneValves
from legsleeve.hw.i2c import DeadlineI2C
from legsleeve.hw.sensors import SensorArray, build_sensors

if TYPE_CHECKING:  # the sleeve never imports the simulator (and sim.world imports this package)
    from legsleeve.sim.world import SimWorld

log = logging.getLogger(__name__)


@dataclass
class Rig:
    config: HardwareConfig
    clock: Clock
    pump: Pump
    zones: list[ZoneValves]
    panel: Panel
    bus: DeadlineI2C
    sensors: SensorArray | None = None
    world: SimWorld | None = None  # the simulated rig's world, None on the sleeve
    commanded: Commands = field(default=SAFE)

    def read(self) -> Readings:
        """Every sensor in one sweep, and the panel's inputs."""
        assert self.sensors is not None
        t_s, zones, manifold = self.sensors.sweep()
        panel = self.panel
        stop = panel.button is not None and panel.button.is_pressed
        return new_readings(t_s, zones, manifold, panel.estop_pressed, stop)

    def apply(self, cmd: Commands) -> None:
        """Drive the outputs to `cmd`, safer changes first."""
        pump_first = cmd.pump_duty <= self.pump.duty
        if pump_first:
            self.pump.set_duty(cmd.pump_duty)
        for wanted in (VENT, HOLD, FILL):
            for i, zone in enumerate(self.zones):
                action = cmd.action(i)
                if action is wanted and zone.action is not action:
                    zone.set(action)
        if not pump_first:
            self.pump.set_duty(cmd.pump_duty)
        self.commanded = cmd

    def drive_safe(self) -> list[BaseException]:
        """Pump off, exhausts open, inlets closed. Every step is tried; returns what failed (normally nothing)."""
        failures: list[BaseException] = []

        def attempt(step, *args) -> None:
            try:
                step(*args)
            except BaseException as exc:  # noqa: BLE001 - the next valve matters more than this exception
                failures.append(exc)
                log.critical("safe state: %s failed: %r", getattr(step, "__qualname__", step), exc)

        attempt(self.pump.off)
        for zone in self.zones:
            attempt(zone.exhaust.open)  # exhaust first: a stuck inlet must not meet a closed exhaust
        for zone in self.zones:
            attempt(zone.inlet.close)
        for zone in self.zones:
            zone.action = VENT
        self.commanded = SAFE
        return failures

    def zero_sensors(self, on_wait: Callable[[], None] | None = None) -> dict[str, float]:
        """Vent everything, then take every sensor's ambient baseline (SAFE-9 checks inside). Returns hPa.

        The check valve and the closed inlets trap air in the manifold, so when there is a manifold sensor the
        inlets stay open while the zero is taken - pump off, every exhaust open: air can only leave - or that
        sensor's zero would be taken under pressure. `on_wait` runs every sweep of the wait (up to
        `limits.vent_timeout_s`): feed the watchdog there, and raise to stop (the sleeve is driven safe on the way out).
        """
        assert self.sensors is not None
        self.drive_safe()
        limits = self.config.limits
        try:
            if self.sensors.manifold is not None:
                for zone in self.zones:
                    zone.inlet.open()
            return self.sensors.zero(
                max_spread_mmhg=limits.max_zero_spread_mmhg, settle_timeout_s=limits.vent_timeout_s, on_wait=on_wait
            )
        finally:
            self.drive_safe()

    @property
    def measured_noise_mmhg(self) -> float | None:
        """The noisiest sensor's reading noise (one reading's standard deviation) at the last zero; None before one."""
        if self.sensors is None:
            return None
        noise = [s.noise_mmhg for s in self.sensors.all if math.isfinite(s.noise_mmhg)]
        return max(noise) if noise else None

    def close(self) -> None:
        """Safe state, then release every device. Outputs de-energise on release: still the safe state."""
        self.drive_safe()
        for zone in self.zones:
            try:
                zone.release()
            except Exception as exc:  # noqa: BLE001
                log.error("releasing %s: %r", zone.spec.name, exc)
        try:
            self.pump.release()
        except Exception as exc:  # noqa: BLE001
            log.error("releasing pump: %r", exc)
        self.panel.close()


def build_rig(
    config: HardwareConfig,
    *,
    clock: Clock,
    pin_factory: Any,
    i2c_bus: Any,
    world: SimWorld | None = None,
    with_sensors: bool = True,
) -> Rig:
    """Create every device on the given pin factory and I2C bus - the same code for the sleeve and the sim.

    Outputs come up de-energised. If anything fails part-way, whatever was built is driven safe and released
    before the error goes on.
    """
    built: list = []
    try:
        pump = Pump(config.pump, pin_factory=pin_factory)
        built.append(pump)
        zones = []
        for spec in config.zones:
            zones.append(ZoneValves(spec, pin_factory=pin_factory))
            built.append(zones[-1])
        c = config.controls
        panel = Panel(c.button, c.estop, c.led, c.buzzer, pin_factory=pin_factory)
        built.append(panel)
        bus = DeadlineI2C(i2c_bus, clock, config.i2c.deadline_s)
        rig = Rig(config, clock, pump, zones, panel, bus, world=world)
    except BaseException:
        for device in reversed(built):
            try:
                device.close() if isinstance(device, Panel) else device.release()
            except Exception:  # noqa: BLE001
                pass
        raise
    if with_sensors:
        try:
            rig.sensors = build_sensors(config, bus, clock)
        except BaseException:
            rig.close()
            raise
    return rig
