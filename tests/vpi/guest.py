"""The checks inside the virtual Raspberry Pi: run as root by the VM's `vpi-run` unit, standard library only.

Each check prints `PASS name (seconds)` or `FAIL name: why` on the console and appends one JSON line to the results
file the host collects (tests/test_vpi.py). They run in order, on one machine, as a Pi owner would go: the simulated
GPIO chip comes first (the Pi's exists at boot), then `sudo make install` from the clone in the login user's home,
the bring-up commands, the service under systemd, what it does when killed, stopped and uninstalled.

The GPIO lines are gpio-sim's: an output's level is read back from sysfs (`value`), an input is driven through its
`pull` (what the wiring would do: the E-stop's closed contact pulls its line low, a pressed button too). Waits on
systemd have deadlines; nothing here sleeps on a fixed guess when it can wait for the state it needs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

HOME = Path("/home/pi/legsleeve")
ETC = Path("/etc/legsleeve")
CONFIGFS = Path("/sys/kernel/config/gpio-sim")
CHIP_LABEL = "pinctrl-bcm2711"  # a Pi 4's header chip, as `gpioinfo` names it there
LINES = 58  # a Pi 4's pinctrl-bcm2711 has 58 lines
UNIT = "legsleeve.service"
# The reference config's pins (config/hardware.yaml)
PUMP, INLETS, EXHAUSTS = 18, (17, 22, 24, 16), (27, 23, 25, 26)
BUTTON, ESTOP = 6, 5
OUTPUTS = (PUMP, *INLETS, *EXHAUSTS)


class Fail(Exception):
    """A check did not hold; the message says what was seen."""


# -- helpers ------------------------------------------------------------------------------------------------------


def sh(cmd: str, *, user: str | None = None, timeout_s: float = 600.0, cwd: Path | None = None) -> tuple[int, str]:
    """Run `cmd` in bash, as root or as `user` in a login shell (their PATH and groups); (exit code, output)."""
    argv = ["runuser", "-l", user, "-c", cmd] if user else ["bash", "-c", cmd]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout_s, cwd=cwd, stdin=subprocess.DEVNULL, check=False
    )
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def ok(cmd: str, **kw) -> str:
    code, out = sh(cmd, **kw)
    if code != 0:
        raise Fail(f"`{cmd}` exited {code}: {out[-800:]}")
    return out


def wait_for(what: str, test: Callable[[], bool], timeout_s: float, every_s: float = 0.2) -> float:
    """Poll `test` until it holds; the seconds it took. Fail after `timeout_s`."""
    t0 = time.monotonic()
    while not test():
        if time.monotonic() - t0 > timeout_s:
            raise Fail(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(every_s)
    return time.monotonic() - t0


def prop(name: str) -> str:
    return ok(f"systemctl show -p {name} --value {UNIT}")


def main_pid() -> int:
    return int(prop("MainPID") or 0)


def journal_since(since: float) -> str:
    """The unit's journal (systemd's lines about it and its own) from wall time `since` on, a second early."""
    return sh(f"journalctl -u {UNIT} -o short-monotonic --no-pager --since=@{int(since) - 1}")[1]


def journal_cursor() -> float:
    return time.time()


class Chip:
    """The gpio-sim bank standing in for the Pi's header chip."""

    def __init__(self) -> None:
        bank = CONFIGFS / "pi" / "gpio-bank0"
        self.name = (bank / "chip_name").read_text().strip()
        self.dev = (CONFIGFS / "pi" / "dev_name").read_text().strip()
        self.sysfs = Path("/sys/devices/platform") / self.dev / self.name

    def value(self, line: int) -> int:
        return int((self.sysfs / f"sim_gpio{line}" / "value").read_text())

    def pull(self, line: int, up: bool) -> None:
        (self.sysfs / f"sim_gpio{line}" / "pull").write_text("pull-up" if up else "pull-down")

    def outputs(self) -> dict[int, int]:
        return {line: self.value(line) for line in OUTPUTS}

    def assert_safe(self, when: str) -> None:
        """The safe state on the lines: pump off, inlets closed (NC, unpowered), exhausts open (NO, unpowered)."""
        levels = self.outputs()
        live = {f"GPIO{k}": v for k, v in levels.items() if v}
        if live:
            raise Fail(f"{when}: not the safe state, energised: {live}")


