"""Read and validate `hardware.yaml` into the frozen model of `legsleeve.config.model`.

Every problem is reported with file, line and key path, and nothing is built from a config that has any. The hard
ceilings (SAFE-3) live in `legsleeve.core.limits`; the config may only tighten them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from legsleeve.config.model import (
    HEADER_REVISION,
    MAX_MUXES,
    MUX_CHANNELS,
    ControlsSpec,
    HardwareConfig,
    I2CSpec,
    InputSpec,
    OutputSpec,
    PinSpec,
    PumpSpec,
    SelfTestSpec,
    SimLimbSpec,
    SimSpec,
    SimZoneSpec,
    ValveSpec,
    ZoneSpec,
)
from legsleeve.config.yamlconf import REQUIRED, Problems, Section, YMap, load_document
from legsleeve.core.limits import (
    ABS_MAX_MMHG,
    AMBIENT_MAX_HPA,
    AMBIENT_MIN_HPA,
    MAX_ABOVE_VENOUS_S,
    MAX_DEBOUNCE_S,
    MAX_FILL_TIMEOUT_S,
    MAX_PLAUSIBILITY_STEP_MMHG,
    MAX_PLAUSIBILITY_TOL_MMHG,
    MAX_REVERSE_GRADIENT_S,
    MAX_SENSOR_DEADLINE_S,
    MAX_SENSOR_NOISE_MMHG,
    MAX_SESSION_MIN,
    MAX_SILENCE_S,
    MAX_STALE_S,
    MAX_TICK_HZ,
    MAX_VENT_TIMEOUT_S,
    MAX_ZONES,
    MAX_ZONES_PER_LIMB,
    MIN_TICK_HZ,
    NO_MANIFOLD_MAX_MMHG,
    REVERSE_GRADIENT_MMHG,
    Limits,
    relief_mmhg,
)

_I2C1_PINS = {2, 3}  # SDA1/SCL1 carry the sensor bus when it is i2c.bus 1 (the header's I2C1)
MAX_I2C_BUS = 255  # Linux numbers its I2C adapters from 0; an overlay's bus (dtoverlay=i2c-gpio, i2c3...) is one
MAX_GPIO_CHIP = 63
MUX_ADDRESSES = range(0x70, 0x78)  # a TCA9548A's, set by its A0-A2 pins
_ORDINAL = ("first", "second", "third")
_NUMBER = ("none", "one", "two", "three")
# GPIO 0-8 are pulled up at boot: an actuator there would switch on (safety-requirements §B1)
_BOOT_PULLED_UP = range(9)

VALVE_FORMS = ("normally-open", "normally-closed")
RELIEF_TOLERANCE_MMHG = 10.0  # a relief valve further than this from its setting (max_mmhg + 20) is warned of


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


def load_hardware(config_dir: Path | str, *, calibrated: bool = True) -> HardwareConfig:
    """Load and validate `<config_dir>/hardware.yaml`, and with it `calibration.yaml` where there is one (unless
    `calibrated` is false): the limits in force are then derived from what calibration measured. Raises ConfigError
    listing every problem."""
    path = Path(config_dir) / "hardware.yaml"
    doc = load_document(path)
    problems = Problems()
    cfg = _read_hardware(doc, path, problems)
    problems.raise_if_any()
    assert cfg is not None
    if not calibrated:
        return cfg
    from legsleeve.config.calibration import derive_limits, load_calibration

    cal = load_calibration(
        config_dir,
        cfg.zone_names,
        manifold_sensor=cfg.has_manifold_sensor,
        min_duty=cfg.pump.min_duty,
        base=cfg.simulation,
    )
    if cal is None:
        return cfg
    limits, sources = derive_limits(cfg.limits, cal)
    return dataclasses.replace(
        cfg, limits=limits, configured=cfg.limits, calibration=cal, limit_sources=tuple(sources.items())
    )


class _Pins:
    """Resolves pin names with gpiozero's own board data and catches duplicates across the whole file."""

    def __init__(self, problems: Problems, bus_pins: set[int]):
        from gpiozero.pins.pi import PiBoardInfo  # pure data: no GPIO access

        self._board = PiBoardInfo.from_revision(HEADER_REVISION)
        self._seen: dict[int, str] = {}
        self._bus_pins = bus_pins
        self.problems = problems

    def read(self, sec: Section, key: str, *, actuator: bool, required: bool = True) -> PinSpec | None:
        raw = sec.raw(key) if required else sec.raw(key, None)
        if raw is None:
            if required and key in sec.data:
                # `pin:` with nothing after it: an error, never a device quietly left out (an E-stop, say)
                sec.error(key, "must be a GPIO number or a gpiozero pin name such as GPIO17, got nothing")
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
        if gpio in self._bus_pins:
            sec.error(key, f"GPIO{gpio} carries the I2C bus to the sensors (SDA/SCL); pick another pin")
            return None
        if gpio in self._seen:
            sec.error(key, f"GPIO{gpio} is already used by {self._seen[gpio]}")
            return None
        self._seen[gpio] = where
        if actuator and gpio in _BOOT_PULLED_UP:
            sec.warn(
                key,
                f"GPIO{gpio} is pulled up at boot, so this actuator may switch on before the firmware "
                "starts; prefer GPIO 9-27 (docs/safety-requirements.md §B1)",
            )
        return PinSpec(name=str(raw) if isinstance(raw, str) else f"GPIO{raw}", gpio=gpio)


