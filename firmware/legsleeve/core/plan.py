"""The plan a session follows: a profile's cycle as primitive steps, its targets, ramp and length.

Standard library only. `legsleeve.config.profiles` reads the YAML into these; the controller runs them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path


class StepKind(enum.Enum):
    """The four primitive steps every profile pattern expands into."""

    FILL = "fill"  # fill `zones` to their targets; filled zones then hold (done when all are at target)
    HOLD = "hold"  # wait `duration_s`, every zone as it is (held zones are topped up)
    VENT = "vent"  # open the exhausts of `zones` (with `wait`: done when they read below VENTED_MMHG)
    REST = "rest"  # vent `zones` (every zone, or an alternating cycle's limb) and wait `duration_s`
    MEASURE = "measure"  # a limb just released: hold its `zones` closed, bled to the refill level, and measure the rise
    REFILL = "refill"  # wait until the limb of `zones` has refilled since its MEASURE (within the refill bounds)


@dataclass(frozen=True)
class Step:
    """One primitive step. `zones` are indices, distal (0) to proximal."""

    kind: StepKind
    zones: tuple[int, ...] = ()
    duration_s: float = 0.0
    scale: float = 1.0
    target_mmhg: float | None = None
    wait: bool = False
    source: str = ""  # where it came from, for messages: "cycle[2]" or "cycle[0] (pattern wave)"
    line: int = 0
    limb: str = ""  # MEASURE and REFILL: the limb; an alternating cycle's other steps: the limb they work on

    def describe(self, names: tuple[str, ...], limbs: tuple[str, ...] = ()) -> str:
        """In words, as logs and status show it: "fill ankle", "hold 10s", "refill left"."""
        if self.kind in (StepKind.MEASURE, StepKind.REFILL):
            return f"{self.kind.value} {self.limb}".rstrip()
        if self.kind in (StepKind.HOLD, StepKind.REST):
            return f"{self.kind.value} {self.duration_s:g}s"
        return f"{self.kind.value} {_who(self.zones, names, limbs)}"


def _who(zones: tuple[int, ...], names: tuple[str, ...], limbs: tuple[str, ...]) -> str:
    """Zones in words: "all", a limb's name for all of its zones, else their names."""
    if len(zones) == len(names) and len(names) > 1:
        return "all"
    if len(set(limbs)) > 1:
        whole = [
            limb
            for limb in dict.fromkeys(limbs)
            if {i for i, lb in enumerate(limbs) if lb == limb} <= set(zones) and limbs.count(limb) > 1
        ]
        covered = {i for i, lb in enumerate(limbs) if lb in whole}
        return " ".join([*whole, *(names[i] for i in zones if i not in covered)])
    return " ".join(names[i] for i in zones)


@dataclass(frozen=True)
class Turn:
    """One limb's turn of an alternating cycle: `Profile.steps[first:stop]`, which work that limb alone (with
    refill-adaptive rest: its REFILL wait first, its MEASURE last)."""

    limb: str
    first: int
    stop: int


@dataclass(frozen=True)
class RefillSpec:
    """Refill-adaptive rest (a profile's `refill:`): after a limb's compression its sleeve is bled to `measure_mmhg`
    and held closed; the limb is compressed again once the rise its refilling veins cause has levelled off (90 % of
    it), no sooner than `min_s` and no later than `max_s` after its release. Before its first compression each
    limb's sleeve is held at `measure_mmhg` for `leak_check_s` to measure its own loss (0: none assumed); the fit
    allows for the air rewarming after the vent with time constant `rewarm_s` (0: none). docs/refill.md"""

    measure_mmhg: float = 10.0
    min_s: float = 20.0
    max_s: float = 60.0
    rewarm_s: float = 5.0
    leak_check_s: float = 40.0


@dataclass(frozen=True)
class Profile:
    """A pressure profile, validated and expanded: one cycle of steps, the zones' nominal targets, the session's
    length (minutes or cycles) and the ramp that starts it gently."""

    name: str
    description: str
    path: Path
    zone_names: tuple[str, ...]
    targets_mmhg: tuple[float, ...]  # nominal target per zone
    steps: tuple[Step, ...]
    session_minutes: float | None
    session_cycles: int | None
    ramp_cycles: int = 0
    ramp_start: float = 1.0
    allow_reverse_gradient: bool = False
    session_line: int = 0  # the line of its session length in its file, for messages (0: none)
    zone_limbs: tuple[str, ...] = ()  # each zone's limb (empty: one limb)
    alternate: bool = False  # the cycle works the limbs one after another
    refill: RefillSpec | None = None  # refill-adaptive rest, where the profile asks for it
    # An alternating cycle's turns, one per limb in the order written (empty: the steps run as one cycle). The
    # controller takes them by readiness, not strictly in this order: see `legsleeve.core.controller`.
    turns: tuple[Turn, ...] = ()

    def describe(self, step: Step) -> str:
        return step.describe(self.zone_names, self.zone_limbs)

    def limb_of(self, zone: int) -> str:
        return self.zone_limbs[zone] if self.zone_limbs else ""

    @classmethod
    def of_steps(
        cls,
        name: str,
        zone_names: tuple[str, ...],
        steps: tuple[Step, ...],
        target_mmhg: float,
        *,
        cycles: int = 1,
        path: Path | None = None,
    ) -> Profile:
        """A plan made in code rather than read from YAML (self-test, test-valve, bench): every zone's nominal
        target `target_mmhg`, `cycles` cycles of `steps`."""
        return cls(
            name=name,
            description=name,
            path=path or Path(f"<{name}>"),
            zone_names=zone_names,
            targets_mmhg=(target_mmhg,) * len(zone_names),
            steps=steps,
            session_minutes=None,
            session_cycles=cycles,
        )

    def session_length(self, cycles: int | None, minutes: float | None) -> tuple[int | None, float | None]:
        """(cycles, minutes) of a session: what was asked for, else the profile's own."""
        if cycles is None and minutes is None:
            return self.session_cycles, self.session_minutes
        return cycles, minutes

    def step_target(self, step: Step, zone: int, cycle: int) -> float:
        """The pressure a fill step aims for in this zone and cycle (ramp applied), mmHg."""
        base = step.target_mmhg if step.target_mmhg is not None else self.targets_mmhg[zone] * step.scale
        return base * self.ramp_factor(cycle)

    def ramp_factor(self, cycle: int) -> float:
        if cycle >= self.ramp_cycles:
            return 1.0
        return self.ramp_start + (1.0 - self.ramp_start) * cycle / self.ramp_cycles

    def peak_target_mmhg(self, zone: int) -> float:
        """The highest target this profile ever asks of a zone (the supervisor's trip level builds on it)."""
        fills = [
            self.step_target(s, zone, self.ramp_cycles)
            for s in self.steps
            if s.kind is StepKind.FILL and zone in s.zones
        ]
        return max(fills, default=0.0)

    def fill_order(self) -> list[str]:
        """The fill steps of one cycle, as the controller will announce them ("fill ankle", ...)."""
        return [self.describe(s) for s in self.steps if s.kind is StepKind.FILL]
