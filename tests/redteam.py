"""The red-team matrix: sensors that read plausibly wrong, and the stop button and the E-stop at every phase, on every
shipped profile - each cell run end to end on the simulated rig (real drivers, self-test, supervisor) and judged on
the simulator's TRUE pressures, never on what the firmware believed.

Cells. For each profile a healthy reference run (seed 11, one cycle, `reference`) gives the times to inject at, in
the zone with the highest target (the ankle in every shipped profile): `fill-start` (just after the inlet opens on
that zone's fill with the highest target of the first cycle), `fill` (the middle of that fill), `hold` (2 s into its
first hold of 2 s or more after that fill), `vent` (0.3 s into its first vent from above 10 mmHg), `rest` (3 s into
the first rest), and in the self-test `zero` (the middle of the zero) and `valve-check` (the middle of its first
fill). `FAMILIES` says which faults go in at which of those.

Verdict per cell (the red-team issue's "done when"), judged on the true pressure of every zone sampled every tick:

- no zone exceeds its trip level (the supervisor's `trip_levels_mmhg`) by more than MARGIN_MMHG, nor stays above
  it for longer than ABOVE_S at a stretch;
- the sleeve vents: every zone below 5 mmHg within `limits.vent_timeout_s` of the trip, the press, or the end;
- a trip names its rule (recorded with its zone); a run may also end with no trip, if the truth stayed in bounds
  (an offset of -6 mmHg is harmless), or with the self-test refusing to start (SelfTestFailed), which is safe;
- the stop button and the E-stop act at the next tick: from the first tick that began after the press every output
  applied is safe (pump 0, no inlet open) and stays so; during the self-test the button raises SelfTestStopped and
  the E-stop SelfTestFailed, and no session starts.

Cut short. A cell ends once it is decided: a little after the trip (or press) once the truth has vented (or the vent
time has run out). With no trip, an error whose harm is there at once (offset, gain, lag, frozen) is decided by its
first exposure: the cell ends POST_VENT_S after the plan has vented the faulty zone (SAFE-8's vent check has had its
say), or HORIZON_S after the zone first stopped filling after the injection (the fill under way runs to its end, then
its hold, top-ups and all, has HORIZON_S), whichever comes first - so the "longest above" of a cell cut there is a
lower bound. A drift grows with time: its cells run to the end of the first cycle. The process is then over (the rig
is closed: outputs released, which is the safe state) and the air is followed on until it has vented.

Shared prefixes. Every cell of a profile is the healthy run up to its injection time. `run_profile` runs that healthy
run once (the trunk) and forks a child process just before each injection time; the child schedules its fault
(`SimWorld.schedule`, as `open_sim(..., faults=[...])` would have), runs on alone, is judged, and sends its Cell back.
The simulation is deterministic, so a forked cell is the very run a fresh one is (`run_cell`;
`tests/test_redteam.py::test_a_forked_cell_is_the_fresh_run` checks it); without `os.fork` every cell runs fresh.

In the suite (tests/test_redteam.py) each family is one test, its cells run one profile trunk after another in the
worker that drew it, from references computed once per worker. `python -m tests.redteam` runs them all over a
process pool and prints the summary and every failing cell (`--cells`: every cell); `--fresh` runs every cell from
scratch; `--config DIR` runs them on another build (its `hardware.yaml`, simulation section and all).
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from tests.forking import collect, fork_with_pipe, send
from tests.helpers import CONFIG_DIR, PROFILES

SEED = 11
MARGIN_MMHG = 5.0  # the truth may pass a trip level by this much at most...
ABOVE_S = 1.0  # ...and stay above it no longer than this at a stretch
POST_VENT_S = 4.0  # no trip: the cell ends this long after the plan vented the faulty zone (SAFE-8 checks at 3 s)
HORIZON_S = 6.0  # no trip: or this long after the zone first stopped filling after the injection (its hold settled)
SETTLED_S = 0.5  # after a trip or a press: the cell ends this long after the truth has vented
FORK_LEAD_S = 0.25  # fork this long (at most) before an injection: more than any one step of the clock
CHILD_TIMEOUT_S = 120.0  # wall time a forked cell may take before it is killed and reported
STOP_REACTION_S = 0.05  # a press acts within this: the next tick (20 ms) and the read that sees it

SENSOR_PHASES = ("fill-start", "fill", "hold")
SELFTEST_PHASES = ("zero", "valve-check")
SESSION_PHASES = ("fill", "hold", "vent", "rest")


@dataclass(frozen=True)
class Family:
    faults: tuple[tuple[str, float | None], ...]  # (fault name, value)
    phases: tuple[str, ...]
    why: str
    whole_cycle: bool = False  # no trip: run to the end of the first cycle, not just the first exposure


FAMILIES = {
    "offset": Family(
        tuple(("sensor-offset", v) for v in (-6.0, -13.0, -25.0, 13.0, 25.0)),
        ("fill", "hold"),
        "a zero step within and beyond the MPRLS's ±19 mmHg total error band, both signs",
    ),
    "drift": Family(
        tuple(("sensor-drift", v) for v in (-0.2, 0.2, -1.0, 1.0)),
        ("fill", "hold"),
        "a zero drifting from the injection on, both signs",
        whole_cycle=True,
    ),
    "gain": Family(
        tuple(("sensor-gain", v) for v in (0.3, 0.6, 0.8, 1.2, 1.5)),
        SENSOR_PHASES,
        "a wrong span (around ambient): from the start of the fill, or as a step mid-fill or in the hold",
    ),
    "lag": Family(
        tuple(("sensor-lag", v) for v in (1.0, 2.0, 3.0)),
        SENSOR_PHASES,
        "a sensor reporting the pressure of 1-3 s ago (a clogged or long sensor line)",
    ),
    "frozen": Family(
        (("sensor-frozen", None), ("sensor-frozen", 0.5), ("sensor-frozen", 2.0)),
        SENSOR_PHASES,
        "a reading frozen on the pressure of that moment, its noise still moving (the chip's own, 0.5 or 2 mmHg: "
        "SAFE-9's stuck check cannot see it)",
    ),
    "stop": Family(
        (("button", None), ("estop", None)),
        SELFTEST_PHASES + SESSION_PHASES,
        "the stop button and the E-stop in the self-test's zero and valve check, and in a fill, hold, vent and rest",
    ),
}
PANEL = ("button", "estop")


class _Decided(BaseException):
    """Raised from the rig's read to end a cell once it is decided (a BaseException: nothing on the way swallows it;
    the runner drives the safe state on its way out, as for any exception)."""


# -- what each worker loads once ---------------------------------------------------------------------------------


CONFIG_ENV = "LEGSLEEVE_REDTEAM_CONFIG"  # another build's config directory (`--config`); children inherit it


def _config_dir() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or CONFIG_DIR)


@functools.cache
def _config():
    from legsleeve.config.hardware import load_hardware

    return load_hardware(_config_dir())


@functools.cache
def _profile(name: str):
    from legsleeve.config.profiles import load_profile

    return load_profile(_config_dir(), name, _config())


def target_zone(profile: str) -> str:
    """The zone with the highest target (the most distal of equals)."""
    cfg, prof = _config(), _profile(profile)
    peaks = [prof.peak_target_mmhg(i) for i in range(len(cfg.zones))]
    return cfg.zone_names[peaks.index(max(peaks))]


# -- the reference run ---------------------------------------------------------------------------------------------


def _f(cell: str) -> float:
    return float(cell) if cell else math.nan


@dataclass(frozen=True)
class Reference:
    """A healthy run of one profile: when each phase happens, in its target zone."""

    profile: str
    zone: str
    times: dict[str, float]
    cpu_s: float = 0.0  # what computing it cost


def reference(profile: str) -> Reference:
    from legsleeve.app.session import run_session
    from legsleeve.app.sessionlog import read_log
    from legsleeve.hw.backends import open_sim

    cpu = time.process_time()
    cfg, prof = _config(), _profile(profile)
    zone = target_zone(profile)
    rig = open_sim(cfg, seed=SEED)
    zero: list[float] = []
    pump: list[tuple[float, float]] = []  # (time, duty) at every apply of the self-test
    real_zero, real_apply = rig.zero_sensors, rig.apply

    def zero_sensors(*args, **kwargs):
        zero.append(rig.clock.now())
        try:
            return real_zero(*args, **kwargs)
        finally:
            zero.append(rig.clock.now())

    def apply(cmd):
        real_apply(cmd)
        if len(pump) < 10_000:
            pump.append((rig.clock.now(), cmd.pump_duty))

    rig.zero_sensors, rig.apply = zero_sensors, apply
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "reference.csv"
        try:
            result = run_session(rig, prof, cycles=1, log_path=log)
        finally:
            rig.close()
        assert result.outcome.trip is None, result.outcome.trip
        rows = read_log(log)
    start = result.outcome.start_s
    times = {"zero": (zero[0] + zero[1]) / 2}
    on = next(t for t, duty in pump if t > zero[1] and duty > 0)
    off = next(t for t, duty in pump if t > on and duty == 0)
    times["valve-check"] = (on + off) / 2
    assert times["valve-check"] < start

    def spans(pred) -> list[tuple[int, int]]:
        """Runs of consecutive rows where pred(row) holds: (first, last) indices."""
        out: list[tuple[int, int]] = []
        for i, r in enumerate(rows):
            if pred(r):
                if out and out[-1][1] == i - 1:
                    out[-1] = (out[-1][0], i)
                else:
                    out.append((i, i))
        return out

    t = lambda i: float(rows[i]["t_s"])  # noqa: E731
    fills = spans(lambda r: r[f"{zone}_inlet"] == "1")
    best = max(_f(rows[a][f"{zone}_target_mmhg"]) for a, _ in fills)
    fill = next((a, b) for a, b in fills if _f(rows[a][f"{zone}_target_mmhg"]) == best)
    times["fill-start"] = t(fill[0]) + 0.05
    times["fill"] = (t(fill[0]) + t(fill[1])) / 2
    holds = spans(lambda r: r[f"{zone}_inlet"] == "0" and r[f"{zone}_exhaust"] == "0" and _f(r[f"{zone}_mmhg"]) > 10)
    hold = next((a, b) for a, b in holds if a > fill[1] and t(b) - t(a) >= 2.0)
    times["hold"] = t(hold[0]) + min(2.0, (t(hold[1]) - t(hold[0])) / 2)
    vent = next(
        i
        for i in range(1, len(rows))
        if rows[i - 1][f"{zone}_exhaust"] == "0"
        and rows[i][f"{zone}_exhaust"] == "1"
        and _f(rows[i][f"{zone}_mmhg"]) > 10
    )
    times["vent"] = t(vent) + 0.3
    rest = spans(lambda r: r["state"].startswith("rest"))[0]
    times["rest"] = t(rest[0]) + min(3.0, (t(rest[1]) - t(rest[0])) / 2)
    rounded = {phase: round(at, 2) for phase, at in times.items()}
    return Reference(profile, zone, rounded, time.process_time() - cpu)


@functools.cache
def references() -> dict[str, Reference]:
    """Every profile's reference, computed once per process."""
    return {profile: reference(profile) for profile in PROFILES}


