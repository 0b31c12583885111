"""`legsleeve bench`: the figures that say whether the loop keeps its tick, measured against physical limits.

Each figure is measured as a ratio or in virtual time wherever the machine's noise would otherwise decide it:

- simulation speed: simulated minutes of `gradient` on the reference build, real drivers and byte-level chips in the
  loop, against wall time on one core (target ≥ 300x real time), also as calibration loops a simulated minute;
- firmware tick: the firmware's own work per tick - the sweep's code, supervisor, controller, outputs, log - with
  the simulation excluded by replaying recorded bus traffic (not by subtraction), median and 99th percentile
  (target median ≤ 40 µs here: about a third of a millisecond on a Pi Zero 2 W);
- sensor sweep: virtual time for a fresh reading of every sensor, against the physical limit of one conversion plus
  N short transfers (target ≤ 1.3x), and the stock driver's one-after-another time for comparison;
- fill efficiency: each zone's time to target under the controller against the pump at full duty in the same model
  (target ≤ 1.15x), and the overshoot (target ≤ 3 mmHg);
- reaction: virtual time from an over-pressure onset to pump off and exhaust open (target ≤ debounce + one tick);
- memory: `serve --sim` over a simulated day in a fresh interpreter, its growth after the first session (bounded);
- footprint, each in a fresh interpreter: `--help`'s imports (target < 60 ms, nothing beyond argparse), the import
  time of what `run` loads, nothing plotting-related, the peak RSS of a simulated session (its own VmHWM).

`--hardware` (on the Pi) measures the sweep and the tick cost on the real sensors while the outputs stay in the
safe state: nothing pneumatic happens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import math
import os
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


def calibration_s(rounds: int = 200_000, chunk: int = 2_000) -> float:
    """Wall time of a fixed pure-Python workload: the yardstick that turns machine speed out of the guard's
    ratios (dict and float work, function calls: what the loop does).

    Timed in chunks of `chunk` rounds (~0.2 ms each, a tick's scale) and given as the median chunk's time times the
    number of chunks: a chunk the scheduler interrupted is an outlier the median ignores, as the firmware tick's
    median ignores an interrupted tick. Timed whole, the loop read 0.016-0.06 s on this machine as other jobs came and
    went (the best of five too), while the tick's median moved a few percent: the guard's ratios moved with the
    yardstick, not with the firmware."""

    def f(d, x):
        return d["a"] * x + d["b"]

    d = {"a": 1.0001, "b": 0.5}
    acc = 0.0
    chunks = max(rounds // chunk, 1)
    times = []
    for _ in range(chunks):
        t0 = time.perf_counter()
        for _ in range(chunk):
            acc = f(d, acc) % 97.0
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * chunks


def _session(cfg: HardwareConfig, config_dir: Path, minutes: float, profile: str = "gradient", timer=time.perf_counter):
    """A simulated session on a fresh simulated rig: (result, its duration on `timer`, the tick costs). `timer`:
    wall time for the speed figure; the regression guard takes the process's CPU time, which other jobs on a busy
    machine do not add to."""
    from legsleeve.app.session import run_session
    from legsleeve.config.profiles import load_profile
    from legsleeve.hw.backends import open_sim

    costs: list[int] = []
    rig = open_sim(cfg, seed=0)
    try:
        rig.zero_sensors()  # not timed: the session's own self-test is part of what is timed below
        t0 = timer()
        result = run_session(rig, load_profile(config_dir, profile, cfg), minutes=minutes, tick_costs_ns=costs)
        wall = timer() - t0
    finally:
        rig.close()
    return result, wall, costs


# -- the firmware's own tick, the simulation excluded: recorded bus traffic replayed -----------------------------


def firmware_tick(cfg: HardwareConfig, config_dir: Path, minutes: float = 10.0) -> tuple[list[Figure], dict]:
    """The firmware's own work per tick - the sensor sweep's code, the supervisor, the controller, the outputs on
    gpiozero's pins, the log, the summary - with the simulation excluded: a session of `gradient` is run on the
    simulated rig with its bus traffic recorded, then run again on that recording played back (same firmware, same
    bytes at the same virtual times, no simulated chip, bus or air), timed tick by tick from the start of the sweep to
    the end of the tick's work. Target: median ≤ 40 µs here (about a third of a millisecond on a Pi Zero 2 W)."""
    import tempfile

    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from legsleeve.app.replay import Recording, Replay, ReplayClock
    from legsleeve.app.session import run_session
    from legsleeve.config.profiles import load_profile
    from legsleeve.hw.rig import build_rig
    from legsleeve.sim.world import SimWorld

    profile = load_profile(config_dir, "gradient", cfg)
    world = SimWorld(cfg, seed=0)
    recording = Recording(world.bus, world.clock)
    rig = build_rig(cfg, clock=world.clock, pin_factory=world.pin_factory, i2c_bus=recording, world=world)
    world.connect_panel()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            rig.zero_sensors()
            recorded = run_session(rig, profile, minutes=minutes, log_path=Path(tmp) / "recorded.csv").outcome
        finally:
            rig.close()

        # The recording's half a million objects are the bench's, not the firmware's: out of the collector's sight,
        # or its full collections would show as the firmware's worst ticks.
        gc.collect()
        gc.freeze()
        clock = ReplayClock()
        replay = Replay(recording.entries, clock)
        pins = MockFactory(pin_class=MockPWMPin)
        rig = build_rig(cfg, clock=clock, pin_factory=pins, i2c_bus=replay)
        if cfg.controls.estop is not None:
            pins.pin(cfg.controls.estop.pin.name).drive_low()  # the E-stop's contact closed, as the world wires it
        sweeps: list[int] = []
        costs: list[int] = []
        read = rig.read

        calls_per_sweep: list[int] = []

        def timed_read():
            asked = len(replay.calls)
            t0 = time.perf_counter_ns()
            r = read()
            sweeps.append(time.perf_counter_ns() - t0)
            calls_per_sweep.append(len(replay.calls) - asked)
            return r

        rig.read = timed_read  # type: ignore[method-assign]
        try:
            rig.zero_sensors()
            replayed = run_session(
                rig, profile, minutes=minutes, log_path=Path(tmp) / "replayed.csv", tick_costs_ns=costs
            ).outcome
        finally:
            rig.close()
            pins.close()
            gc.unfreeze()
    replay.check()
    if (replayed.ticks, replayed.end_s, replayed.trip) != (recorded.ticks, recorded.end_s, recorded.trip):
        raise RuntimeError(f"replay: the firmware did not do what it did on the simulated rig ({replayed.ticks} ticks)")
    ticks = [sweep + cost for sweep, cost in zip(sweeps[-len(costs) :], costs, strict=True)]
    med = statistics.median(ticks) / 1e3
    p99 = sorted(ticks)[int(0.99 * (len(ticks) - 1))] / 1e3
    sweep = statistics.median(sweeps[-len(costs) :]) / 1e3
    # the played-back bus's own share of a tick: its calls a sweep, times what one costs played with no firmware
    playback = statistics.median(calls_per_sweep[-len(costs) :]) * replay.playback_ns() / 1e3
    figures = [
        Figure(
            "firmware tick, median",
            med,
            "µs",
            "≤ 40",
            med <= 40,
            f"{build()}: sweep code {sweep:.0f} µs (of which the played-back bus ~{playback:.0f}) + the rest; "
            f"{len(ticks)} ticks of gradient replayed from recorded bus traffic",
        ),
        Figure("firmware tick, 99th percentile", p99, "µs", "reported", None),
    ]
    return figures, {"tick_median_us": med, "tick_p99_us": p99, "sweep_median_us": sweep, "playback_us": playback}


def build() -> str:
    """Which build this process runs: the compiled copy (`make compiled`: its modules compiled by mypyc) or the
    pure-Python sources (what the sleeve runs: `make install` installs the sources)."""
    import legsleeve

    compiled = list(Path(legsleeve.__file__).parent.rglob("*.so"))
    return f"compiled ({len(compiled)} modules, make compiled)" if compiled else "pure Python"


def pure_tick(config_dir: Path, minutes: float = 10.0) -> list[Figure]:
    """On the compiled build: the firmware tick of its pure-Python sources too, in a fresh interpreter (what the sleeve
    runs). Nothing on the sources themselves: the tick figure is theirs already."""
    import legsleeve
    from legsleeve._compiled import STAMP

    here = Path(legsleeve.__file__).parent
    stamp = here / STAMP
    if not stamp.exists():
        return []
    source = Path(stamp.read_text().splitlines()[0])  # (the stamp's first line: the sources it was built from)
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from legsleeve.app.bench import firmware_tick\n"
        "from legsleeve.config.hardware import load_hardware\n"
        "config = Path(sys.argv[1])\n"
        "_, numbers = firmware_tick(load_hardware(config), config, float(sys.argv[2]))\n"
        "print(json.dumps(numbers))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(source.parent)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(config_dir), str(minutes)], capture_output=True, text=True, env=env, check=True
    ).stdout
    numbers = json.loads(out.strip().splitlines()[-1])
    return [
        Figure(
            "firmware tick, median, pure Python",
            numbers["tick_median_us"],
            "µs",
            "reported",
            None,
            f"the same replay on the sources ({source}) in a fresh interpreter: what the sleeve runs "
            f"(make install installs the sources); sweep code {numbers['sweep_median_us']:.0f} µs of it",
        )
    ]


