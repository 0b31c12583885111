"""Pressure profiles (`config/profiles/*.yaml`): load, validate, and expand into one cycle of primitive steps.

A cycle is a list of steps. A step is either a primitive:

    fill: ZONES     to each zone's target (or `scale` x target, or `target_mmhg`); filled zones then hold
    hold_s: S       wait S seconds, every zone as it is (held zones are topped up)
    vent: ZONES     open the exhausts (`wait: true` waits until they are below 5 mmHg)
    rest_s: S       vent everything and wait S seconds
    pulse: ZONES    `times` x (fill, hold `on_s`, vent, wait `off_s`)

or a named pattern with parameters, expanded here into primitives (see PATTERNS). ZONES is a zone name, a list of
names, or `all`. Validation (SAFE-2, SAFE-3) refuses unknown keys and zones, non-positive durations, targets above
the configured maximum, and - unless `allow_reverse_gradient: true` - a proximal zone held more than 10 mmHg above
a distal zone held at the same time (safety-requirements §B3).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from legsleeve.config.model import HardwareConfig
from legsleeve.config.yamlconf import REQUIRED, Problems, Section, YList, YMap, load_document
from legsleeve.core.limits import MAX_SESSION_MIN, REVERSE_GRADIENT_MMHG
from legsleeve.core.plan import Profile, Step, StepKind
from legsleeve.errors import ConfigError

MAX_STEP_S = 3600.0


# -- loading -----------------------------------------------------------------------------------------------------


def profile_dir(config_dir: Path) -> Path:
    return Path(config_dir) / "profiles"


def list_profiles(config_dir: Path) -> list[Path]:
    return sorted(profile_dir(config_dir).glob("*.yaml"))


def load_profile(config_dir: Path, name: str, hw: HardwareConfig) -> Profile:
    path = profile_dir(config_dir) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in list_profiles(config_dir)) or "none"
        raise ConfigError([f"{path}: no such profile {name!r} (profiles: {known})"])
    return load_profile_file(path, hw)


def load_profile_file(path: Path, hw: HardwareConfig) -> Profile:
    doc = load_document(path)
    problems = Problems()
    profile = _read_profile(doc, path, hw, problems)
    problems.raise_if_any()
    assert profile is not None
    return profile


def load_all(config_dir: Path, hw: HardwareConfig) -> tuple[list[Profile], list[str]]:
    """Every profile in the directory; the problems of all the bad ones (not just the first)."""
    profiles, problems = [], []
    for path in list_profiles(config_dir):
        try:
            profiles.append(load_profile_file(path, hw))
        except ConfigError as exc:
            problems.extend(exc.problems)
    return profiles, problems


def _read_profile(doc: YMap, path: Path, hw: HardwareConfig, problems: Problems) -> Profile | None:
    top = Section(doc, path, "", problems)
    name = top.string("name")
    if name is not None and name != path.stem:
        top.error("name", f"must match the file name ({path.stem!r}), got {name!r}")
    description = top.string("description")
    max_mmhg = hw.limits.max_mmhg
    names = hw.zone_names

    targets: list[float | None] = [None] * len(names)
    if (tsec := top.section("targets")) is not None:
        default = tsec.number("default_mmhg", above=0.0, maximum=max_mmhg, unit="mmHg")
        targets = [default] * len(names)
        if (zsec := tsec.section("zones", optional=True)) is not None:
            for zone in zsec.data:
                if zone not in names:
                    zsec.error(zone, f"no zone named {zone!r} in hardware.yaml (zones: {', '.join(names)})")
                    zsec._used.add(zone)
                    continue
                targets[names.index(zone)] = zsec.number(zone, above=0.0, maximum=max_mmhg, unit="mmHg")
            zsec.finish()
        tsec.finish()

    timing = _Timing(top.section("timing", optional=True))

    minutes = cycles = None
    session_line = 0
    if (ssec := top.section("session")) is not None:
        if ssec.has("minutes") == ssec.has("cycles"):
            ssec.error("minutes", "give exactly one of minutes or cycles")
        minutes = ssec.number("minutes", None, above=0.0, maximum=MAX_SESSION_MIN, unit="min")
        cycles = ssec.integer("cycles", None, minimum=1, maximum=10_000)
        session_line = ssec.line_of("minutes" if ssec.has("minutes") else "cycles")
        ssec.finish()

    ramp_cycles, ramp_start = 0, 1.0
    if (rsec := top.section("ramp", optional=True)) is not None:
        ramp_cycles = rsec.integer("cycles", minimum=1, maximum=100) or 0
        ramp_start = rsec.number("start_fraction", minimum=0.2, maximum=1.0) or 1.0
        rsec.finish()
    allow_reverse = top.boolean("allow_reverse_gradient", False)

    steps: list[Step] = []
    reader = _StepReader(top, names, timing, max_mmhg)
    for _index, item, spath, line in top.items("cycle"):
        steps.extend(reader.read(item, spath, line))
    timing.finish()
    top.finish()

    # A required field that is missing or bad reads as None, with its problem recorded.
    targets_mmhg = tuple(t for t in targets if t is not None)
    if problems.errors or len(targets_mmhg) != len(targets) or not steps or name is None or description is None:
        if not steps and not problems.errors:
            top.error("cycle", "has no steps")
        return None
    if not any(s.kind is StepKind.FILL for s in steps):
        top.error("cycle", "never fills a zone")
        return None
    profile = Profile(
        name=name,
        description=description,
        path=path,
        zone_names=names,
        targets_mmhg=targets_mmhg,
        steps=tuple(steps),
        session_minutes=minutes,
        session_cycles=cycles,
        ramp_cycles=ramp_cycles,
        ramp_start=ramp_start,
        allow_reverse_gradient=bool(allow_reverse),
        session_line=session_line,
    )
    for step in steps:
        for zone in step.zones:
            if step.kind is StepKind.FILL and profile.step_target(step, zone, ramp_cycles) > max_mmhg:
                problems.error(
                    path,
                    step.line,
                    step.source,
                    f"{names[zone]} would be filled to {profile.step_target(step, zone, ramp_cycles):g} "
                    f"mmHg, above limits.max_mmhg ({max_mmhg:g}) in hardware.yaml (SAFE-3)",
                )
    if not allow_reverse:
        _check_gradient(profile, problems)
    return None if problems.errors else profile


class _Timing:
    """Profile-wide defaults for step and pattern times; each may be overridden where it is used."""

    KEYS = {"hold_s": 10.0, "rest_s": 30.0, "pulse_on_s": 1.0, "pulse_off_s": 1.0}

    def __init__(self, sec: Section | None):
        self.sec = sec
        self.values = dict(self.KEYS)
        if sec is not None:
            for key, default in self.KEYS.items():
                value = sec.number(key, default, above=0.0, maximum=MAX_STEP_S, unit="s")
                if value is not None:
                    self.values[key] = value

    def __getitem__(self, key: str) -> float:
        return self.values[key]

    def finish(self) -> None:
        if self.sec is not None:
            self.sec.finish()


class _StepReader:
    VERBS = ("fill", "hold_s", "vent", "rest_s", "pulse", "pattern")

    def __init__(self, top: Section, names: tuple[str, ...], timing: _Timing, max_mmhg: float):
        self.top = top
        self.names = names
        self.timing = timing
        self.max_mmhg = max_mmhg

    def read(self, item: Any, path: str, line: int) -> list[Step]:
        sec = self.top.item_section(item, path, line)
        if sec is None:
            return []
        # a pattern's parameters may share names with primitives (hold_s): `pattern` decides
        verbs = ["pattern"] if sec.has("pattern") else [v for v in self.VERBS if sec.has(v)]
        if len(verbs) != 1:
            what = f"has {', '.join(verbs)}" if verbs else "has none"
            sec.problems.error(sec.file, line, path, f"a step needs exactly one of {', '.join(self.VERBS)} ({what})")
            sec._used.update(sec.data)
            return []
        verb = verbs[0]
        if verb == "pattern":
            steps = self._pattern(sec, path, line)
        else:
            steps = getattr(self, "_" + verb)(sec, path, line)
        sec.finish()
        return steps

    # -- shared field readers --------------------------------------------------------------------------------
    def zones(self, sec: Section, key: str) -> tuple[int, ...]:
        raw = sec.raw(key)
        if raw == "all":
            return tuple(range(len(self.names)))
        items = raw if isinstance(raw, YList) else [raw]
        out = []
        for z in items:
            if not isinstance(z, str) or z not in self.names:
                sec.error(key, f"no zone named {z!r} (zones: {', '.join(self.names)}, or all)")
                return ()
            out.append(self.names.index(z))
        if len(set(out)) != len(out):
            sec.error(key, "names a zone twice")
            return ()
        return tuple(sorted(out))

    def level(self, sec: Section) -> tuple[float, float | None]:
        """(scale, target_mmhg) of a fill: a fraction of each zone's target, or one absolute pressure."""
        if sec.has("scale") and sec.has("target_mmhg"):
            sec.error("scale", "give scale or target_mmhg, not both")
        scale = sec.number("scale", 1.0, above=0.0, maximum=1.0)
        target = sec.number("target_mmhg", None, above=0.0, maximum=self.max_mmhg, unit="mmHg")
        return (scale or 1.0), target

    def seconds(self, sec: Section, key: str, default: Any = REQUIRED) -> float:
        return sec.number(key, default, above=0.0, maximum=MAX_STEP_S, unit="s") or 0.0

    # -- primitives ----------------------------------------------------------------------------------------
    def _fill(self, sec: Section, path: str, line: int) -> list[Step]:
        zones = self.zones(sec, "fill")
        scale, target = self.level(sec)
        return [Step(StepKind.FILL, zones, scale=scale, target_mmhg=target, source=path, line=line)] if zones else []

    def _hold_s(self, sec: Section, path: str, line: int) -> list[Step]:
        return [Step(StepKind.HOLD, duration_s=self.seconds(sec, "hold_s"), source=path, line=line)]

    def _vent(self, sec: Section, path: str, line: int) -> list[Step]:
        zones = self.zones(sec, "vent")
        wait = sec.boolean("wait", False)
        return [Step(StepKind.VENT, zones, wait=bool(wait), source=path, line=line)] if zones else []

    def _rest_s(self, sec: Section, path: str, line: int) -> list[Step]:
        return [
            Step(
                StepKind.REST,
                tuple(range(len(self.names))),
                duration_s=self.seconds(sec, "rest_s"),
                source=path,
                line=line,
            )
        ]

    def _pulse(self, sec: Section, path: str, line: int) -> list[Step]:
        zones = self.zones(sec, "pulse")
        times = sec.integer("times", 3, minimum=1, maximum=100) or 1
        on_s = self.seconds(sec, "on_s", self.timing["pulse_on_s"])
        off_s = self.seconds(sec, "off_s", self.timing["pulse_off_s"])
        scale, target = self.level(sec)
        return _pulses(zones, times, on_s, off_s, scale, target, path, line) if zones else []

    def _pattern(self, sec: Section, path: str, line: int) -> list[Step]:
        name = sec.string("pattern", choices=tuple(PATTERNS))
        if name is None:
            sec._used.update(sec.data)
            return []
        return PATTERNS[name](self, sec, f"{path} (pattern {name})", line)


