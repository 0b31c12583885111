"""The circuit of a build, from its config: every driver stage, the panel, the sensor bus and the 12 V supply, with
reference designators and component values, as plain data and as a netlist of text lines.

`legsleeve.hw.schematic` draws it; the netlist travels inside the drawn files, so a test can tell whether a shipped
picture still shows what config/hardware.yaml says. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from legsleeve.config.model import HardwareConfig
from legsleeve.hw import parts
from legsleeve.hw.wiring import MANIFOLD, SCL, SDA, address_pins, header_pin

PIN_3V3, PIN_5V, PIN_GND = 1, 2, 6  # on the 40-pin header (J8) of every Pi since the B+


@dataclass(frozen=True)
class Stage:
    """A low-side driver: the pump's motor or one valve's coil, switched by an N-MOSFET from a GPIO.

    An active-low output (`active_high: false`) is for a driver board whose input is active low; this MOSFET stage
    would be on while the pin rests, so such an output gets a pull-UP and no MOSFET."""

    q: str  # designators: the MOSFET, its gate resistor, its pull-down (or pull-up), its flyback diode
    r_gate: str
    r_pull: str
    d: str
    load: str  # "pump", "ankle inlet valve (NC)"
    gpio: int
    header_pin: int
    active_high: bool
    motor: bool

    @property
    def net(self) -> str:
        return f"GPIO{self.gpio}"

    def line(self) -> str:
        pin = f"{self.net} (pin {self.header_pin})"
        if not self.active_high:
            return (
                f"{self.load}: active low, for a driver board with an active-low input: {pin} via {self.r_gate} "
                f"{parts.GATE_R} to its IN, {self.r_pull} {parts.PULL_DOWN_R} pull-up from IN to 3V3 (a released pin "
                "must mean off); no MOSFET stage"
            )
        load = "motor" if self.motor else "coil"
        return (
            f"{self.load}: its {load} between +12V_SW and {self.q}'s drain; {self.q} {parts.MOSFET} source to GND, "
            f"gate from {pin} via {self.r_gate} {parts.GATE_R}, {self.r_pull} {parts.PULL_DOWN_R} gate to GND; "
            f"{self.d} {parts.FLYBACK} across the {load}: anode on the drain, cathode (band) on +12V_SW"
        )


@dataclass(frozen=True)
class Sensor:
    ref: str
    name: str  # the zone's, or "manifold"
    mux: int | None  # its multiplexer's address; None: straight on the Pi's bus
    channel: int | None  # that multiplexer's channel 0-7
    sensor_channel: int | None  # the config's channel number


@dataclass(frozen=True)
class Mux:
    ref: str
    address: int
    pins: str  # how A0-A2 are tied


@dataclass(frozen=True)
class Input:
    ref: str
    what: str
    gpio: int
    header_pin: int
    pull_up: bool


@dataclass(frozen=True)
class Circuit:
    stages: tuple[Stage, ...]
    muxes: tuple[Mux, ...]
    sensors: tuple[Sensor, ...]
    estop: Input | None
    button: Input | None
    led: tuple[int, int, str, str] | None  # GPIO, header pin, resistor and LED designators
    buzzer: tuple[int, int, str, str, str, str, str] | None  # GPIO, pin, base R, base pull-down, NPN, diode, buzzer
    supply: parts.Supply
    sensor_address: int

    def netlist(self) -> list[str]:
        """Every connection of the build, one line per part or group: what the drawing must show."""
        out = [
            f"J8 Raspberry Pi header: 3V3 pin {PIN_3V3}, 5V pin {PIN_5V}, GND pin {PIN_GND}, SDA GPIO{SDA} (pin "
            f"{header_pin(SDA)}), SCL GPIO{SCL} (pin {header_pin(SCL)}); the Pi on its own 5 V supply",
            f"F1 T{self.supply.fuse_a:g}A slow-blow fuse from the 12 V supply's + to S1A",
            "S1A E-stop pole 1 (normally closed): F1 to +12V_SW, which feeds every coil and the pump: pressed, every "
            "valve is unpowered (inlets closed, exhausts open) and the pump stops, whatever the Pi does",
            "GND common: the Pi's GND, the 12 V supply's -, every MOSFET source, every sensor's GND",
        ]
        out += [s.line() for s in self.stages]
        for inp in (self.estop, self.button):
            if inp is not None:
                pull = ", internal pull-up" if inp.pull_up else ", external 10 kΩ pull-up to 3V3"
                out.append(f"{inp.ref} {inp.what}: GPIO{inp.gpio} (pin {inp.header_pin}) to GND{pull}")
        if self.led is not None:
            gpio, pin, r, led = self.led
            out.append(f"{r} {parts.LED_R} from GPIO{gpio} (pin {pin}) to {led} status LED anode; its cathode to GND")
        if self.buzzer is not None:
            gpio, pin, rb, rp, q, d, bz = self.buzzer
            out.append(
                f"{bz} 5 V active buzzer: + on 5V (pin {PIN_5V}), - to {q} {parts.BUZZER_NPN} collector; emitter to "
                f"GND; base from GPIO{gpio} (pin {pin}) via {rb} {parts.BUZZER_BASE_R}, {rp} {parts.PULL_DOWN_R} base "
                f"to GND; {d} {parts.BUZZER_DIODE} across {bz}, cathode (band) on 5V"
            )
        for m in self.muxes:
            on = [s for s in self.sensors if s.mux == m.address]
            channels = ", ".join(f"SD{s.channel}/SC{s.channel} {s.ref} {s.name}" for s in on) or "no sensor"
            out.append(
                f"{m.ref} TCA9548A at 0x{m.address:02x}: VIN 3V3, GND, SDA GPIO{SDA}, SCL GPIO{SCL}; {m.pins}; "
                f"{channels}"
            )
        for s in self.sensors:
            bus = (
                f"SDA/SCL from SD{s.channel}/SC{s.channel} of the TCA9548A at 0x{s.mux:02x}"
                if s.mux is not None
                else f"SDA GPIO{SDA}, SCL GPIO{SCL}: straight on the Pi's bus, no multiplexer"
            )
            out.append(f"{s.ref} MPRLS {s.name} at 0x{self.sensor_address:02x}: VIN 3V3, GND, {bus}")
        return out


def circuit(cfg: HardwareConfig) -> Circuit:
    """The circuit `cfg` describes. Designators count in drawing order: the pump's stage first, then each zone's
    inlet and exhaust, then the panel; U1.. the multiplexers, then the sensors."""
    q = r = d = 0

    def next_stage(load: str, gpio: int, active_high: bool, motor: bool) -> Stage:
        nonlocal q, r, d
        q, r, d = q + 1, r + 2, d + 1
        return Stage(f"Q{q}", f"R{r - 1}", f"R{r}", f"D{d}", load, gpio, header_pin(gpio), active_high, motor)

    stages = [next_stage("pump", cfg.pump.pin.gpio, cfg.pump.active_high, True)]
    for z in cfg.zones:
        stages.append(next_stage(f"{z.name} inlet valve (NC)", z.inlet.pin.gpio, z.inlet.active_high, False))
        stages.append(next_stage(f"{z.name} exhaust valve (NO)", z.exhaust.pin.gpio, z.exhaust.active_high, False))
    c = cfg.controls
    estop = (
        Input("S1B", "E-stop pole 2 (normally closed)", c.estop.pin.gpio, header_pin(c.estop.pin.gpio), c.estop.pull_up)
        if c.estop
        else None
    )
    button = (
        Input("S2", "start/stop button (momentary)", c.button.pin.gpio, header_pin(c.button.pin.gpio), c.button.pull_up)
        if c.button
        else None
    )
    led = None
    if c.led:
        r += 1
        led = (c.led.pin.gpio, header_pin(c.led.pin.gpio), f"R{r}", "LED1")
    buzzer = None
    if c.buzzer:
        r, q, d = r + 2, q + 1, d + 1
        buzzer = (c.buzzer.pin.gpio, header_pin(c.buzzer.pin.gpio), f"R{r - 1}", f"R{r}", f"Q{q}", f"D{d}", "BZ1")
    i2c = cfg.i2c
    muxes = tuple(Mux(f"U{k + 1}", a, address_pins(a)) for k, a in enumerate(i2c.mux_addresses))
    named = [(z.name, z.sensor_channel) for z in cfg.zones if z.sensor_channel is not None]
    if cfg.manifold_channel is not None:
        named.append((MANIFOLD, cfg.manifold_channel))
    sensors = []
    for k, (name, channel) in enumerate(named):
        ref = f"U{len(muxes) + k + 1}"
        if i2c.mux_addresses and channel is not None:
            address, local = i2c.mux_channel(channel)
            sensors.append(Sensor(ref, name, address, local, channel))
        else:
            sensors.append(Sensor(ref, name, None, None, channel))
    return Circuit(
        tuple(stages),
        muxes,
        tuple(sensors),
        estop,
        button,
        led,
        buzzer,
        parts.supply(cfg),
        i2c.sensor_address,
    )
