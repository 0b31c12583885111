"""The command line and its terminal: a reader that goes away (`| head`), and Ctrl-C - early, and mid-session, where
it must stop the session as the stop button does, keep the summary and the plot, and leave a log that shows the
sleeve emptying. Each of these ended in a traceback or lost something once (issue 13)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys

import pytest

from legsleeve.app import cli
from legsleeve.app.cli import main
from legsleeve.app.console import Interrupted, PipeSafe, SignalStop
from legsleeve.app.sessionlog import read_log
from tests.helpers import CONFIG_DIR, ROOT

ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'firmware'}:{ROOT}"}


def _legsleeve(*argv: str, cwd=None) -> subprocess.Popen:
    """`legsleeve ARGV` in a child whose reader has gone before it writes a byte (`legsleeve ... | true`)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "legsleeve", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        cwd=cwd,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone: every write to stdout meets EPIPE
    return proc


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    return proc.wait(timeout=120), err


# -- a reader that goes away ---------------------------------------------------------------------------------------


def test_pipe_safe_swallows_a_broken_pipe_and_says_so():
    class Broken(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    out = PipeSafe(Broken())
    assert out.write("first\n") == 6 and out.gone
    assert out.write("second\n") == 7  # gone quietly
    out.flush()


@pytest.mark.parametrize("argv", [["check-config"], ["wiring"], ["wiring", "--bom"]])
def test_a_reader_that_goes_away_is_no_traceback_and_the_exit_code_still_says_how_it_went(argv):
    """`legsleeve check-config | head -1` and `legsleeve wiring | head` ended in a BrokenPipeError traceback, exit 1.
    Now the command finishes what it was doing, its exit code honest (0: the shipped config is good)."""
    code, err = _finish(_legsleeve(*argv, "--config", str(CONFIG_DIR)))
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err
    assert code == 0, err


def test_check_config_piped_still_exits_2_on_a_bad_config(tmp_path):
    text = (CONFIG_DIR / "hardware.yaml").read_text().replace("  max_mmhg: 90", "  max_mmhg: 400")
    (tmp_path / "hardware.yaml").write_text(text)
    code, err = _finish(_legsleeve("check-config", "--config", str(tmp_path)))
    assert code == 2 and "limits.max_mmhg: must be <= 150" in err and "Traceback" not in err


def test_simulate_piped_keeps_its_log_and_plot(tmp_path):
    """`legsleeve simulate --plot x.png | head`: the summary's reader is gone, the session, its log and its plot are
    not."""
    pytest.importorskip("matplotlib")
    log, png = tmp_path / "s.csv", tmp_path / "s.png"
    proc = _legsleeve(
        "simulate", "--config", str(CONFIG_DIR), "--profile", "gradient", "--cycles", "1", "--log", str(log),
        "--plot", str(png),
    )  # fmt: skip
    code, err = _finish(proc)
    assert code == 0 and "Traceback" not in err and "Exception ignored" not in err, err
    assert png.stat().st_size > 10_000 and read_log(log)[-1]["state"] == "done"


# -- Ctrl-C -------------------------------------------------------------------------------------------------------

EARLY_CTRL_C = """
import builtins, os, runpy, signal, sys
real = builtins.__import__
module, sent = sys.argv[1], []

def importing(name, *args, **kwargs):
    if (name == module or name.startswith(module + ".")) and not sent:  # Ctrl-C while this module loads
        sent.append(name)
        os.kill(os.getpid(), signal.SIGINT)
    return real(name, *args, **kwargs)

builtins.__import__ = importing
sys.argv = ["legsleeve", *sys.argv[2:]]
runpy.run_module("legsleeve", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("module", ["gpiozero", "legsleeve.app.selftest", "yaml"])
def test_ctrl_c_while_the_program_loads_is_a_quiet_exit(module, tmp_path):
    """Ctrl-C in the first half second of `simulate` - while the hardware layer, the drivers or YAML load - printed
    a 25-line KeyboardInterrupt traceback. Now: one line, exit 130, nothing actuated (no log)."""
    log = tmp_path / "never.csv"
    proc = subprocess.run(
        [sys.executable, "-c", EARLY_CTRL_C, module, "simulate", "--config", str(CONFIG_DIR), "--log", str(log)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr, proc.stderr
    assert proc.returncode == 130 and "stopped by SIGINT" in proc.stderr, proc.stderr
    assert not log.exists()


def _ctrl_c_at(monkeypatch, words: str, signum: int = signal.SIGINT) -> list[str]:
    """Send ourselves `signum` (as a terminal's Ctrl-C would) when `simulate` prints a progress line with `words`."""
    seen: list[str] = []
    status = cli._status

    def and_interrupt(line: str) -> None:
        status(line)
        seen.append(line)
        if words in line and not [s for s in seen[:-1] if words in s]:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(cli, "_status", and_interrupt)
    return seen


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_mid_session_stops_it_vents_and_keeps_the_summary_log_and_plot(tmp_path, capsys, monkeypatch, signum):
    """Ctrl-C while `simulate` fills the calf: the session stops at the next tick as the stop button would, the log
    goes on until every zone reads empty (pump off, exhausts open), the summary and the plot are printed, exit 130
    (143 for SIGTERM). It used to lose the summary and the plot, and the log ended with the sleeve still pressed."""
    pytest.importorskip("matplotlib")
    _ctrl_c_at(monkeypatch, "fill calf", signum)
    log, png = tmp_path / "s.csv", tmp_path / "s.png"
    code = main(
        ["simulate", "--config", str(CONFIG_DIR), "--profile", "gradient", "--cycles", "2", "--log", str(log),
         "--plot", str(png)]
    )  # fmt: skip
    out, err = capsys.readouterr()
    name = signal.Signals(signum).name
    assert code == 128 + signum, err
    assert f"stopped ({name} received)" in out and "ankle " in out  # the summary, with its table
    assert f"plot: {png}" in out and png.stat().st_size > 10_000
    assert f"stopped by {name}; the sleeve was vented" in err and "Traceback" not in err
    rows = read_log(log)
    stopped = [r for r in rows if r["state"] == "stopped"]
    assert stopped and rows[-1] is stopped[-1]
    last = rows[-1]
    zones = ("ankle", "calf", "knee", "thigh")
    assert last["pump_duty"] == "0.000" and all(last[f"{z}_exhaust"] == "1" for z in zones)
    assert all(float(last[f"{z}_mmhg"]) < 5.0 for z in zones)  # the vent is in the log, to the end
    assert max(float(stopped[0][f"{z}_mmhg"]) for z in zones) > 10.0  # and it began pressed


def test_a_second_ctrl_c_does_not_wait_for_the_vent(tmp_path, capsys, monkeypatch):
    """The first Ctrl-C asks for a stop; a second one, while the session vents, ends it at once (the outputs driven
    safe on the way out, SAFE-1)."""
    seen = _ctrl_c_at(monkeypatch, "fill calf")
    real_poll = SignalStop.poll

    def poll_and_again(self):
        why = real_poll(self)
        if why is not None and not seen[-1:] == ["again"]:
            seen.append("again")
            os.kill(os.getpid(), signal.SIGINT)
        return why

    monkeypatch.setattr(SignalStop, "poll", poll_and_again)
    code = main(["simulate", "--config", str(CONFIG_DIR), "--profile", "gradient", "--cycles", "2",
                 "--log", str(tmp_path / "s.csv")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 130 and "stopped by SIGINT; the sleeve was vented" in err and "Traceback" not in err


def test_signal_stop_raises_when_nothing_listens_and_asks_when_something_does():
    stop = SignalStop()
    with pytest.raises(Interrupted):
        stop._handle(signal.SIGINT, None)
    with stop.listening():
        stop._handle(signal.SIGINT, None)
        assert stop.poll() == "SIGINT received"
        with pytest.raises(Interrupted):  # the second one
            stop._handle(signal.SIGINT, None)
