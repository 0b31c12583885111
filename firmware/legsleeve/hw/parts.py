"""The parts a build is made of, with their figures, and the bill of materials of a config: how many of each.

One place for the component values the wiring table, the schematic (`legsleeve.hw.schematic`) and hardware/BOM.md
all name, so the three cannot disagree. Part numbers are given only where the part is a standard one whose datasheet
was checked (hardware/BOM.md says where each figure comes from); generic parts get their figures and a search term.
"""

from __future__ import annotations

from dataclasses import dataclass

from legsleeve.config.model import HardwareConfig
from legsleeve.core.limits import RELIEF_ABOVE_MAX_MMHG

# -- the driver stage: one per valve coil and one for the pump ----------------------------------------------------
MOSFET = "IRLB8721PbF"  # Infineon, TO-220 (G-D-S): V_GS(th) 1.35-2.35 V, R_DS(on) <= 16 mOhm at 4.5 V, 30 V, 62 A
GATE_R = "100 Ω"  # GPIO to gate: limits the pin's current while the gate charges
PULL_DOWN_R = "10 kΩ"  # gate to GND: a released or floating pin (boot, crash) means off
FLYBACK = "1N5819"  # 1 A, 40 V Schottky across each coil and the motor, band (cathode) to +12 V
# -- the panel -----------------------------------------------------------------------------------------------------
LED_R = "330 Ω"  # (3.3 V - ~2 V) / 330 Ω ≈ 4 mA: well inside a GPIO's budget
BUZZER_NPN = "PN2222A"  # onsemi, TO-92, 40 V, 600 mA
BUZZER_BASE_R = "1 kΩ"  # (3.3 V - 0.7 V) / 1 kΩ ≈ 2.6 mA base current: saturates it for a buzzer's ~30 mA
BUZZER_DIODE = "1N4148"  # across the buzzer: a magnetic buzzer is a coil too
# -- the 12 V side -------------------------------------------------------------------------------------------------
# Figures for sizing the supply and the fuse; the maker checks them against the parts bought (hardware/BOM.md).
PUMP_RUN_A = 0.6  # a 370-size 12 V diaphragm pump running against the sleeve
PUMP_STALL_A = 2.0  # ...and stalled (start-up, dead-head): the driver and the supply must take it
COIL_A = 0.3  # one 12 V mini solenoid valve, ~3.6 W; check yours: I = P / 12 V
FUSE_VALUES_A = (1.0, 1.25, 1.6, 2.0, 2.5, 3.15, 4.0, 5.0, 6.3, 8.0, 10.0)  # IEC 60127 5x20 mm series
PSU_VALUES_A = (2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.5)

MMHG_PER_PSI = 51.7149
MMHG_PER_KPA = 7.50062


@dataclass(frozen=True)
class Supply:
    """The 12 V side of a build, in amperes: what runs, the worst case, the fuse and the supply to buy."""

    coils: int
    running_a: float  # the pump running and every coil energised (every zone held, one filling)
    worst_a: float  # the pump stalled and every coil energised
    fuse_a: float  # slow-blow: at least 1.25x running, so the pump's start does not blow it
    psu_a: float  # at least the worst case, and at least the fuse: the fuse, not the supply, is the weak link


def supply(cfg: HardwareConfig) -> Supply:
    coils = 2 * len(cfg.zones)
    running = PUMP_RUN_A + coils * COIL_A
    worst = PUMP_STALL_A + coils * COIL_A
    fuse = next((f for f in FUSE_VALUES_A if f >= 1.25 * running - 1e-9), FUSE_VALUES_A[-1])
    psu = next((p for p in PSU_VALUES_A if p >= max(worst, fuse) - 1e-9), PSU_VALUES_A[-1])
    return Supply(coils, running, worst, fuse, psu)


@dataclass(frozen=True)
class Line:
    """One line of the bill of materials. `number` is an orderable part number, or empty where the part is generic
    and `search` says what to type into a shop's search box."""

    qty: int
    part: str
    number: str
    figures: str
    why: str
    search: str = ""

    @property
    def source(self) -> str:
        if self.number:
            return self.number
        return f"search: “{self.search}”" if self.search else "any"


def sensor_count(cfg: HardwareConfig) -> int:
    return sum(z.sensor_channel is not None for z in cfg.zones) + (cfg.manifold_channel is not None)