def _pulses(
    zones: tuple[int, ...],
    times: int,
    on_s: float,
    off_s: float,
    scale: float,
    target: float | None,
    source: str,
    line: int,
) -> list[Step]:
    steps: list[Step] = []
    for _ in range(times):
        steps += [
            Step(StepKind.FILL, zones, scale=scale, target_mmhg=target, source=source, line=line),
            Step(StepKind.HOLD, duration_s=on_s, source=source, line=line),
            Step(StepKind.VENT, zones, source=source, line=line),
            Step(StepKind.HOLD, duration_s=off_s, source=source, line=line),
        ]
    return steps


# -- named patterns ----------------------------------------------------------------------------------------------


def _ordered(reader: _StepReader, sec: Section) -> list[int]:
    direction = sec.string("direction", "up", choices=("up", "down"))
    zones = list(reader.zones(sec, "zones")) if sec.has("zones") else list(range(len(reader.names)))
    return zones if direction == "up" else zones[::-1]


def _p_sequential(reader: _StepReader, sec: Section, src: str, line: int) -> list[Step]:
    """Fill zones one after another distal to proximal, each held until all are full; hold; vent all (with
    `wait: true`, until they are below 5 mmHg, so the next stroke starts from an empty sleeve)."""
    zones = _ordered(reader, sec)
    hold_s = reader.seconds(sec, "hold_s", reader.timing["hold_s"])
    wait = sec.boolean("wait", False)
    scale, target = reader.level(sec)
    steps = [Step(StepKind.FILL, (z,), scale=scale, target_mmhg=target, source=src, line=line) for z in zones]
    return steps + [
        Step(StepKind.HOLD, duration_s=hold_s, source=src, line=line),
        Step(StepKind.VENT, tuple(sorted(zones)), wait=bool(wait), source=src, line=line),
    ]


