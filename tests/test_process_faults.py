"""Process faults against a real `legsleeve` process: SIGTERM and SIGINT mid-session end with the outputs safe, a
clear exit status and a last log row that shows it; a fresh start comes back from the beginning, idle until told.

These run the simulated rig in real time (`--realtime`) so there is a session under way to interrupt; they wait
for the process to announce its first fill on stderr, not on a clock."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

from legsleeve.app.sessionlog import read_log
from tests.helpers import CONFIG_DIR


@pytest.fixture
def quick_config(tmp_path):
    """The shipped config with the valve self-test off, so a real-time session starts within about a second."""
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, cfg)
    text = (cfg / "hardware.yaml").read_text().replace("  valves: true", "  valves: false")
    (cfg / "hardware.yaml").write_text(text)
    return cfg


def _start(config, log, *extra):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "legsleeve",
            "simulate",
            "--realtime",
            "--config",
            str(config),
            "--profile",
            "gradient",
            "--log",
            str(log),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_for_pump(proc, step: str = "fill ankle") -> list[str]:
    """Block on the process's own status lines until it announces `step` (by default its first fill; no sleeping, no
    polling)."""
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if step in line:
            return seen
    raise AssertionError(f"session never reached {step}:\n" + "".join(seen))


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_fill_ends_safe(quick_config, tmp_path, signum, code):
    """The signal stops the session as the stop button does: safe at the next tick, then the log records the sleeve
    emptying (it used to end with the sleeve still pressed), the summary is printed, exit 128 + the signal."""
    log = tmp_path / "s.csv"
    proc = _start(quick_config, log)
    early = _wait_for_pump(proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    err = "".join(early) + err
    name = signal.Signals(signum).name
    assert proc.returncode == code, err
    assert f"stopped by {name}; the sleeve was vented" in err and f"stopped ({name} received)" in out
    rows = read_log(log)
    stopped = [i for i, r in enumerate(rows) if r["state"] == "stopped"]
    assert stopped and stopped[-1] == len(rows) - 1
    assert float(rows[stopped[0] - 1]["pump_duty"]) > 0  # it really was pumping when the signal came
    for row in rows[stopped[0] :]:  # safe from the stop's tick on
        assert float(row["pump_duty"]) == 0.0
        for zone in ("ankle", "calf", "knee", "thigh"):
            assert (row[f"{zone}_inlet"], row[f"{zone}_exhaust"]) == ("0", "1")
    assert all(float(rows[-1][f"{z}_mmhg"]) < 5.0 for z in ("ankle", "calf", "knee", "thigh"))  # and emptied


def test_a_second_signal_ends_the_vent_wait_at_once(quick_config, tmp_path):
    """A second Ctrl-C while the sleeve vents: out at once, outputs safe (SAFE-1), the last row saying why."""
    log = tmp_path / "s.csv"
    proc = _start(quick_config, log)
    # the ankle full (the calf's fill begins 6 s in): its vent then lasts seconds, time enough for the second signal
    # to land in it (from the first fill's start, the sleeve was empty within a tick or two, and the second signal
    # could come after the session had ended: CI saw it once, the last row plain "stopped")
    _wait_for_pump(proc, "fill calf")
    proc.send_signal(signal.SIGINT)
    for line in proc.stderr:  # the runner's word that it stopped and vents
        if "session stopped, venting" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "stopped by SIGINT; the sleeve was vented" in err
    last = read_log(log)[-1]
    assert last["state"].startswith("stopped: Interrupted: SIGINT") and float(last["pump_duty"]) == 0.0


def test_a_fresh_start_after_a_kill_begins_again_from_idle(quick_config, tmp_path):
    """Nothing of a session survives its process: no state file, and the next run starts with its self-test."""
    log = tmp_path / "s.csv"
    proc = _start(quick_config, log)
    _wait_for_pump(proc)
    proc.kill()  # SIGKILL: no handler runs (on the sleeve, systemd's ExecStopPost vents)
    proc.communicate(timeout=10)
    before = set(tmp_path.rglob("*"))
    log2 = tmp_path / "again.csv"
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "legsleeve",
            "simulate",
            "--config",
            str(quick_config),
            "--profile",
            "gradient",
            "--cycles",
            "1",
            "--log",
            str(log2),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    lines = again.stderr.splitlines()
    assert lines[0].startswith("planned on the model:")  # the plan, before the rig opens
    assert "self-test" in lines[1]  # the first thing done on the rig
    rows = read_log(log2)
    assert rows[0]["cycle"] == "0" and rows[0]["state"] == "fill ankle"
    assert set(tmp_path.rglob("*")) - before == {log2}  # the run left nothing but its log


@pytest.mark.pure_only  # it wraps Controller.step, which a compiled class does not allow
def test_exception_inside_a_tick_exits_1_with_outputs_safe(quick_config, tmp_path):
    """An internal error mid-fill: exit 1, traceback in the log, outputs safe (the rig's pins are checked in
    test_session; here, the process's own report and log). The bug fires in the runner's tick only: the plan made
    before the rig opens runs the same controller, and a bug there stops everything before anything moves."""
    log = tmp_path / "s.csv"
    code = (
        "import sys, legsleeve.core.controller as c\n"
        "real = c.Controller.step\n"
        "def step(self, now_s, r):\n"
        "    if now_s > 6 and sys._getframe(1).f_code.co_name == '_loop': raise ZeroDivisionError('a bug')\n"
        "    return real(self, now_s, r)\n"
        "c.Controller.step = step\n"
        "from legsleeve.app.cli import main\n"
        f"sys.exit(main(['simulate', '--config', {str(quick_config)!r}, '--profile', 'gradient',"
        f" '--log', {str(log)!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "internal error" in proc.stderr and "ZeroDivisionError: a bug" in proc.stderr
    last = read_log(log)[-1]
    assert last["state"].startswith("stopped: ZeroDivisionError") and float(last["pump_duty"]) == 0.0
    assert all(last[f"{z}_exhaust"] == "1" and last[f"{z}_inlet"] == "0" for z in ("ankle", "calf", "knee", "thigh"))
