"""The build-variation matrix (issue 11, item 6): builds drawn across the ranges makers' parts cover, each (optionally)
calibrated on the simulator, every shipped profile run fault-free, and every fault kind of the fault matrix injected.

Builds (`MATRIX`, 24, always the same): two corners, twelve drawn, and the ten named builds of tests/builds.py.

- RANGES: pump 1.5-5 L/min free flow; bladders half to double size (volume and compliance by one factor); exhaust
  up to 2.5x slower and inlet up to 2x smaller than the reference valves; seams up to 10x the reference leak;
  manifold up to 3x; sensor noise up to 0.3 mmHg. Ratios are spread geometrically (a 2x step weighs the same
  anywhere in the range), the noise too.
- CORNERS: the weakest pump with the biggest bladders, with every other part at its slow end (the narrowest inlet,
  the slowest exhaust, the leakiest seams, the biggest manifold to pump up, the noisiest sensors): the slowest fills
  and vents there are. And the strongest pump with the smallest bladders behind the reference valves and seams and
  the biggest manifold (the most air stored behind an inlet, the fastest rises), noisiest sensors too.
- Drawn: a Latin hypercube of N_DRAWN points over the seven ranges (seed DRAW_SEED): each range cut into N_DRAWN
  strata, each stratum used once per dimension, values rounded to three significant figures.

Per build (`run_build`, or `run_matrix` over a process pool):

1. its config dir: the shipped config with the build's `simulation` section (tests/builds.py `write_build`), and, with
   `--calibrate`, `calibrate(DIR)`: `python -m legsleeve calibrate --sim --config DIR`, which writes
   DIR/calibration.yaml for `load_hardware(DIR)` to fit the limits with. A failed calibration fails the build.
2. every shipped profile fault-free, 2 cycles, seed 11, judged on the simulator's true pressures: no trip, no zone
   above limits.max_mmhg + 5, every zone below 5 mmHg within limits.vent_timeout_s of the end. A refused self-test
   is a false trip too. The second cycle is no repeat of the first: it starts from what the first left (air in a
   slow bladder, the rules' history), and uncalibrated, 8 of the 25 false trips of the 144 sessions came in it
   (2026-11-25; the summary gives each false trip's cycle).
3. every fault kind of fault_matrix.EXPECTED once, run and judged as fault_matrix.run_cell does (its rules, zone and
   detection bound), planned from that build's own fault-free run of the profile (fault_matrix.Reference). Build b
   of MATRIX injects fault kind f in (profile, phase) number (b + 7 f) mod 24 of PROFILES x PHASES: over the 24 builds
   every fault kind meets every profile in every phase exactly once, and each build spreads its 13 cells over
   profiles and phases. A fault-free run that tripped plans from its log up to the trip; a phase it never reached
   leaves the cell not run (counted apart, as a failure).

Cost: 24 x (6 fault-free sessions + 13 fault cells) = 144 sessions and 312 cells. A build whose six sessions all run
their two cycles takes 20-33 s of CPU, most of it those sessions (pump5 20 s, small-inlet 26 s, pump1.5 32 s,
big-bladders 33 s), so the whole matrix with every build clean is about 11 minutes of CPU, 6 on two free cores; the
uncalibrated matrix, its false trips cutting sessions short, took 313 s. The sessions are what the issue asks for; 13
cells is one per fault kind, the fewest that injects every kind on every build, and over 24 builds just enough for
every kind to meet every profile in every phase.

`python -m tests.build_matrix [--calibrate] [--builds NAME,...] [--jobs N] [--out DIR]` prints each build's
parameters, false trips and failing fault cells, and the totals; exit 1 if anything failed.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from legsleeve.core.limits import VENTED_MMHG
from legsleeve.errors import SleeveError
from tests.builds import BUILDS, Build, write_build
from tests.fault_matrix import EXPECTED, PHASES, ZONE_FAULTS, Cell, Reference, run_branches, run_followed, run_planned
from tests.helpers import PROFILES

DRAW_SEED = 611  # issue 11, item 6
N_DRAWN = 12

# dimension -> (low, high), in the units of the simulation section; `bladders` and `leak` are factors on the
# reference's zones. REFERENCE: the shipped config/hardware.yaml (tests/test_build_matrix.py checks it).
RANGES: dict[str, tuple[float, float]] = {
    "pump_free_flow_lpm": (1.5, 5.0),
    "bladders": (0.5, 2.0),
    "exhaust_lpm_per_mmhg": (0.08, 0.2),
    "inlet_lpm_per_mmhg": (0.05, 0.1),
    "leak": (1.0, 10.0),
    "manifold_volume_l": (0.02, 0.06),
    "sensor_noise_mmhg": (0.08, 0.3),
}
REFERENCE: dict[str, float] = {
    "pump_free_flow_lpm": 3.0,
    "bladders": 1.0,
    "exhaust_lpm_per_mmhg": 0.2,
    "inlet_lpm_per_mmhg": 0.1,
    "leak": 1.0,
    "manifold_volume_l": 0.02,
    "sensor_noise_mmhg": 0.08,
}
COLUMNS = {  # dimension -> summary column
    "pump_free_flow_lpm": "pump L/min",
    "bladders": "bladders x",
    "exhaust_lpm_per_mmhg": "exhaust",
    "inlet_lpm_per_mmhg": "inlet",
    "leak": "leak x",
    "manifold_volume_l": "manifold L",
    "sensor_noise_mmhg": "noise mmHg",
}
_LOW, _HIGH = 0, 1
CORNERS: dict[str, dict[str, float]] = {
    "weak-pump-big-bladders": {
        "pump_free_flow_lpm": RANGES["pump_free_flow_lpm"][_LOW],
        "bladders": RANGES["bladders"][_HIGH],
        "exhaust_lpm_per_mmhg": RANGES["exhaust_lpm_per_mmhg"][_LOW],
        "inlet_lpm_per_mmhg": RANGES["inlet_lpm_per_mmhg"][_LOW],
        "leak": RANGES["leak"][_HIGH],
        "manifold_volume_l": RANGES["manifold_volume_l"][_HIGH],
        "sensor_noise_mmhg": RANGES["sensor_noise_mmhg"][_HIGH],
    },
    "strong-pump-small-bladders": {
        "pump_free_flow_lpm": RANGES["pump_free_flow_lpm"][_HIGH],
        "bladders": RANGES["bladders"][_LOW],
        "exhaust_lpm_per_mmhg": RANGES["exhaust_lpm_per_mmhg"][_HIGH],
        "inlet_lpm_per_mmhg": RANGES["inlet_lpm_per_mmhg"][_HIGH],
        "leak": RANGES["leak"][_LOW],
        "manifold_volume_l": RANGES["manifold_volume_l"][_HIGH],
        "sensor_noise_mmhg": RANGES["sensor_noise_mmhg"][_HIGH],
    },
}
CALIBRATE = (sys.executable, "-m", "legsleeve", "calibrate", "--sim", "--config")  # + DIR
OVER_MMHG = 5.0  # the truth may pass limits.max_mmhg by this much at most, as in the fault matrix


def _round3(x: float) -> float:
    return float(f"{x:.3g}")


def draw(n: int = N_DRAWN, seed: int = DRAW_SEED) -> dict[str, dict[str, float]]:
    """A Latin hypercube over RANGES: name -> parameters. Each range is cut into n strata (geometrically), and each
    dimension uses every stratum once, a random point within it."""
    rng = random.Random(seed)
    columns = {}
    for dim, (low, high) in RANGES.items():
        strata = rng.sample(range(n), n)
        columns[dim] = [_round3(low * (high / low) ** ((s + rng.random()) / n)) for s in strata]
    return {f"lhs-{i + 1:02d}": {dim: columns[dim][i] for dim in RANGES} for i in range(n)}


def as_build(parameters: dict[str, float]) -> Build:
    """Parameters (RANGES' dimensions) as the simulation keys tests/builds.py's write_build sets."""
    build: Build = {k: v for k, v in parameters.items() if k not in ("bladders", "leak")}
    build["zones"] = (parameters["bladders"], parameters["bladders"], parameters["leak"])
    return build


def parameters(build: Build) -> dict[str, float]:
    """A build's value of every dimension (the reference's where it leaves one as shipped)."""
    out = dict(REFERENCE)
    for key, value in build.items():
        if key == "zones":
            assert isinstance(value, tuple)
            volume, compliance, leak = value
            assert volume == compliance, "a bladder scales its volume and compliance alike"
            out["bladders"], out["leak"] = volume, leak
        else:
            assert key in out and isinstance(value, float), key
            out[key] = value
    return out


MATRIX: dict[str, Build] = {
    **{name: as_build(p) for name, p in CORNERS.items()},
    **{name: as_build(p) for name, p in draw().items()},
    **BUILDS,
}
COMBOS = tuple(itertools.product(PROFILES, PHASES))


def assignment(name: str) -> dict[str, tuple[str, str]]:
    """fault kind -> (profile, phase) the build injects it in: build b, fault kind f -> COMBOS[(b + 7 f) mod 24]."""
    b = list(MATRIX).index(name)
    return {fault: COMBOS[(b + 7 * f) % len(COMBOS)] for f, fault in enumerate(EXPECTED)}


# -- calibration --------------------------------------------------------------------------------------------------


class CalibrationFailed(Exception):
    pass


def calibrate(config_dir: Path, command: tuple[str, ...] = CALIBRATE, timeout_s: float = 600.0) -> None:
    """The calibration hook: `command DIR` (`legsleeve calibrate --sim --config DIR`) must exit 0 within timeout_s
    and leave DIR/calibration.yaml, which load_hardware(DIR) then fits the limits with; else CalibrationFailed, with
    its exit code and the end of its output."""
    shown = f"`{' '.join([*command[1:], str(config_dir)])}`"
    try:
        done = subprocess.run([*command, str(config_dir)], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise CalibrationFailed(f"{shown} still running after {timeout_s:g} s") from e
    if done.returncode != 0:
        tail = " / ".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise CalibrationFailed(f"{shown} exited {done.returncode}: {tail}")
    if not (config_dir / "calibration.yaml").is_file():
        raise CalibrationFailed(f"{shown} exited 0 but wrote no calibration.yaml")


# -- the runs -----------------------------------------------------------------------------------------------------


@dataclass
class FaultFree:
    """One profile's fault-free session on a build, judged on the truth."""

    build: str
    profile: str
    trip: str | None = None  # the trip's text (or why the session never started), if any
    rule: str | None = None
    trip_s: float | None = None
    trip_cycle: int | None = None  # the cycle (1: the first) the trip came in, from the log's `cycle` (cycles done)
    peak_mmhg: float = math.nan  # the highest true pressure of any zone
    vent_s: float | None = None  # after the trip or the end, until every zone's truth was below VENTED_MMHG
    injections: dict[str, tuple[float, str]] = field(default_factory=dict)  # phase -> (time, zone), as planned
    unplanned: str = ""  # why some phases could not be planned from this run
    problems: list[str] = field(default_factory=list)
    cpu_s: float = 0.0


