"""Builders shared by the tests: where the checkout and its config are, readings and profiles without files or
hardware, the supervisor's tick loops, and the installer loaded from its file. Fixtures live in conftest.py."""

from __future__ import annotations

import importlib.util
import itertools
import math
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