# -- a cell ----------------------------------------------------------------------------------------------------------


@dataclass
class Cell:
    profile: str
    family: str
    fault: str
    value: float | None
    zone: str | None  # the faulty sensor's zone; None for the panel
    phase: str
    at_s: float
    # what happened
    outcome: str = (
        ""  # "SAFE-4 ankle", "SAFE-12", "stopped", "no trip", "self-test stopped", "self-test refused (SAFE-12)"
    )
    rule: str | None = None
    trip_zone: str | None = None
    trip_s: float | None = None
    cannot_vent: bool = False
    ended: str = ""  # why the run ended
    worst_zone: str = ""  # the zone that came closest to (or furthest past) its trip level
    peak_mmhg: float = 0.0  # its true peak
    level_mmhg: float = 0.0  # its trip level
    above_s: float = 0.0  # its longest stretch above the trip level
    vent_s: float | None = None  # from the trip, press or end until every zone was below 5 mmHg
    reaction_s: float | None = None  # stop cells: from the press to the first safe tick
    cpu_s: float = 0.0
    forked: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def excess_mmhg(self) -> float:
        return self.peak_mmhg - self.level_mmhg

    def fault_spec(self):
        from legsleeve.sim.faults import FaultSpec

        return FaultSpec(self.fault, self.zone, self.at_s, self.value)

    def spec(self) -> str:
        return str(self.fault_spec())

    def key(self) -> tuple:
        return (self.profile, self.family, self.fault, self.value, self.phase)