def judge_truth(truth, end_s: float, max_mmhg: float, vent_timeout_s: float) -> tuple[float, float | None, list[str]]:
    """(peak, vent time after end_s, problems) of a run's truth: [(t, [every zone's true pressure])]."""
    problems = []
    peak = max(max(p) for _, p in truth)
    if peak > max_mmhg + OVER_MMHG:
        problems.append(f"a zone reached {peak:.1f} mmHg (limit {max_mmhg + OVER_MMHG:g})")
    vent_s = next((t - end_s for t, p in truth if t >= end_s and max(p) < VENTED_MMHG), None)
    if vent_s is None or vent_s > vent_timeout_s:
        problems.append(f"not vented within {vent_timeout_s:g} s of the end (or the trip)")
    return peak, vent_s, problems


def run_fault_free(name: str, config_dir: Path, profile: str) -> FaultFree:
    """A profile's session on a build with no fault; what it does is judged on the truth, and its log plans the
    build's fault cells of that profile."""
    cpu = time.process_time()
    out = FaultFree(name, profile)
    try:
        cfg, outcome, rows, truth = run_followed(config_dir, profile)
    except SleeveError as e:  # a self-test that refuses to start is a false trip as much as a trip
        _never_started(out, e)
    else:
        _judge_fault_free(out, config_dir, cfg, outcome, rows, truth)
    out.cpu_s = time.process_time() - cpu
    return out