def _read_hardware(doc: YMap, path: Path, problems: Problems) -> HardwareConfig | None:
    top = Section(doc, path, "", problems)
    i2c_sec = top.section("i2c")
    i2c = _read_i2c(i2c_sec)
    # GPIO2/3 are the bus's only when it is the header's I2C1; another bus's pins are its overlay's
    pins = _Pins(problems, _I2C1_PINS if i2c is None or i2c.bus == 1 else set())

    tick_hz = top.number("tick_hz", 50.0, minimum=MIN_TICK_HZ, maximum=MAX_TICK_HZ, unit="Hz")
    gpio_chip = _read_gpio_chip(top)

    pump = None
    if (sec := top.section("pump")) is not None:
        pin = pins.read(sec, "pin", actuator=True)
        pwm_hz = sec.number("pwm_hz", 100.0, minimum=10.0, maximum=20000.0, unit="Hz")
        min_duty = sec.number("min_duty", 0.0, minimum=0.0, maximum=1.0)
        active_high = sec.boolean("active_high", True)
        sec.finish()
        if pin is not None and pwm_hz is not None and min_duty is not None and active_high is not None:
            pump = PumpSpec(pin, pwm_hz, min_duty, active_high)

    zones = _read_zones(top, pins, problems, i2c)
    manifold_channel = None
    shared = bool(zones) and all(z.sensor_channel is None for z in zones)  # one sensor, on the manifold, for all
    if (sec := top.section("manifold_sensor", optional=True)) is not None:
        if shared and i2c is not None and not i2c.mux_addresses and not sec.has("channel"):
            manifold_channel = 0  # the build's one sensor, straight on the bus: no channel to choose
        else:
            manifold_channel = _read_channel(sec, "channel", i2c)
        sec.finish()
        if manifold_channel is not None:
            _check_channel_free(sec, "channel", manifold_channel, zones)
            if i2c is not None and not i2c.mux_addresses and not shared:
                sec.error(
                    "channel",
                    f"the manifold sensor and the zone's sensor both answer at 0x{i2c.sensor_address:02x}: two "
                    "sensors need a TCA9548A multiplexer (set i2c.mux_address)",
                )
    if i2c_sec is not None and i2c is not None and len(i2c.mux_addresses) > 1:
        _check_muxes_used(i2c_sec, i2c, [z.sensor_channel for z in zones], manifold_channel)
    controls = _read_controls(top.section("controls", optional=True), pins)
    limits_sec = top.section("limits")
    limits = _read_limits(limits_sec)
    if shared and manifold_channel is None and not problems.errors:
        top.error(
            "zones",
            "no zone names a sensor_channel, and there is no manifold_sensor: a one-sensor build measures every zone "
            "through a sensor on the manifold (add manifold_sensor)",
        )
    if limits is not None and limits_sec is not None and (manifold_channel is None or shared):
        _no_manifold(limits_sec, limits, shared=shared)
    selftest = _read_selftest(top.section("selftest", optional=True))
    sim = _read_simulation(top.section("simulation"), zones, limits.max_mmhg if limits is not None else None)
    top.finish()

    if (
        problems.errors
        or tick_hz is None
        or pump is None
        or i2c is None
        or limits is None
        or sim is None
        or selftest is None
        or not zones
    ):
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
        gpio_chip=gpio_chip,
        warnings=tuple(problems.warnings),
    )


def _read_gpio_chip(top: Section) -> int | None:
    """`gpio_chip`: `auto` (None: the chip labelled as a Pi's header bank, found at start) or a /dev/gpiochipN."""
    raw = top.raw("gpio_chip", "auto")
    if raw == "auto":
        return None
    if isinstance(raw, str):
        top.error("gpio_chip", f"must be auto or a gpiochip number 0-{MAX_GPIO_CHIP}, got {raw!r}")
        return None
    return top.integer("gpio_chip", None, minimum=0, maximum=MAX_GPIO_CHIP)


