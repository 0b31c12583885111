"""`legsleeve calibrate`: characterise this build with the sleeve off the leg, and fit a twin of it.

The script runs under the full supervisor (every rule, the over-pressure limits of hardware.yaml; the rate, time and
vent thresholds it is about to measure held at the code's ceilings meanwhile), after the self-test:

1. at rest, vented: each sensor's noise;
2. each zone alone: fill at full duty to a third of the top pressure, hold 5 s; fill at full duty to two thirds,
   hold 5 s; fill at the pump's minimum duty to the top, hold 20 s; vent to empty. The top is `limits.max_mmhg` less
   the trip margin. Every other zone is watched for cross-talk meanwhile.

From the recording: fill rates at full and minimum duty, hold losses, vent time constants, noise and cross-talk per
zone (`ZoneFigures`), and the twin: the pneumatic model's parameters fitted to the same samples. Pressures alone fix
only the ratios of flows to volumes, so the fit is anchored on one figure the maker states: the pump's free flow
(`simulation.pump_free_flow_lpm`, from its label); the pump's dead-head, the valves' conductances, each bladder's
compliance and leak are fitted against it. A bladder's flat volume is under 1 % of its capacity to take air and is
kept as configured; the manifold's time constant (~15 ms) is under one tick and its volume is kept too. The twin
then replays the recording and the RMS error per zone is reported.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from legsleeve.app.builder import build_session
from legsleeve.app.runner import Runner
from legsleeve.app.selftest import CrossTalk, self_test
from legsleeve.config.calibration import (
    VENT_TIMEOUT_FACTOR,
    VENT_TIMEOUT_PLUS_S,
    Calibration,
    ZoneFigures,
    calibration_document,
    derive_limits,
)
from legsleeve.config.model import HardwareConfig, SimSpec, SimZoneSpec
from legsleeve.core.commands import FILL, HOLD, SAFE, VENT, Commands, ZoneAction
from legsleeve.core.controller import Output, Phase, Status, ZoneStatus
from legsleeve.core.limits import (
    MAX_ABOVE_VENOUS_S,
    MAX_FILL_TIMEOUT_S,
    MAX_SENSOR_NOISE_MMHG,
    MAX_VENT_TIMEOUT_S,
    VENTED_MMHG,
    Limits,
)
from legsleeve.core.plan import Profile, Step, StepKind
from legsleeve.core.readings import Readings
from legsleeve.core.units import MMHG_PER_HPA
from legsleeve.errors import SleeveError
from legsleeve.hw.rig import Rig
from legsleeve.safety.trip import Trip

LEVELS = (1 / 3, 2 / 3, 1.0)  # of the top pressure
# Holds: the loss grows with the pressure, so the top's hold is the long one: 20 s sees a sound bladder's ~0.05 mmHg/s
# within a few percent through 0.3 mmHg of noise; the lower two show it scales.
HOLD_S, TOP_HOLD_S = 5.0, 20.0
REST_S = 2.0  # vented, at rest: the noise
EMPTY_MMHG = 1.0  # a vent is followed down to this
SETTLE_S = 0.5  # after a fill, before a hold's loss is judged (the hose evens out with the bladder)
CHUNK_MMHG, MIN_CHUNK_S = 5.0, 0.5  # a fill's rate is taken over stretches of 5 mmHg and at least half a second
MIN_RUN_S = 0.25  # ...or the whole of a shorter run between SAFE-15's checks, if it lasts this long

# Refusals: a build outside these is not calibrated; it is fixed first.
REFUSE_LEAK_MMHG_S = 1.0
REFUSE_SLOW_FILL_MMHG_S = 0.6  # at minimum duty near the top: the pump barely moves air
REFUSE_RMS_MMHG = 5.0  # the model cannot describe this sleeve
REFUSE_VENT_FROM_MMHG = 45.0  # a sleeve that cannot vent from a moderate squeeze within SAFE-8's ceiling


class CalibrationRefused(SleeveError):
    """The build is outside what calibrate accepts: the reason says what to fix."""


# -- the script ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """One step of the script: what `zone` does (FILL at `duty`, HOLD, VENT), until a pressure or for a time."""

    label: str
    zone: int | None
    action: ZoneAction
    duty: float = 0.0
    until_mmhg: float | None = None  # FILL: up to this; VENT: down to this
    duration_s: float | None = None


def script(cfg: HardwareConfig) -> list[Move]:
    top = calibration_top_mmhg(cfg.limits)
    low, mid, high = (round(top * f, 1) for f in LEVELS)
    moves = [Move("rest", None, VENT, duration_s=REST_S)]
    for i, name in enumerate(cfg.zone_names):
        moves += [
            Move(f"{name} fill full", i, FILL, 1.0, until_mmhg=low),
            Move(f"{name} hold {low:g}", i, HOLD, duration_s=HOLD_S),
            Move(f"{name} fill full", i, FILL, 1.0, until_mmhg=mid),
            Move(f"{name} hold {mid:g}", i, HOLD, duration_s=HOLD_S),
            Move(f"{name} fill min", i, FILL, cfg.pump.min_duty, until_mmhg=high),
            Move(f"{name} hold {high:g}", i, HOLD, duration_s=TOP_HOLD_S),
            Move(f"{name} vent", i, VENT, until_mmhg=EMPTY_MMHG),
        ]
    return moves


def calibration_top_mmhg(limits: Limits) -> float:
    return limits.max_mmhg - limits.trip_margin_mmhg


def calibration_limits(limits: Limits) -> Limits:
    """The limits calibration runs under: every pressure limit as configured; the thresholds it measures for (rates,
    times, the vent's pace, the noise) at the code's loosest, since this build's figures are not known yet."""
    return dataclasses.replace(
        limits,
        fill_timeout_s=MAX_FILL_TIMEOUT_S,
        min_fill_rate_mmhg_s=0.3,
        vent_timeout_s=MAX_VENT_TIMEOUT_S,
        vent_check_s=MAX_VENT_TIMEOUT_S,
        vent_tau_s=MAX_VENT_TIMEOUT_S,
        leak_rate_mmhg_s=3.0,  # a loss between the refusal's 1 mmHg/s and this is measured, then refused by name
        max_drop_mmhg=30.0,
        occlusion_rate_mmhg_s=200.0,
        sensor_noise_mmhg=MAX_SENSOR_NOISE_MMHG,
        max_above_venous_s=MAX_ABOVE_VENOUS_S,  # off the leg: a slow build's three holds take their time
    )


class ScriptController:
    """Plays the moves, one at a time, as a controller the runner can run (the supervisor reviews every tick)."""

    def __init__(self, moves: Sequence[Move], zone_count: int):
        self.moves = list(moves)
        self.n = zone_count
        self.index = 0
        self._start_s: float | None = None
        self._status = self._make_status()

    @property
    def move(self) -> Move | None:
        return self.moves[self.index] if self.index < len(self.moves) else None

    @property
    def status(self) -> Status:
        return self._status

    def _make_status(self) -> Status:
        move = self.move
        zones = []
        for i in range(self.n):
            phase = Phase.VENTED
            if move is not None and move.zone == i and move.action is not VENT:
                phase = Phase.FILLING if move.action is FILL else Phase.HOLDING
            zones.append(ZoneStatus(phase, move.until_mmhg or 0.0 if move else 0.0, (), 0))
        kind = None if move is None else {FILL: StepKind.FILL, HOLD: StepKind.HOLD, VENT: StepKind.VENT}[move.action]
        return Status(move.label if move else "done", kind, self.index, 0, move is None, tuple(zones))

    def step(self, now_s: float, readings: Readings) -> Output:
        move = self.move
        while move is not None and self._finished(move, now_s, readings):
            self.index += 1
            self._start_s = None
            move = self.move
            self._status = self._make_status()
        if move is None:
            return Output(SAFE, self._status)
        if self._start_s is None:
            self._start_s = now_s
        actions = [VENT] * self.n
        duty = 0.0
        if move.zone is not None:
            actions[move.zone] = move.action
            if move.action is FILL:
                duty = move.duty
        return Output(Commands(duty, tuple(actions)), self._status)

    def _finished(self, move: Move, now_s: float, readings: Readings) -> bool:
        if self._start_s is None:
            return False
        if move.duration_s is not None:
            return now_s - self._start_s >= move.duration_s
        assert move.zone is not None and move.until_mmhg is not None
        r = readings.zones[move.zone]
        if not r.ok:
            return False  # the supervisor judges a dead sensor
        if move.action is FILL:
            return r.mmhg >= move.until_mmhg
        return r.mmhg <= move.until_mmhg


# -- the recording ------------------------------------------------------------------------------------------------


@dataclass
class Recording:
    """Every tick of the script: when the outputs changed, what they became, and what each sensor read when."""

    zone_names: tuple[str, ...]
    t_apply_s: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    duty: list[float] = field(default_factory=list)
    actions: list[tuple[ZoneAction, ...]] = field(default_factory=list)
    zone_t_s: list[tuple[float, ...]] = field(default_factory=list)
    zone_mmhg: list[tuple[float, ...]] = field(default_factory=list)
    manifold_mmhg: list[float] = field(default_factory=list)

    def add(self, t_apply_s: float, label: str, cmd: Commands, readings: Readings) -> None:
        self.t_apply_s.append(t_apply_s)
        self.labels.append(label)
        self.duty.append(cmd.pump_duty)
        self.actions.append(tuple(cmd.action(i) for i in range(len(self.zone_names))))
        self.zone_t_s.append(tuple(r.t_s for r in readings.zones))
        self.zone_mmhg.append(tuple(r.mmhg if r.ok else math.nan for r in readings.zones))
        m = readings.manifold
        self.manifold_mmhg.append(m.mmhg if m is not None and m.ok else math.nan)

    def __len__(self) -> int:
        return len(self.t_apply_s)

    def where(self, label: str) -> list[int]:
        return [k for k, lab in enumerate(self.labels) if lab == label]


# -- running it ---------------------------------------------------------------------------------------------------


@dataclass
class Result:
    calibration: Calibration
    recording: Recording
    replay_mmhg: list[tuple[float, ...]]  # the twin's pressure at each recorded reading
    limits_before: Limits
    limits_after: Limits
    sources: dict[str, str]
    warnings: list[str]


def calibrate(
    rig: Rig,
    *,
    firmware_version: str,
    status: Callable[[str], None] | None = None,
    now_text: str | None = None,
) -> Result:
    """Self-test, then the script under the full supervisor, then the figures, the twin and the limits they give.
    Raises SelfTestFailed, CalibrationRefused, or CalibrationTripped (a rule tripped: nothing is written). The rig's
    config is replaced by the one calibration runs under (`calibration_limits`): the rig is calibrate's alone."""
    if rig.config.shared_sensor:
        raise CalibrationRefused(
            "calibration needs a sensor on each zone: a one-sensor build reads a zone only at its peeks, too seldom "
            "for the fill, hold and vent curves it fits (docs/one-sensor.md); the reference limits stay in force"
        )
    configured = rig.config.configured_limits
    uncalibrated = dataclasses.replace(
        rig.config, limits=calibration_limits(configured), configured=configured, calibration=None, limit_sources=()
    )
    rig.config = uncalibrated
    cfg = uncalibrated
    say = status or (lambda line: None)
    say("self-test (its fill times become this build's baseline)")
    selftest_fills = self_test(rig).fill_times_s
    moves = script(cfg)
    controller = ScriptController(moves, len(cfg.zones))
    recording = Recording(cfg.zone_names)
    top = calibration_top_mmhg(cfg.configured_limits)
    last_label = [""]

    def on_tick(runner: Runner, readings: Readings) -> None:
        label = runner.status.step
        recording.add(rig.clock.now(), label, runner.applied, readings)
        if label != last_label[0]:
            last_label[0] = label
            say(f"{readings.t_s - recording.t_apply_s[0]:6.1f} s  {label}")

    runner = build_session(
        rig,
        _profile_for(cfg),
        controller=controller,
        trip_targets_mmhg=[top] * len(cfg.zones),
        extra_monitors=[CrossTalk(cfg.zone_names, cfg.selftest.crosstalk_mmhg)],
        on_tick=on_tick,
    )
    outcome = runner.run()
    if outcome.trip is not None:
        raise CalibrationTripped(outcome.trip)
    if outcome.stopped:
        raise CalibrationRefused(f"calibration stopped ({runner.stop_reason}): nothing was written")
    figures = analyse(recording, cfg, selftest_fills)
    twin, deadhead = fit_twin(recording, cfg)
    replay = replay_twin(recording, cfg, twin)
    rms = rms_per_zone(recording, replay)
    cal = Calibration(
        path=cfg.path.parent / "calibration.yaml",
        date=now_text or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        firmware_version=firmware_version,
        zone_names=cfg.zone_names,
        manifold_sensor=cfg.has_manifold_sensor,
        min_duty=cfg.pump.min_duty,
        levels_mmhg=tuple(round(top * f, 1) for f in LEVELS),
        zones=tuple(figures),
        pump_deadhead_mmhg=deadhead,
        twin=twin,
        twin_rms_mmhg=rms,
    )
    refuse(cal, cfg)
    after, sources = derive_limits(cfg.configured_limits, cal)
    warnings = [
        f"the twin replays {name} with {value:.1f} mmHg RMS error: profiles tuned on it are approximate"
        for name, value in rms.items()
        if value > 2.0
    ]
    top_mmhg = cfg.configured_limits.max_mmhg
    for z in figures:
        t_vent = z.vent_time_s(top_mmhg)
        if t_vent * VENT_TIMEOUT_FACTOR + VENT_TIMEOUT_PLUS_S > MAX_VENT_TIMEOUT_S:
            warnings.append(
                f"{z.name} vents from {top_mmhg:g} mmHg in {t_vent:.0f} s: the vent limit stays at its "
                f"{MAX_VENT_TIMEOUT_S:g} s ceiling, closer than the usual margin; the session plan refuses a profile "
                "that would not vent within it"
            )
    return Result(cal, recording, replay, cfg.configured_limits, after, sources, warnings)


class CalibrationTripped(SleeveError):
    def __init__(self, trip: Trip):
        self.trip = trip
        super().__init__(
            f"calibration tripped at {trip.zone or 'the sleeve'}: {trip.reason}. Check: {trip.hint}. Nothing was "
            "written: fix it and calibrate again"
        )


def _profile_for(cfg: HardwareConfig) -> Profile:
    top = calibration_top_mmhg(cfg.configured_limits)
    return Profile.of_steps("calibrate", cfg.zone_names, (Step(StepKind.REST, duration_s=1.0),), top, path=cfg.path)


# -- analysis -----------------------------------------------------------------------------------------------------


def _runs(rec: Recording, i: int, pred: Callable[[int], bool]) -> list[list[int]]:
    """Maximal runs of consecutive ticks k where pred(k) holds and zone i read a pressure."""
    runs: list[list[int]] = []
    current: list[int] = []
    for k in range(len(rec)):
        if pred(k) and not math.isnan(rec.zone_mmhg[k][i]):
            current.append(k)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def _slope(ts: Sequence[float], ps: Sequence[float]) -> float:
    return statistics.linear_regression(ts, ps).slope if len(ts) >= 2 and len(set(ts)) > 1 else math.nan


class FillStretch(NamedTuple):
    """A stretch of one zone's fill with the pump on: its mean pressure and rate, the manifold's mean and rate."""

    mmhg: float
    rate_mmhg_s: float
    manifold_mmhg: float
    duty: float
    manifold_rate_mmhg_s: float


def fill_runs(rec: Recording, i: int, duty_pred: Callable[[float], bool]) -> list[FillStretch]:
    """Stretches of zone i filling with the pump on (SAFE-15's pump-off checks cut them), of ~5 mmHg and 0.5 s each
    (or a whole shorter run)."""
    out = []

    def filling(k: int) -> bool:
        return rec.actions[k][i] is FILL and rec.duty[k] > 0 and duty_pred(rec.duty[k])

    for run in _runs(rec, i, filling):
        # a sample read during the tick after the pump started sees its effect: skip the first two of each run
        run = run[2:]
        chunks: list[list[int]] = [[]]
        for k in run:
            chunk = chunks[-1]
            chunk.append(k)
            rise = rec.zone_mmhg[chunk[-1]][i] - rec.zone_mmhg[chunk[0]][i]
            if rise >= CHUNK_MMHG and rec.zone_t_s[chunk[-1]][i] - rec.zone_t_s[chunk[0]][i] >= MIN_CHUNK_S:
                chunks.append([])
        if len(chunks) > 1 and _span_s(rec, i, chunks[-1]) < MIN_CHUNK_S:
            tail = chunks.pop()
            chunks[-1].extend(tail)  # a short tail joins the stretch before it
        for chunk in chunks:
            if len(chunk) < 5 or _span_s(rec, i, chunk) < MIN_RUN_S:
                continue  # a short stretch's slope is mostly noise
            ts = [rec.zone_t_s[j][i] for j in chunk]
            p = [rec.zone_mmhg[j][i] for j in chunk]
            m = [rec.manifold_mmhg[j] for j in chunk]
            out.append(
                FillStretch(statistics.fmean(p), _slope(ts, p), statistics.fmean(m), rec.duty[chunk[0]], _slope(ts, m))
            )
    return out


def holds(rec: Recording, i: int, name: str) -> list[tuple[float, float, float]]:
    """Each hold of zone i, after its first SETTLE_S: (mean pressure, loss in mmHg/s by least squares, and that fit's
    Σ(t - t̄)² in s²: the noise's share of the loss goes as 1/√ of it)."""
    out = []
    for label in sorted({lab for lab in rec.labels if lab.startswith(f"{name} hold ")}):
        ks = rec.where(label)
        t0 = rec.zone_t_s[ks[0]][i]
        ks = [k for k in ks if rec.zone_t_s[k][i] - t0 >= SETTLE_S and not math.isnan(rec.zone_mmhg[k][i])]
        ts = [rec.zone_t_s[k][i] for k in ks]
        ps = [rec.zone_mmhg[k][i] for k in ks]
        if len(ts) < 3:
            continue
        mean_t = statistics.fmean(ts)
        out.append((statistics.fmean(ps), -_slope(ts, ps), sum((t - mean_t) ** 2 for t in ts)))
    return out


def _span_s(rec: Recording, i: int, ks: Sequence[int]) -> float:
    return rec.zone_t_s[ks[-1]][i] - rec.zone_t_s[ks[0]][i] if ks else 0.0


def analyse(rec: Recording, cfg: HardwareConfig, selftest_fills: dict[str, float]) -> list[ZoneFigures]:
    figures = []
    rest = rec.where("rest")
    for i, name in enumerate(cfg.zone_names):
        full = fill_runs(rec, i, lambda d: d >= 0.999)
        slow = fill_runs(rec, i, lambda d: d < 0.999)
        losses = [(p, loss) for p, loss, _ in holds(rec, i, name)]
        tau = vent_tau(rec, i, name)
        noise = _noise([rec.zone_mmhg[k][i] for k in rest])
        crosstalk = 0.0
        for lab in {lab for lab in rec.labels if lab.startswith(f"{name} fill")}:
            ks = rec.where(lab)
            for j in range(len(cfg.zones)):
                if j != i:
                    ps = [rec.zone_mmhg[k][j] for k in ks]
                    crosstalk = max(crosstalk, max(ps) - ps[0])
        figures.append(
            ZoneFigures(
                name,
                tuple((round(f.mmhg, 2), f.rate_mmhg_s) for f in full),
                tuple((round(f.mmhg, 2), f.rate_mmhg_s) for f in slow),
                tuple(losses),
                tau,
                crosstalk,
                noise,
                selftest_fills.get(name, math.nan),
            )
        )
    return figures


def _noise(ps: Sequence[float]) -> float:
    """One reading's standard deviation, from successive differences: blind to a slow drift (a zone still emptying
    from the self-test) that a plain standard deviation would count as noise."""
    diffs = [(b - a) ** 2 for a, b in zip(ps, ps[1:], strict=False) if not (math.isnan(a) or math.isnan(b))]
    return math.sqrt(statistics.fmean(diffs) / 2.0) if diffs else math.nan


def vent_samples(rec: Recording, i: int, name: str) -> list[tuple[float, float]]:
    """Zone i's vent as (t, p): from 90 % of where it started (past the valve's opening) down to 5 mmHg (below, the
    noise weighs too much)."""
    ks = rec.where(f"{name} vent")
    p0 = rec.zone_mmhg[ks[0]][i]
    return [(rec.zone_t_s[k][i], p) for k in ks if VENTED_MMHG <= (p := rec.zone_mmhg[k][i]) <= 0.9 * p0]


def vent_tau(rec: Recording, i: int, name: str) -> float:
    """The vent's time constant: a straight line through ln(p) against time."""
    pts = vent_samples(rec, i, name)
    slope = _slope([t for t, _ in pts], [math.log(p) for _, p in pts])
    return -1.0 / slope if slope < 0 else math.inf


# -- the twin -----------------------------------------------------------------------------------------------------


def _pa_mmhg(sim: SimSpec) -> float:
    return sim.ambient_hpa * MMHG_PER_HPA


def fit_twin(rec: Recording, cfg: HardwareConfig) -> tuple[SimSpec, float | None]:
    """The simulation parameters fitted to the recording; and the pump's dead-head where the manifold shows it."""
    base = cfg.simulation
    pa = _pa_mmhg(base)
    q0 = base.pump_free_flow_lpm / 60.0  # the anchor, L/s
    per_zone_in: dict[str, float] = {}
    deadheads = []
    runs = {name: fill_runs(rec, i, lambda _duty: True) for i, name in enumerate(cfg.zone_names)}
    cap_m = base.manifold_volume_l / pa  # the manifold's own capacity, L/mmHg (kept as configured)
    if cfg.has_manifold_sensor:
        # Pump, manifold and inlet: q0·d·(1 - pm/D) = g_in·(pm - pz) + cap_m·dpm/dt
        #   => pm - pz = A·(q0·d - cap_m·dpm/dt) - B·d·pm, with A = 1/g_in and B = q0/(D·g_in): a plane through
        #      the origin, fitted by least squares over the stretches
        for name, rows in runs.items():
            rows = [r for r in rows if not (math.isnan(r.manifold_mmhg) or math.isnan(r.manifold_rate_mmhg_s))]
            if len(rows) < 3:
                continue
            a, b = _lstsq2(
                [
                    (q0 * r.duty - cap_m * r.manifold_rate_mmhg_s, -r.duty * r.manifold_mmhg, r.manifold_mmhg - r.mmhg)
                    for r in rows
                ]
            )
            if a > 0 and b > 0:
                per_zone_in[name] = 1.0 / a
                deadheads.append(q0 * a / b)
    deadhead = statistics.median(deadheads) if deadheads else None
    dead = deadhead if deadhead is not None else base.pump_deadhead_mmhg
    zones: dict[str, SimZoneSpec] = {}
    for i, name in enumerate(cfg.zone_names):
        spec = base.zones[name]
        v0 = spec.volume_l
        g_in = per_zone_in.get(name, (spec.inlet_lpm_per_mmhg or base.inlet_lpm_per_mmhg) / 60.0)
        # each stretch: the flow the pump and inlet give at its pressures, over its rate, is the capacity there:
        # cap(p) = (V0 + C·(Pa + 2p)) / Pa  =>  C = Σ (cap·Pa - V0)(Pa + 2p) / Σ (Pa + 2p)²
        num = den = 0.0
        for pz, rate, pm, d, _ in runs[name]:
            if not rate > 0:
                continue
            if math.isnan(pm) or not cfg.has_manifold_sensor:
                s = q0 * d / dead
                pm = (q0 * d + g_in * pz) / (s + g_in)
            q = g_in * (pm - pz)
            x = pa + 2 * pz
            num += (q / rate * pa - v0) * x
            den += x * x
        compliance = num / den if den > 0 else spec.compliance_l_per_mmhg

        def cap(p: float, c: float = compliance, v: float = v0) -> float:
            return (v + c * (pa + 2 * p)) / pa

        # hold: loss = g_leak·p/cap(p); least squares through zero, each hold weighted by how well its loss is known
        # (its Σ(t - t̄)²: the long hold at the top, where the loss is largest, counts most)
        xs = [(p / cap(p), loss, w) for p, loss, w in holds(rec, i, name) if p > 0]
        sxx = sum(w * x * x for x, _, w in xs)
        g_leak = max(sum(w * x * y for x, y, w in xs) / sxx, 0.0) if sxx > 0 else spec.leak_lpm_per_mmhg / 60.0
        # vent: cap(p)·dp/dt = -(g_ex + g_leak)·p  =>  ((V0 + C·Pa)·ln p + 2C·p)/Pa falls at (g_ex + g_leak)
        pts = vent_samples(rec, i, name)
        ys = [((v0 + compliance * pa) * math.log(p) + 2 * compliance * p) / pa for _, p in pts]
        g_total = -_slope([t for t, _ in pts], ys)
        g_ex = max(g_total - g_leak, 1e-9)
        zones[name] = SimZoneSpec(v0, compliance, g_leak * 60.0, g_in * 60.0, g_ex * 60.0)
    inlets = [z.inlet_lpm_per_mmhg for z in zones.values() if z.inlet_lpm_per_mmhg is not None]
    exhausts = [z.exhaust_lpm_per_mmhg for z in zones.values() if z.exhaust_lpm_per_mmhg is not None]
    twin = dataclasses.replace(
        base,
        pump_deadhead_mmhg=dead,
        inlet_lpm_per_mmhg=statistics.median(inlets),
        exhaust_lpm_per_mmhg=statistics.median(exhausts),
        zones=zones,
    )
    return twin, deadhead


def _lstsq2(rows: Sequence[tuple[float, float, float]]) -> tuple[float, float]:
    """Least squares of y = a·x1 + b·x2 (no intercept) over rows (x1, x2, y)."""
    s11 = sum(x1 * x1 for x1, _, _ in rows)
    s12 = sum(x1 * x2 for x1, x2, _ in rows)
    s22 = sum(x2 * x2 for _, x2, _ in rows)
    s1y = sum(x1 * y for x1, _, y in rows)
    s2y = sum(x2 * y for _, x2, y in rows)
    det = s11 * s22 - s12 * s12
    if abs(det) < 1e-12:
        return math.nan, math.nan
    return (s1y * s22 - s2y * s12) / det, (s2y * s11 - s1y * s12) / det


def replay_twin(rec: Recording, cfg: HardwareConfig, twin: SimSpec) -> list[tuple[float, ...]]:
    """The twin driven by the recorded outputs from the recorded start: its pressure at each recorded reading."""
    from legsleeve.sim.physics import Pneumatics

    model = Pneumatics(twin, cfg.zone_names, pump_stall_duty=twin.pump_stall_duty, start_s=rec.zone_t_s[0][0])
    for z, p in zip(model.zones, rec.zone_mmhg[0], strict=True):
        z.hose_mmhg = z.bladder_mmhg = 0.0 if math.isnan(p) else max(p, 0.0)
    out: list[tuple[float, ...]] = []
    for k in range(len(rec)):
        predicted = []
        for i in sorted(range(len(cfg.zones)), key=lambda i: rec.zone_t_s[k][i]):
            model.advance_to(max(rec.zone_t_s[k][i], model.now_s))
            predicted.append((i, model.zone_mmhg(i)))
        out.append(tuple(p for _, p in sorted(predicted)))
        model.advance_to(max(rec.t_apply_s[k], model.now_s))
        acts = rec.actions[k]
        model.set_inputs(rec.duty[k], [a.inlet_open for a in acts], [a.exhaust_open for a in acts])
    return out


def rms_per_zone(rec: Recording, replay: list[tuple[float, ...]]) -> dict[str, float]:
    out = {}
    for i, name in enumerate(rec.zone_names):
        errs = [
            (rec.zone_mmhg[k][i] - replay[k][i]) ** 2 for k in range(len(rec)) if not math.isnan(rec.zone_mmhg[k][i])
        ]
        out[name] = math.sqrt(statistics.fmean(errs)) if errs else math.nan
    return out


# -- refusals and the report ----------------------------------------------------------------------------------------


def refuse(cal: Calibration, cfg: HardwareConfig) -> None:
    """Raise CalibrationRefused naming every figure outside the sane range, and what to fix."""
    top = calibration_top_mmhg(cfg.configured_limits)
    reasons = []
    for z in cal.zones:
        if not (z.fill_rate_mmhg_s and z.min_duty_fill_rate_mmhg_s and z.hold_loss_mmhg_s and z.vent_tau_s > 0):
            reasons.append(f"{z.name}: its fill, hold or vent could not be measured (a sensor dropping out?)")
            continue
        worst = max(z.hold_loss_mmhg_s, key=lambda pl: pl[1])
        if worst[1] > REFUSE_LEAK_MMHG_S:
            reasons.append(
                f"{z.name} loses {worst[1]:.1f} mmHg/s while held at {worst[0]:.0f} mmHg (at most "
                f"{REFUSE_LEAK_MMHG_S:g}): fix the leak first"
            )
        slow = z.rate_at(z.min_duty_fill_rate_mmhg_s, top)
        if slow < REFUSE_SLOW_FILL_MMHG_S:
            reasons.append(
                f"{z.name} fills at only {slow:.2f} mmHg/s near {top:g} mmHg on the pump's minimum duty "
                f"({cfg.pump.min_duty:g}): raise pump.min_duty or fit a stronger pump"
            )
        t_fill = z.fill_time_s(top)
        if t_fill > MAX_FILL_TIMEOUT_S / 2:
            reasons.append(
                f"{z.name} takes {t_fill:.0f} s to fill to {top:g} mmHg (at most {MAX_FILL_TIMEOUT_S / 2:g}): "
                "the pump is too weak or the inlet too small for this bladder"
            )
        t_vent = z.vent_time_s(REFUSE_VENT_FROM_MMHG)
        if not t_vent + VENT_TIMEOUT_PLUS_S <= MAX_VENT_TIMEOUT_S:
            reasons.append(
                f"{z.name} takes {t_vent:.0f} s to vent from {REFUSE_VENT_FROM_MMHG:g} mmHg: its exhaust is too "
                f"small or restricted for its bladder (a sleeve must empty well within {MAX_VENT_TIMEOUT_S:g} s)"
            )
        if not (z.fill_rate_mmhg_s and z.min_duty_fill_rate_mmhg_s and z.hold_loss_mmhg_s and z.vent_tau_s > 0):
            reasons.append(f"{z.name}: its fill, hold or vent could not be measured (a sensor dropping out?)")
        if z.noise_mmhg > MAX_SENSOR_NOISE_MMHG / NOISE_MARGIN:
            reasons.append(f"{z.name}'s sensor is noisy ({z.noise_mmhg:.2f} mmHg at rest): check its supply and wiring")
        rms = cal.twin_rms_mmhg.get(z.name, 0.0)
        if rms > REFUSE_RMS_MMHG:
            reasons.append(
                f"the model cannot describe {z.name} ({rms:.1f} mmHg RMS error): something in it changes as it "
                "works (a valve that sticks, a bladder that slips?)"
            )
    if reasons:
        raise CalibrationRefused("calibration refused:\n  " + "\n  ".join(reasons))


NOISE_MARGIN = 1.25


def write_calibration(cal: Calibration, path: Path) -> Path:
    import yaml

    header = (
        "# Written by `legsleeve calibrate`: what it measured on this build with the sleeve off the leg, and the twin\n"
        "# fitted to it. Pressures are gauge mmHg, rates mmHg/s, times s; conductances L/min of free air per mmHg.\n"
        "# Where this file exists, limits derive from it (`legsleeve check-config` shows which and how). Do not edit:\n"
        "# calibrate again after changing the build. Keys: docs/config-reference.md#calibrationyaml\n"
    )
    text = header + yaml.safe_dump(calibration_document(cal), sort_keys=False, default_flow_style=None, width=110)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def report(result: Result, out) -> None:
    cal = result.calibration
    levels = ", ".join(f"{v:g}" for v in cal.levels_mmhg)
    print(f"\ncalibration of {len(cal.zones)} zones, levels {levels} mmHg", file=out)
    heads = (
        ("zone", ""),
        ("fill", "mmHg/s"),
        ("min duty", "top mmHg/s"),
        ("hold loss", "mmHg/s"),
        ("vent tau", "s"),
        ("noise", "mmHg"),
        ("crosstalk", "mmHg"),
        ("self-test", "fill s"),
        ("twin RMS", "mmHg"),
    )
    widths = (8, 10, 12, 11, 10, 8, 11, 11, 10)
    for row in (0, 1):
        print(
            "".join(
                f"{h[row]:<{w}}" if k == 0 else f"{h[row]:>{w}}"
                for k, (h, w) in enumerate(zip(heads, widths, strict=True))
            ),
            file=out,
        )
    top = cal.levels_mmhg[-1]
    for z in cal.zones:
        cells = (
            z.rate_at(z.fill_rate_mmhg_s, 0.0),
            z.rate_at(z.min_duty_fill_rate_mmhg_s, top),
            max(loss for _, loss in z.hold_loss_mmhg_s),
            z.vent_tau_s,
            z.noise_mmhg,
            z.crosstalk_mmhg,
            z.selftest_fill_s,
            cal.twin_rms_mmhg.get(z.name, math.nan),
        )
        digits = (1, 1, 3, 2, 3, 2, 2, 2)
        print(
            f"{z.name:<8}" + "".join(f"{v:>{w}.{d}f}" for v, w, d in zip(cells, widths[1:], digits, strict=True)),
            file=out,
        )
    twin = cal.twin
    measured = "fitted" if cal.pump_deadhead_mmhg is not None else "as configured: no manifold sensor to see it"
    print(
        f"\ntwin: pump {twin.pump_free_flow_lpm:g} L/min free flow (as configured: the anchor), dead-head "
        f"{twin.pump_deadhead_mmhg:.0f} mmHg ({measured})",
        file=out,
    )
    for name in cal.zone_names:
        spec = twin.zones[name]
        print(
            f"  {name:<8} compliance {spec.compliance_l_per_mmhg:.4g} L/mmHg, leak {spec.leak_lpm_per_mmhg:.3g}, "
            f"inlet {spec.inlet_lpm_per_mmhg:.3g}, exhaust {spec.exhaust_lpm_per_mmhg:.3g} L/min/mmHg",
            file=out,
        )
    print("\nlimits from this calibration (hardware.yaml -> this build):", file=out)
    for key, source in result.sources.items():
        before, after = getattr(result.limits_before, key), getattr(result.limits_after, key)
        print(f"  {key:<24} {before:>7.3g} -> {after:<7.3g} {source}", file=out)
    for w in result.warnings:
        print(f"warning: {w}", file=out)