def simulation_speed(cfg, config_dir, minutes: float = 60.0) -> tuple[list[Figure], dict]:
    """Simulated minutes of `gradient` (real drivers, byte-level chips, the pneumatic model) against wall time on one
    core, and the same as a ratio against the calibration loop (how many calibration loops' time a simulated minute
    takes: a figure a slower or busier machine changes less)."""
    result, wall, _ = _session(cfg, config_dir, minutes)
    cal = min(calibration_s() for _ in range(5))
    virtual = result.outcome.duration_s
    ratio = virtual / wall
    figures = [
        Figure(
            "simulation speed",
            ratio,
            "x real time",
            "≥ 300",
            ratio >= 300,
            f"{build()}: {virtual / 60:.1f} simulated min of gradient in {wall:.1f} s wall, "
            f"{result.outcome.ticks} ticks; "
            f"{wall / (virtual / 60) / cal:.2f} calibration loops a simulated minute",
        ),
    ]
    return figures, {"wall_s": wall, "virtual_s": virtual, "sim_speed_x": ratio, "calibration_s": cal}


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


_PEAK_RSS = (
    "def peak_rss_kib():\n"
    "    # VmHWM: this process's own high-water mark since it began (exec started a new address space); ru_maxrss\n"
    "    # would be inherited from the parent that forked us. ru_maxrss only where there is no /proc.\n"
    "    try:\n"
    "        for line in open('/proc/self/status'):\n"
    "            if line.startswith('VmHWM:'):\n"
    "                return int(line.split()[1])\n"
    "    except OSError:\n"
    "        pass\n"
    "    import resource\n"
    "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
)