class _Watch:
    """Everything one run shows through the rig's seams: the true pressures at every read, what each tick applied,
    the alarms raised, the status lines. Also decides when a cell has been seen enough (`decide`)."""

    def __init__(self, rig, profile: str, cell: Cell | None):
        from legsleeve.app.alarms import Annunciator
        from legsleeve.app.builder import build_session
        from legsleeve.core.commands import FILL

        self.rig = rig
        self.profile = profile
        self.cfg = rig.config
        self.world = rig.world
        self.physics = rig.world.physics
        self.n = len(self.cfg.zones)
        self.target = self.cfg.zone_names.index(target_zone(profile))
        # each zone's over-pressure trip level: the supervisor's, as the session's builder makes it (nothing runs)
        self.levels = tuple(build_session(rig, _profile(profile)).supervisor.trip_levels_mmhg)
        self.cell = cell
        self.samples: list[tuple[float, tuple[float, ...]]] = []
        self.tick_start_s = 0.0
        # stop cells, every tick that began after the press: when it applied something unsafe, or something safe
        self.unsafe: list[float] = []
        self.safe_ticks: list[float] = []
        self.trip: tuple[float, str] | None = None  # (time, message) of the first trip's alarm
        self.cannot_vent = False
        self.stopped = False  # the session ended by the button
        self.session_started = False
        self.zone_vent_since: float | None = None
        self.fill_over_s: float | None = None  # when the faulty zone first stopped filling after the injection
        self.vented_since: float | None = None
        self.target_action = None
        self.ended = ""
        self.end_s = 0.0
        self.selftest: tuple[str, str, str | None] | None = None  # (how, message, rule)
        self.final_outputs_safe = True
        self.trunk_done = False
        self.child_fd: int | None = None
        self._fill = FILL
        self._read, self._apply = rig.read, rig.apply
        rig.read, rig.apply = self.read, self.apply
        watch = self

        class Alarms(Annunciator):
            def raise_alarm(self, now_s, priority, message):
                watch.alarm(now_s, message)
                super().raise_alarm(now_s, priority, message)

        self.annunciator = Alarms(rig.panel, silence_s=self.cfg.limits.alarm_silence_s)

    # -- the seams ---------------------------------------------------------------------------------------------
    def read(self):
        self.tick_start_s = self.rig.clock.now()
        r = self._read()
        self.sample()
        self.decide(r.t_s)
        return r

    def apply(self, cmd) -> None:
        self._apply(cmd)
        self.target_action = cmd.action(self.target)
        cell = self.cell
        if cell is None or cell.fault not in PANEL or self.tick_start_s < cell.at_s:
            return
        rig = self.rig  # after a press: what was asked, and what the outputs now do
        unsafe = (
            cmd.pump_duty > 0
            or any(cmd.action(i) is self._fill for i in range(self.n))
            or rig.pump.duty > 0
            or any(z.inlet.is_open for z in rig.zones)
        )
        (self.unsafe if unsafe else self.safe_ticks).append(rig.clock.now())

    def status(self, text: str) -> None:
        if text.startswith("self-test passed"):
            self.session_started = True

    def alarm(self, now_s: float, message: str) -> None:
        if message.startswith(("SAFE-", "SELF-TEST")):
            if self.trip is None:
                self.trip = (now_s, message)
            if "cannot vent" in message:
                self.cannot_vent = True
        elif message.startswith("session stopped"):
            self.stopped = True

    def sample(self, settle: bool = False) -> None:
        """The true pressures now (within a millisecond: the chips have just brought the air up to date; settling
        here would split the model's integration steps differently from an unwatched run)."""
        if settle:
            self.world.settle()
        p = self.physics
        self.samples.append(
            (self.rig.clock.now(), tuple(max(p.zone_mmhg(i), p.bladder_mmhg(i)) for i in range(self.n)))
        )

    # -- when a cell has been seen enough --------------------------------------------------------------------------
    def decide(self, t: float) -> None:
        cell = self.cell
        if cell is None:
            if self.trunk_done:
                raise _Decided("the trunk has forked its last cell")
            return
        if t < cell.at_s:
            return
        from legsleeve.core.commands import VENT
        from legsleeve.core.limits import VENTED_MMHG

        truth = self.samples[-1][1]
        event = self.trip[0] if self.trip is not None else cell.at_s if cell.fault in PANEL else None
        if event is not None:
            if all(p < VENTED_MMHG for p in truth):
                if self.vented_since is None:
                    self.vented_since = t
                elif t - self.vented_since >= SETTLED_S:
                    raise _Decided("vented after the " + ("trip" if self.trip else "press"))
            else:
                self.vented_since = None
            if t - event > self.cfg.limits.vent_timeout_s + 1.0:
                raise _Decided("the vent time ran out")
            return
        if FAMILIES[cell.family].whole_cycle:
            return
        if self.target_action is VENT and truth[self.target] < VENTED_MMHG:
            if self.zone_vent_since is None:
                self.zone_vent_since = t
            elif t - self.zone_vent_since >= POST_VENT_S:
                raise _Decided("the plan vented the zone")
        else:
            self.zone_vent_since = None
        if self.fill_over_s is None and self.target_action is not self._fill:
            self.fill_over_s = t
        if self.fill_over_s is not None and t - self.fill_over_s >= HORIZON_S:
            raise _Decided(f"the zone has not been filling for {HORIZON_S:g} s")


