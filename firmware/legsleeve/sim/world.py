"""The simulated world under the real drivers: mock pins, simulated chips on a simulated bus, air, one clock.

The firmware's own driver classes are built on `pin_factory` (gpiozero's `MockFactory`; its pins are `SimPin`s of
sim/pins.py, gpiozero's own `MockPWMPin` telling the world when they move) and on `bus` (a `busio.I2C` look-alike
hosting simulated MPRLS chips behind simulated TCA9548As). The pneumatic model reads the mock pins' states and feeds
the chips' pressures; everything runs on `clock`, a virtual clock, so an hour of therapy takes seconds. Faults fire
at their virtual time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable

from gpiozero.pins.mock import MockFactory, MockPin

from legsleeve.config.model import HardwareConfig, ValveSpec
from legsleeve.core.clock import VirtualClock
from legsleeve.core.units import MMHG_PER_HPA, mmhg_to_hpa
from legsleeve.hw.drivers import coil_energised_at, valve_open_when
from legsleeve.sim.bus import SimI2C
from legsleeve.sim.chips import SimMPRLS, SimTCA9548A
from legsleeve.sim.faults import MANIFOLD, PUMP_FAULTS, SENSOR_ERRORS, SENSOR_FAULTS, FaultSpec, check_value
from legsleeve.sim.physics import Pneumatics
from legsleeve.sim.pins import SimPin

SAMPLE_HOLD_S = 0.001


class SimClock(VirtualClock):
    """The world's virtual clock: a VirtualClock that makes the world's own check for a due fault or release itself, at
    every advance, before calling the listeners (as the world's listener, registered first, was called before them).

    The bus advances the clock at every transfer, twenty times a tick and more; a listener call for a comparison that
    is almost always false cost about as much as the rest of `advance`. `due_s` is the earliest time anything is due
    (inf: nothing), `on_due(t_s)` what runs once the clock reaches it.
    """

    def __init__(self, start_s: float = 0.0):
        super().__init__(start_s)
        self.due_s = math.inf
        self.on_due: Callable[[float], None] | None = None

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"time cannot run backwards ({seconds} s)")
        self._now_s += seconds
        t_s = self._now_s
        if t_s >= self.due_s and self.on_due is not None:
            self.on_due(t_s)
        if self._listeners:
            for listener in self._listeners:
                listener(t_s)


_SENSOR_ATTR = {
    "sensor-dead": "dead",
    "sensor-stuck": "stuck",
    "sensor-busy": "busy_forever",
    "sensor-integrity": "integrity",
    "sensor-spike": "spikes",
}


class SimWorld:
    def __init__(self, config: HardwareConfig, *, seed: int = 0, faults: Iterable[FaultSpec] = ()):
        pending = sorted(faults, key=lambda f: f.at_s)
        for fault in pending:
            check_value(fault)  # a sensor error's size is refused before anything is built, not when it fires
        self.config = config
        self.clock = SimClock()
        self.pin_factory = MockFactory(pin_class=SimPin)
        sim = config.simulation
        rng = random.Random(seed)

        pf = self.pin_factory
        self._pump_pin = pf.pin(config.pump.pin.name)
        self._inlet_pins = [pf.pin(z.inlet.pin.name) for z in config.zones]
        self._exhaust_pins = [pf.pin(z.exhaust.pin.name) for z in config.zones]

        self._actuator_pins = [self._pump_pin, *self._inlet_pins, *self._exhaust_pins]
        self.physics = Pneumatics(sim, config.zone_names, pump_stall_duty=sim.pump_stall_duty)
        for pin in self._actuator_pins:
            pin.on_change = self._pin_moved
        self._read_pins()

        self.bus = SimI2C(self.clock, frequency_hz=config.i2c.frequency_hz, overhead_s=sim.i2c_overhead_s)
        # one multiplexer per address; the bus ANDs the replies of chips answering at once, as open drain does
        self.muxes = {address: SimTCA9548A(address) for address in config.i2c.mux_addresses}
        for address, mux in self.muxes.items():
            self.bus.attach(address, mux)
        self.chips: dict[str, SimMPRLS] = {}
        sensors = [
            (z.name, z.sensor_channel, self._zone_hpa(i))
            for i, z in enumerate(config.zones)
            if not config.shared_sensor
        ]
        if config.has_manifold_sensor:
            sensors.append((MANIFOLD, config.manifold_channel, self._manifold_hpa))
        for name, channel, source in sensors:
            chip = SimMPRLS(
                name,
                self.clock,
                source,
                conversion_s=sim.conversion_s,
                noise_mmhg=sim.sensor_noise_mmhg,
                offset_mmhg=rng.uniform(-sim.sensor_offset_mmhg, sim.sensor_offset_mmhg),
                rng=random.Random(rng.random()),
                ambient_hpa=sim.ambient_hpa,
            )
            self.chips[name] = chip
            if self.muxes:
                if channel is None:  # hardware.yaml gives every sensor a channel when there is a multiplexer
                    raise ValueError(f"sensor {name}: no multiplexer channel")
                address, local = config.i2c.mux_channel(channel)
                self.muxes[address].attach(local, config.i2c.sensor_address, chip)
            else:
                self.bus.attach(config.i2c.sensor_address, chip)

        self._pending = pending
        self._releases: list[tuple[float, MockPin]] = []  # (when, pin): a pressed button let go
        self.fired: list[tuple[float, FaultSpec]] = []
        self.clock.on_due = self._events  # at every advance of the clock that reaches `clock.due_s`
        self._due()

    # -- the pins as the air sees them -----------------------------------------------------------------------
    def _pin_moved(self) -> None:
        # Called by a SimPin as it changes, between two advances of the clock, so at the clock's time now: bring
        # the air up to now on the old inputs, and take the new ones from here.
        self.physics.advance_to(self.clock.now())
        self._read_pins()

    def _read_pins(self) -> None:
        zones = self.config.zones
        self.physics.set_inputs(
            self._pump_duty(),
            [self._valve_open(pin, z.inlet) for pin, z in zip(self._inlet_pins, zones, strict=False)],
            [self._valve_open(pin, z.exhaust) for pin, z in zip(self._exhaust_pins, zones, strict=False)],
        )

    def _pump_duty(self) -> float:
        pin = self._pump_pin
        if pin.function != "output":
            return 0.0  # a released pin: the gate pull-down holds the MOSFET off
        duty = float(pin.state)
        return duty if self.config.pump.active_high else 1.0 - duty

    @staticmethod
    def _valve_open(pin, spec: ValveSpec) -> bool:
        energised = pin.function == "output" and coil_energised_at(spec.active_high, bool(pin.state))
        return valve_open_when(spec, energised)

    def _zone_hpa(self, index: int) -> Callable[[], float]:
        ambient = self.config.simulation.ambient_hpa
        clock, physics = self.clock, self.physics
        zone = physics.zones[index]

        def source() -> float:
            # self.settle() and physics.zone_mmhg(index), written out: a chip asks this at every conversion
            now = clock.now()
            if now - physics._t >= SAMPLE_HOLD_S:
                physics.advance_to(now)
            return ambient + zone.hose_mmhg / MMHG_PER_HPA  # mmhg_to_hpa

        return source

    def _manifold_hpa(self) -> float:
        self.settle()
        return self.config.simulation.ambient_hpa + mmhg_to_hpa(self.physics.manifold_mmhg)

    # -- time and faults -----------------------------------------------------------------------------------
    def _events(self, t_s: float) -> None:
        while self._releases and self._releases[0][0] <= t_s:
            self._releases.pop(0)[1].drive_high()
        while self._pending and self._pending[0].at_s <= t_s:
            fault = self._pending.pop(0)
            self.physics.advance_to(max(fault.at_s, self.physics.now_s))
            self.inject_now(fault)
        self._due()

    def _due(self) -> None:
        # the earliest fault or release due: the clock calls `_events` once it gets there (one comparison till then;
        # pins need nothing there: a pin that moves brings the air up to its time itself, `_pin_moved`)
        self.clock.due_s = min(
            self._pending[0].at_s if self._pending else math.inf,
            self._releases[0][0] if self._releases else math.inf,
        )

    def schedule(self, fault: FaultSpec) -> None:
        """Add a fault to fire at its time, as if it had been given to the constructor (one whose time has passed
        fires at the next advance of the clock)."""
        check_value(fault)
        self._pending.append(fault)
        self._pending.sort(key=lambda f: f.at_s)
        self._due()

    def settle(self) -> None:
        """Bring the air up to the clock's time (the model is lazy; see physics.py).

        A look within SAMPLE_HOLD_S of the last integration sees that state: the chips of one sweep sample a few
        tenths of a millisecond apart, and air moves well under 0.01 mmHg in that time. Pin changes are always
        integrated to the exact time they happened (`_pin_moved`).
        """
        now = self.clock.now()
        if now - self.physics.now_s >= SAMPLE_HOLD_S:
            self.physics.advance_to(now)

    def connect_panel(self) -> None:
        """Wire the panel as built: the E-stop's normally-closed contact holds its pin low (the firmware's pull-up
        would read a missing or open contact as "stop"); the button rests released."""
        estop = self.config.controls.estop
        if estop is not None:
            self.pin_factory.pin(estop.pin.name).drive_low()

    def _press_button(self, seconds: float) -> None:
        button = self.config.controls.button
        if button is None:
            return
        pin = self.pin_factory.pin(button.pin.name)
        pin.drive_low()
        self._releases.append((self.clock.now() + seconds, pin))
        self._due()

    def inject_now(self, fault: FaultSpec) -> None:
        if fault.name == "estop":
            if self.config.controls.estop is not None:
                self.pin_factory.pin(self.config.controls.estop.pin.name).drive_high()
        elif fault.name == "button":
            self._press_button(0.2)
        elif fault.name == "button-hold":
            self._press_button(2.0)
        elif fault.name in PUMP_FAULTS:
            self.physics.set_pump_fault(fault.name)
        elif fault.name in SENSOR_FAULTS:
            setattr(self.chips[_zone_of(fault)], _SENSOR_ATTR[fault.name], True)
            self.bus.invalidate()  # a dead chip stops answering: the bus's routes change
        elif fault.name in SENSOR_ERRORS:
            self._sensor_error(self.chips[_zone_of(fault)], fault)
        else:
            self.physics.set_zone_fault(self.physics.index(_zone_of(fault)), fault.name)
        self.fired.append((self.clock.now(), fault))

    @staticmethod
    def _sensor_error(chip: SimMPRLS, fault: FaultSpec) -> None:
        """A chip that goes on answering normally, with a plausible reading of the wrong pressure."""
        value = fault.value
        if fault.name == "sensor-frozen":
            chip.freeze(value)
            return
        if value is None:  # check_value refused this before the run
            raise ValueError(f"fault {fault}: {fault.name} needs a value")
        if fault.name == "sensor-offset":
            chip.shift_zero(value)
        elif fault.name == "sensor-drift":
            chip.drift_zero(value)
        elif fault.name == "sensor-gain":
            chip.set_gain(value)
        elif fault.name == "sensor-lag":
            chip.set_lag(value)
        else:
            raise ValueError(fault.name)

    def zone_mmhg(self, name: str) -> float:
        """True pressure at a zone's sensor tee (for tests and plots; the firmware reads the chips)."""
        self.settle()
        return self.physics.zone_mmhg(self.physics.index(name))

    def manifold_mmhg(self) -> float:
        self.settle()
        return self.physics.manifold_mmhg

    def venous_ml(self, name: str) -> float:
        """True blood volume in the veins under a zone, mL (for tests; needs `simulation.limbs`)."""
        self.settle()
        return self.physics.venous_ml(self.physics.index(name))

    def limb_refill_s(self, limb: str) -> float:
        """The limb's true venous refill time, s (what a refill detector should find)."""
        return self.physics.refill_s(limb)


def _zone_of(fault: FaultSpec) -> str:
    """The zone a sensor or zone fault concerns (`parse_fault` refuses one without)."""
    if fault.zone is None:
        raise ValueError(f"fault {fault}: {fault.name} needs a zone")
    return fault.zone
