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
from legsleeve.core.plan import Profile, RefillSpec, Step, StepKind, Turn
from legsleeve.errors import ConfigError

MAX_STEP_S = 3600.0
MAX_REFILL_S = 300.0  # a leg refills within a minute or two; a rest longer than this is a mistake
MAX_REWARM_S = 30.0  # a bladder's air rewarms against the skin in seconds; a time constant beyond this is a mistake
# The sleeve's loss check: the fill to the refill level, LOSS_SETTLE_S of settling, then LOSS_MIN_SPAN_S at least
MIN_LEAK_CHECK_S, MAX_LEAK_CHECK_S = 20.0, 120.0


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
    sites = hw.zone_sites

    targets: list[float | None] = [None] * len(names)
    if (tsec := top.section("targets")) is not None:
        default = tsec.number("default_mmhg", above=0.0, maximum=max_mmhg, unit="mmHg")
        targets = [default] * len(names)
        if (zsec := tsec.section("zones", optional=True)) is not None:
            # a zone's name within its limb (calf: every limb's calf), then a zone's own id (left.calf) over that
            keys = sorted(zsec.data, key=lambda key: key in names and key not in sites)
            for zone in keys:
                which = [names.index(zone)] if zone in names else [i for i, s in enumerate(sites) if s == zone]
                if not which:
                    zsec.error(zone, f"no zone named {zone!r} in hardware.yaml (zones: {_known(hw)})")
                    zsec._used.add(zone)
                    continue
                value = zsec.number(zone, above=0.0, maximum=max_mmhg, unit="mmHg")
                for i in which:
                    targets[i] = value
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
    alternate = bool(top.boolean("alternate", False))
    refill = _read_refill(top.section("refill", optional=True), hw)

    # An alternating cycle is the cycle as written, once for each limb in turn; otherwise once, for every zone.
    scopes = [(limb, hw.limb_zones(limb)) for limb in hw.limbs] if alternate else [("", tuple(range(len(names))))]
    steps: list[Step] = []
    turns: list[Turn] = []
    for limb, scope in scopes:
        reader = _StepReader(top, hw, scope, limb, timing, max_mmhg)
        body = [step for _index, item, spath, line in top.items("cycle") for step in reader.read(item, spath, line)]
        if refill is not None:
            # refill-adaptive rest: each limb waits for its refill before it is squeezed, and is measured after
            limbs = [limb] if limb else list(hw.limbs)
            line = top.line_of("refill")
            waits = [Step(StepKind.REFILL, hw.limb_zones(lb), source="refill", line=line, limb=lb) for lb in limbs]
            measures = [Step(StepKind.MEASURE, hw.limb_zones(lb), source="refill", line=line, limb=lb) for lb in limbs]
            body = waits + body + measures
        if alternate:
            turns.append(Turn(limb, len(steps), len(steps) + len(body)))
        steps.extend(body)
        if problems.errors:
            break  # the same mistake again for the next limb says nothing new
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
        zone_limbs=hw.zone_limbs,
        alternate=alternate,
        refill=refill,
        turns=tuple(turns),
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


def _known(hw: HardwareConfig) -> str:
    """The names a profile may use for zones: each zone's, and on several limbs its name within its limb and the
    limbs' own."""
    sites = dict.fromkeys(hw.zone_sites)
    if len(hw.limbs) < 2:
        return ", ".join(hw.zone_names)
    return f"{', '.join(sites)} (on every limb), {', '.join(hw.zone_names)}, or a limb: {', '.join(hw.limbs)}"