def _drive(watch: _Watch) -> None:
    """The session on the watched rig, to its end or until decided; the rig closed after."""
    from legsleeve.app.selftest import SelfTestFailed, SelfTestStopped
    from legsleeve.app.session import run_session
    from legsleeve.errors import SleeveError

    rig = watch.rig
    try:
        result = run_session(rig, _profile(watch.profile), cycles=1, status=watch.status, annunciator=watch.annunciator)
        watch.ended = "the session ended"
        watch.stopped = watch.stopped or result.outcome.stopped
    except _Decided as why:
        watch.ended = str(why)
    except SelfTestStopped as exc:
        watch.selftest = ("stopped", str(exc), None)
        watch.ended = "the self-test stopped"
    except SelfTestFailed as exc:
        rule = exc.trip.rule if exc.trip is not None else ("SAFE-12" if "E-stop" in str(exc) else None)
        watch.selftest = ("refused", str(exc), rule)
        watch.ended = "the self-test refused"
    except SleeveError as exc:  # a sensor fault before the session: nothing was squeezed
        watch.selftest = ("refused", str(exc), None)
        watch.ended = "refused before the session"
    finally:
        watch.end_s = rig.clock.now()
        watch.final_outputs_safe = (
            rig.pump.duty == 0
            and not any(z.inlet.is_open for z in rig.zones)
            and all(z.exhaust.is_open for z in rig.zones)
        )
        rig.close()


