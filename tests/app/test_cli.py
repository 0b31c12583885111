"""The command line: exit codes, messages without tracebacks, nothing actuated on bad input; the profile listings
and `simulate --plot`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from legsleeve.app.cli import main
from tests.helpers import CONFIG_DIR, ROOT, SHIPPED


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as ex:
        main(["--help"])
    assert ex.value.code == 0
    out = capsys.readouterr().out
    for command in ("check-config", "vent", "sensors"):
        assert command in out


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as ex:
        main(["vent", "--no-such-flag"])
    assert ex.value.code == 2


def test_check_config_accepts_the_shipped_config(capsys):
    code, out, _ = run(capsys, "check-config", "--config", str(CONFIG_DIR))
    assert code == 0 and "OK - 4 zones (ankle, calf, knee, thigh)" in out
    # each profile with its session planned on the model: the cycle, the session, each zone's figures
    assert out.count("planned on the model: a cycle takes") == len(SHIPPED) and "WOULD TRIP" not in out
    assert f"{CONFIG_DIR}/profiles/gradient.yaml: OK" in out and "20 min (the profile's): 20 cycle(s)" in out
    assert out.count("(limit 120)") == out.count("(limit 40)") == 4 * len(SHIPPED)


def test_check_config_refuses_a_profile_that_would_trip_with_its_file_and_line(capsys, tmp_path):
    shutil.copytree(CONFIG_DIR, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "profiles" / "squeeze.yaml"
    path.write_text(
        "name: squeeze\ndescription: one long squeeze\ntargets: {default_mmhg: 35}\nsession: {cycles: 2}\n"
        "cycle:\n  - fill: calf\n  - hold_s: 150\n  - rest_s: 10\n"
    )
    code, out, err = run(capsys, "check-config", "--config", str(tmp_path))
    assert code == 2
    assert f"{path}: WOULD TRIP (1 finding(s) below)" in out and f"{tmp_path}/profiles/wave.yaml: OK" in out
    assert f"{path}:6: cycle[0]: calf would stay above 20 mmHg for more than 120 s without a break" in err
    assert err.rstrip().endswith("config: 1 problem(s); nothing was actuated") and "Traceback" not in err


def test_check_config_rejects_with_file_line_key_and_exit_2(capsys, tmp_path):
    text = (CONFIG_DIR / "hardware.yaml").read_text().replace("  max_mmhg: 90", "  max_mmhg: 400")
    (tmp_path / "hardware.yaml").write_text(text)
    code, out, err = run(capsys, "check-config", "--config", str(tmp_path))
    assert code == 2
    assert f"{tmp_path}/hardware.yaml:" in err and ": limits.max_mmhg: must be <= 150" in err
    assert "Traceback" not in err and "nothing was actuated" in err


def test_vent_on_the_simulated_rig(capsys):
    code, out, _ = run(capsys, "vent", "--sim", "--config", str(CONFIG_DIR))
    assert code == 0 and "vented" in out


def test_hardware_start_failure_is_fatal_not_a_silent_simulation(capsys):
    """On a PC there is no GPIO: without --sim this must fail, never fall back to the simulated rig."""
    code, out, err = run(capsys, "vent", "--config", str(CONFIG_DIR))
    assert code == 1
    assert "no GPIO library could start" in err and "--sim" in err
    assert "vented" not in out


def test_sensors_prints_readings_per_zone(capsys):
    code, out, _ = run(capsys, "sensors", "--sim", "--samples", "3", "--config", str(CONFIG_DIR))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("zero (vented, absolute hPa): ankle 10")
    assert lines[1].split()[:6] == ["t_s", "ankle", "calf", "knee", "thigh", "manifold"]
    rows = [line.split() for line in lines[2:]]
    assert len(rows) == 3
    assert all(abs(float(v)) < 0.5 for row in rows for v in row[1:])  # vented sleeve: gauge ~0


def test_console_script_is_installed():
    exe = shutil.which("legsleeve", path=str(ROOT / ".venv" / "bin")) or shutil.which("legsleeve")
    if exe is None:
        exe_cmd = [sys.executable, "-m", "legsleeve"]
    else:
        exe_cmd = [exe]
    proc = subprocess.run([*exe_cmd, "check-config", "--config", str(CONFIG_DIR)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--fault", "leak:shin@3"], "no zone 'shin'"),
        (["--fault", "leak@3"], "needs a zone"),
        (["--profile", "nope"], "no such profile 'nope'"),
        (["--minutes", "61"], "--minutes 61: a session of 61 min is longer than limits.session_max_min (60 min"),
        (["--profile", "gradient", "--cycles", "100"], "--cycles 100: 100 cycles would end at about 1:45:"),
    ],
)
def test_bad_input_exits_2_with_nothing_actuated(tmp_path, capsys, argv, fragment):
    log = tmp_path / "never.csv"
    code = main(["simulate", "--config", str(CONFIG_DIR), "--log", str(log), *argv])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and "nothing was actuated" in err
    assert not log.exists()  # the rig was never opened


def test_simulate_writes_a_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "s.png"
    code = main(
        [
            "simulate",
            "--config",
            str(CONFIG_DIR),
            "--profile",
            "gradient",
            "--cycles",
            "1",
            "--log",
            str(tmp_path / "s.csv"),
            "--plot",
            str(png),
        ]
    )
    assert code == 0 and png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_profile_show_prints_the_planned_cycle(capsys):
    code = main(["profile", "show", "gradient", "--config", str(CONFIG_DIR)])
    out = capsys.readouterr().out
    assert code == 0
    assert "fill ankle" in out and "fill thigh" in out and "one cycle:" in out


def test_profiles_lists_them_all(capsys):
    code = main(["profiles", "--config", str(CONFIG_DIR)])
    out = capsys.readouterr().out
    assert code == 0
    for name in SHIPPED:
        assert name in out
    assert "(default)" in out


@pytest.mark.slow
def test_asking_for_the_session_limit_completes_normally(tmp_path, capsys):
    """SAFE-10: `--minutes 60` with `limits.session_max_min: 60` ends with its last whole cycle that fits, vented,
    inside the limit: exit 0, no trip (it used to trip the session limit at 60:00 and exit 3). ~40 s."""
    import csv

    log = tmp_path / "s.csv"
    code, out, err = run(capsys, "simulate", "--config", str(CONFIG_DIR), "--minutes", "60", "--log", str(log))
    assert code == 0, err
    assert "no trip" in out and "SAFE-10" not in out + err and "ended early, at the session limit" in out
    with log.open() as f:
        rows = list(csv.DictReader(f))
    assert not any(r["fault"] for r in rows)
    session_s = float(rows[-1]["t_s"]) - float(rows[0]["t_s"])
    assert 59 * 60 < session_s < 60 * 60  # the session, its final vent included, inside the hour
    assert rows[-1]["state"] == "done" and rows[-1]["pump_duty"] == "0.000"


def test_run_refuses_a_session_beyond_the_limit_before_opening_the_sleeve(capsys):
    """The plan comes before the rig: on a PC, opening the sleeve would fail (exit 1); refused first, exit 2."""
    code, _, err = run(capsys, "run", "--config", str(CONFIG_DIR), "--minutes", "90")
    assert code == 2 and "ask for at most 60" in err and "nothing was actuated" in err
    assert "no GPIO library" not in err  # the sleeve was never opened


def test_bringup_is_refused_while_the_service_holds_the_sleeve(tmp_path, monkeypatch, capsys):
    """`vent`, `sensors`, `test-valve`, `calibrate` and `run` on the sleeve ask first whether `serve` holds it (its
    single-instance lock), and refuse before touching a pin: two processes would fight over the valves."""
    import os

    from legsleeve.app.control import ControlSocket, serving_pid

    sock = tmp_path / "control.sock"
    monkeypatch.setenv("LEGSLEEVE_CONTROL", str(sock))
    assert serving_pid() is None
    control = ControlSocket(str(sock))
    try:
        assert serving_pid() == os.getpid()
        code, out, err = run(capsys, "vent", "--config", str(CONFIG_DIR))
    finally:
        control.close()
    assert code == 1 and f"service (pid {os.getpid()}) holds the sleeve" in err
    assert "sudo systemctl stop legsleeve" in err and "no GPIO library" not in err  # before any GPIO was tried
    assert serving_pid() is None
    code, out, err = run(capsys, "vent", "--config", str(CONFIG_DIR))  # the service gone: on to the hardware
    assert code == 1 and "no GPIO library could start" in err


# -- issue 13's rough edges ----------------------------------------------------------------------------------------


def _simulate(capsys, tmp_path, *argv, profile="gradient", cycles="1"):
    log = tmp_path / "s.csv"
    code = main(
        ["simulate", "--config", str(CONFIG_DIR), "--profile", profile, "--cycles", cycles, "--log", str(log), *argv]
    )
    out, err = capsys.readouterr()
    return code, out, err, log


def _session_s(log, row) -> float:
    from legsleeve.app.sessionlog import read_log

    return float(row["t_s"]) - float(read_log(log)[0]["t_s"])


def test_a_fault_counts_from_the_sessions_start_as_the_log_the_plot_and_the_progress_do(tmp_path, capsys):
    """`--fault estop@5` presses the E-stop 5 s into the session: the trip is in the log's row 5.0 s after its first
    (the plot's t = 5). It used to count from the simulator's start, and at 5 s the self-test was still running."""
    from legsleeve.app.sessionlog import read_log

    code, out, err, log = _simulate(capsys, tmp_path, "--fault", "estop@5")
    assert code == 3 and "TRIPPED SAFE-12" in out
    trip = next(r for r in read_log(log) if r["fault"])
    assert _session_s(log, trip) == pytest.approx(5.0, abs=0.021)  # the tick that reads it
    assert "session gradient starts: 0:00.0 from here" in err


def test_a_fault_can_still_land_in_the_self_test_counted_from_the_simulators_start(tmp_path, capsys):
    code, out, err, log = _simulate(capsys, tmp_path, "--fault", "estop@selftest+2")
    assert code == 3 and "self-test" in err and "E-stop pressed" in err
    assert not log.exists()  # no session was started


def test_a_fault_after_the_planned_end_is_refused_before_anything_moves(tmp_path, capsys):
    """A fault after the session's end used to never fire, silently."""
    code, out, err, log = _simulate(capsys, tmp_path, "--fault", "leak:calf@1000")
    assert code == 2 and "--fault leak:calf@1000: the session is planned to end 63.0 s from its start" in err
    assert "would never fire" in err and "nothing was actuated" in err and not log.exists()


def test_a_fault_the_session_ended_before_is_reported_as_never_fired(tmp_path, capsys):
    code, out, err, log = _simulate(capsys, tmp_path, "--fault", "estop@5", "--fault", "leak:calf@30")
    assert code == 3
    assert "fault leak:calf@30 never fired: the session ended" in out and "estop@5 never fired" not in out


@pytest.mark.parametrize("spec", ["garbage", "nosuch:calf@3", "leak:calf"])
def test_a_bad_fault_lists_every_name(tmp_path, capsys, spec):
    code, out, err, log = _simulate(capsys, tmp_path, "--fault", spec)
    assert code == 2 and not log.exists()
    names = err.split("--fault names: ")[1]
    for name in ("leak", "sensor-offset", "pump-stuck-on", "estop", "button", "button-hold"):
        assert f" {name}," in f" {names}" or f" {name};" in f" {names}", name
    assert "`legsleeve simulate --fault list` says what each does" in err


def test_fault_list_says_what_each_does_the_panel_events_too(capsys):
    code = main(["simulate", "--fault", "list"])
    out = capsys.readouterr().out
    assert code == 0
    assert "estop " in out and "someone presses the E-stop" in out
    assert "button-hold " in out and "holds the start/stop button for 2 s" in out
    assert "@selftest+SECONDS" in out and "SECONDS from the session's start" in out


def test_the_plot_marks_each_injected_fault_at_its_session_time(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    from legsleeve.app import plot

    drawn = []
    real = plot.plot_log

    def recording(log_path, png_path, **kw):
        drawn.append(kw["markers"])
        return real(log_path, png_path, **kw)

    monkeypatch.setattr(plot, "plot_log", recording)
    code, out, err, log = _simulate(capsys, tmp_path, "--fault", "estop@5", "--plot", str(tmp_path / "p.png"))
    assert code == 3 and [(m.t_s, m.label) for m in drawn[0]] == [(5.0, "estop@5")]


def test_run_on_a_pc_points_to_simulate_not_to_an_option_run_lacks(capsys):
    """`run` on a PC said "use --sim", which `run` does not accept."""
    code, _, err = run(capsys, "run", "--config", str(CONFIG_DIR), "--cycles", "1")
    assert code == 1 and "no GPIO library could start" in err
    assert "`legsleeve simulate` runs the same session" in err and "--sim" not in err


def test_on_a_pi_a_hardware_failure_says_nothing_of_the_simulated_rig(capsys, monkeypatch):
    """The virtual Pi showed `sensors` without an I2C bus ending "On a PC: add --sim": a Pi owner's error names the
    hardware only."""
    import platform

    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    code, _, err = run(capsys, "vent", "--config", str(CONFIG_DIR))
    assert code == 1 and "no GPIO library could start" in err
    assert "On a PC" not in err and "--sim" not in err


def test_session_logs_go_to_sessions_not_sessions_sessions(monkeypatch):
    from legsleeve.app.cli import _default_log, default_log_dir

    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert default_log_dir() == Path("sessions")
    assert _default_log("wave", sim=False, seed=0).parent == Path("sessions")
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/legsleeve")
    assert default_log_dir() == Path("/var/lib/legsleeve/sessions")


def test_sensors_follow_prints_until_ctrl_c_then_vents_and_exits_0(tmp_path):
    """Bring-up: `sensors --follow` prints readings until Ctrl-C, the header again every 20 rows."""
    import os
    import signal

    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'firmware'}:{ROOT}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "legsleeve", "sensors", "--sim", "--follow", "--interval-s", "0.02", "--config",
         str(CONFIG_DIR)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    lines = [proc.stdout.readline() for _ in range(25)]
    proc.send_signal(signal.SIGINT)
    rest = proc.stdout.read()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert lines[0].startswith("zero (vented, absolute hPa)")
    headers = [i for i, line in enumerate(lines) if line.startswith("t_s ")]
    assert headers == [1, 22]  # then 20 readings, the header again
    assert all(len(line.split()) == 6 for i, line in enumerate(lines[2:], start=2) if i not in headers)
    assert "sensors: SIGINT received" in err and "vented" in err and "Traceback" not in err + rest