def _read_i2c(sec: Section | None) -> I2CSpec | None:
    if sec is None:
        return None
    bus = sec.integer("bus", 1, minimum=0, maximum=MAX_I2C_BUS)  # /dev/i2c-N; 1 is the header's I2C1
    muxes = _read_mux_addresses(sec)
    addr = sec.integer("sensor_address", 0x18, minimum=0x08, maximum=0x77)
    freq = sec.integer("frequency_hz", 400_000, minimum=10_000, maximum=1_000_000)
    deadline = sec.number("deadline_s", 0.02, above=0.0, maximum=MAX_SENSOR_DEADLINE_S, unit="s")
    sec.finish()
    if bus is None or muxes is None or addr is None or freq is None or deadline is None:
        return None
    return I2CSpec(bus=bus, mux_addresses=muxes, sensor_address=addr, frequency_hz=freq, deadline_s=deadline)


def _read_mux_addresses(sec: Section) -> tuple[int, ...] | None:
    """`i2c.mux_address`: one TCA9548A's address, a list of up to MAX_MUXES of them in channel order (sensor channels
    0-7 on the first, 8-15 on the second, ...), or null for none (a single sensor straight on the bus)."""
    raw = sec.raw("mux_address", MUX_ADDRESSES[0])
    if raw is None:
        return ()
    if not isinstance(raw, list):
        mux = sec.integer("mux_address", MUX_ADDRESSES[0], minimum=MUX_ADDRESSES[0], maximum=MUX_ADDRESSES[-1])
        return None if mux is None else (mux,)
    addresses: list[int] = []
    ok = True
    for _index, item, path, line in sec.items("mux_address"):
        if isinstance(item, bool) or not isinstance(item, int):
            problem = f"must be a TCA9548A address 0x70-0x77, got {item!r}"
        elif item not in MUX_ADDRESSES:
            problem = f"must be a TCA9548A address 0x70-0x77 (got 0x{item:02x})"
        elif item in addresses:
            problem = f"0x{item:02x} is listed twice: each multiplexer needs its own address (its A0-A2 pins)"
        else:
            addresses.append(item)
            continue
        sec.problems.error(sec.file, line, path, problem)
        ok = False
    if len(raw) > MAX_MUXES:
        sec.error(
            "mux_address",
            f"at most {MAX_MUXES} multiplexers ({MAX_MUXES * MUX_CHANNELS} sensor channels), got {len(raw)}",
        )
        ok = False
    return tuple(addresses) if ok and addresses else None


def _read_channel(sec: Section, key: str, i2c: I2CSpec | None) -> int | None:
    """A sensor's channel: n is channel n % 8 of the multiplexer at `i2c.mux_addresses[n // 8]`. A channel beyond the
    multiplexers listed is an error that names the one it would need."""
    channel = sec.integer(key, minimum=0, maximum=MUX_CHANNELS * MAX_MUXES - 1)
    if channel is None or i2c is None:
        return channel
    listed = i2c.mux_addresses
    available = MUX_CHANNELS * max(1, len(listed))  # without a multiplexer the channel is unused: 0-7 as with one
    if channel < available:
        return channel
    need = channel // MUX_CHANNELS + 1
    example = list(listed) + [a for a in MUX_ADDRESSES if a not in listed][: need - len(listed)]
    have = f"{_NUMBER[len(listed)]} ({', '.join(f'0x{a:02x}' for a in listed)})" if listed else "none"
    sec.error(
        key,
        f"must be <= {available - 1} (got {channel}): channel {channel} is channel {channel % MUX_CHANNELS} of a "
        f"{_ORDINAL[need - 1]} TCA9548A, and i2c.mux_address lists {have}. List {_NUMBER[need]} multiplexers in "
        f"channel order, e.g. mux_address: [{', '.join(f'0x{a:02x}' for a in example)}]",
    )
    return None


def _read_valve(zsec: Section, key: str, pins: _Pins, expect_form: str) -> ValveSpec | None:
    vsec = zsec.section(key)
    if vsec is None:
        return None
    pin = pins.read(vsec, "pin", actuator=True)
    form = vsec.string("form", choices=VALVE_FORMS)
    active_high = vsec.boolean("active_high", True)
    vsec.finish()
    if form is not None and form != expect_form:
        # The safe state relies on unpowered = vented: NC inlets and NO exhausts (safety-requirements §B1).
        vsec.error(
            "form",
            f"must be {expect_form}: an unpowered {key} valve must leave the sleeve vented "
            "(docs/safety-requirements.md §B1)",
        )
        return None
    if pin is None or form is None or active_high is None:
        return None
    return ValveSpec(pin=pin, normally_open=(form == "normally-open"), active_high=active_high)