def _judge(cell: Cell, watch: _Watch) -> Cell:
    """Follow the air until it has vented, then the verdict on the true pressures. Problems go on the cell."""
    from legsleeve.core.limits import VENTED_MMHG

    cfg = watch.cfg
    limits = cfg.limits
    names = cfg.zone_names
    panel = cell.fault in PANEL
    # what happened
    if watch.selftest is not None:
        how, message, rule = watch.selftest
        cell.rule = rule
        cell.outcome = "self-test stopped" if how == "stopped" else f"self-test refused ({rule or message[:60]})"
    elif watch.trip is not None:
        head = watch.trip[1].split(":", 1)[0].split()
        cell.rule = head[0]
        cell.trip_zone = head[1] if len(head) > 1 else None
        cell.trip_s = watch.trip[0]
        cell.outcome = " ".join(head)
    elif watch.stopped:
        cell.outcome = "stopped"
    else:
        cell.outcome = "no trip"
    cell.cannot_vent = watch.cannot_vent
    cell.ended = watch.ended
    event = cell.trip_s if cell.trip_s is not None else cell.at_s if panel else watch.end_s
    # the process is over: the air goes on as physics says, outputs released
    clock = watch.rig.clock
    watch.sample(settle=True)
    while clock.now() < event + limits.vent_timeout_s + 0.5 and not all(p < VENTED_MMHG for p in watch.samples[-1][1]):
        clock.advance(0.1)
        watch.sample(settle=True)
    samples = watch.samples
    # truth against the trip levels
    levels = watch.levels
    worst = None
    for i, (name, level) in enumerate(zip(names, levels, strict=True)):
        peak = max(p[i] for _, p in samples)
        longest = longest_above([(t, p[i]) for t, p in samples], level)
        if peak - level > MARGIN_MMHG:
            cell.problems.append(f"{name} reached {peak:.1f} mmHg, {peak - level:.1f} above its trip level {level:g}")
        if longest > ABOVE_S:
            cell.problems.append(f"{name} above its trip level {level:g} for {longest:.1f} s")
        if worst is None or peak - level > worst[1] - worst[2]:
            worst = (name, peak, level, longest)
    assert worst is not None
    cell.worst_zone, cell.peak_mmhg, cell.level_mmhg, cell.above_s = worst
    # vented after the trip, the press or the end
    vented = next((t for t, p in samples if t >= event and all(x < VENTED_MMHG for x in p)), None)
    cell.vent_s = None if vented is None else vented - event
    if cell.vent_s is None or cell.vent_s > limits.vent_timeout_s:
        cell.problems.append(f"not vented within {limits.vent_timeout_s:g} s of the {_event_name(cell)}")
    if watch.trip is not None and not cell.rule:
        cell.problems.append(f"a trip that names no rule: {watch.trip[1]}")
    if not watch.final_outputs_safe:
        cell.problems.append("outputs not safe when the run ended")
    if panel:
        _judge_stop(cell, watch)
    return cell