def footprint(config_dir: Path) -> list[Figure]:
    """Each in a fresh interpreter: the import time and the modules `--help` loads, the import time of what `run`
    loads (and no plotting), the peak RSS of a 5-minute simulated session."""
    help_code = (
        "import contextlib, io, sys, time\n"
        "t0 = time.process_time()\n"
        "import legsleeve.app.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        legsleeve.app.cli.main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "took = time.process_time() - t0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('yaml', 'gpiozero', 'adafruit_mprls', 'busio')"
        " or m.startswith(('legsleeve.config', 'legsleeve.hw', 'legsleeve.core', 'legsleeve.safety')))\n"
        "print(took, ','.join(heavy))\n"
    )
    # As installed (pip compiles every module): bytecode caches allowed, written by the first run if missing.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    helps = [
        subprocess.run(
            [sys.executable, "-c", help_code], capture_output=True, text=True, check=True, env=env
        ).stdout.split()
        for _ in range(6)
    ][1:]
    help_s = min(float(h[0]) for h in helps)
    heavy = helps[0][1] if len(helps[0]) > 1 else ""
    code = (
        _PEAK_RSS + "import sys, time\n"
        "t0 = time.perf_counter()\n"
        "import legsleeve.app.cli, legsleeve.app.session, legsleeve.hw.backends\n"
        "imp = time.perf_counter() - t0\n"
        "plot = sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'numpy', 'PIL'))\n"
        "from legsleeve.config.hardware import load_hardware\n"
        "from legsleeve.app.bench import _session\n"
        f"_session(load_hardware({str(config_dir)!r}), {str(config_dir)!r}, 5.0)\n"
        "print(imp, peak_rss_kib(), ','.join(plot))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    imp, rss_kb = float(out[0]), int(out[1])
    plot = out[2] if len(out) > 2 else ""
    return [
        Figure(
            "--help: import and parse",
            help_s * 1e3,
            "ms",
            "< 60",
            help_s < 0.060 and not heavy,
            "CPU time of the imports and the parse, best of 5 fresh interpreters with bytecode caches; loads "
            + (heavy or "nothing beyond argparse and the fault names"),
        ),
        Figure(
            "import time of what run loads",
            imp * 1e3,
            "ms",
            "reported",
            None,
            "legsleeve.app.cli, .app.session, .hw.backends",
        ),
        Figure(
            "peak RSS, 5-minute simulated session",
            rss_kb / 1024,
            "MiB",
            "reported",
            None,
            "VmHWM of a fresh interpreter (not inherited from this process)",
        ),
        Figure(
            "plotting modules loaded by run",
            float(len(plot.split(",")) if plot else 0),
            "modules",
            "0",
            not plot,
            plot or "none (matplotlib, numpy, PIL)",
        ),
    ]


def serve_day(config_dir: Path, hours: int = 24) -> list[Figure]:
    """`serve --sim`'s memory over a simulated day, in a fresh interpreter: the service idle on the simulated rig
    (unpaced: a day takes about a minute), starting `gentle` at hours 3, 11 and 19; its resident set (VmRSS) after the
    first session and at the end. Bounded: growth under 1 MiB over the 21 hours after the first session."""
    code = (
        "import logging, sys, tempfile\n"
        "from pathlib import Path\n"
        "logging.disable(logging.CRITICAL)\n"
        "from legsleeve.app.service import Service\n"
        "from legsleeve.config.hardware import load_hardware\n"
        "from legsleeve.hw.backends import open_sim\n"
        "def rss_kib():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmRSS:'):\n"
        "            return int(line.split()[1])\n"
        f"config = Path({str(config_dir)!r})\n"
        "cfg = load_hardware(config)\n"
        "rig = open_sim(cfg, seed=0)\n"
        "svc = Service(rig, config, log_dir=Path(tempfile.mkdtemp()))\n"
        "svc.load_profiles()\n"
        "out = []\n"
        f"for h in range({hours}):\n"
        "    if h % 8 == 2:\n"
        "        svc.command('start gentle', rig.clock.now())\n"
        "    svc.serve(until_s=(h + 1) * 3600.0)\n"
        "    out.append(rss_kib())\n"
        "rig.close()\n"
        "print(' '.join(map(str, out)))\n"
    )
    if not Path("/proc/self/status").is_file():
        return [Figure("serve --sim, memory over a simulated day", math.nan, "MiB", "bounded", None, "no /proc here")]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rss = [int(x) / 1024 for x in done.stdout.split()]
    growth = rss[-1] - rss[2]
    return [
        Figure(
            "serve --sim, memory over a simulated day",
            growth,
            "MiB",
            "≤ 1 (bounded)",
            growth <= 1.0,
            f"VmRSS {rss[2]:.1f} MiB after the first session (hour 3), {rss[-1]:.1f} at hour {len(rss)}; idle, with "
            "gentle at hours 3, 11 and 19",
        )
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
    tick, _ = firmware_tick(cfg, config_dir, min(minutes, 10.0))
    rest = sensor_sweep(cfg) + fill_efficiency(cfg) + reaction(cfg) + footprint(config_dir) + serve_day(config_dir)
    # every figure names the build it measured (the footprint's differ too: a compiled run loads more and faster)
    here = build()
    rest = [f if f.note.startswith(here) else dataclasses.replace(f, note=f"{here}: {f.note}") for f in rest]
    return figures + tick + pure_tick(config_dir, min(minutes, 10.0)) + rest


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