def _read_refill(sec: Section | None, hw: HardwareConfig) -> RefillSpec | None:
    if sec is None:
        return None
    d = RefillSpec()
    venous = hw.limits.venous_safe_mmhg
    measure = sec.number("measure_mmhg", d.measure_mmhg, minimum=0.0, maximum=venous, unit="mmHg")
    min_s = sec.number("min_s", d.min_s, minimum=0.0, maximum=MAX_REFILL_S, unit="s")
    max_s = sec.number("max_s", d.max_s, above=0.0, maximum=MAX_REFILL_S, unit="s")
    rewarm_s = sec.number("rewarm_s", d.rewarm_s, minimum=0.0, maximum=MAX_REWARM_S, unit="s")
    leak_check_s = sec.number("leak_check_s", d.leak_check_s, minimum=0.0, maximum=MAX_LEAK_CHECK_S, unit="s")
    sec.finish()
    if measure is None or min_s is None or max_s is None or rewarm_s is None or leak_check_s is None:
        return None
    if max_s < min_s:
        sec.error("max_s", f"must be at least min_s ({min_s:g} s), got {max_s:g}")
        return None
    if 0.0 < leak_check_s < MIN_LEAK_CHECK_S:
        sec.error("leak_check_s", f"must be 0 (no check) or at least {MIN_LEAK_CHECK_S:g} s, got {leak_check_s:g}")
        return None
    return RefillSpec(measure, min_s, max_s, rewarm_s, leak_check_s)


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

    def __init__(
        self, top: Section, hw: HardwareConfig, scope: tuple[int, ...], limb: str, timing: _Timing, max_mmhg: float
    ):
        self.top = top
        self.hw = hw
        self.names = hw.zone_names
        self.scope = scope  # the zones this reading of the cycle works on (an alternating cycle's limb, or all)
        self.limb = limb
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
        """ZONES: `all`, a zone, its name within its limb (every limb's, or the alternating limb's), a limb, or a
        list of those."""
        raw = sec.raw(key)
        if raw == "all":
            return self.scope
        hw = self.hw
        items = raw if isinstance(raw, YList) else [raw]
        out: list[int] = []
        for z in items:
            if isinstance(z, str) and z in self.names:
                which = [self.names.index(z)]
            elif isinstance(z, str) and len(hw.limbs) > 1 and z in hw.limbs:
                which = list(hw.limb_zones(z))
            elif isinstance(z, str) and z in hw.zone_sites:
                which = [i for i in self.scope if hw.zone_sites[i] == z]
            else:
                sec.error(key, f"no zone named {z!r} (zones: {_known(self.hw)}, or all)")
                return ()
            outside = [self.names[i] for i in which if i not in self.scope]
            if outside or not which:
                sec.error(
                    key,
                    f"{z!r} is not on limb {self.limb!r}: an alternating cycle is written once for every limb, so "
                    "name zones by their name within a limb (calf, not left.calf)",
                )
                return ()
            out.extend(which)
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
        return [Step(StepKind.HOLD, duration_s=self.seconds(sec, "hold_s"), source=path, line=line, limb=self.limb)]

    def _vent(self, sec: Section, path: str, line: int) -> list[Step]:
        zones = self.zones(sec, "vent")
        wait = sec.boolean("wait", False)
        return [Step(StepKind.VENT, zones, wait=bool(wait), source=path, line=line)] if zones else []

    def _rest_s(self, sec: Section, path: str, line: int) -> list[Step]:
        return [
            Step(
                StepKind.REST,
                self.scope,
                duration_s=self.seconds(sec, "rest_s"),
                source=path,
                line=line,
                limb=self.limb,
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


def _ordered(reader: _StepReader, sec: Section) -> list[tuple[int, ...]]:
    """The zones a pattern works through, in order, as groups: on one limb each zone alone; on several, the zones
    at the same place on each limb together (every limb's ankle, then every limb's calf)."""
    direction = sec.string("direction", "up", choices=("up", "down"))
    zones = reader.zones(sec, "zones") if sec.has("zones") else reader.scope
    limbs = reader.hw.zone_limbs
    per_limb: dict[str, list[int]] = {}
    for z in zones:
        per_limb.setdefault(limbs[z], []).append(z)
    depth = max((len(v) for v in per_limb.values()), default=0)
    groups = [tuple(sorted(v[k] for v in per_limb.values() if k < len(v))) for k in range(depth)]
    return groups if direction == "up" else groups[::-1]


def _p_sequential(reader: _StepReader, sec: Section, src: str, line: int) -> list[Step]:
    """Fill zones one after another distal to proximal, each held until all are full; hold; vent all (with
    `wait: true`, until they are below 5 mmHg, so the next stroke starts from an empty sleeve)."""
    groups = _ordered(reader, sec)
    hold_s = reader.seconds(sec, "hold_s", reader.timing["hold_s"])
    wait = sec.boolean("wait", False)
    scale, target = reader.level(sec)
    steps = [Step(StepKind.FILL, g, scale=scale, target_mmhg=target, source=src, line=line) for g in groups]
    return steps + [
        Step(StepKind.HOLD, duration_s=hold_s, source=src, line=line),
        Step(StepKind.VENT, _all(groups), wait=bool(wait), source=src, line=line),
    ]


def _all(groups: list[tuple[int, ...]]) -> tuple[int, ...]:
    return tuple(sorted(z for g in groups for z in g))


def _p_wave(reader: _StepReader, sec: Section, src: str, line: int) -> list[Step]:
    """A band of `band` inflated zones moving up the leg: fill the next zone, hold, release the last of the band."""
    groups = _ordered(reader, sec)
    band = sec.integer("band", 2, minimum=1, maximum=8) or 2
    hold_s = reader.seconds(sec, "hold_s", reader.timing["hold_s"])
    scale, target = reader.level(sec)
    steps = []
    for i, g in enumerate(groups):
        steps.append(Step(StepKind.FILL, g, scale=scale, target_mmhg=target, source=src, line=line))
        steps.append(Step(StepKind.HOLD, duration_s=hold_s, source=src, line=line))
        if i + 1 >= band:
            steps.append(Step(StepKind.VENT, groups[i + 1 - band], source=src, line=line))
    tail = groups[max(0, len(groups) - band + 1) :]
    if tail:
        steps.append(Step(StepKind.VENT, _all(tail), source=src, line=line))
    return steps


def _p_pulse_hold(reader: _StepReader, sec: Section, src: str, line: int) -> list[Step]:
    """Recovery-boot style: each zone pulses, then fills and holds; distal zones are released as proximal ones
    work, keeping at most `keep` zones inflated ("distal release")."""
    groups = _ordered(reader, sec)
    pulses = sec.integer("pulses", 2, minimum=0, maximum=20)
    on_s = reader.seconds(sec, "on_s", reader.timing["pulse_on_s"])
    off_s = reader.seconds(sec, "off_s", reader.timing["pulse_off_s"])
    hold_s = reader.seconds(sec, "hold_s", reader.timing["hold_s"])
    keep = sec.integer("keep", 2, minimum=2, maximum=8) or 2
    scale, target = reader.level(sec)
    steps: list[Step] = []
    held: list[tuple[int, ...]] = []
    for g in groups:
        steps += _pulses(g, pulses or 0, on_s, off_s, scale, target, src, line) if pulses else []
        steps.append(Step(StepKind.FILL, g, scale=scale, target_mmhg=target, source=src, line=line))
        steps.append(Step(StepKind.HOLD, duration_s=hold_s, source=src, line=line))
        held.append(g)
        if len(held) >= keep:
            steps.append(Step(StepKind.VENT, held.pop(0), source=src, line=line))
    steps.append(Step(StepKind.VENT, _all(held), source=src, line=line))
    return steps


def _p_squeeze(reader: _StepReader, sec: Section, src: str, line: int) -> list[Step]:
    """Zone by zone: fill, hold, vent before the next (kneading; or a proximal clearing pass with direction down)."""
    groups = _ordered(reader, sec)
    hold_s = reader.seconds(sec, "hold_s", reader.timing["hold_s"])
    gap_s = reader.seconds(sec, "gap_s", 0.5)
    scale, target = reader.level(sec)
    steps = []
    for g in groups:
        steps += [
            Step(StepKind.FILL, g, scale=scale, target_mmhg=target, source=src, line=line),
            Step(StepKind.HOLD, duration_s=hold_s, source=src, line=line),
            Step(StepKind.VENT, g, wait=True, source=src, line=line),
            Step(StepKind.HOLD, duration_s=gap_s, source=src, line=line),
        ]
    return steps


def _p_percussion(reader: _StepReader, sec: Section, src: str, line: int) -> list[Step]:
    """Short quick pulses on each zone in turn."""
    groups = _ordered(reader, sec)
    times = sec.integer("times", 4, minimum=1, maximum=50) or 1
    on_s = reader.seconds(sec, "on_s", reader.timing["pulse_on_s"])
    off_s = reader.seconds(sec, "off_s", reader.timing["pulse_off_s"])
    scale, target = reader.level(sec)
    steps = []
    for g in groups:
        steps += _pulses(g, times, on_s, off_s, scale, target, src, line)
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
                same_limb = profile.limb_of(p) == profile.limb_of(d)  # a gradient is a thing of one limb
                if p > d and same_limb and inflated[p] > inflated[d] + REVERSE_GRADIENT_MMHG:
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