def longest_above(samples: Sequence[tuple[float, float]], level: float) -> float:
    """The longest stretch (s) a sampled pressure spent above `level`, its ends interpolated between samples."""
    longest = 0.0
    since = samples[0][0] if samples and samples[0][1] > level else None
    for (t0, p0), (t1, p1) in itertools.pairwise(samples):
        if since is None and p1 > level:  # p0 <= level: it crossed upwards
            since = t0 + (t1 - t0) * (level - p0) / (p1 - p0)
        elif since is not None and p1 <= level:  # p0 > level: it crossed downwards
            longest, since = max(longest, t0 + (t1 - t0) * (p0 - level) / (p0 - p1) - since), None
    if since is not None:
        longest = max(longest, samples[-1][0] - since)
    return longest


def _event_name(cell: Cell) -> str:
    return "trip" if cell.trip_s is not None else "press" if cell.fault in PANEL else "end"


def _judge_stop(cell: Cell, watch: _Watch) -> None:
    """SAFE-12: the press acts at the next tick, outputs stay safe, and in the self-test nothing starts."""
    if watch.unsafe:
        cell.problems.append(f"an output unsafe at t={watch.unsafe[0]:.2f} s, after the press at {cell.at_s:g} s")
    ticks = sorted(watch.unsafe + watch.safe_ticks)
    cell.reaction_s = (ticks[0] if ticks else watch.end_s) - cell.at_s
    if cell.reaction_s > STOP_REACTION_S:
        cell.problems.append(f"acted {cell.reaction_s:.3f} s after the press (bound {STOP_REACTION_S} s)")
    in_selftest = cell.phase in SELFTEST_PHASES
    if cell.fault == "button":
        want = "self-test stopped" if in_selftest else "stopped"
        if cell.outcome != want:
            cell.problems.append(f"ended '{cell.outcome}', expected '{want}'")
    else:
        if cell.rule != "SAFE-12" or (in_selftest and not cell.outcome.startswith("self-test refused")):
            cell.problems.append(
                f"ended '{cell.outcome}', expected " + ("the self-test refused, " if in_selftest else "") + "SAFE-12"
            )
    if in_selftest and watch.session_started:
        cell.problems.append("a session started after the self-test was stopped")


# -- running cells: fresh, or forked from a trunk ------------------------------------------------------------------


def run_cell(cell: Cell) -> Cell:
    """One cell from scratch: `open_sim(cfg, seed=SEED, faults=[its fault])`, the session, the verdict."""
    from legsleeve.hw.backends import open_sim

    cell = replace(cell, problems=[])
    cpu = time.process_time()
    rig = open_sim(_config(), seed=SEED, faults=[cell.fault_spec()])
    watch = _Watch(rig, cell.profile, cell)
    _drive(watch)
    _judge(cell, watch)
    cell.cpu_s = time.process_time() - cpu
    return cell


def run_profile(profile: str, cells: Sequence[Cell], *, fork: bool = True) -> list[Cell]:
    """Every cell of one profile: forked from one healthy trunk run just before each injection, or each fresh."""
    cells = sorted(cells, key=lambda c: c.at_s)
    if not fork or not hasattr(os, "fork"):
        return [run_cell(c) for c in cells]
    from legsleeve.hw.backends import open_sim

    pending = [c for c in cells if c.at_s > FORK_LEAD_S]
    fresh = [c for c in cells if c.at_s <= FORK_LEAD_S]
    done: list[Cell] = []
    rig = open_sim(_config(), seed=SEED)
    watch = _Watch(rig, profile, None)

    def on_advance(t_s: float) -> None:
        while pending and pending[0].at_s - t_s < FORK_LEAD_S:
            cell = pending.pop(0)
            if cell.at_s <= t_s:
                fresh.append(cell)  # the clock stepped over it: run it from scratch
                continue
            if _fork(cell, watch, done):
                pending.clear()  # the child: one cell, no more forks
                return
        if not pending and watch.child_fd is None:
            watch.trunk_done = True

    rig.clock.on_advance(on_advance)
    try:
        _drive(watch)
        if watch.child_fd is not None:
            assert watch.cell is not None
            _judge(watch.cell, watch)
            send(watch.child_fd, watch.cell)
            os._exit(0)
    except BaseException as exc:
        if watch.child_fd is not None:  # never return into the parent's stack from a child
            try:
                assert watch.cell is not None
                watch.cell.problems.append(f"the cell raised {type(exc).__name__}: {exc}")
                send(watch.child_fd, watch.cell)
            finally:
                os._exit(1)
        raise
    for cell in pending:  # the trunk ended before their time: run them from scratch
        fresh.append(cell)
    return done + [run_cell(c) for c in fresh]