def _never_started(out: FaultFree, e: SleeveError) -> None:
    trip = getattr(e, "trip", None)
    out.trip, out.rule = f"{type(e).__name__}: {e}", "self-test" + (f" {trip.rule}" if trip else "")
    out.problems.append(f"never started: {out.trip}")


def trip_cycle(rows: list[dict]) -> int | None:
    """The cycle a session's trip came in (1: the first), from its log: the first row with a fault, whose `cycle`
    counts the cycles done (None: no row has one)."""
    tripped = next((r for r in rows if r["fault"]), None)
    return int(tripped["cycle"]) + 1 if tripped is not None else None


def _judge_fault_free(out: FaultFree, config_dir: Path, cfg, outcome, rows: list[dict], truth) -> None:
    """Judge a fault-free run (its outcome, log rows and truth) into `out`, and plan its injections from its log."""
    end = outcome.trip.t_s if outcome.trip else outcome.end_s
    if outcome.trip is not None:
        out.trip, out.rule, out.trip_s = str(outcome.trip), outcome.trip.rule, outcome.trip.t_s
        out.trip_cycle = trip_cycle(rows)
        out.problems.append(f"tripped {outcome.trip}" + (f" (cycle {out.trip_cycle})" if out.trip_cycle else ""))
    out.peak_mmhg, out.vent_s, problems = judge_truth(truth, end, cfg.limits.max_mmhg, cfg.limits.vent_timeout_s)
    out.problems += problems
    healthy = [r for r in rows if not r["fault"]]  # up to a trip, if any: a phase it never reached is left out
    planned = Reference(out.profile, healthy, cfg.zone_names, Path(config_dir)).injections()
    out.injections = {phase: (t, z) for phase, (t, z) in planned.items() if out.trip_s is None or t < out.trip_s}
    if set(out.injections) != set(PHASES):
        missing = ", ".join(p for p in PHASES if p not in out.injections)
        when = f" ({out.rule} at {out.trip_s:.1f} s)" if out.trip_s is not None else ""
        out.unplanned = f"no {missing} in the fault-free run, which tripped{when} before" if when else f"no {missing}"


