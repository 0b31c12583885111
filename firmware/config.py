"""The hardware config (`hardware.yaml`): load, validate, and hold it in frozen dataclasses.

Hard ceilings (SAFE-3) are constants here; the config may only tighten them. Every problem is reported with
file, line and key path, and nothing is built from a config that has any.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from legsleeve.yamlconf import REQUIRED, Problems, Section, YMap, load_document

# --- Hard ceilings (SAFE-3). Config values beyond these are errors, never clamped silently. ---------------
ABS_MAX_MMHG = 150.0  # the mechanical relief valve's setting; tourniquets work above 200 mmHg (DESIGN §3)
MAX_DEBOUNCE_S = 0.1  # SAFE-4: over-pressure must trip within 100 ms of persisting
MAX_VENT_TIMEOUT_S = 30.0  # SAFE-8: a sleeve that has not vented by then has a stuck valve
MAX_FILL_TIMEOUT_S = 120.0  # SAFE-5: even a thigh chamber on a weak pump fills in well under two minutes
MAX_SENSOR_DEADLINE_S = 0.05  # one MPRLS conversion is ~5 ms; 50 ms is already ten of them
MAX_STALE_S = 0.5  # SAFE-9: a pressure older than this is not a pressure
MIN_TICK_HZ, MAX_TICK_HZ = 10, 200
VENTED_MMHG = 5.0  # SAFE-8: "vented" means below this (DESIGN §4)
MAX_ZONES = 8  # one TCA9548A has eight channels
REVERSE_GRADIENT_MMHG = 10.0  # SAFE-10: a reversal of up to 10 mmHg is reported harmless (DESIGN §3)
MAX_REVERSE_GRADIENT_S = 1.0  # SAFE-10: beyond it for more than 1 s trips
MAX_SESSION_MIN = 120.0  # SAFE-10: no session, however configured, runs longer
MAX_ABOVE_VENOUS_S = 300.0  # SAFE-10: no zone stays squeezed above venous pressure for longer
MAX_SILENCE_S = 120.0  # an alarm silenced by a person sounds again after at most this

# Plausible ambient pressure for the zero taken at start: sea-level storms (~950 hPa) down to ~3,000 m
# altitude (~700 hPa) and up to the highest recorded sea-level pressure (~1,084 hPa), with some margin.
AMBIENT_MIN_HPA, AMBIENT_MAX_HPA = 650.0, 1100.0

# The 40-pin header is the same on every Pi since the B+; gpiozero resolves names against it.
_HEADER_REVISION = 0xA02082
_I2C_PINS = {2, 3}  # SDA1/SCL1 carry the sensor bus
_BOOT_PULLED_UP = range(0, 9)  # GPIO 0-8 are pulled up at boot: an actuator there would switch on (DESIGN §1)

VALVE_FORMS = ("normally-open", "normally-closed")


@dataclass(frozen=True)
class PinSpec:
    """A GPIO as the user wrote it (`name`, for gpiozero) and its BCM number (`gpio`)."""

    name: str
    gpio: int


@dataclass(frozen=True)
class ValveSpec:
    pin: PinSpec
    normally_open: bool
    active_high: bool


@dataclass(frozen=True)
class PumpSpec:
    pin: PinSpec
    pwm_hz: float
    min_duty: float
    active_high: bool


@dataclass(frozen=True)
class ZoneSpec:
    name: str
    index: int  # position distal (0) to proximal
    limb: str
    inlet: ValveSpec
    exhaust: ValveSpec
    sensor_channel: int | None


@dataclass(frozen=True)
class I2CSpec:
    bus: int
    mux_address: int | None
    sensor_address: int
    frequency_hz: int
    deadline_s: float


@dataclass(frozen=True)
class InputSpec:
    pin: PinSpec
    pull_up: bool


@dataclass(frozen=True)
class OutputSpec:
    pin: PinSpec
    active_high: bool


@dataclass(frozen=True)
class ControlsSpec:
    button: InputSpec | None = None
    estop: InputSpec | None = None
    led: OutputSpec | None = None
    buzzer: OutputSpec | None = None


@dataclass(frozen=True)
class Limits:
    """Safety thresholds. Each default is argued for in config/hardware.yaml and docs/config-reference.md."""

    max_mmhg: float = 90.0
    trip_margin_mmhg: float = 10.0
    overpressure_debounce_s: float = 0.1
    vent_timeout_s: float = 15.0
    fill_timeout_s: float = 40.0
    min_fill_rate_mmhg_s: float = 1.0
    fill_rate_window_s: float = 3.0
    sensor_stale_s: float = 0.2
    sensor_stuck_s: float = 1.0
    max_zero_spread_mmhg: float = 25.0
    occlusion_rate_mmhg_s: float = 60.0
    leak_rate_mmhg_s: float = 1.0
    leak_window_s: float = 2.0
    max_topups: int = 3
    topup_window_s: float = 10.0
    max_drop_mmhg: float = 8.0
    vent_check_s: float = 3.0
    reverse_gradient_mmhg: float = REVERSE_GRADIENT_MMHG
    reverse_gradient_s: float = MAX_REVERSE_GRADIENT_S
    venous_safe_mmhg: float = 20.0
    max_above_venous_s: float = 120.0
    session_max_min: float = 60.0
    pump_off_rise_mmhg: float = 10.0
    alarm_silence_s: float = MAX_SILENCE_S


@dataclass(frozen=True)
class SelfTestSpec:
    """The start-up check of each zone's valves and hoses (see firmware/selftest.py)."""

    valves: bool = True
    fill_mmhg: float = 8.0
    crosstalk_mmhg: float = 3.0