def _fork(cell: Cell, watch: _Watch, done: list[Cell]) -> bool:
    """Fork the trunk into this cell's run: True in the child (its fault scheduled), False in the parent, which
    waits for the child and collects its Cell."""
    pid, read_fd, write_fd = fork_with_pipe()
    if pid == 0:
        cell = replace(cell, problems=[], forked=True)
        watch.cell, watch.child_fd = cell, write_fd
        watch.world.schedule(cell.fault_spec())
        return True
    result, status, cpu_s = collect(pid, read_fd, CHILD_TIMEOUT_S)
    if result is None:
        result = replace(
            cell, problems=[f"the forked run died (wait status {status}) or took over {CHILD_TIMEOUT_S} s"]
        )
    result.cpu_s = cpu_s
    done.append(result)
    return False


# -- the plan, the families, the summary ---------------------------------------------------------------------------


def plan(refs: dict[str, Reference], families: Sequence[str] = tuple(FAMILIES)) -> list[Cell]:
    cells = []
    for profile, ref in refs.items():
        for family in families:
            fam = FAMILIES[family]
            for fault, value in fam.faults:
                for phase in fam.phases:
                    zone = None if fault in PANEL else ref.zone
                    cells.append(Cell(profile, family, fault, value, zone, phase, ref.times[phase]))
    return cells


def run_family(family: str, *, fork: bool = True, cpu: dict[str, float] | None = None) -> list[Cell]:
    """One family's cells on every profile, one profile's trunk after another, in this process. `cpu`, if given,
    gets the CPU seconds of the references (this process's, computed once), the trunks and the cells."""
    if family not in FAMILIES:
        raise ValueError(family)
    refs = references()
    cells = plan(refs, (family,))
    out: list[Cell] = []
    start = time.process_time()
    for profile in PROFILES:
        out += run_profile(profile, [c for c in cells if c.profile == profile], fork=fork)
    if cpu is not None:
        cpu["references"] = sum(r.cpu_s for r in refs.values())
        cpu["trunks"] = time.process_time() - start - sum(c.cpu_s for c in out if not c.forked)
        cpu["cells"] = sum(c.cpu_s for c in out)
    order = {c.key(): i for i, c in enumerate(cells)}
    return sorted(out, key=lambda c: order[c.key()])


def _run_profile_task(args: tuple[str, list[Cell], bool]) -> tuple[list[Cell], float]:
    profile, cells, fork = args
    cpu = time.process_time()
    out = run_profile(profile, cells, fork=fork)
    return out, time.process_time() - cpu


def run_matrix(workers: int | None = None, *, fork: bool = True) -> tuple[list[Cell], dict[str, float]]:
    """Every cell over a process pool: references first, then one task per profile. Returns the cells and CPU
    figures (s): references, trunks (and fresh cells), forked cells."""
    workers = workers or os.cpu_count() or 2
    with ProcessPoolExecutor(max_workers=workers) as pool:
        refs = {r.profile: r for r in pool.map(reference, PROFILES)}
        cells = plan(refs)
        tasks = [(p, [c for c in cells if c.profile == p], fork) for p in PROFILES]
        tasks.sort(key=lambda task: -max(c.at_s for c in task[1]))  # the longest trunks first
        results = list(pool.map(_run_profile_task, tasks))
    out = [c for cs, _ in results for c in cs]
    order = {c.key(): i for i, c in enumerate(cells)}
    out.sort(key=lambda c: order[c.key()])
    figures = {
        "references": sum(r.cpu_s for r in refs.values()),
        "trunks": sum(t for _, t in results) - sum(c.cpu_s for c in out if not c.forked),
        "fresh cells": sum(c.cpu_s for c in out if not c.forked),
        "forked cells": sum(c.cpu_s for c in out if c.forked),
    }
    return out, figures


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _cell_row(c: Cell) -> str:
    vent = "never" if c.vent_s is None else f"{c.vent_s:.1f} s"
    return (
        f"| {c.profile} | {c.spec()} | {c.phase} | {c.outcome}{' +cannot vent' if c.cannot_vent else ''} | "
        f"{c.worst_zone} {c.peak_mmhg:.1f} / {c.level_mmhg:g} ({c.excess_mmhg:+.1f}) | {c.above_s:.2f} s | {vent} | "
        f"{c.ended} | {'; '.join(c.problems) or 'pass'} |"
    )