def bom(cfg: HardwareConfig) -> list[Line]:
    """The bill of materials of `cfg`'s build: every part, how many, its number or a search term, its figures."""
    n = len(cfg.zones)
    limbs = len(cfg.limbs)
    sensors = sensor_count(cfg)
    muxes = len(cfg.i2c.mux_addresses)
    stages = 1 + 2 * n  # the pump and every valve
    c = cfg.controls
    s = supply(cfg)
    relief = cfg.simulation.relief_mmhg
    zone_sensors = sum(z.sensor_channel is not None for z in cfg.zones)
    manifold_ports = n + 1 + (cfg.manifold_channel is not None)  # the inlets, the relief valve, the manifold sensor
    tees = (manifold_ports - 1) + n + zone_sensors  # the manifold as a chain of tees; per zone inlet/exhaust/bladder
    lines = [
        Line(1, "Raspberry Pi", "Zero 2 W, 3, 4 or 5", "Raspberry Pi OS Bookworm", "a Pi 5 needs lgpio (`pi` extra)"),
        Line(
            1,
            "12 V diaphragm air pump, 370 size",
            "",
            f"2.5-3.5 L/min free flow, ≥ 300 mmHg dead-head, ~{PUMP_RUN_A:g} A running, ≤ {PUMP_STALL_A:g} A stalled",
            "`simulation.pump_*`; a weaker pump fills slower (`legsleeve calibrate` measures it)",
            "12V 370 diaphragm air pump",
        ),
        Line(
            1,
            "check valve (one-way), on the pump outlet",
            "",
            "4 mm barbs, cracking ≤ 0.5 psi (≈ 25 mmHg), arrow towards the manifold",
            "keeps the manifold from leaking back through the pump",
            "4mm one way check valve air",
        ),
        Line(
            1,
            "relief valve on the manifold",
            "",
            f"opens at {relief:g} mmHg ({relief / MMHG_PER_PSI:.2f} psi, {relief / MMHG_PER_KPA:.1f} kPa): "
            f"adjustable, or a fixed one as near as you can find; passes the pump's whole flow ≤ 10 mmHg above",
            f"limits.max_mmhg ({cfg.limits.max_mmhg:g}) + {RELIEF_ABOVE_MAX_MMHG:g}: the one bound that needs no "
            "software (hardware/bring-up.md sets and tests it)",
            "adjustable pressure relief valve 0-5 psi air",
        ),
        Line(
            n,
            "2/2 solenoid valve, 12 V, **normally closed**",
            "",
            "~1.5 mm orifice (≈ 0.1 L/min per mmHg), rated ≥ 300 mmHg, 4 mm barbs",
            "zone inlets: closed unpowered",
            "12V mini solenoid valve normally closed air",
        ),
        Line(
            n,
            "2/2 solenoid valve, 12 V, **normally open**",
            "",
            "≥ 1.5 mm orifice (≈ 0.2 L/min per mmHg), 4 mm barbs; the kind blood-pressure monitors vent with",
            "zone exhausts: open unpowered, so a dead Pi or the E-stop vents the sleeve",
            "12V mini solenoid valve normally open exhaust",
        ),
    ]
    if sensors:
        lines.append(
            Line(
                sensors,
                "pressure sensor breakout, Honeywell MPRLS0025PA00001A",
                "Adafruit 3965",
                "0-25 psi absolute, I2C 0x18, 3.3 V, ~5 ms a reading, port ≈ 2.5 mm OD",
                f"{zone_sensors} on the zones"
                + (" and 1 on the manifold (SAFE-15 checks each zone by it)" if cfg.has_manifold_sensor else ""),
            )
        )
    if muxes:
        lines.append(
            Line(
                muxes,
                "I2C multiplexer breakout, TI TCA9548A",
                "Adafruit 2717",
                "address 0x70-0x77 by A0-A2, 3.3 V",
                "every MPRLS answers at 0x18: one channel each",
            )
        )
    lines += [
        Line(
            stages,
            "logic-level N-MOSFET, TO-220",
            MOSFET,
            "V_GS(th) 1.35-2.35 V, R_DS(on) ≤ 16 mΩ at V_GS 4.5 V (not specified at 3.3 V), 30 V, 62 A; G-D-S",
            "low-side driver per coil and the pump: 30x the pump's ~2 A stall (bring-up checks it runs cool at 3.3 V)",
        ),
        Line(stages, "resistor, 1/4 W", GATE_R, "GPIO to gate", "limits the pin's current into the gate"),
        Line(
            stages + bool(c.buzzer),
            "resistor, 1/4 W",
            PULL_DOWN_R,
            "gate (or base) to GND",
            "a released or floating pin means off (boot, crash)",
        ),
        Line(
            stages,
            "Schottky diode, DO-41",
            FLYBACK,
            "1 A, 40 V; band (cathode) to +12 V, anode to the MOSFET's drain",
            "flyback: the coil's turn-off spike",
        ),
    ]
    if c.estop:
        lines.append(
            Line(
                1,
                "E-stop, latching mushroom, 2 normally-closed contacts",
                "",
                f"contacts rated ≥ {s.fuse_a:g} A at 12 V DC",
                "pole 1 opens the 12 V to every valve and the pump; pole 2 tells the Pi (SAFE-12)",
                "emergency stop switch 2NC latching 22mm",
            )
        )
    if c.button:
        lines.append(Line(1, "momentary push button, normally open", "", "to GND", "start/stop; long press selects"))
    if c.led:
        lines += [
            Line(1, "LED, 3 or 5 mm", "", "~2 V forward", "status"),
            Line(1, "resistor, 1/4 W", LED_R, "in series with the LED", "≈ 4 mA from a 3.3 V pin"),
        ]
    if c.buzzer:
        lines += [
            Line(1, "active buzzer, 5 V", "", "≤ 30 mA at 5 V", "alarms", "5V active buzzer"),
            Line(1, "NPN transistor, TO-92", BUZZER_NPN, "40 V, 600 mA", "switches the buzzer from 5 V"),
            Line(1, "resistor, 1/4 W", BUZZER_BASE_R, "GPIO to base", "≈ 2.6 mA base current"),
            Line(1, "signal diode", BUZZER_DIODE, "across the buzzer, band to +5 V", "flyback"),
        ]
    lines += [
        Line(
            1,
            "fuse, slow-blow (T), 5x20 mm, and an inline holder",
            "",
            f"T{s.fuse_a:g}A: ≥ 1.25 x the {s.running_a:.1f} A running ({s.coils} coils x {COIL_A:g} A + the pump)",
            "right after the supply's + terminal, before the E-stop: a short anywhere blows it",
            f"T{s.fuse_a:g}A 5x20 slow blow fuse",
        ),
        Line(
            1,
            "12 V DC power supply",
            "",
            f"≥ {s.psu_a:g} A (worst case {s.worst_a:.1f} A: the pump stalled, every coil on)",
            "valves and pump only",
            f"12V {s.psu_a:g}A power supply",
        ),
        Line(
            1,
            "5 V supply for the Pi",
            "",
            "the Pi's own USB supply (5 V 3 A; 5 A for a Pi 5), or a 12 V → 5 V buck ≥ 3 A",
            "the Pi stays up when the E-stop cuts the 12 V, to log and sound the alarm",
        ),
        Line(
            limbs,
            "sleeve with its bladders, one per zone" if limbs == 1 else "sleeve per limb, one bladder per zone",
            "",
            f"{n // max(limbs, 1)} bladders a sleeve, ~0.03 L flat, ~0.25 L at 45 mmHg each, 4 mm hose barb each",
            "`simulation.zone_defaults`; hardware/BOM.md says how to make or buy one",
            "sequential compression leg sleeve 4 chamber replacement",
        ),
        Line(
            1,
            "silicone tubing, 4 mm ID x 6 mm OD",
            "",
            f"≈ {2 + 1.5 * n:g} m",
            "pump, manifold, valves and bladders; keep each sensor's hose short",
            "silicone tube 4mm ID 6mm OD",
        ),
        Line(
            tees,
            "T-piece, 4 mm barbs",
            "",
            "polypropylene",
            f"the manifold ({manifold_ports - 1}), each zone's inlet/exhaust/bladder junction ({n})"
            + (f" and its sensor tee ({zone_sensors})" if zone_sensors else ""),
            "4mm barbed tee connector",
        ),
    ]
    if sensors:
        lines.append(
            Line(
                sensors,
                "reducing connector 4 mm → 2 mm barbs, with 5 cm of 2 mm ID silicone tube",
                "",
                "the 2 mm ID tube stretches over the MPRLS's ≈ 2.5 mm port",
                "from the zone's 4 mm line to the sensor's port",
                "4mm to 2mm reducing barb connector",
            )
        )
    return lines


def markdown(cfg: HardwareConfig) -> str:
    """The bill of materials as a Markdown table (hardware/BOM.md holds the reference build's)."""
    out = ["| qty | part | part number or search term | figures | why |", "|---|---|---|---|---|"]
    for line in bom(cfg):
        out.append(f"| {line.qty} | {line.part} | {line.source} | {line.figures} | {line.why} |")
    return "\n".join(out)