def _identifier(sec: Section, key: str, what: str, default: object = REQUIRED) -> str | None:
    """A zone or limb name: letters, digits, - and _ (a dot joins a limb and a zone: `left.calf`)."""
    value = sec.string(key, default)
    if value is not None and (not value.replace("_", "").replace("-", "").isalnum() or value == "manifold"):
        sec.error(key, f"{value!r}: a {what} name uses letters, digits, - and _ (and is not 'manifold')")
        return None
    return value


def _read_zones(top: Section, pins: _Pins, problems: Problems, i2c: I2CSpec | None) -> list[ZoneSpec]:
    """The zones, each in its limb (`limb:`, "leg" unless given). A zone's name is unique within its limb; where
    there are several limbs its id is `limb.name`, so profiles can say `calf` for every limb's calf."""
    read: list[tuple[str, str, ValveSpec, ValveSpec, int | None]] = []
    with_sensor: list[str] = []  # zones that name a sensor channel (all, or none: a one-sensor build)
    without: list[Section] = []
    names: dict[tuple[str, str], str] = {}
    per_limb: dict[str, int] = {}
    channels: dict[int, str] = {}
    count = 0
    for _index, item, path, line in top.items("zones"):
        count += 1
        zsec = top.item_section(item, path, line)
        if zsec is None:
            continue
        name = _identifier(zsec, "name", "zone")
        limb = _identifier(zsec, "limb", "limb", "leg")
        if name is not None and limb is not None:
            if (limb, name) in names:
                where = f" of limb {limb!r}" if limb != "leg" else ""
                zsec.error("name", f"zone {name!r}{where} is already defined at {names[limb, name]}")
                name = None
            else:
                names[limb, name] = path
                per_limb[limb] = per_limb.get(limb, 0) + 1
        inlet = _read_valve(zsec, "inlet", pins, "normally-closed")
        exhaust = _read_valve(zsec, "exhaust", pins, "normally-open")
        channel: int | None = None
        channel_ok = True
        if zsec.has("sensor_channel"):
            with_sensor.append(path)
            channel = _read_channel(zsec, "sensor_channel", i2c)
            if channel is not None and channel in channels:
                zsec.error("sensor_channel", f"channel {channel} is already used by {channels[channel]}")
                channel = None
            elif channel is not None:
                channels[channel] = path
            channel_ok = channel is not None
        else:
            without.append(zsec)
        zsec.finish()
        if name is not None and limb is not None and inlet is not None and exhaust is not None and channel_ok:
            read.append((name, limb, inlet, exhaust, channel))
    if count > MAX_ZONES:
        top.error("zones", f"at most {MAX_ZONES} zones, got {count}")
    for limb, n in per_limb.items():
        if n > MAX_ZONES_PER_LIMB:
            top.error("zones", f"limb {limb!r} has {n} zones: at most {MAX_ZONES_PER_LIMB} a limb")
    for zsec in without if with_sensor else ():
        zsec.error(
            "sensor_channel",
            "missing (required): the other zones name theirs. Give every zone its own sensor, or none (a one-sensor "
            "build, every zone measured through the manifold sensor)",
        )
    if count > 1 and with_sensor and i2c is not None and i2c.mux_address is None:
        top.error("zones", "several zones need a TCA9548A multiplexer: set i2c.mux_address (sensors share 0x18)")
    several = len(per_limb) > 1
    return [
        ZoneSpec(f"{limb}.{name}" if several else name, index, limb, inlet, exhaust, channel, site=name)
        for index, (name, limb, inlet, exhaust, channel) in enumerate(read)
    ]


def _check_channel_free(sec: Section, key: str, channel: int, zones: list[ZoneSpec]) -> None:
    for z in zones:
        if z.sensor_channel == channel:
            sec.error(key, f"channel {channel} is already used by zone {z.name!r}")