def _p_wave(reader: _StepReader, sec: Section, src: str, line: int) -> list[Step]:
    """A band of `band` inflated zones moving up the leg: fill the next zone, hold, release the last of the band."""
    zones = _ordered(reader, sec)
    band = sec.integer("band", 2, minimum=1, maximum=8) or 2
    hold_s = reader.seconds(sec, "hold_s", reader.timing["hold_s"])
    scale, target = reader.level(sec)
    steps = []
    for i, z in enumerate(zones):
        steps.append(Step(StepKind.FILL, (z,), scale=scale, target_mmhg=target, source=src, line=line))
        steps.append(Step(StepKind.HOLD, duration_s=hold_s, source=src, line=line))
        if i + 1 >= band:
            steps.append(Step(StepKind.VENT, (zones[i + 1 - band],), source=src, line=line))
    tail = zones[max(0, len(zones) - band + 1) :]
    if tail:
        steps.append(Step(StepKind.VENT, tuple(sorted(tail)), source=src, line=line))
    return steps


def _p_pulse_hold(reader: _StepReader, sec: Section, src: str, line: int) -> list[Step]:
    """Recovery-boot style: each zone pulses, then fills and holds; distal zones are released as proximal ones
    work, keeping at most `keep` zones inflated ("distal release")."""
    zones = _ordered(reader, sec)
    pulses = sec.integer("pulses", 2, minimum=0, maximum=20)
    on_s = reader.seconds(sec, "on_s", reader.timing["pulse_on_s"])
    off_s = reader.seconds(sec, "off_s", reader.timing["pulse_off_s"])
    hold_s = reader.seconds(sec, "hold_s", reader.timing["hold_s"])
    keep = sec.integer("keep", 2, minimum=2, maximum=8) or 2
    scale, target = reader.level(sec)
    steps, held = [], []
    for z in zones:
        steps += _pulses((z,), pulses or 0, on_s, off_s, scale, target, src, line) if pulses else []
        steps.append(Step(StepKind.FILL, (z,), scale=scale, target_mmhg=target, source=src, line=line))
        steps.append(Step(StepKind.HOLD, duration_s=hold_s, source=src, line=line))
        held.append(z)
        if len(held) >= keep:
            steps.append(Step(StepKind.VENT, (held.pop(0),), source=src, line=line))
    steps.append(Step(StepKind.VENT, tuple(sorted(held)), source=src, line=line))
    return steps


