"""`legsleeve watch`: the view of one status (bars, step, time left, alarm), and the command itself in a real
terminal (a pty) against a service on the simulated rig: the session going by, the service going away and coming
back, Ctrl-C. The waits only wait for the output to get somewhere; they time nothing."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

import pytest

from legsleeve.app.control import request
from legsleeve.app.watch import bar, render
from legsleeve.core.clock import RealTimePacer
from tests.app.control_clients import served, wait_for
from tests.helpers import ROOT

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _status(**over):
    zones = [
        {"name": "ankle", "mmhg": 44.8, "target_mmhg": 45.0, "valve": "hold"},
        {"name": "calf", "mmhg": 21.3, "target_mmhg": 40.0, "valve": "fill"},
        {"name": "knee", "mmhg": 0.4, "target_mmhg": None, "valve": "vent"},
        {"name": "thigh", "mmhg": None, "target_mmhg": None, "valve": "vent"},
    ]
    status = {
        "state": "running", "profile": "wave", "selected": "gentle", "intensity_pct": 80, "step": "fill calf",
        "cycle": 2, "cycles": 5, "elapsed_s": 67.2, "remaining_s": 200.4, "zones": zones, "manifold_mmhg": 52.5,
        "pump_duty": 0.8, "alarm": None, "last": "started idle", "sessions": 0, "t_s": 100.0,
    }  # fmt: skip
    status.update(over)
    return status


def test_a_bar_is_the_pressure_with_the_target_marked():
    assert bar(45.0, 45.0, 90.0, 20) == "█" * 10 + "|" + " " * 9  # 45 of 90 over 20 cells: 10 cells
    assert bar(47.25, None, 90.0, 20) == "█" * 10 + "▌" + " " * 9  # and half a cell more
    assert bar(0.0, None, 90.0, 10) == " " * 10 and bar(None, 30.0, 90.0, 9) == "   |     "
    assert bar(200.0, None, 90.0, 5) == "█████"  # clipped at the top
    assert bar(45.0, None, 90.0, 4, unicode=False) == "##  "


def test_the_view_shows_the_session_its_zones_and_the_time_left():
    lines = render(_status(), top_mmhg=90.0, width=80, color=False, unicode=True)
    text = "\n".join(lines)
    assert lines[0] == "legsleeve: running wave at 80 %   cycle 2/5   1:07 elapsed   about 3:20 left"
    assert lines[1] == "step: fill calf"
    ankle = next(line for line in lines if line.startswith("ankle"))
    assert ankle.startswith("ankle  44.8/45   hold ") and "█" in ankle and "|" in ankle
    assert next(line for line in lines if line.startswith("thigh")).startswith("thigh     -      vent")
    assert "pump     80 %   manifold 52.5 mmHg" in text and "last: started idle" in text
    assert all(len(line) <= 80 for line in lines)


def test_the_view_shows_the_alarm_and_what_to_check():
    alarm = {"priority": "high", "rule": "SAFE-4", "zone": "calf", "message": "SAFE-4 calf: over-pressure 101 mmHg",
             "hint": "the calf's inlet valve", "silenced": True}  # fmt: skip
    lines = render(_status(state="alarm", alarm=alarm), top_mmhg=90.0, width=60, color=True, unicode=False)
    plain = [ANSI.sub("", line) for line in lines]
    assert any(line.startswith("ALARM (high) SAFE-4 calf: SAFE-4 calf: over-pressure") for line in plain)
    assert "  check: the calf's inlet valve" in plain
    assert "  buzzer silenced; legsleeve reset once checked" in plain
    assert all(len(line) <= 60 for line in plain) and any("\x1b[31m" in line for line in lines)


def test_idle_says_where_the_pressures_are():
    zones = [{"name": n, "mmhg": None, "target_mmhg": None, "valve": "vent"} for n in ("ankle", "calf")]
    lines = render(
        _status(state="idle", profile=None, intensity_pct=None, step=None, cycle=None, cycles=None, elapsed_s=None,
                remaining_s=None, zones=zones, pump_duty=0.0, manifold_mmhg=None),
        top_mmhg=90.0, width=80, color=False, unicode=True,
    )  # fmt: skip
    assert lines[0] == "legsleeve: idle" and lines[1] == "selected for the button: gentle"
    assert "(pressures are measured while a session runs)" in lines


class Terminal:
    """`legsleeve ARGV` in a pseudo-terminal of `columns` x `rows`, its screen read as it comes."""

    def __init__(self, *argv: str, columns: int = 100, rows: int = 30):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'firmware'}:{ROOT}", "PYTHONIOENCODING": "utf-8"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "legsleeve", *argv], stdin=slave, stdout=slave, stderr=slave, env=env,
            close_fds=True,
        )  # fmt: skip
        os.close(slave)
        self.master = master
        self.seen = b""

    def text(self) -> str:
        return self.seen.decode(errors="replace")

    def shown(self, words: str) -> bool:
        """Whether any redraw so far showed `words`."""
        return words in ANSI.sub("", self.text())

    def screen(self) -> str:
        """What the last redraw shows (after the last home-and-clear), escape sequences removed."""
        return ANSI.sub("", self.text().rsplit("\x1b[H\x1b[2J", 1)[-1])

    def wait_for(self, what: str, condition, timeout_s: float = 60.0) -> None:
        end = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > end:
                pytest.fail(f"timed out waiting for {what}; the screen:\n{self.screen()}")
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:  # the child closed the terminal
                    if self.proc.poll() is not None and not condition():
                        pytest.fail(f"watch exited ({self.proc.returncode}) before {what}:\n{self.text()[-2000:]}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        os.close(self.master)


def test_watch_in_a_terminal_follows_a_session_then_waits_for_a_service_that_went_away(cfg, tmp_path):
    rig, sock, ticks, svc = served(cfg, tmp_path)
    RealTimePacer(rig.clock)  # a person's pace
    loop = threading.Thread(target=svc.serve, daemon=True)
    loop.start()
    term = Terminal("watch", "--socket", sock.path, "--hz", "10")
    try:
        term.wait_for("the idle view", lambda: "legsleeve: idle" in term.screen())
        assert "selected for the button: gentle" in term.screen() and "\x1b[?25l" in term.text()  # cursor hidden
        assert request("start", sock.path, profile="wave", intensity_pct=80)["ok"]
        term.wait_for("the self-test", lambda: term.shown("legsleeve: selftest wave at 80 %"))
        # a zone past 20 mmHg on its way to 36 (45 at 80 %): its vent will take a few seconds to watch
        term.wait_for("a zone filling", lambda: re.search(r"\n\w+ +[2-9]\d\.\d/36 +fill +█{8}", term.screen()))
        screen = term.screen()
        assert "legsleeve: running wave at 80 %   cycle 1" in screen and "elapsed   about " in screen
        assert "step: fill " in screen and re.search(r"\npump +\d+ %", screen)
        assert all(len(line) <= 100 for line in screen.splitlines())
        assert request("stop", sock.path)["text"] == "stopping: venting"
        term.wait_for("the stop", lambda: term.shown("legsleeve: stopping wave at 80 %"))
        term.wait_for("idle again", lambda: "last: stopped" in term.screen())
        svc.stopping = True
        loop.join(30)
        sock.close()  # the service goes away
        term.wait_for("its absence noticed", lambda: "waiting for it" in term.screen())
        assert term.proc.poll() is None  # still watching, for the service to come back
        term.proc.send_signal(signal.SIGINT)
        assert term.proc.wait(30) == 0
        term.wait_for("the cursor shown again", lambda: "\x1b[?25h" in term.text(), timeout_s=5)
        assert "Traceback" not in term.text()
    finally:
        term.close()
        svc.stopping = True
        loop.join(30)
        sock.close()
        rig.close()


def test_watch_piped_prints_a_line_a_frame_and_ends_when_its_reader_does(cfg, tmp_path):
    rig, sock, ticks, svc = served(cfg, tmp_path)
    RealTimePacer(rig.clock)
    loop = threading.Thread(target=svc.serve, daemon=True)
    loop.start()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'firmware'}:{ROOT}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "legsleeve", "watch", "--socket", sock.path, "--hz", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert all(line.startswith("idle; selected for the button: gentle") for line in lines), lines
        proc.stdout.close()  # the reader goes away (`watch | head -3`)
        assert proc.wait(30) == 0 and "Traceback" not in proc.stderr.read()
        wait_for(lambda: sock.subscribed == 0, "the subscription gone with it")
    finally:
        if proc.poll() is None:
            proc.kill()
        svc.stopping = True
        loop.join(30)
        sock.close()
        rig.close()