def _check_muxes_used(sec: Section, i2c: I2CSpec, zone_channels: list[int | None], manifold: int | None) -> None:
    """A multiplexer listed with no sensor behind it is most likely a channel mistyped: a warning."""
    used = {c // MUX_CHANNELS for c in (*zone_channels, manifold) if c is not None}
    for n, address in enumerate(i2c.mux_addresses):
        if n not in used:
            sec.warn(
                "mux_address",
                f"no sensor is on the multiplexer at 0x{address:02x} (sensor channels {n * MUX_CHANNELS}-"
                f"{n * MUX_CHANNELS + MUX_CHANNELS - 1}): check the sensor channels, or leave it out",
            )


def _read_controls(sec: Section | None, pins: _Pins) -> ControlsSpec:
    if sec is None:
        return ControlsSpec()
    inputs: dict[str, InputSpec] = {}
    outputs: dict[str, OutputSpec] = {}
    for key in ("button", "estop"):
        if (isec := sec.section(key, optional=True)) is not None:
            pin = pins.read(isec, "pin", actuator=False)
            pull_up = isec.boolean("pull_up", True)
            isec.finish()
            if pin is not None and pull_up is not None:
                inputs[key] = InputSpec(pin, pull_up)
    for key in ("led", "buzzer"):
        if (osec := sec.section(key, optional=True)) is not None:
            pin = pins.read(osec, "pin", actuator=True)
            active_high = osec.boolean("active_high", True)
            osec.finish()
            if pin is not None and active_high is not None:
                outputs[key] = OutputSpec(pin, active_high)
    sec.finish()
    return ControlsSpec(
        button=inputs.get("button"), estop=inputs.get("estop"), led=outputs.get("led"), buzzer=outputs.get("buzzer")
    )


def _no_manifold(sec: Section, limits: Limits, *, shared: bool = False) -> None:
    """SAFE-15: without a manifold sensor no zone reading can be confirmed by a second sensor, so one sensor reading
    low could squeeze unseen: such a build goes no higher than NO_MANIFOLD_MAX_MMHG, and is told so. A one-sensor
    build (`shared`) is the same: its one sensor has nothing to be confirmed by."""
    if shared:
        if limits.max_mmhg > NO_MANIFOLD_MAX_MMHG:
            sec.error(
                "max_mmhg",
                f"{limits.max_mmhg:g} mmHg on a one-sensor build: nothing confirms its one sensor (SAFE-15), so it may "
                f"go to {NO_MANIFOLD_MAX_MMHG:g} mmHg at most. Give each zone its own sensor or lower max_mmhg",
            )
        else:
            sec.warn(
                "max_mmhg",
                "one sensor, on the manifold, for every zone: each zone is read only when its inlet is open with the "
                f"pump stopped. What such a build gives up: nothing confirms the sensor (SAFE-15), so pressures are "
                f"capped at {NO_MANIFOLD_MAX_MMHG:g} mmHg, and a sensor reading low over-squeezes every zone alike "
                "(the relief valve is the bound); fills are slower; a blocked hose is found only at its zone's next "
                "fill; an inlet stuck open or a running pump may be named as another zone; no vent is confirmed "
                "after a trip or a stop (docs/one-sensor.md)",
            )
        return
    if limits.max_mmhg > NO_MANIFOLD_MAX_MMHG:
        sec.error(
            "max_mmhg",
            f"{limits.max_mmhg:g} mmHg needs a manifold sensor: without one nothing confirms the zone sensors "
            f"(SAFE-15), so a build without one may go to {NO_MANIFOLD_MAX_MMHG:g} mmHg at most. Add a "
            "manifold_sensor (one more MPRLS on a free multiplexer channel) or lower max_mmhg",
        )
    else:
        sec.warn(
            "max_mmhg",
            f"no manifold sensor: each zone is judged on its own sensor alone (SAFE-15 cannot confirm it), so "
            f"pressures are capped at {NO_MANIFOLD_MAX_MMHG:g} mmHg; a sensor reading low would squeeze unseen up "
            "to the relief valve. A manifold sensor is strongly advised",
        )


def _read_limits(sec: Section | None) -> Limits | None:
    if sec is None:
        return None
    d = Limits()
    # Read in the file's order of keys, so that problems are reported in that order; max_topups is the one integer.
    values: dict[str, float | None] = {
        "max_mmhg": sec.number("max_mmhg", above=0.0, maximum=ABS_MAX_MMHG, unit="mmHg"),
        "trip_margin_mmhg": sec.number("trip_margin_mmhg", d.trip_margin_mmhg, above=0.0, maximum=30.0, unit="mmHg"),
        "overpressure_debounce_s": sec.number(
            "overpressure_debounce_s", d.overpressure_debounce_s, minimum=0.0, maximum=MAX_DEBOUNCE_S, unit="s"
        ),
        "vent_timeout_s": sec.number(
            "vent_timeout_s", d.vent_timeout_s, above=0.0, maximum=MAX_VENT_TIMEOUT_S, unit="s"
        ),
        "fill_timeout_s": sec.number(
            "fill_timeout_s", d.fill_timeout_s, above=0.0, maximum=MAX_FILL_TIMEOUT_S, unit="s"
        ),
        "min_fill_rate_mmhg_s": sec.number(
            "min_fill_rate_mmhg_s", d.min_fill_rate_mmhg_s, above=0.0, maximum=50.0, unit="mmHg/s"
        ),
        "fill_rate_window_s": sec.number(
            "fill_rate_window_s", d.fill_rate_window_s, minimum=0.5, maximum=10.0, unit="s"
        ),
        "sensor_stale_s": sec.number("sensor_stale_s", d.sensor_stale_s, above=0.0, maximum=MAX_STALE_S, unit="s"),
        "sensor_stuck_s": sec.number("sensor_stuck_s", d.sensor_stuck_s, minimum=0.2, maximum=5.0, unit="s"),
        "max_zero_spread_mmhg": sec.number(
            "max_zero_spread_mmhg", d.max_zero_spread_mmhg, above=0.0, maximum=40.0, unit="mmHg"
        ),
        "occlusion_rate_mmhg_s": sec.number(
            "occlusion_rate_mmhg_s", d.occlusion_rate_mmhg_s, minimum=10.0, maximum=500.0, unit="mmHg/s"
        ),
        "leak_rate_mmhg_s": sec.number("leak_rate_mmhg_s", d.leak_rate_mmhg_s, above=0.0, maximum=10.0, unit="mmHg/s"),
        "leak_window_s": sec.number("leak_window_s", d.leak_window_s, minimum=0.5, maximum=10.0, unit="s"),
        "sensor_noise_mmhg": sec.number(
            "sensor_noise_mmhg", d.sensor_noise_mmhg, minimum=0.01, maximum=MAX_SENSOR_NOISE_MMHG, unit="mmHg"
        ),
        "leak_rate_per_mmhg_s": sec.number(
            "leak_rate_per_mmhg_s", d.leak_rate_per_mmhg_s, minimum=0.0, maximum=0.1, unit="mmHg/s per mmHg"
        ),
    }
    max_topups = sec.integer("max_topups", d.max_topups, minimum=1, maximum=20)
    values |= {
        "topup_window_s": sec.number("topup_window_s", d.topup_window_s, minimum=2.0, maximum=120.0, unit="s"),
        "max_drop_mmhg": sec.number("max_drop_mmhg", d.max_drop_mmhg, minimum=3.0, maximum=30.0, unit="mmHg"),
        "vent_check_s": sec.number("vent_check_s", d.vent_check_s, minimum=0.5, maximum=MAX_VENT_TIMEOUT_S, unit="s"),
        "vent_tau_s": sec.number("vent_tau_s", d.vent_tau_s, minimum=0.1, maximum=MAX_VENT_TIMEOUT_S, unit="s"),
        "reverse_gradient_mmhg": sec.number(
            "reverse_gradient_mmhg", d.reverse_gradient_mmhg, minimum=0.0, maximum=REVERSE_GRADIENT_MMHG, unit="mmHg"
        ),
        "reverse_gradient_s": sec.number(
            "reverse_gradient_s", d.reverse_gradient_s, above=0.0, maximum=MAX_REVERSE_GRADIENT_S, unit="s"
        ),
        "venous_safe_mmhg": sec.number("venous_safe_mmhg", d.venous_safe_mmhg, minimum=5.0, maximum=60.0, unit="mmHg"),
        "max_above_venous_s": sec.number(
            "max_above_venous_s", d.max_above_venous_s, above=0.0, maximum=MAX_ABOVE_VENOUS_S, unit="s"
        ),
        "session_max_min": sec.number(
            "session_max_min", d.session_max_min, above=0.0, maximum=MAX_SESSION_MIN, unit="min"
        ),
        "pump_off_rise_mmhg": sec.number(
            "pump_off_rise_mmhg", d.pump_off_rise_mmhg, minimum=2.0, maximum=50.0, unit="mmHg"
        ),
        "alarm_silence_s": sec.number("alarm_silence_s", d.alarm_silence_s, above=0.0, maximum=MAX_SILENCE_S, unit="s"),
        "plausibility_tol_mmhg": sec.number(
            "plausibility_tol_mmhg",
            d.plausibility_tol_mmhg,
            minimum=1.0,
            maximum=MAX_PLAUSIBILITY_TOL_MMHG,
            unit="mmHg",
        ),
        "plausibility_step_mmhg": sec.number(
            "plausibility_step_mmhg",
            d.plausibility_step_mmhg,
            minimum=2.0,
            maximum=MAX_PLAUSIBILITY_STEP_MMHG,
            unit="mmHg",
        ),
    }
    sec.finish()
    numbers = {key: value for key, value in values.items() if value is not None}
    if max_topups is None or len(numbers) != len(values):
        return None
    return Limits(**numbers, max_topups=max_topups)


def _read_selftest(sec: Section | None) -> SelfTestSpec | None:
    d = SelfTestSpec()
    if sec is None:
        return d
    valves = sec.boolean("valves", d.valves)
    fill = sec.number("fill_mmhg", d.fill_mmhg, minimum=4.0, maximum=20.0, unit="mmHg")
    crosstalk = sec.number("crosstalk_mmhg", d.crosstalk_mmhg, minimum=1.0, maximum=10.0, unit="mmHg")
    sec.finish()
    if valves is None or fill is None or crosstalk is None:
        return None
    return SelfTestSpec(valves, fill, crosstalk)


def _read_simulation(sec: Section | None, zones: list[ZoneSpec], max_mmhg: float | None) -> SimSpec | None:
    """The simulated rig's model. Its relief valve follows the config: unless given, it opens at
    `legsleeve.hw.parts.relief_mmhg(limits.max_mmhg)`, the setting hardware/BOM.md tells the maker to use."""
    if sec is None:
        return None
    d = SimSpec()
    relief_default = relief_mmhg(max_mmhg) if max_mmhg is not None else d.relief_mmhg
    num = sec.number
    values: dict[str, float | None] = {
        "ambient_hpa": num("ambient_hpa", d.ambient_hpa, minimum=AMBIENT_MIN_HPA, maximum=AMBIENT_MAX_HPA, unit="hPa"),
        "pump_free_flow_lpm": num("pump_free_flow_lpm", d.pump_free_flow_lpm, above=0.0, maximum=20.0, unit="L/min"),
        "pump_deadhead_mmhg": num("pump_deadhead_mmhg", d.pump_deadhead_mmhg, above=0.0, maximum=1000.0, unit="mmHg"),
        "pump_stall_duty": num("pump_stall_duty", d.pump_stall_duty, minimum=0.0, maximum=1.0),
        "relief_mmhg": num("relief_mmhg", relief_default, above=0.0, maximum=300.0, unit="mmHg"),
        "relief_lpm_per_mmhg": num("relief_lpm_per_mmhg", d.relief_lpm_per_mmhg, minimum=0.0, maximum=100.0),
        "manifold_volume_l": num("manifold_volume_l", d.manifold_volume_l, above=0.0, maximum=1.0, unit="L"),
        "inlet_lpm_per_mmhg": num("inlet_lpm_per_mmhg", d.inlet_lpm_per_mmhg, above=0.0, maximum=10.0),
        "exhaust_lpm_per_mmhg": num("exhaust_lpm_per_mmhg", d.exhaust_lpm_per_mmhg, above=0.0, maximum=10.0),
        "sensor_noise_mmhg": num("sensor_noise_mmhg", d.sensor_noise_mmhg, minimum=0.0, maximum=5.0, unit="mmHg"),
        "sensor_offset_mmhg": num("sensor_offset_mmhg", d.sensor_offset_mmhg, minimum=0.0, maximum=20.0, unit="mmHg"),
        "conversion_s": num("conversion_s", d.conversion_s, above=0.0, maximum=0.02, unit="s"),
        "i2c_overhead_s": num("i2c_overhead_s", d.i2c_overhead_s, minimum=0.0, maximum=0.01, unit="s"),
    }
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
                zone_spec = _read_sim_zone(zsec, base)
                if zone_spec is not None:  # None: its problems are recorded, and no config is built
                    per_zone[name] = zone_spec
                zsec.finish()
    limbs = _read_sim_limbs(sec, zones)
    sec.finish()
    numbers = {key: value for key, value in values.items() if value is not None}
    if len(numbers) != len(values) or base is None or limbs is None:
        return None
    relief = numbers["relief_mmhg"]
    if relief > ABS_MAX_MMHG:
        sec.warn("relief_mmhg", f"above the code's {ABS_MAX_MMHG:g} mmHg ceiling: no relief valve may be set so high")
    elif max_mmhg is not None and relief > relief_default + RELIEF_TOLERANCE_MMHG:
        sec.warn(
            "relief_mmhg",
            f"{relief:g} mmHg is far above limits.max_mmhg ({max_mmhg:g}): the relief valve is the only bound on "
            f"sensors that read low alike, so set it just above max_mmhg ({relief_default:g}, hardware/bring-up.md)",
        )
    elif max_mmhg is not None and relief < relief_default - RELIEF_TOLERANCE_MMHG:
        sec.warn(
            "relief_mmhg",
            f"{relief:g} mmHg is too near limits.max_mmhg ({max_mmhg:g}): fills near the top push the manifold into "
            f"it, and a pump running when told off is found late (SAFE-4's rise has no room); set it to "
            f"{relief_default:g}",
        )
    return SimSpec(**numbers, zones={z.name: per_zone.get(z.name, base) for z in zones}, limbs=limbs)


def _read_sim_limbs(sec: Section, zones: list[ZoneSpec]) -> dict[str, SimLimbSpec] | None:
    """The venous model of each limb (`limb_defaults` for every limb of the build, `limbs` per limb by name); none
    of either: a rigid leg. None when a problem was recorded."""
    members: dict[str, list[str]] = {}
    for z in zones:
        members.setdefault(z.limb, []).append(z.name)
    ok = True
    base = SimLimbSpec()
    defaults = sec.section("limb_defaults", optional=True)
    if defaults is not None:
        read = _read_sim_limb(defaults, base)
        defaults.finish()
        ok = read is not None
        base = read or base
    per_limb: dict[str, SimLimbSpec] = {}
    overrides = sec.section("limbs", optional=True)
    if overrides is not None:
        for name in overrides.data:
            lsec = overrides.section(name)
            if name not in members:
                overrides.error(name, f"no zone is on a limb named {name!r} (limbs: {', '.join(sorted(members))})")
                ok = False
                continue
            if lsec is None:
                ok = False
                continue
            limb = _read_sim_limb(lsec, base)
            lsec.finish()
            if limb is None:
                ok = False
            else:
                per_limb[name] = limb
    if not ok:
        return None
    named = members if defaults is not None else per_limb  # limb_defaults: every limb of the build has a model
    return {name: dataclasses.replace(per_limb.get(name, base), zones=tuple(members[name])) for name in named}


def _read_sim_limb(sec: Section, base: SimLimbSpec) -> SimLimbSpec | None:
    """One limb's veins; `base` (limb_defaults, else the code's defaults) supplies what it leaves out. What each key
    means physiologically: SimLimbSpec's comments and docs/config-reference.md."""
    refill = sec.number("refill_s", base.refill_s, minimum=5.0, maximum=180.0, unit="s")
    venous = sec.number("venous_ml", base.venous_ml, minimum=0.0, maximum=500.0, unit="mL")
    empty = sec.number("empty_mmhg", base.empty_mmhg, minimum=10.0, maximum=100.0, unit="mmHg")
    empty_s = sec.number("empty_s", base.empty_s, minimum=0.2, maximum=20.0, unit="s")
    thermal = sec.number("thermal_mmhg", base.thermal_mmhg, minimum=0.0, maximum=5.0, unit="mmHg")
    thermal_s = sec.number("thermal_s", base.thermal_s, minimum=0.5, maximum=60.0, unit="s")
    if refill is None or venous is None or empty is None or empty_s is None or thermal is None or thermal_s is None:
        return None
    return SimLimbSpec(refill, venous, empty, empty_s, thermal, thermal_s)


def _read_sim_zone(sec: Section, base: SimZoneSpec | None) -> SimZoneSpec | None:
    """One zone's bladder; `base` (zone_defaults) supplies what a per-zone override leaves out."""

    def default(attr: str) -> object:
        return REQUIRED if base is None else getattr(base, attr)

    volume = sec.number("volume_l", default("volume_l"), above=0.0, maximum=5.0, unit="L")
    compliance = sec.number("compliance_l_per_mmhg", default("compliance_l_per_mmhg"), minimum=0.0, maximum=0.1)
    leak = sec.number("leak_lpm_per_mmhg", default("leak_lpm_per_mmhg"), minimum=0.0, maximum=1.0)
    # this zone's own valves, where they differ from the build's (`simulation.inlet_lpm_per_mmhg` and the exhaust's)
    inlet = sec.number("inlet_lpm_per_mmhg", None if base is None else base.inlet_lpm_per_mmhg, above=0.0, maximum=10.0)
    exhaust = sec.number(
        "exhaust_lpm_per_mmhg", None if base is None else base.exhaust_lpm_per_mmhg, above=0.0, maximum=10.0
    )
    if volume is None or compliance is None or leak is None:
        return None
    return SimZoneSpec(volume, compliance, leak, inlet, exhaust)