def ask(command: str) -> str:
    """One line to the service's control socket and its answer, as root: the waits poll with this (`legsleeve` under
    TCG takes seconds to start); the checks of what a person sees use the command itself."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        try:
            s.connect("/run/legsleeve/control.sock")
        except OSError as exc:
            return f"no service: {exc}"
        s.sendall(command.encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.decode().strip()


def status(user: str | None = None) -> str:
    """`legsleeve status` as `user` (their command, their groups); as root through the socket when None."""
    return sh("legsleeve status", user=user, timeout_s=60)[1] if user else ask("status")


# -- the checks, in order -----------------------------------------------------------------------------------------

CHECKS: list[tuple[str, Callable[[], str]]] = []


def check(fn: Callable[[], str]) -> Callable[[], str]:
    CHECKS.append((fn.__name__.replace("_", "-"), fn))
    return fn


@check
def board_revision() -> str:
    raw = Path("/proc/device-tree/system/linux,revision").read_bytes()
    rev = int.from_bytes(raw, "big")
    if rev != 0xC03111:
        raise Fail(f"revision 0x{rev:x}")
    return f"/proc/device-tree/system/linux,revision = 0x{rev:06x} (a Pi 4 Model B)"


@check
def gpio_sim_chip() -> str:
    ok("modprobe gpio-sim")
    bank = CONFIGFS / "pi" / "gpio-bank0"
    bank.mkdir(parents=True)
    (bank / "num_lines").write_text(str(LINES))
    (bank / "label").write_text(CHIP_LABEL)
    for i in range(LINES):
        (bank / f"line{i}").mkdir()
        (bank / f"line{i}" / "name").write_text(f"GPIO{i}")
    (CONFIGFS / "pi" / "live").write_text("1")
    chip = Chip()
    wait_for("/dev/" + chip.name, lambda: Path("/dev", chip.name).exists(), 10)
    if chip.name != "gpiochip0":
        raise Fail(f"the simulated chip is {chip.name}, the header's is gpiochip0 on a Pi 4")
    return f"{chip.name} [{CHIP_LABEL}] ({LINES} lines) at {chip.sysfs}"


@check
def sudo_make_install() -> str:
    t0 = time.monotonic()
    out = ok("cd ~/legsleeve && sudo make install", user="pi", timeout_s=1500)
    print(out, flush=True)
    if "legsleeve wiring" not in out:
        raise Fail("the installer printed no next steps")
    return f"installed in {time.monotonic() - t0:.0f} s"


@check
def install_is_idempotent() -> str:
    out = ok("cd ~/legsleeve && sudo make install", user="pi", timeout_s=900)
    if "0 file(s) changed" not in out:
        raise Fail(out[-600:])
    return "a second `sudo make install`: 0 file(s) changed"


@check
def groups_and_devices() -> str:
    ids = ok("id legsleeve")
    for g in ("gpio", "i2c"):
        if f"({g})" not in ids:
            raise Fail(f"legsleeve is not in {g}: {ids}")
    pi = ok("id pi")
    if "(legsleeve)" not in pi:
        raise Fail(f"the login user is not in legsleeve: {pi}")
    dev = ok("stat -c '%G %a' /dev/gpiochip0")
    if dev != "gpio 660":
        raise Fail(f"/dev/gpiochip0 is {dev}, not gpio 660")
    return f"{ids}; {pi}; /dev/gpiochip0 {dev}"


@check
def legsleeve_on_path() -> str:
    where = ok("command -v legsleeve", user="pi")
    if where != "/usr/local/bin/legsleeve":
        raise Fail(f"legsleeve is {where!r}")
    ok("legsleeve wiring --config /etc/legsleeve", user="pi")
    ok("legsleeve check-config --config /etc/legsleeve", user="pi", timeout_s=300)
    return "as pi: legsleeve at /usr/local/bin; wiring and check-config pass"


@check
def unit_verifies() -> str:
    code, out = sh(f"systemd-analyze verify /etc/systemd/system/{UNIT}")
    if code != 0 or out:
        raise Fail(out)
    return "systemd-analyze verify: clean"


@check
def security_exposure() -> str:
    out = ok(f"systemd-analyze security {UNIT} --no-pager")
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", out)
    if m is None:
        raise Fail(out[-400:])
    return f"systemd-analyze security: {m.group(1)} {m.group(2)} (on the installed unit, online)"


@check
def vent_as_login_user() -> str:
    out = ok("legsleeve vent --config /etc/legsleeve", user="pi", timeout_s=120)
    Chip().assert_safe("after vent")
    return out.splitlines()[-1]


@check
def sensors_without_a_bus() -> str:
    code, out = sh("legsleeve sensors --config /etc/legsleeve", user="pi", timeout_s=120)
    if code == 0 or "/dev/i2c-1" not in out:
        raise Fail(f"exit {code}: {out[-400:]}")
    Chip().assert_safe("after sensors")
    return f"exit {code}: {out.splitlines()[-1]}"


@check
def sensors_on_another_bus() -> str:
    """i2c-stub (an SMBus-only adapter, so no MPRLS can answer on it) as another bus number: config takes it."""
    ok("modprobe i2c-dev && modprobe i2c-stub chip_addr=0x70")
    bus = wait_for_bus()
    ok(f"sed -i 's/^  bus: 1 /  bus: {bus} /' /etc/legsleeve/hardware.yaml")
    ok("legsleeve check-config --config /etc/legsleeve", user="pi", timeout_s=300)
    code, out = sh("legsleeve sensors --config /etc/legsleeve", user="pi", timeout_s=120)
    if code == 0 or not ("does not answer" in out or "not found" in out):
        raise Fail(f"exit {code}: {out[-500:]}")
    Chip().assert_safe("after sensors")
    return f"i2c.bus {bus} (/dev/i2c-{bus}, i2c-stub): exit {code}: {out.splitlines()[-1]}"


def wait_for_bus() -> int:
    found: list[int] = []

    def stub() -> bool:
        for d in Path("/sys/bus/i2c/devices").glob("i2c-*"):
            if "stub" in (d / "name").read_text().lower() and Path("/dev", d.name).exists():
                found.append(int(d.name.removeprefix("i2c-")))
                return True
        return False

    wait_for("i2c-stub's /dev/i2c-N", stub, 10)
    return found[0]


DROP_IN = Path("/etc/systemd/system/legsleeve.service.d/vpi-emulated-cpu.conf")


@check
def service_starts() -> str:
    # The one change the VM makes to the installed unit: its emulated CPU (TCG) starts Python many times slower than
    # a Pi, and on a loaded host `legsleeve vent` (ExecStopPost) took over the unit's 10 s stop deadline. The deadlines
    # are sized for a Pi (docs/virtual-pi.md); the watchdog (2 s) is kept.
    DROP_IN.parent.mkdir(exist_ok=True)
    DROP_IN.write_text("[Service]\nTimeoutStartSec=180s\nTimeoutStopSec=60s\n")
    ok("systemctl daemon-reload")
    t0 = time.monotonic()
    ok(f"systemctl start {UNIT}", timeout_s=120)  # Type=notify: returns once the service said READY=1
    ready_s = time.monotonic() - t0
    if prop("ActiveState") != "active":
        raise Fail(f"{prop('ActiveState')}/{prop('SubState')}: {journal_since(0)[-800:]}")
    chip = Chip()
    chip.pull(ESTOP, up=False)  # the E-stop's normally-closed contact holds its line low
    chip.pull(BUTTON, up=True)  # the button is open: its pull-up
    wait_for("an alarm or idle", lambda: status().startswith(("idle", "alarm")), 30)
    if status().startswith("alarm"):  # no sensors on i2c-stub; and lgpio's pull-up read the E-stop as pressed
        ask("reset")
    wait_for("idle", lambda: status().startswith("idle"), 30)
    return f"active after {ready_s:.1f} s (READY=1); {status()}"


@check
def watchdog_pings() -> str:
    first = int(prop("WatchdogTimestampMonotonic") or 0)
    waited = wait_for("a second watchdog ping", lambda: int(prop("WatchdogTimestampMonotonic") or 0) > first, 5)
    return f"WatchdogSec={prop('WatchdogUSec')}; a newer ping after {waited:.1f} s"


@check
def idle_outputs_safe() -> str:
    if prop("ActiveState") != "active" or not status().startswith("idle"):
        raise Fail(f"the service is not idle: {prop('ActiveState')}: {status()}")
    Chip().assert_safe("idle")
    return "pump, inlets and exhausts all de-energised (GPIO" + ",".join(map(str, OUTPUTS)) + " = 0)"


@check
def status_as_login_user() -> str:
    out = status(user="pi")
    if not out.startswith("idle"):
        raise Fail(out)
    return out


@check
def outsider_refused() -> str:
    code, out = sh("legsleeve status", user="guest", timeout_s=30)
    if code == 0 or not ("refused" in out or "Permission denied" in out):
        raise Fail(f"guest (in no group): exit {code}: {out[-300:]}")
    return f"guest: exit {code}: {out.splitlines()[-1]}"


@check
def bringup_refused_while_serving() -> str:
    pid = main_pid()
    code, out = sh("legsleeve vent --config /etc/legsleeve", user="pi", timeout_s=120)
    if code == 0 or "systemctl stop legsleeve" not in out:
        raise Fail(f"exit {code}: {out[-500:]}")
    if main_pid() != pid or prop("ActiveState") != "active":
        raise Fail("the service was disturbed")
    return f"exit {code}: {out.splitlines()[-1]}"


@check
def start_without_sensors() -> str:
    sessions = status()
    out = ok("legsleeve start", user="pi", timeout_s=60)
    wait_for("the start to end in an alarm", lambda: status().startswith("alarm"), 60)
    now = status()
    if "sensor" not in now:
        raise Fail(now)
    Chip().assert_safe("after a start without sensors")
    if prop("ActiveState") != "active":
        raise Fail("the service stopped")
    ok("legsleeve reset", user="pi", timeout_s=60)
    return f"{out} -> {now} (before: {sessions})"


@check
def button_and_estop() -> str:
    chip = Chip()
    before = status()
    chip.pull(BUTTON, up=False)  # a short press
    time.sleep(0.5)  # a person's short press (a long one is 1.5 s); the service samples it at 20 Hz in idle
    chip.pull(BUTTON, up=True)
    wait_for("the button's session to end in an alarm", lambda: status().startswith("alarm"), 60)
    pressed = status()
    ask("reset")
    chip.pull(ESTOP, up=True)  # pressed: the contact opens, the pull-up wins
    wait_for("the E-stop alarm", lambda: "E-stop" in status(), 10)
    estop = status()
    chip.assert_safe("E-stop pressed")
    refused = sh("legsleeve reset", user="pi", timeout_s=60)[1]
    if "E-stop is still pressed" not in refused:
        raise Fail(f"reset with the E-stop pressed: {refused}")
    chip.pull(ESTOP, up=False)
    ok("legsleeve reset", user="pi", timeout_s=60)
    wait_for("idle", lambda: status().startswith("idle"), 10)
    return f"button: {before} -> {pressed}; E-stop: {estop}; reset refused while pressed, then idle"


def _systemd_lines(journal: str) -> str:
    """systemd's own lines about the unit, for a failure's message."""
    return " | ".join(line for line in journal.splitlines() if "legsleeve.service" in line or "vented" in line)[-1500:]


# A restart is the vent (a fresh Python), RestartSec=2s and a start to READY=1, on an emulated CPU: 34-39 s on this
# project's two cores, over 60 s when they were shared with a whole test suite. The deadline allows for that.
RESTART_S = 180


def _restarted(kill: str, expect_in_journal: tuple[str, ...], timeout_s: float) -> str:
    pid, restarts, cursor = main_pid(), int(prop("NRestarts")), journal_cursor()
    t0 = time.monotonic()
    ok(kill.format(pid=pid))
    wait_for(
        "a restart",
        lambda: int(prop("NRestarts")) > restarts and main_pid() not in (0, pid) and prop("ActiveState") == "active",
        timeout_s,
    )
    back_s = time.monotonic() - t0
    journal = journal_since(cursor)
    seen = [line for line in journal.splitlines() if any(e in line for e in expect_in_journal)]
    if not seen:
        raise Fail(f"none of {expect_in_journal} in the journal: {_systemd_lines(journal)}")
    if "vented: pump off" not in journal:
        raise Fail(f"ExecStopPost's vent is not in the journal: {_systemd_lines(journal)}")
    Chip().assert_safe("after the restart")
    Chip().pull(ESTOP, up=False)
    wait_for("idle", lambda: status().startswith(("idle", "alarm")), 30)
    if status().startswith("alarm"):  # no sensors on i2c-stub
        ask("reset")
    now = status()
    if "running" in now:
        raise Fail(f"a session resumed: {now}")
    return f"{seen[0].strip()}; back in {back_s:.1f} s, ExecStopPost vented, {now}"


@check
def sigkill_restarts_idle() -> str:
    return _restarted("kill -KILL {pid}", ("status=9/KILL", "signal=KILL"), RESTART_S)


@check
def watchdog_kills_a_stalled_loop() -> str:
    return _restarted("kill -STOP {pid}", ("Watchdog timeout",), RESTART_S)


@check
def stop_vents() -> str:
    cursor = journal_cursor()
    ok(f"systemctl stop {UNIT}", timeout_s=60)
    journal = journal_since(cursor)
    if prop("ActiveState") != "inactive" or "vented: pump off" not in journal:
        raise Fail(f"{prop('ActiveState')}: {_systemd_lines(journal)}")
    Chip().assert_safe("after stop")
    return "inactive; ExecStopPost vented"


@check
def uninstall() -> str:
    DROP_IN.unlink(missing_ok=True)
    if DROP_IN.parent.exists():
        DROP_IN.parent.rmdir()
    ok("cd ~/legsleeve && sudo make uninstall", user="pi", timeout_s=300)
    left = [
        p
        for p in ("/etc/systemd/system/legsleeve.service", "/opt/legsleeve", "/usr/local/bin/legsleeve")
        if os.path.lexists(p)
    ]
    if left:
        raise Fail(f"left behind: {left}")
    if not (ETC / "hardware.yaml").exists():
        raise Fail("the user's config was removed without --purge")
    return "unit, venv and command removed; /etc/legsleeve kept"


CHECK_NAMES = [name for name, _ in CHECKS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--only", default="", help="comma-separated check names (default: all)")
    args = parser.parse_args(argv)
    only = set(filter(None, args.only.split(",")))
    failed = 0
    with open(args.results, "a") as results:
        for name, fn in CHECKS:
            if only and name not in only:
                continue
            t0 = time.monotonic()
            try:
                detail, passed = fn(), True
            except Fail as exc:
                detail, passed = str(exc), False
            except Exception as exc:  # noqa: BLE001 - a broken check is a failed one, with its trace
                detail, passed = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}", False
            seconds = time.monotonic() - t0
            failed += not passed
            print(f"{'PASS' if passed else 'FAIL'} {name} ({seconds:.1f} s): {detail}", flush=True)
            results.write(json.dumps({"name": name, "ok": passed, "detail": detail, "seconds": seconds}) + "\n")
            results.flush()
    print(f"vpi: {failed} check(s) failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