@dataclass(frozen=True)
class SimZoneSpec:
    volume_l: float
    compliance_l_per_mmhg: float
    leak_lpm_per_mmhg: float


@dataclass(frozen=True)
class SimSpec:
    """Parameters of the pneumatic model; see firmware/sim/physics.py for the equations."""

    ambient_hpa: float = 1013.25
    pump_free_flow_lpm: float = 3.0
    pump_deadhead_mmhg: float = 300.0
    pump_stall_duty: float = 0.6
    relief_mmhg: float = 150.0
    relief_lpm_per_mmhg: float = 1.0
    manifold_volume_l: float = 0.02
    inlet_lpm_per_mmhg: float = 0.1
    exhaust_lpm_per_mmhg: float = 0.2
    sensor_noise_mmhg: float = 0.08
    sensor_offset_mmhg: float = 3.0
    conversion_s: float = 0.005
    i2c_overhead_s: float = 0.0001
    zones: dict[str, SimZoneSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class HardwareConfig:
    path: Path
    tick_hz: float
    pump: PumpSpec
    zones: tuple[ZoneSpec, ...]
    manifold_channel: int | None
    i2c: I2CSpec
    controls: ControlsSpec
    limits: Limits
    simulation: SimSpec
    selftest: SelfTestSpec = SelfTestSpec()
    warnings: tuple[str, ...] = ()

    @property
    def zone_names(self) -> tuple[str, ...]:
        return tuple(z.name for z in self.zones)

    def zone(self, name: str) -> ZoneSpec:
        for z in self.zones:
            if z.name == name:
                return z
        raise KeyError(name)


# --- Loading ------------------------------------------------------------------------------------------------


def default_config_dir() -> Path:
    """$LEGSLEEVE_CONFIG, else ./config when it holds a hardware.yaml, else /etc/legsleeve."""
    env = os.environ.get("LEGSLEEVE_CONFIG")
    if env:
        return Path(env)
    local = Path("config")
    if (local / "hardware.yaml").is_file():
        return local
    return Path("/etc/legsleeve")


def load_hardware(config_dir: Path | str) -> HardwareConfig:
    """Load and validate `<config_dir>/hardware.yaml`. Raises ConfigError listing every problem."""
    path = Path(config_dir) / "hardware.yaml"
    doc = load_document(path)
    problems = Problems()
    cfg = _read_hardware(doc, path, problems)
    problems.raise_if_any()
    assert cfg is not None
    return cfg


class _Pins:
    """Resolves pin names with gpiozero's own board data and catches duplicates across the whole file."""

    def __init__(self, problems: Problems):
        from gpiozero.pins.pi import PiBoardInfo  # pure data: no GPIO access

        self._board = PiBoardInfo.from_revision(_HEADER_REVISION)
        self._seen: dict[int, str] = {}
        self.problems = problems

    def read(self, sec: Section, key: str, *, actuator: bool, required: bool = True) -> PinSpec | None:
        raw = sec.raw(key) if required else sec.raw(key, None)
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            sec.error(key, f"must be a GPIO number or a gpiozero pin name such as GPIO17, got {raw!r}")
            return None
        found = [info for header, info in self._board.find_pin(raw) if header.name == "J8"]
        gpios = [info for info in found if info.name.startswith("GPIO")]
        if not gpios:
            what = f" (that is {found[0].name}, not a GPIO)" if found else ""
            sec.error(key, f"{raw!r} is not a GPIO on the 40-pin header{what}; use BCM numbers such as GPIO17")
            return None
        gpio = int(gpios[0].name[4:])
        where = sec.key_path(key)
        if gpio in _I2C_PINS:
            sec.error(key, f"GPIO{gpio} carries the I2C bus to the sensors (SDA/SCL); pick another pin")
            return None
        if gpio in self._seen:
            sec.error(key, f"GPIO{gpio} is already used by {self._seen[gpio]}")
            return None
        self._seen[gpio] = where
        if actuator and gpio in _BOOT_PULLED_UP:
            sec.warn(key, f"GPIO{gpio} is pulled up at boot, so this actuator may switch on before the firmware "
                          "starts; prefer GPIO 9-27 (DESIGN.md §1)")
        return PinSpec(name=str(raw) if isinstance(raw, str) else f"GPIO{raw}", gpio=gpio)


def _read_hardware(doc: YMap, path: Path, problems: Problems) -> HardwareConfig | None:
    top = Section(doc, path, "", problems)
    pins = _Pins(problems)

    tick_hz = top.number("tick_hz", 50.0, minimum=MIN_TICK_HZ, maximum=MAX_TICK_HZ, unit="Hz")

    pump = None
    if (sec := top.section("pump")) is not None:
        pin = pins.read(sec, "pin", actuator=True)
        pwm_hz = sec.number("pwm_hz", 100.0, minimum=10.0, maximum=20000.0, unit="Hz")
        min_duty = sec.number("min_duty", 0.0, minimum=0.0, maximum=1.0)
        active_high = sec.boolean("active_high", True)
        sec.finish()
        if None not in (pin, pwm_hz, min_duty, active_high):
            pump = PumpSpec(pin, pwm_hz, min_duty, active_high)

    i2c = _read_i2c(top.section("i2c"))
    zones = _read_zones(top, pins, problems, i2c)
    manifold_channel = None
    if (sec := top.section("manifold_sensor", optional=True)) is not None:
        manifold_channel = sec.integer("channel", minimum=0, maximum=7)
        sec.finish()
        if manifold_channel is not None:
            _check_channel_free(sec, "channel", manifold_channel, zones)
    controls = _read_controls(top.section("controls", optional=True), pins)
    limits = _read_limits(top.section("limits"))
    selftest = _read_selftest(top.section("selftest", optional=True))
    sim = _read_simulation(top.section("simulation"), zones)
    top.finish()

    if problems.errors or None in (tick_hz, pump, i2c, limits, sim, selftest) or not zones:
        return None
    return HardwareConfig(
        path=path,
        tick_hz=tick_hz,
        pump=pump,
        zones=tuple(zones),
        manifold_channel=manifold_channel,
        i2c=i2c,
        controls=controls,
        limits=limits,
        simulation=sim,
        selftest=selftest,
        warnings=tuple(problems.warnings),
    )


def _read_i2c(sec: Section | None) -> I2CSpec | None:
    if sec is None:
        return None
    bus = sec.integer("bus", 1, minimum=1, maximum=1)  # the header's I2C1; other buses are not supported yet
    if "mux_address" in sec.data and sec.data["mux_address"] is None:
        mux = sec.raw("mux_address")  # explicitly no multiplexer: a single sensor on the bus
    else:
        mux = sec.integer("mux_address", 0x70, minimum=0x70, maximum=0x77)
    addr = sec.integer("sensor_address", 0x18, minimum=0x08, maximum=0x77)
    freq = sec.integer("frequency_hz", 400_000, minimum=10_000, maximum=1_000_000)
    deadline = sec.number("deadline_s", 0.02, above=0.0, maximum=MAX_SENSOR_DEADLINE_S, unit="s")
    sec.finish()
    if None in (bus, addr, freq, deadline):
        return None
    return I2CSpec(bus=bus, mux_address=mux, sensor_address=addr, frequency_hz=freq, deadline_s=deadline)


def _read_valve(zsec: Section, key: str, pins: _Pins, expect_form: str) -> ValveSpec | None:
    vsec = zsec.section(key)
    if vsec is None:
        return None
    pin = pins.read(vsec, "pin", actuator=True)
    form = vsec.string("form", choices=VALVE_FORMS)
    active_high = vsec.boolean("active_high", True)
    vsec.finish()
    if form is not None and form != expect_form:
        # The safe state relies on unpowered = vented: NC inlets and NO exhausts (DESIGN §1).
        vsec.error("form", f"must be {expect_form}: an unpowered {key} valve must leave the sleeve vented "
                           "(DESIGN.md §1)")
        return None
    if None in (pin, form, active_high):
        return None
    return ValveSpec(pin=pin, normally_open=(form == "normally-open"), active_high=active_high)


def _read_zones(top: Section, pins: _Pins, problems: Problems, i2c: I2CSpec | None) -> list[ZoneSpec]:
    zones: list[ZoneSpec] = []
    names: dict[str, str] = {}
    channels: dict[int, str] = {}
    count = 0
    for index, item, path, line in top.items("zones"):
        count += 1
        zsec = top.item_section(item, path, line)
        if zsec is None:
            continue
        name = zsec.string("name")
        if name is not None:
            if not name.replace("_", "").replace("-", "").isalnum() or name == "manifold":
                zsec.error("name", f"{name!r}: use letters, digits, - and _ (and not 'manifold')")
                name = None
            elif name in names:
                zsec.error("name", f"zone {name!r} is already defined at {names[name]}")
                name = None
            else:
                names[name] = path
        limb = zsec.string("limb", "leg")
        inlet = _read_valve(zsec, "inlet", pins, "normally-closed")
        exhaust = _read_valve(zsec, "exhaust", pins, "normally-open")
        channel = zsec.integer("sensor_channel", minimum=0, maximum=7)
        if channel is not None:
            if channel in channels:
                zsec.error("sensor_channel", f"channel {channel} is already used by {channels[channel]}")
                channel = None
            else:
                channels[channel] = path
        zsec.finish()
        if None not in (name, limb, inlet, exhaust, channel):
            zones.append(ZoneSpec(name, index, limb, inlet, exhaust, channel))
    if count > MAX_ZONES:
        top.error("zones", f"at most {MAX_ZONES} zones (one multiplexer channel each), got {count}")
    if count > 1 and i2c is not None and i2c.mux_address is None:
        top.error("zones", "several zones need a TCA9548A multiplexer: set i2c.mux_address (sensors share 0x18)")
    return zones


def _check_channel_free(sec: Section, key: str, channel: int, zones: list[ZoneSpec]) -> None:
    for z in zones:
        if z.sensor_channel == channel:
            sec.error(key, f"channel {channel} is already used by zone {z.name!r}")


def _read_controls(sec: Section | None, pins: _Pins) -> ControlsSpec:
    if sec is None:
        return ControlsSpec()
    found = {}
    for key in ("button", "estop"):
        if (isec := sec.section(key, optional=True)) is not None:
            pin = pins.read(isec, "pin", actuator=False)
            pull_up = isec.boolean("pull_up", True)
            isec.finish()
            if pin is not None and pull_up is not None:
                found[key] = InputSpec(pin, pull_up)
    for key in ("led", "buzzer"):
        if (osec := sec.section(key, optional=True)) is not None:
            pin = pins.read(osec, "pin", actuator=True)
            active_high = osec.boolean("active_high", True)
            osec.finish()
            if pin is not None and active_high is not None:
                found[key] = OutputSpec(pin, active_high)
    sec.finish()
    return ControlsSpec(**found)


def _read_limits(sec: Section | None) -> Limits | None:
    if sec is None:
        return None
    d = Limits()
    values = dict(
        max_mmhg=sec.number("max_mmhg", above=0.0, maximum=ABS_MAX_MMHG, unit="mmHg"),
        trip_margin_mmhg=sec.number("trip_margin_mmhg", d.trip_margin_mmhg, above=0.0, maximum=30.0, unit="mmHg"),
        overpressure_debounce_s=sec.number(
            "overpressure_debounce_s", d.overpressure_debounce_s, minimum=0.0, maximum=MAX_DEBOUNCE_S, unit="s"),
        vent_timeout_s=sec.number("vent_timeout_s", d.vent_timeout_s, above=0.0, maximum=MAX_VENT_TIMEOUT_S,
                                  unit="s"),
        fill_timeout_s=sec.number("fill_timeout_s", d.fill_timeout_s, above=0.0, maximum=MAX_FILL_TIMEOUT_S,
                                  unit="s"),
        min_fill_rate_mmhg_s=sec.number("min_fill_rate_mmhg_s", d.min_fill_rate_mmhg_s, above=0.0, maximum=50.0,
                                        unit="mmHg/s"),
        fill_rate_window_s=sec.number("fill_rate_window_s", d.fill_rate_window_s, minimum=0.5, maximum=10.0,
                                      unit="s"),
        sensor_stale_s=sec.number("sensor_stale_s", d.sensor_stale_s, above=0.0, maximum=MAX_STALE_S, unit="s"),
        sensor_stuck_s=sec.number("sensor_stuck_s", d.sensor_stuck_s, minimum=0.2, maximum=5.0, unit="s"),
        max_zero_spread_mmhg=sec.number("max_zero_spread_mmhg", d.max_zero_spread_mmhg, above=0.0, maximum=40.0,
                                        unit="mmHg"),
        occlusion_rate_mmhg_s=sec.number("occlusion_rate_mmhg_s", d.occlusion_rate_mmhg_s, minimum=10.0,
                                         maximum=500.0, unit="mmHg/s"),
        leak_rate_mmhg_s=sec.number("leak_rate_mmhg_s", d.leak_rate_mmhg_s, above=0.0, maximum=10.0, unit="mmHg/s"),
        leak_window_s=sec.number("leak_window_s", d.leak_window_s, minimum=0.5, maximum=10.0, unit="s"),
        max_topups=sec.integer("max_topups", d.max_topups, minimum=1, maximum=20),
        topup_window_s=sec.number("topup_window_s", d.topup_window_s, minimum=2.0, maximum=120.0, unit="s"),
        max_drop_mmhg=sec.number("max_drop_mmhg", d.max_drop_mmhg, minimum=3.0, maximum=30.0, unit="mmHg"),
        vent_check_s=sec.number("vent_check_s", d.vent_check_s, minimum=0.5, maximum=MAX_VENT_TIMEOUT_S, unit="s"),
        reverse_gradient_mmhg=sec.number("reverse_gradient_mmhg", d.reverse_gradient_mmhg, minimum=0.0,
                                         maximum=REVERSE_GRADIENT_MMHG, unit="mmHg"),
        reverse_gradient_s=sec.number("reverse_gradient_s", d.reverse_gradient_s, above=0.0,
                                      maximum=MAX_REVERSE_GRADIENT_S, unit="s"),
        venous_safe_mmhg=sec.number("venous_safe_mmhg", d.venous_safe_mmhg, minimum=5.0, maximum=60.0, unit="mmHg"),
        max_above_venous_s=sec.number("max_above_venous_s", d.max_above_venous_s, above=0.0,
                                      maximum=MAX_ABOVE_VENOUS_S, unit="s"),
        session_max_min=sec.number("session_max_min", d.session_max_min, above=0.0, maximum=MAX_SESSION_MIN,
                                   unit="min"),
        pump_off_rise_mmhg=sec.number("pump_off_rise_mmhg", d.pump_off_rise_mmhg, minimum=2.0, maximum=50.0,
                                      unit="mmHg"),
        alarm_silence_s=sec.number("alarm_silence_s", d.alarm_silence_s, above=0.0, maximum=MAX_SILENCE_S, unit="s"),
    )
    sec.finish()
    if None in values.values():
        return None
    return Limits(**values)


def _read_selftest(sec: Section | None) -> SelfTestSpec | None:
    d = SelfTestSpec()
    if sec is None:
        return d
    valves = sec.boolean("valves", d.valves)
    fill = sec.number("fill_mmhg", d.fill_mmhg, minimum=4.0, maximum=20.0, unit="mmHg")
    crosstalk = sec.number("crosstalk_mmhg", d.crosstalk_mmhg, minimum=1.0, maximum=10.0, unit="mmHg")
    sec.finish()
    if None in (valves, fill, crosstalk):
        return None
    return SelfTestSpec(valves, fill, crosstalk)


def _read_simulation(sec: Section | None, zones: list[ZoneSpec]) -> SimSpec | None:
    if sec is None:
        return None
    d = SimSpec()
    num = sec.number
    values = dict(
        ambient_hpa=num("ambient_hpa", d.ambient_hpa, minimum=AMBIENT_MIN_HPA, maximum=AMBIENT_MAX_HPA, unit="hPa"),
        pump_free_flow_lpm=num("pump_free_flow_lpm", d.pump_free_flow_lpm, above=0.0, maximum=20.0, unit="L/min"),
        pump_deadhead_mmhg=num("pump_deadhead_mmhg", d.pump_deadhead_mmhg, above=0.0, maximum=1000.0, unit="mmHg"),
        pump_stall_duty=num("pump_stall_duty", d.pump_stall_duty, minimum=0.0, maximum=1.0),
        relief_mmhg=num("relief_mmhg", d.relief_mmhg, above=0.0, maximum=300.0, unit="mmHg"),
        relief_lpm_per_mmhg=num("relief_lpm_per_mmhg", d.relief_lpm_per_mmhg, minimum=0.0, maximum=100.0),
        manifold_volume_l=num("manifold_volume_l", d.manifold_volume_l, above=0.0, maximum=1.0, unit="L"),
        inlet_lpm_per_mmhg=num("inlet_lpm_per_mmhg", d.inlet_lpm_per_mmhg, above=0.0, maximum=10.0),
        exhaust_lpm_per_mmhg=num("exhaust_lpm_per_mmhg", d.exhaust_lpm_per_mmhg, above=0.0, maximum=10.0),
        sensor_noise_mmhg=num("sensor_noise_mmhg", d.sensor_noise_mmhg, minimum=0.0, maximum=5.0, unit="mmHg"),
        sensor_offset_mmhg=num("sensor_offset_mmhg", d.sensor_offset_mmhg, minimum=0.0, maximum=20.0, unit="mmHg"),
        conversion_s=num("conversion_s", d.conversion_s, above=0.0, maximum=0.02, unit="s"),
        i2c_overhead_s=num("i2c_overhead_s", d.i2c_overhead_s, minimum=0.0, maximum=0.01, unit="s"),
    )
    zone_defaults = sec.section("zone_defaults")
    base = None
    if zone_defaults is not None:
        base = _read_sim_zone(zone_defaults, None)
        zone_defaults.finish()
    per_zone: dict[str, SimZoneSpec] = {}
    overrides = sec.section("zones", optional=True)
    if overrides is not None:
        known = {z.name for z in zones}
        for name in overrides.data:
            zsec = overrides.section(name)
            if name not in known:
                overrides.error(name, f"no zone named {name!r} (zones: {', '.join(sorted(known))})")
                continue
            if zsec is not None and base is not None:
                per_zone[name] = _read_sim_zone(zsec, base)
                zsec.finish()
    sec.finish()
    if None in values.values() or base is None:
        return None
    if values["relief_mmhg"] is not None and values["relief_mmhg"] > ABS_MAX_MMHG:
        sec.warn("relief_mmhg", f"above the {ABS_MAX_MMHG:g} mmHg the reference relief valve is set to")
    return SimSpec(**values, zones={z.name: per_zone.get(z.name, base) for z in zones})


def _read_sim_zone(sec: Section, base: SimZoneSpec | None) -> SimZoneSpec | None:
    """One zone's bladder; `base` (zone_defaults) supplies what a per-zone override leaves out."""

    def default(attr: str):
        return REQUIRED if base is None else getattr(base, attr)

    volume = sec.number("volume_l", default("volume_l"), above=0.0, maximum=5.0, unit="L")
    compliance = sec.number("compliance_l_per_mmhg", default("compliance_l_per_mmhg"), minimum=0.0, maximum=0.1)
    leak = sec.number("leak_lpm_per_mmhg", default("leak_lpm_per_mmhg"), minimum=0.0, maximum=1.0)
    if None in (volume, compliance, leak):
        return None
    return SimZoneSpec(volume, compliance, leak)