def _p_squeeze(reader: _StepReader, sec: Section, src: str, line: int) -> list[Step]:
    """Zone by zone: fill, hold, vent before the next (kneading; or a proximal clearing pass with direction down)."""
    zones = _ordered(reader, sec)
    hold_s = reader.seconds(sec, "hold_s", reader.timing["hold_s"])
    gap_s = reader.seconds(sec, "gap_s", 0.5)
    scale, target = reader.level(sec)
    steps = []
    for z in zones:
        steps += [
            Step(StepKind.FILL, (z,), scale=scale, target_mmhg=target, source=src, line=line),
            Step(StepKind.HOLD, duration_s=hold_s, source=src, line=line),
            Step(StepKind.VENT, (z,), wait=True, source=src, line=line),
            Step(StepKind.HOLD, duration_s=gap_s, source=src, line=line),
        ]
    return steps


def _p_percussion(reader: _StepReader, sec: Section, src: str, line: int) -> list[Step]:
    """Short quick pulses on each zone in turn."""
    zones = _ordered(reader, sec)
    times = sec.integer("times", 4, minimum=1, maximum=50) or 1
    on_s = reader.seconds(sec, "on_s", reader.timing["pulse_on_s"])
    off_s = reader.seconds(sec, "off_s", reader.timing["pulse_off_s"])
    scale, target = reader.level(sec)
    steps = []
    for z in zones:
        steps += _pulses((z,), times, on_s, off_s, scale, target, src, line)
    return steps


PATTERNS: dict[str, Callable[[_StepReader, Section, str, int], list[Step]]] = {
    "sequential": _p_sequential,
    "wave": _p_wave,
    "pulse-hold": _p_pulse_hold,
    "squeeze": _p_squeeze,
    "percussion": _p_percussion,
}


# -- reverse gradient --------------------------------------------------------------------------------------------


def _check_gradient(profile: Profile, problems: Problems) -> None:
    """Walk one cycle; whenever two zones are inflated together, the proximal one must not be held more than
    REVERSE_GRADIENT_MMHG above the distal one (safety-requirements §B3: a proximal cuff above a lower distal one
    traps blood)."""
    names = profile.zone_names
    inflated: dict[int, float] = {}
    for step in profile.steps:
        if step.kind is StepKind.FILL:
            for z in step.zones:
                inflated[z] = profile.step_target(step, z, profile.ramp_cycles)
        elif step.kind in (StepKind.VENT, StepKind.REST):
            for z in step.zones:
                inflated.pop(z, None)
            continue
        else:
            continue
        for d in sorted(inflated):
            for p in sorted(inflated):
                if p > d and inflated[p] > inflated[d] + REVERSE_GRADIENT_MMHG:
                    problems.error(
                        profile.path,
                        step.line,
                        step.source,
                        f"{names[p]} ({inflated[p]:g} mmHg) would be held {inflated[p] - inflated[d]:g} mmHg above "
                        f"{names[d]} ({inflated[d]:g} mmHg) below it: a reverse gradient "
                        "(docs/safety-requirements.md §B3). If that is "
                        "meant, say allow_reverse_gradient: true",
                    )
                    return