def run_with_cells(
    name: str, config_dir: Path, profile: str, cells_of: Callable[[FaultFree], list[Cell]]
) -> tuple[FaultFree, list[Cell], float]:
    """`run_fault_free`'s run and verdict, and the cells `cells_of(verdict)` plans from it, each run end to end and
    judged, forked from that very run: it is their trunk (fault_matrix.run_planned), rather than being run again up
    to their injections. Returns (the verdict, the judged cells, the cells' CPU time: the run's own beyond the
    fault-free session's, and its children's). The firmware's own errors in a cell (a self-test refusing) are
    problems of the cell."""
    cpu = time.process_time()
    children = _children_cpu()
    out = FaultFree(name, profile)

    def planner(cfg, outcome, rows, truth) -> list[Cell]:
        _judge_fault_free(out, config_dir, cfg, outcome, rows, truth)
        out.cpu_s = time.process_time() - cpu
        return cells_of(out)

    try:
        *_, cells = run_planned(config_dir, profile, planner, errors_as_problems=True)
    except SleeveError as e:  # the self-test refused: nothing to fork from
        _never_started(out, e)
        out.cpu_s = time.process_time() - cpu
        cells = run_branches(cells_of(out), errors_as_problems=True)
    return out, cells, time.process_time() - cpu - out.cpu_s + _children_cpu() - children


