"""`legsleeve bench`: the figures that say whether the loop keeps its tick, measured against physical limits.

Each figure is measured as a ratio or in virtual time wherever the machine's noise would otherwise decide it:

- simulation speed: simulated minutes of `gradient` on the reference build, real drivers in the loop, against wall
  time (target ≥ 360x real time);
- tick cost: the firmware's own work per tick (controller, supervisor, outputs, log), sensor waits excluded, median
  and 99th percentile (target median ≤ 200 µs: ~10 % of a Pi Zero 2 W at 50 Hz, which is ~10x slower);
- sensor sweep: virtual time for a fresh reading of every sensor, against the physical limit of one conversion plus
  N short transfers (target ≤ 1.3x), and the stock driver's one-after-another time for comparison;
- fill efficiency: each zone's time to target under the controller against the pump at full duty in the same model
  (target ≤ 1.15x), and the overshoot (target ≤ 3 mmHg);
- reaction: virtual time from an over-pressure onset to pump off and exhaust open (target ≤ debounce + one tick);
- footprint: peak RSS of a simulated session and the import time of what `run` loads; nothing plotting-related.

`--hardware` (on the Pi) measures the sweep and the tick cost on the real sensors while the outputs stay in the
safe state: nothing pneumatic happens.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from legsleeve.config.model import HardwareConfig
from legsleeve.core.commands import FILL, SAFE, Commands
from legsleeve.core.controller import Output, Phase, Status, ZoneStatus
from legsleeve.core.plan import Profile, Step, StepKind
from legsleeve.core.readings import Readings
from legsleeve.errors import HardwareError

if TYPE_CHECKING:  # `bench --hardware` runs on the Pi: nothing here loads the simulator before it is used
    from legsleeve.hw.rig import Rig
    from legsleeve.hw.sensors import SensorArray
    from legsleeve.sim.world import SimWorld

log = logging.getLogger(__name__)

# per sensor at 400 kHz (safety-requirements §B2): the physical limit of a sweep is 5 ms + N x 0.3 ms
SWEEP_TRANSFER_S = 0.0003


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: str
    met: bool | None  # None: reported, no target
    note: str = ""


def _sensors(rig: Rig) -> SensorArray:
    if rig.sensors is None:
        raise HardwareError("the rig was built without sensors")
    return rig.sensors


def _world(rig: Rig) -> SimWorld:
    if rig.world is None:
        raise HardwareError("the rig is not the simulated one: it has no simulated world")
    return rig.world


def calibration_s(rounds: int = 200_000) -> float:
    """Wall time of a fixed pure-Python workload: the yardstick that turns machine speed out of the guard's
    ratios (dict and float work, function calls: what the loop does)."""

    def f(d, x):
        return d["a"] * x + d["b"]

    d = {"a": 1.0001, "b": 0.5}
    t0 = time.perf_counter()
    acc = 0.0
    for _ in range(rounds):
        acc = f(d, acc) % 97.0
    return time.perf_counter() - t0


def _session(cfg: HardwareConfig, config_dir: Path, minutes: float, profile: str = "gradient"):
    from legsleeve.app.session import run_session
    from legsleeve.config.profiles import load_profile
    from legsleeve.hw.backends import open_sim

    costs: list[int] = []
    rig = open_sim(cfg, seed=0)
    try:
        rig.zero_sensors()  # not timed: the session's own self-test is part of what is timed below
        t0 = time.perf_counter()
        result = run_session(rig, load_profile(config_dir, profile, cfg), minutes=minutes, tick_costs_ns=costs)
        wall = time.perf_counter() - t0
    finally:
        rig.close()
    return result, wall, costs


def simulation_speed(cfg, config_dir, minutes: float = 60.0) -> tuple[list[Figure], dict]:
    result, wall, costs = _session(cfg, config_dir, minutes)
    virtual = result.outcome.duration_s
    ratio = virtual / wall
    med = statistics.median(costs) / 1e3
    p99 = sorted(costs)[int(0.99 * (len(costs) - 1))] / 1e3
    figures = [
        Figure(
            "simulation speed",
            ratio,
            "x real time",
            "≥ 360",
            ratio >= 360,
            f"{virtual / 60:.1f} simulated min of gradient in {wall:.1f} s wall, {result.outcome.ticks} ticks",
        ),
        Figure(
            "tick cost, median",
            med,
            "µs",
            "≤ 200",
            med <= 200,
            "controller + supervisor + outputs + log, sensor waits excluded",
        ),
        Figure("tick cost, 99th percentile", p99, "µs", "reported", None),
    ]
    return figures, {"wall_s": wall, "virtual_s": virtual, "tick_median_us": med, "tick_p99_us": p99}


def sensor_sweep(cfg) -> list[Figure]:
    from legsleeve.hw.backends import open_sim
    from legsleeve.hw.i2c import DeadlineI2C  # noqa: F401 - the sweep runs through it

    rig = open_sim(cfg, seed=0)
    try:
        rig.zero_sensors()
        clock = rig.clock
        sensors = _sensors(rig)
        n = len(sensors.all)
        sweeps = []
        for _ in range(50):
            t0 = clock.now()
            rig.read()
            sweeps.append(clock.now() - t0)
            clock.sleep(0.01)
        stock = []
        for _ in range(10):
            t0 = clock.now()
            for s in sensors.all:
                s.read_hpa()  # the unmodified adafruit_mprls driver, one sensor after another
            stock.append(clock.now() - t0)
    finally:
        rig.close()
    from legsleeve.hw.sensors import CONVERSION_S

    limit = CONVERSION_S + n * SWEEP_TRANSFER_S
    sweep = statistics.median(sweeps)
    return [
        Figure(
            "sensor sweep",
            sweep * 1e3,
            "ms virtual",
            f"≤ 1.3 x {limit * 1e3:.1f} ms",
            sweep <= 1.3 * limit,
            f"{n} sensors; {sweep / limit:.2f}x the limit of one conversion + {n} x 0.3 ms",
        ),
        Figure(
            "stock driver, one after another",
            statistics.median(stock) * 1e3,
            "ms virtual",
            f"reported (> {1 / cfg.tick_hz * 1e3:.0f} ms tick)",
            None,
            "adafruit_mprls, waiting out each conversion",
        ),
    ]


def fill_efficiency(cfg) -> list[Figure]:
    """Each zone alone, from vented: the controller's fill against the pump at full duty, in the same model."""
    from legsleeve.app.builder import build_session
    from legsleeve.hw.backends import open_sim

    targets = (45.0, 40.0, 35.0, 30.0, 25.0, 20.0, 20.0, 20.0)[: len(cfg.zones)]  # the gradient profile's
    ratios, overshoots = [], []
    for i, zone in enumerate(cfg.zone_names):
        target = targets[i]
        rig = open_sim(cfg, seed=0)
        try:
            rig.zero_sensors()
            plan = Profile.of_steps(
                "fill",
                cfg.zone_names,
                (Step(StepKind.FILL, (i,), target_mmhg=target), Step(StepKind.HOLD, duration_s=1.0)),
                target,
            )
            peak = [0.0]

            def watch(runner, readings, i=i, peak=peak):
                if readings.zones[i].ok:
                    peak[0] = max(peak[0], readings.zones[i].mmhg)

            outcome = build_session(rig, plan, trip_targets_mmhg=[target] * len(cfg.zones), on_tick=watch).run()
            controlled = outcome.status.zones[i].fill_times_s[0]
        finally:
            rig.close()
        rig = open_sim(cfg, seed=0)  # the same model, the pump flat out, the inlet open until the target
        try:
            rig.zero_sensors()
            t0 = rig.clock.now()
            rig.apply(Commands(1.0, tuple(FILL if k == i else SAFE.action(k) for k in range(len(cfg.zones)))))
            world = _world(rig)
            while world.zone_mmhg(zone) < target:
                rig.clock.sleep(0.001)
            full = rig.clock.now() - t0
            rig.drive_safe()
        finally:
            rig.close()
        ratios.append(controlled / full)
        overshoots.append(peak[0] - target)
    worst = max(ratios)
    return [
        Figure(
            "fill time vs full duty, worst zone",
            worst,
            "x",
            "≤ 1.15",
            worst <= 1.15,
            ", ".join(f"{z} {r:.2f}" for z, r in zip(cfg.zone_names, ratios, strict=False)),
        ),
        Figure(
            "fill overshoot, worst zone",
            max(overshoots),
            "mmHg",
            "≤ 3",
            max(overshoots) <= 3.0,
            ", ".join(f"{z} {o:+.2f}" for z, o in zip(cfg.zone_names, overshoots, strict=False)),
        ),
    ]


