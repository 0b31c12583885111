"""The fault matrix: every fault kind x every shipped profile x injection in fill, hold, vent and rest, each run end
to end on the simulated rig (real drivers, self-test, supervisor, log), judged from the session log and the
simulated world's true pressures.

For each profile a healthy reference run (same seed) gives the times to inject at and the zone concerned. A fault
is judged from its *exposure*: the first moment, at or after injection, when the reference run does what makes the
fault visible (a leak needs the zone inflated, a dead pump needs the pump asked to run, a stuck exhaust needs a vent).

Every cell of a profile is the same fault-free run up to its injection time, so cells are forked from a trunk run
just before their injection (`run_branches`; a forked cell is the very run a fresh one is, and
tests/test_fault_matrix.py checks that). The reference run itself is that trunk (`run_profile_cells`, `run_planned`):
it leaves checkpoints as it goes, and once it has ended and planned the cells, each is forked from the checkpoint
before it. In the suite each profile is one test: every fault kind injected at each of its phases.
`python -m tests.fault_matrix [--jobs N]` runs it all over a process pool (every core by default, a profile a task)
and prints the summary per fault kind.

Every run is on the shipped config unless given another build's config directory (`reference(profile, config_dir)`,
`references(config_dir)`, `Cell.config_dir`): tests/build_matrix.py runs cells on varied builds.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import math
import os
import pickle
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tests.forking import collect, fork_with_pipe, send
from tests.helpers import CONFIG_DIR, PROFILES

if TYPE_CHECKING:
    from legsleeve.app.runner import Outcome
    from legsleeve.config.model import HardwareConfig

PHASES = ("fill", "hold", "vent", "rest")
SEED = 11
TICK = 0.02

# fault -> (rules that may name it, whose zone the trip must name, detection bound after exposure in s, why)
EXPECTED = {
    "leak": (
        {"SAFE-5", "SAFE-7"},
        "fault",
        4.0,
        "from the first hold: half a second of it, then at most a top-up's fill window (3 s); a leak that never "
        "lets the fill finish: once the fill stalls, within fill_timeout_s (40 s)",
    ),
    "blocked": ({"SAFE-6", "SAFE-7"}, "fault", 0.3, "the next fill or vent of that zone, within a few ticks"),
    "disconnected": (
        {"SAFE-5", "SAFE-6", "SAFE-7"},
        "fault",
        6.5,
        "at once as a hose jump or a drop; filling, two fill windows (the one under way began sound), counted in "
        "fill time (SAFE-15's pump-off checks are not)",
    ),
    "inlet-stuck-open": (
        {"SAFE-8", "SAFE-4", "SAFE-7", "SAFE-5"},
        "fault",
        6.0,
        "once the pump runs with the zone held, or vented yet above 5 mmHg (a stuck inlet that its open exhaust "
        "keeps below 5 mmHg leaves it vented: nothing to see, nothing on the leg): air coming in to a held zone, "
        "going back out of it, or a venting zone levelling off above 5 mmHg (up to ~4 s to level, then 1 s)",
    ),
    "exhaust-stuck-closed": ({"SAFE-8"}, "fault", 3.2, "the vent check (3 s)"),
    "pump-dead": (
        {"SAFE-5"},
        "any",
        7.0,
        "two fill windows (the one under way may have begun with a pump, or with air stored in the manifold), "
        "counted in fill time (SAFE-15's pump-off checks are not)",
    ),
    "pump-stuck-on": ({"SAFE-4"}, "manifold", 1.5, "0.5 s settle, then the manifold's 10 mmHg rise"),
    "sensor-dead": ({"SAFE-9"}, "fault", 0.3, "the stale limit (0.2 s)"),
    "sensor-stuck": ({"SAFE-9"}, "fault", 1.1, "the stuck limit (1 s)"),
    "sensor-busy": ({"SAFE-9"}, "fault", 0.35, "the stale limit (0.2 s), ticks stretched by the 20 ms deadline"),
    "sensor-integrity": ({"SAFE-9"}, "fault", 0.3, "the stale limit (0.2 s)"),
    "sensor-spike": ({"SAFE-9"}, "fault", 1.0, "three spikes (one conversion in four)"),
    "estop": ({"SAFE-12"}, None, 0.05, "the next tick"),
}
# A one-sensor build (docs/one-sensor.md) sees a zone only at its peeks, through the manifold, and can confirm no vent
# after a trip: what it gives up, as the fault matrix expects it there. Where this differs from EXPECTED:
EXPECTED_SHARED = {
    **EXPECTED,
    "blocked": (
        {"SAFE-4", "SAFE-6", "SAFE-7"},
        "fault",
        1.5,
        "the zone's next fill (pump on): the hose jumps between two fill peeks (0.5 s of pumping each), or a strong "
        "pump drives the dead-ended manifold past the zone's trip level before its look (SAFE-4); a hold or a vent "
        "shows nothing, a peek reading the hose beside the manifold. The bladder beyond keeps its air: the vent is "
        "reported not confirmed, at high priority",
    ),
    "inlet-stuck-open": (
        {"SAFE-4", "SAFE-5", "SAFE-6", "SAFE-7", "SAFE-8", "SAFE-10"},
        "any",
        40.0,
        "within a fill's time (fill_timeout_s, 40 s): the stuck zone is joined to every peek and every fill, so the "
        "gain may show in another zone (a fill's first look reading the stuck zone's pressure: too fast a rise), or "
        "as a fill that stalls; meanwhile the manifold's ceiling keeps it below the filling zone's trip level and its "
        "own peeks below its own",
    ),
    "exhaust-stuck-closed": (
        {"SAFE-8"},
        "fault",
        4.8,
        "the vent check (3 s), seen at the zone's next vent peek: within 0.5 s of its last, after the other venting "
        "zones' peeks (up to 0.3 s each, four zones) and its own",
    ),
    "pump-stuck-on": (
        {"SAFE-4", "SAFE-6", "SAFE-8"},
        "any",
        1.5,
        "0.5 s settle, then the manifold's rise; or the zone joined at a peek gaining, too fast for a bladder",
    ),
    "sensor-stuck": (
        {"SAFE-6", "SAFE-7", "SAFE-8", "SAFE-9"},
        "any",
        1.1,
        "the stuck limit (1 s); the zones it reads may seem to lose, gain or jump first",
    ),
    "sensor-spike": ({"SAFE-4", "SAFE-9"}, "any", 1.0, "three spikes, or one read as the pump running"),
}


def expected(fault: str, shared: bool) -> tuple[set[str], str | None, float, str]:
    """(rules, whose zone, bound in s, why) for a fault on a build: one with a sensor per zone, or one sensor."""
    return (EXPECTED_SHARED if shared else EXPECTED)[fault]


ZONE_FAULTS = (
    "leak",
    "blocked",
    "disconnected",
    "inlet-stuck-open",
    "exhaust-stuck-closed",
    "sensor-dead",
    "sensor-stuck",
    "sensor-busy",
    "sensor-integrity",
    "sensor-spike",
)


def _f(cell: str) -> float:
    return float(cell) if cell else math.nan


@dataclass
class Reference:
    """A healthy run of one profile: its log rows, for choosing when and where to inject."""

    profile: str
    rows: list[dict]
    zones: tuple[str, ...]
    config_dir: Path = CONFIG_DIR
    shared_sensor: bool = False  # a one-sensor build: its sensor faults are the manifold sensor's

    def t(self, i: int) -> float:
        return float(self.rows[i]["t_s"])

    def injections(self) -> dict[str, tuple[float, str]]:
        """phase -> (time, zone) to inject at; a phase the run never reached (a run cut short by a trip, say) is left
        out."""
        rows, zones = self.rows, self.zones
        out = {}
        # fill: the middle of the second zone's first fill (the first zone may still be in the self-test's wake)
        fills = [
            (i, r["state"])
            for i, r in enumerate(rows)
            if r["state"].startswith("fill ") and (i == 0 or rows[i - 1]["state"] != r["state"])
        ]
        if fills:
            i0, state = fills[1] if len(fills) > 1 else fills[0]
            i1 = next((k for k in range(i0, len(rows)) if rows[k]["state"] != state), len(rows) - 1)
            out["fill"] = ((self.t(i0) + self.t(i1)) / 2, state.split()[1] if state.split()[1] in zones else zones[0])
        # hold: the middle of the first hold with a zone held
        for k, r in enumerate(rows):
            held = [z for z in zones if r[f"{z}_inlet"] == "0" and r[f"{z}_exhaust"] == "0" and _f(r[f"{z}_mmhg"]) > 10]
            if r["state"].startswith("hold") and held:
                k1 = next((j for j in range(k, len(rows)) if rows[j]["state"] != r["state"]), len(rows) - 1)
                out["hold"] = ((self.t(k) + self.t(k1)) / 2, held[0])
                break
        # vent: just after the first zone starts venting from > 10 mmHg
        for k in range(1, len(rows)):
            for z in zones:
                if (
                    rows[k - 1][f"{z}_exhaust"] == "0"
                    and rows[k][f"{z}_exhaust"] == "1"
                    and _f(rows[k][f"{z}_mmhg"]) > 10
                ):
                    out["vent"] = (self.t(k) + 0.3, z)
                    break
            if "vent" in out:
                break
        # rest: the middle of the first rest (a refill-adaptive rest's wait too)
        rest = next((k for k, r in enumerate(rows) if r["state"].startswith(("rest", "refill"))), None)
        if rest is not None:
            k1 = next((j for j in range(rest, len(rows)) if rows[j]["state"] != rows[rest]["state"]), len(rows) - 1)
            out["rest"] = ((self.t(rest) + self.t(k1)) / 2, zones[1])
        return out


HELD_S = 0.5  # a hold: both valves closed this long


def _first_hold(rows: list[dict], zone: str | None, measure_mmhg: float | None = None) -> float:
    """When the first hold of `zone` above 5 mmHg, lasting HELD_S, began (inf if none). A zone whose own fill step is
    under way is not held but paused (while another zone's top-up has the pump): its fill goes on after. A sleeve
    held for refill-adaptive rest's measure (its target the profile's `refill.measure_mmhg`, below venous pressure)
    is not a hold that squeezes: a leak there only lowers it (the measure finds no refill; the next compression's
    hold finds the leak)."""
    since = None
    for r in rows:
        t = float(r["t_s"])
        own_fill = r["state"].startswith("fill ") and zone in r["state"].split()[1:]
        measuring = measure_mmhg is not None and _f(r[f"{zone}_target_mmhg"]) <= measure_mmhg + 0.01
        if (
            r[f"{zone}_inlet"] == "0"
            and r[f"{zone}_exhaust"] == "0"
            and _f(r[f"{zone}_mmhg"]) > 5
            and not own_fill
            and not measuring
        ):
            since = t if since is None else since
            if t - since >= HELD_S:
                return since
        else:
            since = None
    return math.inf


def exposure(
    rows: list[dict],
    fault: str,
    zone: str | None,
    at_s: float,
    measure_mmhg: float | None = None,
    shared: bool = False,
) -> tuple[float, str]:
    """(time, how) of the first moment at or after `at_s` when this run's own log shows the situation that makes
    the fault visible - a leak needs the zone held, a dead pump needs the pump asked to run, and so on."""
    rows = [r for r in rows if float(r["t_s"]) >= at_s - 1e-9]
    if fault.startswith("sensor-") or fault == "estop":
        return at_s, "at once"

    def first(pred) -> float:
        for prev, r in zip([None] + rows, rows, strict=False):
            if pred(prev, r):
                return float(r["t_s"])
        return math.inf

    inflated = lambda r: r[f"{zone}_exhaust"] == "0"  # noqa: E731 - filling or held
    if fault == "leak":  # a hold shows a leak; a fill may only slow down, and SAFE-5 judges that
        held = _first_hold(rows, zone, measure_mmhg)
        if math.isfinite(held):
            return held, "held"
        return first(lambda p, r: inflated(r)), "filling"
    if fault == "disconnected":
        return first(lambda p, r: inflated(r)), "inflated"
    if fault == "blocked" and shared:  # the next fill with the pump on: a peek or a vent shows only the hose
        return first(lambda p, r: r[f"{zone}_inlet"] == "1" and float(r["pump_duty"]) > 0), "filled"
    if fault == "blocked":  # the next fill of the zone, or its next vent from inflated
        return first(
            lambda p, r: r[f"{zone}_inlet"] == "1" or (p is not None and inflated(p) and r[f"{zone}_exhaust"] == "1")
        ), "filled or vented"
    if fault == "exhaust-stuck-closed":  # the next vent from above 10 mmHg
        return first(
            lambda p, r: p is not None and inflated(p) and r[f"{zone}_exhaust"] == "1" and _f(p[f"{zone}_mmhg"]) > 10
        ), "vented"
    if fault == "inlet-stuck-open":  # the pump running while this zone's inlet is closed: held, or fed above 5 mmHg
        return first(
            lambda p, r: (
                float(r["pump_duty"]) > 0
                and r[f"{zone}_inlet"] == "0"
                and (r[f"{zone}_exhaust"] == "0" or _f(r[f"{zone}_mmhg"]) > 5.0)
            )
        ), "pump runs"
    if fault == "pump-dead":
        return first(lambda p, r: float(r["pump_duty"]) > 0), "pump asked to run"
    if fault == "pump-stuck-on":
        return first(lambda p, r: float(r["pump_duty"]) == 0), "pump told to stop"
    raise ValueError(fault)


def reference(profile: str, seed: int = SEED, config_dir: Path = CONFIG_DIR) -> Reference:
    from legsleeve.app.session import run_session
    from legsleeve.app.sessionlog import read_log
    from legsleeve.config.hardware import load_hardware
    from legsleeve.config.profiles import load_profile
    from legsleeve.hw.backends import open_sim

    cfg = load_hardware(config_dir)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "ref.csv"
        rig = open_sim(cfg, seed=seed)
        try:
            result = run_session(rig, load_profile(config_dir, profile, cfg), cycles=2, log_path=log)
        finally:
            rig.close()
        assert result.outcome.trip is None, result.outcome.trip
        return Reference(profile, read_log(log), cfg.zone_names, Path(config_dir), cfg.shared_sensor)


@dataclass
class Cell:
    profile: str
    phase: str
    fault: str
    zone: str | None
    at_s: float
    config_dir: Path = CONFIG_DIR  # the build: its hardware.yaml (limits and simulated sleeve) and profiles/
    shared: bool = False  # a one-sensor build (EXPECTED_SHARED)
    exposure_s: float = math.nan
    exposed_how: str = ""
    rule: str | None = None
    trip_zone: str | None = None
    trip_s: float | None = None
    reason: str = ""
    peak_mmhg: float = 0.0  # highest true pressure on the leg: in any bladder
    vent_after_trip_s: float | None = None  # until every zone (true pressure) was below 5 mmHg
    cannot_vent: str | None = None
    problems: list[str] = field(default_factory=list)

    fill_latency_s: float | None = None  # for faults SAFE-5 judges: the fill time (pump on) from exposure to trip

    @property
    def latency_s(self) -> float:
        if self.trip_s is None:
            return math.inf
        return self.fill_latency_s if self.fill_latency_s is not None else self.trip_s - self.exposure_s

    def spec(self) -> str:
        return f"{self.fault}{':' + self.zone if self.zone else ''}@{self.at_s:.2f}"


Truth = list[tuple[float, list[float]]]  # (t, every zone's true pressure) at every read, then every 0.1 s


def run_followed(config_dir: Path, profile: str, faults=()) -> tuple[HardwareConfig, Outcome, list[dict], Truth]:
    """One session of a profile (two cycles, seed SEED) on a build, with these faults (FaultSpec) scheduled, and the
    truth followed: every zone's true pressure on the leg (its bladder's: beyond a kinked or pulled-off hose, the
    hose on the valve side may see the manifold's pressure for a tick, the leg does not) at every read, then every
    0.1 s for the vent timeout after the trip or the end. Returns (config, outcome, log rows, truth)."""
    from legsleeve.app.session import run_session
    from legsleeve.app.sessionlog import read_log
    from legsleeve.config.hardware import load_hardware
    from legsleeve.config.profiles import load_profile
    from legsleeve.hw.backends import open_sim

    cfg = load_hardware(config_dir)
    truth: Truth = []
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "cell.csv"
        rig = open_sim(cfg, seed=SEED, faults=list(faults))
        _follow_truth(rig, truth)
        try:
            result = run_session(rig, load_profile(config_dir, profile, cfg), cycles=2, log_path=log)
        finally:
            rig.close()
        _follow_after(rig, result.outcome, truth)
        rows = read_log(log)
    return cfg, result.outcome, rows, truth


def _follow_truth(rig, truth: Truth) -> None:
    """Record every zone's true pressure at every read of the rig (its world brought up to the read's time)."""
    world = rig.world
    physics = world.physics
    n = len(rig.config.zones)
    real_read = rig.read

    def read():
        r = real_read()
        world.settle()
        pressures = [physics.bladder_mmhg(i) for i in range(n)]
        truth.append((r.t_s, pressures))
        return r

    rig.read = read


def _follow_after(rig, outcome: Outcome, truth: Truth) -> None:
    """The process has ended, outputs released (which is the safe state): the air goes on as physics says, followed
    every 0.1 s for the vent timeout after the trip or the end."""
    cfg, world = rig.config, rig.world
    physics = world.physics
    end = (outcome.trip.t_s if outcome.trip else outcome.end_s) + cfg.limits.vent_timeout_s
    while world.clock.now() < end:
        world.clock.advance(0.1)
        world.settle()
        truth.append((world.clock.now(), [physics.bladder_mmhg(i) for i in range(len(cfg.zones))]))


# Faults judged on fill time once the zone is being filled: SAFE-5's windows count only the time the pump fills it
# (SAFE-15's checks stop it for a moment, more often where two zones fill together: both legs' calves, say; a fill
# paused for another zone's top-up is held, and SAFE-7 may speak then).
FILL_TIMED = ("disconnected", "pump-dead")


def _fill_time(rows: list[dict], fault: str, zone: str | None, since_s: float, until_s: float) -> float:
    """Time from `since_s` to `until_s` with the pump running (and, for a zone's fault, that zone's inlet open)."""
    total = 0.0
    for prev, r in zip(rows, rows[1:], strict=False):
        t0, t1 = float(prev["t_s"]), float(r["t_s"])
        if t1 <= since_s or t0 >= until_s:
            continue
        filling = float(prev["pump_duty"]) > 0 and (fault == "pump-dead" or prev[f"{zone}_inlet"] == "1")
        if filling:
            total += min(t1, until_s) - max(t0, since_s)
    return total


def run_cell(cell: Cell) -> Cell:
    """Run one cell end to end from scratch and judge it; problems are recorded on the cell, not raised."""
    from legsleeve.sim.faults import FaultSpec

    cfg, o, rows, truth = run_followed(cell.config_dir, cell.profile, [FaultSpec(cell.fault, cell.zone, cell.at_s)])
    return judge(cell, cfg, o, rows, truth)


def judge(cell: Cell, cfg: HardwareConfig, o: Outcome, rows: list[dict], truth: Truth) -> Cell:
    """Judge a cell's run (its outcome, log rows and truth) against what its fault must cause; problems are recorded
    on the cell, not raised."""
    from legsleeve.core.limits import VENTED_MMHG

    cell.peak_mmhg = max(max(p) for _, p in truth)
    limit = cfg.limits.max_mmhg + 5.0
    if cell.peak_mmhg > limit:
        cell.problems.append(f"a zone reached {cell.peak_mmhg:.1f} mmHg (limit {limit:g})")
    if o.trip is None:
        cell.problems.append("no trip")
        return cell
    cell.rule, cell.trip_zone, cell.trip_s, cell.reason = o.trip.rule, o.trip.zone, o.trip.t_s, o.trip.reason
    rules, whose, bound, _ = expected(cell.fault, cell.shared)
    from legsleeve.config.profiles import load_profile

    refill = load_profile(cell.config_dir, cell.profile, cfg).refill
    measure = refill.measure_mmhg if refill is not None else None
    cell.exposure_s, cell.exposed_how = exposure(rows, cell.fault, cell.zone, cell.at_s, measure, cell.shared)
    if cell.fault == "leak" and cell.exposed_how == "filling":
        bound = cfg.limits.fill_timeout_s  # a leak that only slows a fill: SAFE-5 ends the fill once it stalls
    if cell.fault in FILL_TIMED or (cell.fault == "leak" and cell.exposed_how == "filling"):
        fill_s = _fill_time(rows, cell.fault, cell.zone, cell.exposure_s, o.trip.t_s)
        if fill_s > 0.0:  # it was being filled: judged in fill time, whichever rule spoke (a held zone: at once)
            cell.fill_latency_s = fill_s
    if cell.rule not in rules:
        cell.problems.append(f"tripped {o.trip} - expected {' or '.join(sorted(rules))}")
    want_zone = {"fault": cell.zone, "manifold": "manifold", None: None}.get(whose, "any")
    if want_zone != "any" and cell.trip_zone != want_zone:
        cell.problems.append(f"trip names zone {cell.trip_zone}, expected {want_zone}")
    if cell.latency_s > bound:
        cell.problems.append(f"detected {cell.latency_s:.2f} s after exposure (bound {bound} s)")
    # from the trip on: pump at 0, every inlet closed, every exhaust open
    after = [r for r in rows if r["fault"]]
    for r in after:
        if float(r["pump_duty"]) != 0.0 or any(
            (r[f"{z}_inlet"], r[f"{z}_exhaust"]) != ("0", "1") for z in cfg.zone_names
        ):
            cell.problems.append(f"outputs not safe at t={r['t_s']} after the trip")
            break
    # every zone below 5 mmHg within the vent timeout - unless the alarm says it cannot vent; on a one-sensor build a
    # bladder beyond a blocked hose keeps its air unseen, which the end reports as a vent not confirmed
    stuck = o.cannot_vent.zone if o.cannot_vent is not None else None
    if cell.shared and cell.fault == "blocked" and cell.zone in o.unconfirmed:
        stuck = cell.zone
    cell.cannot_vent = stuck
    for t, pressures in truth:
        if t >= o.trip.t_s and all(
            p < VENTED_MMHG for z, p in zip(cfg.zone_names, pressures, strict=False) if z != stuck
        ):
            cell.vent_after_trip_s = t - o.trip.t_s
            break
    if cell.vent_after_trip_s is None or cell.vent_after_trip_s > cfg.limits.vent_timeout_s:
        cell.problems.append(f"not vented within {cfg.limits.vent_timeout_s:g} s of the trip")
    trapped = [z for z, p in zip(cfg.zone_names, truth[-1][1], strict=False) if p >= VENTED_MMHG]
    said = (o.cannot_vent is not None and "cannot vent " + str(stuck) in o.cannot_vent.reason) or stuck in o.unconfirmed
    if trapped and (stuck is None or trapped != [stuck] or not said):
        cell.problems.append(f"{trapped} still under pressure without a 'cannot vent' alarm naming it")
    return cell


# -- cells forked from a trunk -------------------------------------------------------------------------------------

FORK_LEAD_S = 0.25  # fork this long (at most) before an injection: more than any one step of the clock
CHILD_TIMEOUT_S = 600.0  # wall time a forked cell may take (on a busy machine) before it is killed and reported


class _TrunkDone(BaseException):
    """The trunk has forked its last cell, or a child failed: nothing more to run. (Not an Exception: raised from a
    clock listener, it passes through the firmware's handlers - the sweep's, which turn a RuntimeError from the bus
    into a sensor fault - to the trunk's top.)"""


def run_branches(cells: Sequence[Cell], *, fork: bool = True, errors_as_problems: bool = False) -> list[Cell]:
    """Cells of one build and one profile (any faults, any injection times), each run end to end and judged, in the
    order given.

    Every such cell is the build's fault-free run (seed SEED, the truth followed) up to its injection time, the same
    bit for bit whatever fault is to come: a fault scheduled for later changes nothing before it fires. So that run
    is made once (the trunk) and forked just before each injection (FORK_LEAD_S); the child schedules its fault
    (`SimWorld.schedule`, as `open_sim(..., faults=[...])` would have), takes its own copy of the session log so far,
    runs on alone to the end of the session and the truth after it, is judged by `judge` as a fresh cell is, and
    sends its Cell back; the trunk waits for it, then goes on to the next injection. Where there is no `os.fork` (or
    no /proc/self/fd to find the log by), every cell runs from scratch (`run_cell`), as does one whose time the
    trunk stepped over. `tests/test_fault_matrix.py::test_a_forked_cell_is_the_fresh_run` checks that the two give
    the same Cell. `errors_as_problems`: the firmware's own errors (SleeveError: a self-test refusing, say) are
    recorded as a problem of the cell rather than raised."""
    from legsleeve.app.session import run_session
    from legsleeve.app.sessionlog import read_log
    from legsleeve.config.hardware import load_hardware
    from legsleeve.config.profiles import load_profile
    from legsleeve.errors import SleeveError
    from legsleeve.hw.backends import open_sim

    if not cells:
        return []
    config_dir, profile = cells[0].config_dir, cells[0].profile
    if any((c.config_dir, c.profile) != (config_dir, profile) for c in cells):
        raise ValueError("run_branches: cells of one build and one profile")
    fresh_run = functools.partial(_fresh, errors_as_problems=errors_as_problems)
    if not fork or not hasattr(os, "fork") or not os.path.isdir("/proc/self/fd"):
        return [fresh_run(c) for c in cells]
    order = sorted(range(len(cells)), key=lambda i: cells[i].at_s)
    pending = [(i, cells[i]) for i in order if cells[i].at_s > FORK_LEAD_S]
    fresh = [i for i in order if cells[i].at_s <= FORK_LEAD_S]
    done: dict[int, Cell | str] = {}  # a judged Cell, or what went wrong in its child
    branch: list = []  # in a child: [its cell, the pipe to the trunk, its log]

    cfg = load_hardware(config_dir)
    truth: Truth = []
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "trunk.csv"
        rig = open_sim(cfg, seed=SEED)
        _follow_truth(rig, truth)

        def on_advance(t_s: float) -> None:
            if branch:
                return  # a child forks nothing
            _fork_due(t_s, pending, done, branch, rig, log, Path(tmp), fresh.append)

        rig.clock.on_advance(on_advance)
        outcome = None
        try:
            try:
                outcome = run_session(rig, load_profile(config_dir, profile, cfg), cycles=2, log_path=log).outcome
            except _TrunkDone:
                pass
            finally:
                rig.close()
            if branch:
                cell, fd, own_log = branch
                assert outcome is not None
                _follow_after(rig, outcome, truth)
                send(fd, judge(cell, cfg, outcome, read_log(own_log), truth))
                os._exit(0)
        except BaseException as exc:
            if branch:  # never return into the trunk's stack (or pytest's) from a child
                try:
                    if errors_as_problems and isinstance(exc, SleeveError):
                        branch[0].problems.append(f"raised {type(exc).__name__}: {exc}")
                        send(branch[1], branch[0])
                    else:
                        send(branch[1], f"{branch[0].spec()} raised {type(exc).__name__}: {exc}")
                finally:
                    os._exit(1)
            raise
    failed = [result for result in done.values() if isinstance(result, str)]
    if failed:
        raise RuntimeError(failed[0])
    fresh += [i for i, _ in pending]  # the trunk ended before their time
    for i in fresh:
        done[i] = fresh_run(cells[i])
    out = [done[i] for i in range(len(cells))]
    assert all(isinstance(c, Cell) for c in out)
    return out  # type: ignore[return-value]


# -- a fault-free run that is its own trunk ------------------------------------------------------------------------

# A checkpoint is a fork of a process of a few hundred MB (a pytest worker: up to ~350 MB): page tables copied, and
# copies-on-write left for the run to make. gradient + massage on build pump5 in a process of ~250 MB, user + system
# CPU: the trunks run again 5.9-6.4 s; checkpoints every 4 s (at most 12) through the whole session 49 forks and more
# system time than the trunks saved (in the suite: 452 -> 442 s for the build matrix, system time 47 -> 104 s); every
# 10 s (at most 8) in the first cycle 19 forks, 5.0-5.7 s; every 20 s (at most 6) 11 forks, 4.9-5.2 s.
CHECKPOINT_S = 20.0  # the first checkpoints this far apart, in simulated seconds, from the session's start
MAX_CHECKPOINTS = 6  # beyond this many, every other one is let go and the spacing doubles
# Checkpoints only while fewer cycles than this are complete: the matrices plan their cells in the first cycle and the
# rest after it (a cell later than the last checkpoint runs on from that one: longer, the same run).
CHECKPOINT_CYCLES = 1


@dataclass
class _Checkpoint:
    """A fork of the fault-free run paused at `t_s` (a child process blocked on its command pipe): sent cells, it runs
    on as their trunk; its command pipe closed unwritten, it exits."""

    t_s: float
    pid: int
    command_fd: int  # the run writes the pickled cells here, then closes it
    result_fd: int  # the checkpoint's results come back here
    log_bytes: int  # the session log's length when it was forked (whole rows: the log is line-buffered)


Planner = Callable[["HardwareConfig", "Outcome", list[dict], Truth], list[Cell]]


def run_planned(
    config_dir: Path, profile: str, planner: Planner, *, errors_as_problems: bool = False
) -> tuple[HardwareConfig, Outcome, list[dict], Truth, list[Cell]]:
    """`run_followed(config_dir, profile)` (the fault-free run, seed SEED, the truth followed), and the cells
    `planner(cfg, outcome, rows, truth)` plans from it, each run end to end and judged, as `run_branches` would.
    Returns (cfg, outcome, rows, truth, judged cells in the planner's order).

    `run_branches` would run the fault-free run again up to the cells' injections (the trunk): here the fault-free run
    is its own trunk. It leaves checkpoints behind as it goes (a fork paused in a clock listener every CHECKPOINT_S
    from the session's start while fewer than CHECKPOINT_CYCLES cycles are complete, thinned to at most
    MAX_CHECKPOINTS by doubling the spacing); once it has ended and the
    cells are planned, each cell's injection is reached from the last checkpoint before it: that checkpoint is sent its
    cells, runs on as their trunk (its own copy of the session log so far) and forks each cell just before its time,
    exactly as `run_branches`' trunk does. A forked cell is the fresh run (the simulation is deterministic, and a
    fault scheduled for later changes nothing before it fires): tests/test_fault_matrix.py checks it. Cells no
    checkpoint precedes, and every cell where there is no fork, go to `run_branches`. The firmware's own errors in the
    fault-free run (a self-test refusing) are raised, as `run_followed` raises them."""
    from legsleeve.app.session import run_session
    from legsleeve.app.sessionlog import read_log
    from legsleeve.config.hardware import load_hardware
    from legsleeve.config.profiles import load_profile
    from legsleeve.errors import SleeveError
    from legsleeve.hw.backends import open_sim

    if not hasattr(os, "fork") or not os.path.isdir("/proc/self/fd"):
        cfg, outcome, rows, truth = run_followed(config_dir, profile)
        cells = planner(cfg, outcome, rows, truth)
        return cfg, outcome, rows, truth, run_branches(cells, fork=False, errors_as_problems=errors_as_problems)

    cfg = load_hardware(config_dir)
    truth: Truth = []
    checkpoints: list[_Checkpoint] = []
    let_go: list[int] = []  # checkpoints thinned out: reaped at the end
    spacing = [CHECKPOINT_S]
    next_s = [math.inf]  # the next checkpoint's time (inf: none; set at the session's start)
    # in a checkpoint sent cells: [its cells by index (time order), the pipe to the run, done: index -> Cell or what
    # went wrong]; in a cell forked from it: [its cell, its pipe, its own log]
    trunk: list = []
    branch: list = []
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "trunk.csv"
        current_log = [log]  # the path this process's session log writes to
        # in a checkpoint sent cells: its log's rows as they were when it was forked, and that log's length in bytes
        # (each cell forked from it then parses only the rows written since: `_rows_since`)
        prefix: list = []
        rig = open_sim(cfg, seed=SEED)
        _follow_truth(rig, truth)

        def checkpoint(t_s: float) -> None:
            size = log.stat().st_size
            command_r, command_w = os.pipe()
            result_r, result_w = os.pipe()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+ warns of fork in a threaded process
                pid = os.fork()
            if pid != 0:
                os.close(command_r)
                os.close(result_w)
                checkpoints.append(_Checkpoint(t_s, pid, command_w, result_r, size))
                if len(checkpoints) > MAX_CHECKPOINTS:
                    for gone in checkpoints[1::2]:
                        os.close(gone.command_fd)  # unwritten: it exits
                        os.close(gone.result_fd)
                        let_go.append(gone.pid)
                    del checkpoints[1::2]
                    spacing[0] *= 2
                next_s[0] = checkpoints[-1].t_s + spacing[0]
                return
            # the checkpoint: no pipe of any other, then wait to be sent cells (or let go)
            trunk[:] = [
                [],
                result_w,
                {},
            ]  # from here on a fork: whatever happens, it never returns into the run's stack
            for other in checkpoints:
                os.close(other.command_fd)
                os.close(other.result_fd)
            checkpoints.clear()
            let_go.clear()
            os.close(command_w)
            os.close(result_r)
            data = b""
            while chunk := os.read(command_r, 1 << 16):
                data += chunk
            os.close(command_r)
            if not data:
                os._exit(0)
            next_s[0] = math.inf
            own = Path(tmp) / f"checkpoint-{os.getpid()}.csv"
            current_log[0] = _own_log(log, own, size)
            prefix[:] = [read_log(current_log[0]), size]
            trunk[0] = pickle.loads(data)

        def on_start(t_s: float) -> None:
            next_s[0] = t_s

        def on_tick(runner, readings) -> None:
            if runner.status.cycle >= CHECKPOINT_CYCLES and not trunk:
                next_s[0] = math.inf  # no checkpoint from here on

        def on_advance(t_s: float) -> None:
            if branch:
                return  # a cell forks nothing
            if t_s >= next_s[0]:
                checkpoint(t_s)
            if not trunk:
                return
            pending, _, done = trunk
            _fork_due(t_s, pending, done, branch, rig, current_log[0], Path(tmp), lambda i: done.__setitem__(i, None))

        rig.clock.on_advance(on_advance)
        outcome = None
        try:
            try:
                session = load_profile(config_dir, profile, cfg)
                outcome = run_session(rig, session, cycles=2, log_path=log, on_start=on_start, on_tick=on_tick).outcome
            except _TrunkDone:
                pass
            finally:
                next_s[0] = math.inf  # no checkpoint in the truth followed after the session
                rig.close()
            if branch:  # a cell: judged, sent, gone
                cell, fd, own_log = branch
                assert outcome is not None
                _follow_after(rig, outcome, truth)
                rows_before, length = prefix
                send(fd, judge(cell, cfg, outcome, rows_before + _rows_since(own_log, length), truth))
                os._exit(0)
            if trunk:  # a checkpoint that ran its cells: what it has, and None for those its run ended before
                pending, fd, done = trunk
                done.update((i, None) for i, _ in pending)
                send(fd, done)
                os._exit(0)
        except BaseException as exc:
            if branch:  # never return into the run's stack (or pytest's) from a fork
                try:
                    if errors_as_problems and isinstance(exc, SleeveError):
                        branch[0].problems.append(f"raised {type(exc).__name__}: {exc}")
                        send(branch[1], branch[0])
                    else:
                        send(branch[1], f"{branch[0].spec()} raised {type(exc).__name__}: {exc}")
                finally:
                    os._exit(1)
            if trunk:
                try:
                    send(trunk[1], f"a checkpoint of {profile} raised {type(exc).__name__}: {exc}")
                finally:
                    os._exit(1)
            _let_go(checkpoints, let_go)
            raise
        try:
            assert outcome is not None
            _follow_after(rig, outcome, truth)
            rows = read_log(log)
            cells = planner(cfg, outcome, rows, truth)
            results: dict[int, Cell | str | None] = {}
            by_checkpoint: dict[int, list[tuple[int, Cell]]] = {}
            for i in sorted(range(len(cells)), key=lambda i: cells[i].at_s):
                before = [k for k, c in enumerate(checkpoints) if c.t_s < cells[i].at_s]
                if before:
                    by_checkpoint.setdefault(before[-1], []).append((i, cells[i]))
                else:
                    results[i] = None
            for k, c in enumerate(list(checkpoints)):
                checkpoints.remove(c)  # its pipes are this loop's to close
                mine = by_checkpoint.get(k)
                if not mine:
                    _let_go([c], let_go)
                    continue
                try:
                    data = pickle.dumps(mine)
                    while data:
                        data = data[os.write(c.command_fd, data) :]
                finally:
                    os.close(c.command_fd)
                answer, status, _ = collect(c.pid, c.result_fd, CHILD_TIMEOUT_S)
                if isinstance(answer, dict):
                    results.update(answer)
                else:
                    why = answer if isinstance(answer, str) else f"died (wait status {status}) or ran over"
                    results.update((i, f"the checkpoint at {c.t_s:.2f} s of {profile} failed: {why}") for i, _ in mine)
        finally:
            _let_go(checkpoints, let_go)
    failed = [r for r in results.values() if isinstance(r, str)]
    if failed:
        raise RuntimeError(failed[0])
    again = [i for i, r in results.items() if r is None]
    for i, cell in zip(
        again, run_branches([cells[i] for i in again], errors_as_problems=errors_as_problems), strict=True
    ):
        results[i] = cell
    out = [results[i] for i in range(len(cells))]
    assert all(isinstance(c, Cell) for c in out)
    return cfg, outcome, rows, truth, out  # type: ignore[return-value]


def _rows_since(path: Path, offset: int) -> list[dict[str, str]]:
    """The rows of a session log (CSV, as `read_log` reads it) from byte `offset` on, a row boundary: read as the
    header followed by those lines, so that a cell forked from a checkpoint parses only what it and the checkpoint's
    run wrote since the checkpoint's log was parsed (rows are single lines: nothing in the log is multi-line)."""
    data = Path(path).read_bytes()
    header = data[: data.index(b"\n") + 1]
    return list(csv.DictReader(io.StringIO((header + data[offset:]).decode("utf-8"), newline="")))


def _let_go(checkpoints: list[_Checkpoint], let_go: list[int]) -> None:
    """Close the pipes of these checkpoints, still waiting (each then exits unsent), and reap them and those let go
    before."""
    for c in checkpoints:
        os.close(c.command_fd)
        os.close(c.result_fd)
        let_go.append(c.pid)
    checkpoints.clear()
    for pid in let_go:
        os.waitpid(pid, 0)
    let_go.clear()


def _fresh(cell: Cell, *, errors_as_problems: bool) -> Cell:
    try:
        return run_cell(cell)
    except Exception as exc:
        from legsleeve.errors import SleeveError

        if not (errors_as_problems and isinstance(exc, SleeveError)):
            raise
        cell.problems.append(f"raised {type(exc).__name__}: {exc}")
        return cell


def _fork_due(t_s, pending, done, branch, rig, log: Path, tmp: Path, stepped_over) -> None:
    """A trunk's clock listener's work (run_branches', run_planned's): fork every pending (index, cell) whose
    injection is within FORK_LEAD_S of `t_s`. In the child, `branch` becomes [its cell, the pipe to the trunk, its own
    log] and its fault is scheduled; a cell the clock stepped over goes to `stepped_over(index)` (run from scratch).
    Raises _TrunkDone once nothing is pending, or when a child failed."""
    from legsleeve.sim.faults import FaultSpec

    while pending and pending[0][1].at_s - t_s < FORK_LEAD_S:
        i, cell = pending.pop(0)
        if cell.at_s <= t_s:
            stepped_over(i)
            continue
        child = _fork(cell, done, i, tmp)
        if child is not None:
            cell, fd, own_log = child
            branch[:] = [cell, fd, _own_log(log, own_log)]
            rig.world.schedule(FaultSpec(cell.fault, cell.zone, cell.at_s))
            return
        if isinstance(done[i], str):
            raise _TrunkDone
    if not pending:
        raise _TrunkDone


def _fork(cell: Cell, done: dict[int, Cell | str], index: int, tmp: Path) -> tuple[Cell, int, Path] | None:
    """Fork the trunk into this cell's run: in the child, (a fresh copy of the cell, the pipe to write its result
    to, the path for its own log); in the trunk, None once the child's judged Cell (or what went wrong) is in
    `done`."""
    pid, read_fd, write_fd = fork_with_pipe()
    if pid == 0:
        return dataclasses.replace(cell, problems=[]), write_fd, tmp / f"cell-{index}.csv"
    result, status, _ = collect(pid, read_fd, CHILD_TIMEOUT_S)
    if not isinstance(result, Cell):
        result = f"the forked cell {cell.spec()} of {cell.profile} failed: " + (
            result if isinstance(result, str) else f"died (wait status {status}) or ran over {CHILD_TIMEOUT_S} s"
        )
    done[index] = result
    return None


def _own_log(trunk_log: Path, own_log: Path, length: int | None = None) -> Path:
    """In a child: its own copy of the session log so far, written from here on. The log is line-buffered (a row
    reaches the file whole as it is written), so the copy holds every row the trunk wrote; the child's open log file
    is pointed at the copy (dup2 onto its descriptor, found through /proc). Before the session log opens (a fork in
    the self-test) there is nothing to copy: the child writes the trunk's path itself, the trunk waiting meanwhile,
    and reads its rows from there."""
    target = os.path.realpath(trunk_log)
    fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == target:
                fds.append(int(name))
        except OSError:
            continue
    if not fds:
        return trunk_log
    shutil.copyfile(trunk_log, own_log)
    if length is not None:  # a checkpoint: the log as it was when it was forked (the run has written on since)
        os.truncate(own_log, length)
    new = os.open(own_log, os.O_WRONLY | os.O_APPEND)
    for fd in fds:
        os.dup2(new, fd)
    os.close(new)
    return own_log


def run_profile_cells(profile: str, config_dir: Path = CONFIG_DIR) -> list[Cell]:
    """Every fault kind injected at every phase of one profile on a build, planned from its healthy run as from its
    `reference` (the same run: seed SEED, two cycles; its log is the same with the truth followed) and forked from
    checkpoints of that very run (`run_planned`), in `plan`'s order."""

    def planner(cfg: HardwareConfig, outcome: Outcome, rows: list[dict], truth: Truth) -> list[Cell]:
        assert outcome.trip is None, outcome.trip  # as `reference` asserts
        return plan({profile: Reference(profile, rows, cfg.zone_names, Path(config_dir), cfg.shared_sensor)})

    return run_planned(Path(config_dir), profile, planner)[4]


def plan(references: dict[str, Reference]) -> list[Cell]:
    cells = []
    for profile, ref in references.items():
        for phase, (at_s, zone) in ref.injections().items():
            for fault in EXPECTED:
                z = zone if fault in ZONE_FAULTS else None
                if ref.shared_sensor and fault.startswith("sensor-"):
                    z = "manifold"  # a one-sensor build has no zone sensors: its one sensor fails
                cells.append(Cell(profile, phase, fault, z, round(at_s, 2), ref.config_dir, ref.shared_sensor))
    return cells


def references(config_dir: Path = CONFIG_DIR, profiles: tuple[str, ...] = PROFILES) -> dict[str, Reference]:
    """Every profile's healthy reference run on a build, each computed once per process: every fault kind's cells are
    planned from them."""
    return {profile: _reference(profile, Path(config_dir)) for profile in profiles}


@functools.cache
def _reference(profile: str, config_dir: Path) -> Reference:
    return reference(profile, config_dir=config_dir)


def run_fault(fault: str, config_dir: Path = CONFIG_DIR, profiles: tuple[str, ...] = PROFILES) -> list[Cell]:
    """One fault kind's cells (every profile x every phase), run one after another in this process."""
    if fault not in EXPECTED:
        raise ValueError(fault)
    return [run_cell(cell) for cell in plan(references(config_dir, profiles)) if cell.fault == fault]


def run_matrix(workers: int | None = None, config_dir: Path = CONFIG_DIR) -> list[Cell]:
    """The whole matrix on a build over a process pool (`workers`, default every core): a task per profile, the
    longest first, each forking its cells from its healthy run (`run_profile_cells`)."""
    workers = workers or os.cpu_count() or 2
    longest_first = ("massage", "pulse", "lymphatic", "gradient", "wave", "gentle")
    order = sorted(PROFILES, key=lambda p: longest_first.index(p) if p in longest_first else -1)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        done = dict(zip(order, pool.map(run_profile_cells, order, [config_dir] * len(order)), strict=True))
    return [cell for profile in PROFILES for cell in done[profile]]


def summary(cells: list[Cell]) -> str:
    kinds = [fault for fault in EXPECTED if any(c.fault == fault for c in cells)]
    lines = [
        f"fault matrix: {len(cells)} cells = {len(kinds)} fault kind{'s' if len(kinds) != 1 else ''} x "
        f"{len({c.profile for c in cells})} profiles x {len(PHASES)} injection phases; "
        f"{sum(not c.problems for c in cells)} pass",
        "",
        "| fault | cells | rules seen | worst detection after exposure | bound | worst peak mmHg | "
        "worst vent after trip | cannot vent |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fault in kinds:
        mine = [c for c in cells if c.fault == fault]
        _, _, bound, why = expected(fault, mine[0].shared)
        rules = ", ".join(sorted({c.rule or "none" for c in mine}))
        timed = [c for c in mine if c.exposed_how != "filling"]
        worst = max((c.latency_s for c in timed), default=math.nan)
        slowed = [c for c in mine if c.exposed_how == "filling"]
        worst_text = f"{worst:.2f} s"
        if slowed:
            worst_text += (
                f"; {len(slowed)} leak(s) that only slowed a fill: caught when it stalled, worst "
                f"{max(c.latency_s for c in slowed):.1f} s (bound 40 s)"
            )
        peak = max((c.peak_mmhg for c in mine), default=math.nan)
        vent = max((math.inf if c.vent_after_trip_s is None else c.vent_after_trip_s for c in mine), default=math.nan)
        stuck = sum(1 for c in mine if c.cannot_vent)
        lines.append(
            f"| {fault} | {len(mine)} | {rules} | {worst_text} | {bound} s ({why}) | {peak:.1f} | "
            f"{vent:.1f} s | {stuck} |"
        )
    bad = [c for c in cells if c.problems]
    if bad:
        lines += ["", "failures:"] + [f"- {c.profile}/{c.phase} {c.spec()}: {'; '.join(c.problems)}" for c in bad]
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.fault_matrix", description="the fault matrix, every core")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: every core)")
    parser.add_argument("--config", type=Path, default=CONFIG_DIR, help="the build's config directory")
    args = parser.parse_args()
    result = run_matrix(args.jobs, args.config)
    print(summary(result))