def run_profile(name: str, config_dir: Path, profile: str) -> tuple[FaultFree, list[Cell], list[NotRun], float]:
    """A profile's fault-free session on a build and the build's fault cells of that profile, planned from it
    (`plan_cells`) and forked from it (`run_with_cells`). Returns (the fault-free verdict, the judged cells, the cells
    not run, the cells' CPU time)."""
    not_run: list[NotRun] = []

    def cells_of(ff: FaultFree) -> list[Cell]:
        cells, not_run[:] = _plan_profile(name, config_dir, ff)
        return cells

    ff, cells, cpu = run_with_cells(name, config_dir, profile, cells_of)
    return ff, cells, not_run, cpu


def _plan_profile(name: str, config_dir: Path, ff: FaultFree) -> tuple[list[Cell], list[NotRun]]:
    """`plan_cells` for one profile's fault-free run: the build's cells in that profile, and those not run."""
    cells, not_run = plan_cells(name, config_dir, {ff.profile: ff})
    return [c for c in cells if c.profile == ff.profile], [x for x in not_run if x.profile == ff.profile]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class NotRun:
    build: str
    fault: str
    profile: str
    phase: str
    why: str


def plan_cells(name: str, config_dir: Path, fault_free: dict[str, FaultFree]) -> tuple[list[Cell], list[NotRun]]:
    """The build's fault cells, one per fault kind, where `assignment` puts them; planned from its fault-free runs."""
    cells, not_run = [], []
    for fault, (profile, phase) in assignment(name).items():
        ff = fault_free.get(profile)
        if ff is None or phase not in ff.injections:
            why = "no fault-free run" if ff is None else ff.unplanned or ff.trip or f"no {phase} phase"
            not_run.append(NotRun(name, fault, profile, phase, why))
            continue
        at_s, zone = ff.injections[phase]
        cells.append(Cell(profile, phase, fault, zone if fault in ZONE_FAULTS else None, round(at_s, 2), config_dir))
    return cells, not_run


def run_fault_cells(cells: list[Cell]) -> tuple[list[Cell], float]:
    """fault_matrix.run_branches on one profile's cells of a build (forked from one fault-free trunk), and the CPU
    time they took (the trunk's and its children's); the firmware's own errors (a self-test refusing, say) are
    recorded as a problem of the cell rather than raised."""
    cpu = time.process_time()
    children = _children_cpu()
    out = run_branches(cells, errors_as_problems=True)
    return out, time.process_time() - cpu + _children_cpu() - children


@dataclass
class BuildResult:
    name: str
    config_dir: Path
    calibrated: bool = False
    calibration_failed: str | None = None
    fault_free: list[FaultFree] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    not_run: list[NotRun] = field(default_factory=list)
    cpu_s: float = 0.0

    @property
    def false_trips(self) -> list[FaultFree]:
        return [ff for ff in self.fault_free if ff.problems]

    @property
    def failed_cells(self) -> list[Cell]:
        return [c for c in self.cells if c.problems]

    @property
    def ok(self) -> bool:
        return not (self.calibration_failed or self.false_trips or self.failed_cells or self.not_run)


def _by_cost(profile: str) -> int:
    """The longest sessions first, so the pool's workers finish together (massage is 4x gentle)."""
    return -("massage", "pulse", "lymphatic", "gradient", "wave", "gentle").index(profile)


