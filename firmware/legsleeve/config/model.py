"""The hardware config as frozen dataclasses: what `hardware.yaml` describes, once it has been validated.

Standard library only; `legsleeve.config.hardware` reads and checks the YAML into these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from legsleeve.core.limits import Limits

if TYPE_CHECKING:
    from legsleeve.config.calibration import Calibration

# The 40-pin header is the same on every Pi since the B+; gpiozero resolves names against it.
HEADER_REVISION = 0xA02082


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
    """One zone. `name` is its id everywhere (logs, faults, calibration): its `site` on a one-limb build, and
    `limb.site` ("left.calf") where zones are grouped into several limbs."""

    name: str
    index: int  # position in hardware.yaml's list; within a limb, distal (first) to proximal
    limb: str
    inlet: ValveSpec
    exhaust: ValveSpec
    sensor_channel: int | None
    site: str = ""  # the zone's name within its limb ("calf"): profiles address zones by it on every limb

    @property
    def site_name(self) -> str:
        return self.site or self.name


MUX_CHANNELS = 8  # a TCA9548A's channels
# The biggest build is two 8-zone sleeves and a manifold: 17 sensors, all at one address, so three multiplexers.
MAX_MUXES = 3


@dataclass(frozen=True)
class I2CSpec:
    """The sensor bus. `mux_addresses` are the TCA9548A multiplexers in channel order (none: a single sensor straight
    on the bus): sensor channel n is channel n % 8 of the multiplexer at `mux_addresses[n // 8]`."""

    bus: int
    mux_addresses: tuple[int, ...]
    sensor_address: int
    frequency_hz: int
    deadline_s: float

    @property
    def mux_address(self) -> int | None:
        """The first multiplexer's address, None without one: for code that only asks whether there is one."""
        return self.mux_addresses[0] if self.mux_addresses else None

    def mux_channel(self, channel: int) -> tuple[int, int]:
        """Where sensor channel `channel` is: (its multiplexer's address, that multiplexer's channel 0-7)."""
        mux, local = divmod(channel, MUX_CHANNELS)
        return self.mux_addresses[mux], local


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
class SelfTestSpec:
    """The start-up check of each zone's valves and hoses (see legsleeve.app.selftest)."""

    valves: bool = True
    fill_mmhg: float = 8.0
    crosstalk_mmhg: float = 3.0


@dataclass(frozen=True)
class SimZoneSpec:
    volume_l: float
    compliance_l_per_mmhg: float
    leak_lpm_per_mmhg: float
    inlet_lpm_per_mmhg: float | None = None  # this zone's valves, where they differ from the build's (None: the same)
    exhaust_lpm_per_mmhg: float | None = None


@dataclass(frozen=True)
class SimLimbSpec:
    """The leg under one limb's bladders, for the simulated rig (legsleeve.sim.physics has the equations).

    Its veins empty under compression and refill after release, so a bladder held closed at a low pressure after a
    compression sees its pressure rise to a plateau as they refill (the venous refill Kendall's SCD 700 measures).
    """

    # Seconds after release for the veins to refill to 90 % (air plethysmography's VFT90; Kendall reports 20-60 s in
    # patients): the refill is exponential with time constant refill_s / ln 10.
    refill_s: float = 30.0
    # mL of blood compression can empty from the whole limb, shared among its zones in proportion to each zone's flat
    # bladder volume (`simulation.zones.NAME.volume_l`). 60 mL lifts a reference bladder held at 10 mmHg after a
    # compression by ~1.8 mmHg (ankle) and ~1.1 (thigh, more compliant): a couple of mmHg, as a refill detector sees.
    venous_ml: float = 60.0
    # A bladder at this pressure empties the veins under it; below it they settle (1 - P/empty_mmhg) full, 75 % at 10.
    empty_mmhg: float = 40.0
    empty_s: float = 2.0  # time constant of the emptying under compression (fast)
    # The gas of a bladder whose pressure falls 45 mmHg cools enough that, closed, it would regain thermal_mmhg as it
    # re-warms against the skin with time constant thermal_s (Morris 2002's temperature artefact; 0: off).
    thermal_mmhg: float = 0.0
    thermal_s: float = 5.0
    zones: tuple[str, ...] = ()  # the zones on this limb, distal to proximal (from `zones[].limb`)


@dataclass(frozen=True)
class SimSpec:
    """Parameters of the pneumatic model; see legsleeve.sim.physics for the equations."""

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
    limbs: dict[str, SimLimbSpec] = field(default_factory=dict)  # empty: a rigid leg (no venous model)


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
    gpio_chip: int | None = None  # /dev/gpiochipN of the header's pins; None: found by its label at start
    warnings: tuple[str, ...] = ()
    # calibration.yaml, where there is one: `limits` are then derived from it, and `configured` holds hardware.yaml's
    calibration: Calibration | None = None
    configured: Limits | None = None
    limit_sources: tuple[tuple[str, str], ...] = ()  # (limit, how it was derived) for each derived limit

    @property
    def configured_limits(self) -> Limits:
        """hardware.yaml's limits, before any calibration derived its own."""
        return self.configured if self.configured is not None else self.limits

    @property
    def zone_names(self) -> tuple[str, ...]:
        return tuple(z.name for z in self.zones)

    @property
    def limbs(self) -> tuple[str, ...]:
        """The limbs, in the order hardware.yaml first names them."""
        return tuple(dict.fromkeys(z.limb for z in self.zones))

    @property
    def zone_limbs(self) -> tuple[str, ...]:
        """Each zone's limb, in zone order."""
        return tuple(z.limb for z in self.zones)

    @property
    def zone_sites(self) -> tuple[str, ...]:
        """Each zone's name within its limb, in zone order."""
        return tuple(z.site_name for z in self.zones)

    def limb_zones(self, limb: str) -> tuple[int, ...]:
        """The indices of a limb's zones, distal to proximal."""
        return tuple(i for i, z in enumerate(self.zones) if z.limb == limb)

    @property
    def shared_sensor(self) -> bool:
        """A one-sensor build: no zone has a sensor of its own; the manifold's measures each zone through its inlet."""
        return all(z.sensor_channel is None for z in self.zones)

    @property
    def has_manifold_sensor(self) -> bool:
        return self.manifold_channel is not None

    def zone(self, name: str) -> ZoneSpec:
        for z in self.zones:
            if z.name == name:
                return z
        raise KeyError(name)