TABLE_HEAD = [
    "| profile | fault | phase | outcome | true peak / trip level (excess) | longest above | vented after | ended | "
    "verdict |",
    "|---|---|---|---|---|---|---|---|---|",
]


def summary(cells: list[Cell], cpu: dict[str, float] | None = None, *, every_cell: bool = False) -> str:
    """The summary per family, then every failing cell (or every cell)."""
    families = [f for f in FAMILIES if any(c.family == f for c in cells)]
    lines = [
        f"red-team matrix: {len(cells)} cells ("
        + ", ".join(f"{f} {sum(c.family == f for c in cells)}" for f in families)
        + f") over {_plural(len({c.profile for c in cells}), 'profile')}; "
        f"{sum(not c.problems for c in cells)} pass, judged on the true pressures (trip level + {MARGIN_MMHG:g} mmHg "
        f"at most, above it {ABOVE_S:g} s at most, vented within the vent time)",
        "",
        "| family | cells | pass | outcomes | worst true peak vs trip level | longest above | slowest vent | CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for family in families:
        mine = [c for c in cells if c.family == family]
        outcomes: dict[str, int] = {}
        for c in mine:
            key = c.rule or c.outcome
            outcomes[key] = outcomes.get(key, 0) + 1
        worst = max(mine, key=lambda c: c.excess_mmhg)
        longest = max(mine, key=lambda c: c.above_s)
        vents = [math.inf if c.vent_s is None else c.vent_s for c in mine]
        lines.append(
            f"| {family} | {len(mine)} | {sum(not c.problems for c in mine)} | "
            f"{', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))} | "
            f"{worst.peak_mmhg:.1f} / {worst.level_mmhg:g} ({worst.excess_mmhg:+.1f}, "
            f"{worst.profile} {worst.spec()}) | "
            f"{longest.above_s:.1f} s ({longest.profile} {longest.spec()}) | {max(vents):.1f} s | "
            f"{sum(c.cpu_s for c in mine):.1f} |"
        )
    lines.append("")
    lines += [f"- {f}: {FAMILIES[f].why}; injected at {', '.join(FAMILIES[f].phases)}" for f in families]
    if cpu:
        lines += ["", "CPU: " + ", ".join(f"{k} {v:.1f} s" for k, v in cpu.items())]
    shown = cells if every_cell else [c for c in cells if c.problems]
    if shown:
        title = "every cell" if every_cell else f"{len(shown)} failing cells"
        lines += ["", f"{title} (a cell ended before its zone was vented gives a longest-above that is a lower bound):"]
        lines += ["", *TABLE_HEAD, *(_cell_row(c) for c in shown)]
    return "\n".join(lines)


def main(argv: Sequence[str] = ()) -> int:
    import logging
    import resource

    logging.disable(logging.CRITICAL)  # the firmware's alarm lines: the table says it all
    argv = list(argv)
    if "--config" in argv:  # another build: its hardware.yaml and profiles/
        i = argv.index("--config")
        if i + 1 >= len(argv):
            print("usage: --config DIR", file=sys.stderr)
            return 2
        os.environ[CONFIG_ENV] = str(Path(argv.pop(i + 1)).resolve())
        argv.pop(i)
    fresh = "--fresh" in argv
    unknown = set(argv) - {"--fresh", "--cells"}
    if unknown:
        print(
            f"usage: python -m tests.redteam [--fresh] [--cells] [--config DIR]; not {' '.join(sorted(unknown))}",
            file=sys.stderr,
        )
        return 2
    print(f"build: {_config_dir()}")
    wall = time.monotonic()
    cells, figures = run_matrix(fork=not fresh)
    wall = time.monotonic() - wall
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    print(summary(cells, every_cell="--cells" in argv))
    total = usage.ru_utime + usage.ru_stime + own.ru_utime + own.ru_stime
    print(
        f"\nCPU {total:.1f} s in all ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in figures.items())
        + f"); wall {wall:.1f} s on "
        f"{os.cpu_count()} cores" + (" (every cell fresh)" if fresh else "")
    )
    return 1 if any(c.problems for c in cells) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
