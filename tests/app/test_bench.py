"""The bench's figures that live in virtual time are deterministic: test them against their targets. The two that
need the wall clock are guarded as ratios against a calibration loop on the same machine, with a 2x margin."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import time

import pytest

from legsleeve.app import bench
from legsleeve.app.replay import Replay, ReplayClock
from legsleeve.core.units import MMHG_PER_HPA
from legsleeve.hw.backends import open_sim
from tests.helpers import CONFIG_DIR, ROOT

BASELINE = json.loads((ROOT / "tests" / "bench_baseline.json").read_text())


def test_sensor_sweep_within_1_3_of_the_physical_limit(cfg):
    sweep, stock = bench.sensor_sweep(cfg)
    assert sweep.met, sweep
    assert stock.value > 1 / cfg.tick_hz * 1e3  # why the sweep exists: the stock way overruns a tick


def test_sweep_and_the_adafruit_driver_read_the_same_chip_identically(cfg):
    quiet = dataclasses.replace(cfg, simulation=dataclasses.replace(cfg.simulation, sensor_noise_mmhg=0.0))
    rig = open_sim(quiet, seed=4)
    try:
        for s in rig.sensors.all:
            s.baseline_hpa = 0.0  # gauge = absolute: the two paths compared in hPa
        for _ in range(3):
            swept = [r.mmhg / MMHG_PER_HPA for r in rig.read().zones]
            driven = [s.read_hpa() for s in rig.sensors.zones]
            assert swept == pytest.approx(driven, rel=1e-12, abs=1e-9)
            rig.clock.sleep(0.05)
    finally:
        rig.close()


def test_fill_efficiency_and_overshoot(cfg):
    ratio, overshoot = bench.fill_efficiency(cfg)
    assert ratio.met and overshoot.met, (ratio, overshoot)


def test_reaction_within_debounce_and_one_tick(cfg, caplog):
    with caplog.at_level(logging.DEBUG):
        (figure,) = bench.reaction(cfg)
    assert figure.met, figure
    # the trip it provokes on purpose is logged as what it is, never as a CRITICAL alarm
    assert not [r for r in caplog.records if r.levelno > logging.INFO], caplog.text
    assert "(provoked by the bench) TRIP SAFE-4" in caplog.text
    # and the filter does not outlive the measurement
    assert not logging.getLogger("legsleeve.safety.supervisor").filters


def test_run_loads_nothing_for_plotting():
    code = (
        "import sys, legsleeve.app.cli, legsleeve.app.session, legsleeve.hw.backends, legsleeve.app.service\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'numpy', 'PIL')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_regression_guard_speed_and_tick_cost(cfg):
    """Normalised by the machine's speed (a calibration loop): a simulated session must not have become more than 2x
    slower, the firmware's tick (replayed from recorded bus traffic) more than 2x costlier, nor `--help`'s imports
    (CPU time, a few milliseconds of disk and imports: noisier) more than 3x slower, than the recorded figures. Best
    of a few tries: a busy machine only makes a figure worse.

    Each figure is one that other jobs on the machine barely move: the calibration loop and the tick as medians of
    short intervals (an interrupted one is an outlier), the session and `--help` in the process's CPU time. (The
    session's wall time and a calibration loop timed whole had both moved 3x with the load on a shared 2-core
    machine, not together: the guard failed or passed by the load's whim.)"""
    baseline = BASELINE["compiled"] if bench.build().startswith("compiled") else BASELINE  # each build its own
    cal = min(bench.calibration_s() for _ in range(5))
    best_speed, best_tick = 0.0, float("inf")
    for _ in range(2):
        result, cpu, _ = bench._session(cfg, CONFIG_DIR, 3.0, timer=time.process_time)
        best_speed = max(best_speed, result.outcome.duration_s / cpu)
        _, figures = bench.firmware_tick(cfg, CONFIG_DIR, 1.0)
        best_tick = min(best_tick, figures["tick_median_us"])
    speed_now = best_speed * cal
    speed_then = baseline["sim_speed_cpu_x"] * baseline["calibration_s"]
    tick_now = best_tick / cal
    tick_then = baseline["firmware_tick_median_us"] / baseline["calibration_s"]
    assert speed_now >= speed_then / 2, f"simulation {speed_now / speed_then:.2f}x of the recorded speed"
    assert tick_now <= tick_then * 2, f"firmware tick {tick_now / tick_then:.2f}x the recorded"
    help_figure = bench.footprint(CONFIG_DIR)[0]
    help_now = help_figure.value / cal
    help_then = baseline["help_ms"] / baseline["calibration_s"]
    assert help_now <= help_then * 3, f"--help {help_now / help_then:.2f}x the recorded ({help_figure})"


def test_the_replayed_tick_is_the_firmware_on_the_recorded_traffic(cfg):
    """The replay refuses to time anything but the very run it recorded: a firmware that asked the bus something
    else would raise, and so would one that ended elsewhere."""
    figures, numbers = bench.firmware_tick(cfg, CONFIG_DIR, 0.5)
    assert figures[0].name == "firmware tick, median" and numbers["tick_median_us"] > 0
    clock = ReplayClock()
    replay = Replay([(("try_lock",), None, True, 0.001)], clock)
    replay.writeto(0x70, b"\x01")
    assert clock.now() == 0.001  # the recorded time after the call
    with pytest.raises(RuntimeError, match="diverged at call 0"):
        replay.check()
    with pytest.raises(RuntimeError, match="after the recording ended"):
        replay.try_lock()


def test_help_loads_nothing_beyond_argparse():
    """`legsleeve --help` (and bad usage) loads the command line (with `app.console`, its signal and pipe handling,
    standard library only: installed first, so that a Ctrl-C while loading is no traceback) and the names of the
    faults, nothing more: no YAML, no config layer, no gpiozero or drivers, no simulator (issue 15)."""
    code = (
        "import contextlib, io, sys\n"
        "from legsleeve.app.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('legsleeve') or m.split('.')[0] in "
        "('yaml', 'gpiozero', 'adafruit_mprls', 'adafruit_tca9548a', 'busio', 'board', 'numpy', 'matplotlib'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert set(out) <= {
        "legsleeve",
        "legsleeve._compiled",  # the compiled build's guard (make compiled), standard library only
        "legsleeve.app",
        "legsleeve.app.cli",
        "legsleeve.app.console",
        "legsleeve.errors",
        "legsleeve.sim",
        "legsleeve.sim.faults",
    }, out