class _Runaway:
    """A controller gone wrong: it fills the first zone for ever. Only the supervisor stands in the way."""

    def __init__(self, n: int):
        self.cmd = Commands(1.0, (FILL,) + (SAFE.action(1),) * (n - 1))
        self.status = Status(
            "runaway",
            StepKind.FILL,
            0,
            0,
            False,
            tuple(ZoneStatus(Phase.FILLING if i == 0 else Phase.VENTED, 0.0, (), 0) for i in range(n)),
        )

    def step(self, now_s: float, readings: Readings) -> Output:
        return Output(self.cmd, self.status)


class _Provoked(logging.Filter):
    """A trip the bench provokes on purpose is a measurement, not an alarm: its log lines pass at INFO, marked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = f"(provoked by the bench) {record.msg}"
        return True


@contextlib.contextmanager
def _provoked(*loggers: str):
    f = _Provoked()
    for name in loggers:
        logging.getLogger(name).addFilter(f)
    try:
        yield
    finally:
        for name in loggers:
            logging.getLogger(name).removeFilter(f)


def reaction(cfg) -> list[Figure]:
    from legsleeve.app.builder import build_session
    from legsleeve.hw.backends import open_sim

    level = 30.0
    log.info(
        "reaction: a runaway fill of the %s on the simulated rig, on purpose: SAFE-4 must trip at %g mmHg",
        cfg.zone_names[0],
        level,
    )
    rig = open_sim(cfg, seed=0)
    seen: dict[str, float | None] = {"onset": None, "safe": None}
    peak_mmhg = [0.0]  # the zone's highest true pressure
    try:
        rig.zero_sensors()
        world = _world(rig)
        zone = cfg.zone_names[0]
        plan = Profile.of_steps("runaway", cfg.zone_names, (Step(StepKind.FILL, (0,)),), level)
        runner = build_session(
            rig,
            plan,
            controller=_Runaway(len(cfg.zones)),
            trip_targets_mmhg=[level - cfg.limits.trip_margin_mmhg] * len(cfg.zones),
        )  # trips at 30
        sup = runner.supervisor

        def watch(runner, readings):
            peak_mmhg[0] = max(peak_mmhg[0], world.zone_mmhg(zone))
            if seen["onset"] is None and world.zone_mmhg(zone) > sup.trip_levels_mmhg[0]:
                seen["onset"] = readings.t_s
            if (
                seen["safe"] is None
                and rig.pump.duty == 0
                and rig.zones[0].exhaust.is_open
                and runner.supervisor.tripped
            ):
                seen["safe"] = readings.t_s

        runner.on_tick = watch
        with _provoked("legsleeve.safety.supervisor", "legsleeve.app.alarms"):
            runner.run()
    finally:
        rig.close()
    onset, safe = seen["onset"], seen["safe"]
    if safe is None:
        raise RuntimeError(f"reaction: the over-pressure was not seen through (onset {onset}, safe state {safe})")
    bound = cfg.limits.overpressure_debounce_s + 1 / cfg.tick_hz
    if onset is None:  # tripped before the truth got there (SAFE-15: judged on the higher of two sensors)
        return [
            Figure(
                "reaction to over-pressure",
                0.0,
                "ms virtual",
                f"≤ {bound * 1e3:.0f} (debounce + tick)",
                True,
                f"tripped before the zone's true pressure reached its {level:g} mmHg trip level "
                f"(true peak {peak_mmhg[0]:.1f} mmHg)",
            )
        ]
    took = safe - onset
    return [
        Figure(
            "reaction to over-pressure",
            took * 1e3,
            "ms virtual",
            f"≤ {bound * 1e3:.0f} (debounce + tick)",
            took <= bound + 1e-9,
            "onset: the zone's true pressure above its trip level; end: pump off and exhaust open",
        )
    ]


def footprint(config_dir: Path) -> list[Figure]:
    code = (
        "import resource, sys, time\n"
        "t0 = time.perf_counter()\n"
        "import legsleeve.app.cli, legsleeve.app.session, legsleeve.hw.backends\n"
        "imp = time.perf_counter() - t0\n"
        "plot = sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'numpy', 'PIL'))\n"
        "from legsleeve.config.hardware import load_hardware\n"
        "from legsleeve.app.bench import _session\n"
        f"_session(load_hardware({str(config_dir)!r}), {str(config_dir)!r}, 5.0)\n"
        "print(imp, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, ','.join(plot))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    imp, rss_kb = float(out[0]), int(out[1])
    plot = out[2] if len(out) > 2 else ""
    return [
        Figure(
            "import time of what run loads",
            imp * 1e3,
            "ms",
            "reported",
            None,
            "legsleeve.app.cli, .app.session, .hw.backends",
        ),
        Figure("peak RSS, 5-minute simulated session", rss_kb / 1024, "MiB", "reported", None),
        Figure(
            "plotting modules loaded by run",
            float(len(plot.split(",")) if plot else 0),
            "modules",
            "0",
            not plot,
            plot or "none (matplotlib, numpy, PIL)",
        ),
    ]


def hardware(cfg) -> list[Figure]:
    """On the Pi: the sweep and the tick cost on the real sensors; the outputs stay in the safe state."""
    from legsleeve.app.builder import build_session
    from legsleeve.hw.backends import open_pi

    rig = open_pi(cfg)
    try:
        rig.drive_safe()
        _sensors(rig).zero(max_spread_mmhg=cfg.limits.max_zero_spread_mmhg, settle_timeout_s=cfg.limits.vent_timeout_s)
        plan = Profile.of_steps(
            "bench",
            cfg.zone_names,
            (Step(StepKind.FILL, tuple(range(len(cfg.zones)))), Step(StepKind.HOLD, duration_s=1.0)),
            30.0,
            cycles=1000,
        )
        runner = build_session(rig, plan)
        ctl, sup = runner.controller, runner.supervisor
        sweeps, costs = [], []
        for _ in range(500):
            t0 = time.perf_counter()
            r = rig.read()
            t1 = time.perf_counter_ns()
            sup.review(r.t_s, r, ctl.step(r.t_s, r).commands)  # computed, never applied: nothing pneumatic happens
            rig.apply(SAFE)
            costs.append(time.perf_counter_ns() - t1)
            sweeps.append(t1 / 1e9 - t0)
            time.sleep(max(0.0, 1 / cfg.tick_hz - (time.perf_counter() - t0)))
    finally:
        rig.close()
    n = len(cfg.zones) + (cfg.has_manifold_sensor)
    from legsleeve.hw.sensors import CONVERSION_S

    limit = CONVERSION_S + n * SWEEP_TRANSFER_S
    sweep = statistics.median(sweeps)
    med = statistics.median(costs) / 1e3
    return [
        Figure("sensor sweep (real sensors)", sweep * 1e3, "ms", f"≤ 1.3 x {limit * 1e3:.1f} ms", sweep <= 1.3 * limit),
        Figure(
            "tick cost, median (this Pi)",
            med,
            "µs",
            f"≤ {0.1 / cfg.tick_hz * 1e6:.0f} (10 % of a tick)",
            med <= 0.1 / cfg.tick_hz * 1e6,
        ),
        Figure(
            "tick cost, 99th percentile (this Pi)",
            sorted(costs)[int(0.99 * (len(costs) - 1))] / 1e3,
            "µs",
            "reported",
            None,
        ),
    ]


def run_all(cfg, config_dir: Path, *, minutes: float = 60.0) -> list[Figure]:
    figures, _ = simulation_speed(cfg, config_dir, minutes)
    return figures + sensor_sweep(cfg) + fill_efficiency(cfg) + reaction(cfg) + footprint(config_dir)


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "unit", "target", "", "note")]
    for f in figures:
        mark = {True: "met", False: "NOT MET", None: ""}[f.met]
        value = f"{f.value:.3g}" if abs(f.value) < 1000 else f"{f.value:.0f}"
        rows.append((f.name, value, f.unit, f.target, mark, f.note))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=False)) + "  " + r[5] for r in rows)


def as_json(figures: list[Figure]) -> str:
    return json.dumps([asdict(f) | {"value": (None if math.isnan(f.value) else f.value)} for f in figures], indent=2)