def _quiet() -> None:
    import logging

    logging.disable(logging.CRITICAL)  # the firmware's trip and alarm lines: the summary says it all


def _calibrate_or_why(config_dir: Path) -> str | None:
    try:
        calibrate(config_dir)
    except CalibrationFailed as e:
        return str(e)
    return None


def _fault_order(x: Cell | NotRun) -> int:
    return list(EXPECTED).index(x.fault)


def _add(result: BuildResult, done: tuple[FaultFree, list[Cell], list[NotRun], float]) -> None:
    ff, cells, not_run, cells_cpu = done
    result.fault_free.append(ff)
    result.cells += cells
    result.not_run += not_run
    result.cpu_s += ff.cpu_s + cells_cpu


def _ordered(result: BuildResult) -> None:
    result.fault_free.sort(key=lambda ff: PROFILES.index(ff.profile))
    result.cells.sort(key=_fault_order)
    result.not_run.sort(key=_fault_order)


def run_build(name: str, out_dir: Path, *, calibrate_first: bool = False) -> BuildResult:
    """One build, everything in this process, one profile after another (the suite's entry point): each profile's
    fault-free session, and its fault cells forked from it (`run_profile`)."""
    result = BuildResult(name, write_build(name, out_dir, MATRIX[name]), calibrated=calibrate_first)
    if calibrate_first and (why := _calibrate_or_why(result.config_dir)):
        result.calibration_failed = why
        return result
    for profile in PROFILES:
        _add(result, run_profile(name, result.config_dir, profile))
    _ordered(result)
    return result


def run_matrix(
    names: list[str], out_dir: Path, *, calibrate_first: bool = False, workers: int = 2
) -> list[BuildResult]:
    """The builds over a process pool: calibrations, then every profile's fault-free session with its fault cells
    (`run_profile`), longest first."""
    results = {
        name: BuildResult(name, write_build(name, out_dir, MATRIX[name]), calibrated=calibrate_first) for name in names
    }
    with ProcessPoolExecutor(max_workers=workers, initializer=_quiet) as pool:
        if calibrate_first:
            dirs = [r.config_dir for r in results.values()]
            for r, why in zip(results.values(), pool.map(_calibrate_or_why, dirs), strict=True):
                r.calibration_failed = why
        todo = [r for r in results.values() if not r.calibration_failed]
        jobs = sorted(((r.name, r.config_dir, p) for r in todo for p in PROFILES), key=lambda j: _by_cost(j[2]))
        for (name, _, _), done in zip(
            jobs, pool.map(run_profile, *zip(*jobs, strict=True)) if jobs else [], strict=True
        ):
            _add(results[name], done)
    for r in results.values():
        _ordered(r)
    return list(results.values())


# -- the summary --------------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:g}"


