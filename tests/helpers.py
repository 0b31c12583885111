"""Builders shared by the tests: where the checkout and its config are, readings and profiles without files or
hardware, the supervisor's tick loops, and the installer loaded from its file. Fixtures live in conftest.py."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import math
import shutil
from pathlib import Path

from legsleeve.core.commands import FILL, HOLD, VENT, Commands
from legsleeve.core.plan import Profile, Step, StepKind
from legsleeve.core.readings import Reading, Readings

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"
PROFILES = ("gentle", "gradient", "pulse", "lymphatic", "wave", "massage")  # the fault and build matrices run these
SHIPPED = (*PROFILES, "dvt")  # every shipped profile
TICK = 0.02  # the supervisor tests' tick: 50 Hz, as the shipped config's

# -- the control core: two zones, readings and profiles ---------------------------------------------------------

NAMES = ("ankle", "calf")


def readings(t_s: float, *mmhg: float, manifold: float | None = None) -> Readings:
    """Readings at t_s; a None pressure is a faulted reading."""
    zones = tuple(Reading(math.nan, t_s, "sensor: NACK") if p is None else Reading(float(p), t_s) for p in mmhg)
    m = None if manifold is None else Reading(manifold, t_s)
    return Readings(t_s, zones, m)


def profile(steps, targets=(40.0, 35.0), cycles=1, minutes=None, **kw) -> Profile:
    return Profile(
        name="t",
        description="t",
        path=Path("t.yaml"),
        zone_names=NAMES[: len(targets)],
        targets_mmhg=tuple(targets),
        steps=tuple(steps),
        session_minutes=minutes,
        session_cycles=cycles,
        **kw,
    )


FILL0 = Step(StepKind.FILL, (0,))
FILL1 = Step(StepKind.FILL, (1,))
VENT_ALL = Step(StepKind.VENT, (0, 1))

# -- the supervisor: the shipped build's four zones and manifold -------------------------------------------------

_jitter = itertools.count()


def rd(t, ankle=0.0, calf=0.0, knee=0.0, thigh=0.0, manifold=None, faults=None):
    """Readings with a microscopic jitter, as real sensors have (identical values would read as stuck). No manifold
    reading unless one is given: a made-up manifold would contradict the zones (SAFE-15 compares them)."""
    faults = faults or {}
    out = []
    for name, p in (("ankle", ankle), ("calf", calf), ("knee", knee), ("thigh", thigh), ("manifold", manifold)):
        if name in faults or p is None:
            out.append(Reading(math.nan, t, faults.get(name, "sensor: NACK")))
        else:
            out.append(Reading(p + 1e-6 * (next(_jitter) % 7), t))
    return Readings(t, tuple(out[:4]), out[4] if manifold is not None or "manifold" in faults else None)


def rd_zones(t, zones, manifold=None):
    """Readings of any number of zones (distal to proximal, every limb in turn), jittered as `rd`'s are."""
    out = tuple(Reading(p + 1e-6 * (next(_jitter) % 7), t) for p in zones)
    m = None if manifold is None else Reading(manifold + 1e-6 * (next(_jitter) % 7), t)
    return Readings(t, out, m)


def drive(sup, t0, t1, wish, **pressures):
    """Review every tick from t0 to t1 (exclusive) with fixed pressures; return (last output, trip time)."""
    t = t0
    out = None
    while t < t1 - 1e-9:
        out = sup.review(t, rd(t, **pressures), wish)
        if sup.tripped:
            return out, t
        t += TICK
    return out, None


def run_until_trip(sup, t0, seconds, wish, pressure_at):
    """Tick for `seconds` with pressures from pressure_at(t) -> dict; return the trip time or None."""
    t = t0
    while t < t0 + seconds - 1e-9:
        sup.review(t, rd(t, **pressure_at(t)), wish)
        if sup.tripped:
            return t
        t += TICK
    return None


HOLD_ALL = Commands(0.0, (HOLD, HOLD, HOLD, HOLD))
FILL_ANKLE = Commands(1.0, (FILL, VENT, VENT, VENT))
FILL_CALF = Commands(1.0, (VENT, FILL, VENT, VENT))
HOLD_CALF = Commands(0.0, (VENT, HOLD, VENT, VENT))

# -- the installer ---------------------------------------------------------------------------------------------


def installer_module():
    """systemd/install.py, loaded from its file (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("legsleeve_install", ROOT / "systemd" / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- builds wired over several TCA9548A multiplexers --------------------------------------------------------------

# Zones beyond the shipped four, on the reference build's free GPIOs (inlet, exhaust)
_MORE_ZONES = (("zone5", 9, 10), ("zone6", 11, 12), ("zone7", 14, 15), ("zone8", 20, 21))


def write_multiplexed_hardware(
    directory: Path, mux_address: str, zone_channels: list[int], manifold_channel: int = 4
) -> Path:
    """Write `directory`/hardware.yaml: the shipped file with `i2c.mux_address: <mux_address>` (YAML text, such as
    "[0x70, 0x71]"), one zone per channel in `zone_channels` (the shipped four, then up to four more after the thigh)
    and the manifold sensor on `manifold_channel`. Returns the directory."""
    text = (CONFIG_DIR / "hardware.yaml").read_text()
    more = "".join(
        f"  - name: {name}\n"
        f"    inlet:   {{pin: GPIO{inlet}, form: normally-closed, active_high: true}}\n"
        f"    exhaust: {{pin: GPIO{exhaust}, form: normally-open,   active_high: true}}\n"
        "    sensor_channel: 0\n"
        for name, inlet, exhaust in _MORE_ZONES[: len(zone_channels) - 4]
    )
    text = text.replace("\n# Optional: a sensor on the manifold", more + "\n# Optional: a sensor on the manifold", 1)
    lines = text.splitlines(keepends=True)
    zone_lines = [n for n, line in enumerate(lines) if line.startswith("    sensor_channel: ")]
    assert len(zone_lines) == len(zone_channels), "4 to 8 zones"
    for n, channel in zip(zone_lines, zone_channels, strict=True):
        lines[n] = f"    sensor_channel: {channel}\n"
    text = "".join(lines)
    for old, new in (
        ("  mux_address: 0x70", f"  mux_address: {mux_address}"),
        ("  channel: 4", f"  channel: {manifold_channel}"),
    ):
        assert old in text
        text = text.replace(old, new, 1)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hardware.yaml").write_text(text)
    return directory


def edited_config(source: Path, tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the config directory `source` (its profiles/ link followed) as tmp_path/cfg, with the first `old`
    in its hardware.yaml replaced by `new` (which must be there); returns the directory."""
    target = tmp_path / "cfg"
    shutil.copytree(source, target, symlinks=False)
    path = target / "hardware.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return target


def quiet_sensors(cfg):
    """The config with a noiseless, offset-free sensor model: a reading is the air's pressure to the count."""
    sim = dataclasses.replace(cfg.simulation, sensor_noise_mmhg=0.0, sensor_offset_mmhg=0.0)
    return dataclasses.replace(cfg, simulation=sim)


def fill_unevenly(rig, n_zones: int, step_s: float = 0.4) -> None:
    """Every zone at its own pressure, distal lowest: each filled alone, `step_s` longer than the one before, then
    held. Two sensors answering at once would then read a mixture, never a coincidence."""
    for k in range(n_zones):
        rig.apply(Commands(1.0, tuple(FILL if i == k else HOLD for i in range(n_zones))))
        rig.clock.sleep(step_s * (k + 1))
    rig.apply(Commands(0.0, (HOLD,) * n_zones))
    rig.clock.sleep(0.5)