def summary(results: list[BuildResult]) -> str:
    n = len(results)
    sessions = sum(len(r.fault_free) for r in results)
    cells = [c for r in results for c in r.cells]
    not_run = [x for r in results for x in r.not_run]
    trips = [ff for r in results for ff in r.false_trips]
    calibration = (
        "each calibrated first (legsleeve calibrate --sim)" if any(r.calibrated for r in results) else "uncalibrated"
    )
    lines = [
        f"build matrix: {n} build{'s' if n != 1 else ''}, {calibration}; each: {len(PROFILES)} profiles fault-free "
        f"(2 cycles) and {len(EXPECTED)} fault cells (one per fault kind)",
        "",
        "| build | " + " | ".join(COLUMNS.values()) + " | false trips | fault cells failing | CPU s |",
        "|---|" + "---|" * len(COLUMNS) + "---|---|---|",
    ]
    for r in results:
        values = parameters(MATRIX[r.name])
        if r.calibration_failed:
            verdict = "calibration failed | -"
        else:
            ft = ", ".join(
                f"{ff.profile} {ff.rule or 'no trip'}"
                + (f" (cycle {ff.trip_cycle})" if ff.trip_cycle else "")
                + ("" if ff.rule else ": " + "; ".join(ff.problems))
                for ff in r.false_trips
            )
            failing, planned = len(r.failed_cells) + len(r.not_run), len(r.cells) + len(r.not_run)
            verdict = f"{len(r.false_trips)}/{len(r.fault_free)}{': ' + ft if ft else ''} | {failing}/{planned}"
            if r.failed_cells:
                verdict += ": " + ", ".join(f"{c.fault} ({c.rule or 'no trip'})" for c in r.failed_cells)
            if r.not_run:
                verdict += f"{', ' if r.failed_cells else ': '}{len(r.not_run)} not run"
        lines.append(
            f"| {r.name} | " + " | ".join(_fmt(values[d]) for d in COLUMNS) + f" | {verdict} | {r.cpu_s:.0f} |"
        )
    failed = sum(r.calibration_failed is not None for r in results)
    later = sum((ff.trip_cycle or 1) > 1 for ff in trips)
    by_rule: dict[str, int] = {}
    for ff in trips:
        by_rule[ff.rule or "truth"] = by_rule.get(ff.rule or "truth", 0) + 1
    lines += [
        "",
        f"totals: {sum(r.ok for r in results)}/{n} builds clean; "
        f"{failed} calibration{'s' if failed != 1 else ''} failed; "
        f"false trips in {len(trips)} of {sessions} fault-free sessions"
        + (f" ({', '.join(f'{k} {v}' for k, v in sorted(by_rule.items()))})" if by_rule else "")
        + (f", {later} of them after the first cycle" if later else "")
        + f"; fault cells: {sum(not c.problems for c in cells)} pass, {sum(bool(c.problems) for c in cells)} fail, "
        f"{len(not_run)} not run (no healthy reference for their phase), of {len(cells) + len(not_run)}",
        f"CPU {sum(r.cpu_s for r in results):.0f} s in the runs",
    ]
    if failed:
        lines += ["", "calibrations failed:"]
        lines += [f"- {r.name}: {r.calibration_failed}" for r in results if r.calibration_failed]
    if trips:
        lines += ["", "fault-free sessions that failed (judged on the truth):"]
        lines += [
            f"- {ff.build}/{ff.profile}: {'; '.join(ff.problems)} (peak {ff.peak_mmhg:.1f} mmHg"
            + (f", vented {ff.vent_s:.1f} s after)" if ff.vent_s is not None else ")")
            for ff in trips
        ]
    bad = [(r.name, c) for r in results for c in r.failed_cells]
    if bad:
        lines += ["", "fault cells that failed (fault_matrix's rules and bounds):"]
        lines += [f"- {name} {c.profile}/{c.phase} {c.spec()}: {'; '.join(c.problems)}" for name, c in bad]
    if not_run:
        lines += ["", "fault cells not run:"]
        lines += [f"- {x.build} {x.profile}/{x.phase} {x.fault}: {x.why}" for x in not_run]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.build_matrix", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calibrate", action="store_true", help="calibrate each build first (legsleeve calibrate)")
    parser.add_argument("--builds", help="comma-separated build names (default: all of MATRIX)")
    parser.add_argument(
        "--jobs",
        "--workers",
        dest="workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes (default: every core)",
    )
    parser.add_argument("--out", type=Path, help="write the builds' config dirs here (default: a temporary dir)")
    args = parser.parse_args(argv)
    names = args.builds.split(",") if args.builds else list(MATRIX)
    unknown = [n for n in names if n not in MATRIX]
    if unknown:
        parser.error(f"no build {', '.join(unknown)} (builds: {', '.join(MATRIX)})")
    _quiet()
    wall = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        results = run_matrix(names, out, calibrate_first=args.calibrate, workers=args.workers)
    print(summary(results))
    print(f"wall {time.monotonic() - wall:.0f} s on {args.workers} worker{'s' if args.workers != 1 else ''}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
