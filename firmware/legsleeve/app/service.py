"""The sleeve's long-running process (`legsleeve serve`, the systemd service): idle until told, one session at a time.

It starts idle and vented, whatever happened before: no session survives its process (SAFE-11), so a restart -
after a crash, a watchdog kill, a power cut - never resumes one. From idle:

- the button: a short press starts a session of the selected profile (a short press during it stops it); a long
  press (held 1.5 s) selects the next profile, announced by as many short beeps as its place in the list;
- the control socket (`legsleeve start|stop|status|reset`), for a person at a terminal.

A trip ends the session in the safe state and leaves its alarm sounding (latched, SAFE-13) until a person resets it:
a long press, or `legsleeve reset`. A short press silences the buzzer meanwhile. The loop pings the systemd watchdog
after every tick, idle or not (SAFE-11).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from legsleeve.app.alarms import Annunciator
from legsleeve.app.selftest import SelfTestFailed, SelfTestStopped
from legsleeve.config.profiles import load_all
from legsleeve.core.plan import Profile
from legsleeve.errors import ConfigError, SensorFault
from legsleeve.hw.rig import Rig
from legsleeve.safety.trip import Priority

log = logging.getLogger(__name__)

LONG_PRESS_S = 1.5
IDLE_TICK_S = 0.05
DEFAULT_SOCKET = "/run/legsleeve/control.sock"


def control_socket_path() -> str:
    return os.environ.get("LEGSLEEVE_CONTROL", DEFAULT_SOCKET)


@dataclass
class ServiceState:
    state: str = "idle"  # idle | running | alarm
    profile: str = ""  # selected for the button
    running: str = ""  # the session's profile while one runs
    last: str = "started idle"
    sessions: int = 0
    alarm: str = ""
    requests: list[str] = field(default_factory=list)


class ControlSocket:
    """A local stream socket: one line in ("start [PROFILE]", "stop", "status", "reset"), one line out."""

    def __init__(self, path: str):
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._sock.bind(path)
        os.chmod(path, 0o660)  # the service's user and group only
        self._sock.listen(4)
        self._sock.setblocking(False)

    def poll(self, handle: Callable[[str], str]) -> None:
        """Answer every waiting client; never blocks the loop for longer than a client's one line."""
        while True:
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            with conn:
                conn.settimeout(0.2)
                try:
                    line = conn.recv(256).decode(errors="replace").strip()
                    conn.sendall((handle(line) + "\n").encode())
                except OSError as exc:
                    log.warning("control socket: %s", exc)

    def close(self) -> None:
        self._sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def send_command(command: str, path: str | None = None, timeout_s: float = 5.0) -> str:
    """Client side of the control socket (`legsleeve start|stop|status|reset`)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(path or control_socket_path())
        s.sendall((command + "\n").encode())
        return s.recv(4096).decode().strip()


class Service:
    def __init__(
        self,
        rig: Rig,
        config_dir: Path,
        *,
        notifier=None,
        control: ControlSocket | None = None,
        session_runner: Callable | None = None,
        log_dir: Path | None = None,
    ):
        from legsleeve.app.session import run_session

        self.rig = rig
        self.config_dir = Path(config_dir)
        self.notifier = notifier
        self.control = control
        self.run_session = session_runner or run_session
        self.log_dir = log_dir
        self.profiles: list[Profile] = []
        self.status = ServiceState()
        self.annunciator = Annunciator(rig.panel, silence_s=rig.config.limits.alarm_silence_s)
        self._pressed_at: float | None = None
        self._long_done = False
        self._start_request: str | None = None
        self.stopping = False

    # -- the loop --------------------------------------------------------------------------------------------
    def load_profiles(self) -> None:
        profiles, problems = load_all(self.config_dir, self.rig.config)
        if problems:
            raise ConfigError(problems)
        if not profiles:
            raise ConfigError([f"{self.config_dir / 'profiles'}: no profiles"])
        self.profiles = profiles
        names = [p.name for p in profiles]
        self.status.profile = "gentle" if "gentle" in names else names[0]

    def serve(self, *, until_s: float | None = None) -> None:
        """Idle loop. `until_s` (clock time) ends it, for tests; the service runs until a signal."""
        self.rig.drive_safe()
        if not self.profiles:
            self.load_profiles()
        if self.notifier:
            self.notifier.ready(f"idle, profile {self.status.profile}")
        log.info("idle, profile %s: waiting for the button or `legsleeve start`", self.status.profile)
        clock = self.rig.clock
        while not self.stopping and (until_s is None or clock.now() < until_s):
            now = clock.now()
            self._idle_tick(now)
            if self._start_request is not None:
                name, self._start_request = self._start_request, None
                self._session(name)
                continue
            if self.notifier:
                self.notifier.watchdog()
            clock.sleep(IDLE_TICK_S)

    def _idle_tick(self, now: float) -> None:
        panel = self.rig.panel
        if panel.estop_pressed and self.status.state != "alarm":
            self._raise(now, Priority.MEDIUM, "E-stop pressed: release it when the sleeve is safe, then reset")
        if panel.button is not None:
            self._button(now, panel.button.is_pressed)
        if self.control is not None:
            self.control.poll(lambda line: self.command(line, now))
        self.annunciator.update(now)

    def _button(self, now: float, down: bool) -> None:
        if down:
            if self._pressed_at is None:
                self._pressed_at, self._long_done = now, False
            elif not self._long_done and now - self._pressed_at >= LONG_PRESS_S:
                self._long_done = True  # act while still held: the person hears it at once
                self._long_press(now)
        elif self._pressed_at is not None:
            if not self._long_done:
                self._short_press(now)
            self._pressed_at = None

    def _short_press(self, now: float) -> None:
        if self.status.state == "alarm":
            self.annunciator.silence(now)
        else:
            self._start_request = self.status.profile

    def _long_press(self, now: float) -> None:
        if self.status.state == "alarm":
            self.reset(now)
            return
        names = [p.name for p in self.profiles]
        i = (names.index(self.status.profile) + 1) % len(names)
        self.status.profile = names[i]
        self.status.last = f"profile {names[i]} selected"
        log.info("profile %s selected (%d of %d)", names[i], i + 1, len(names))
        self._beeps(now, i + 1)

    def _beeps(self, now: float, n: int) -> None:
        """Count the profile's place in short beeps (the buzzer is otherwise quiet in idle)."""
        buzzer = self.rig.panel.buzzer
        if buzzer is None:
            return
        clock = self.rig.clock
        for _ in range(n):
            buzzer.on()
            clock.sleep(0.1)
            buzzer.off()
            clock.sleep(0.15)
            if self.notifier:
                self.notifier.watchdog()

    # -- commands ------------------------------------------------------------------------------------------
    def command(self, line: str, now: float) -> str:
        words = line.split()
        if not words:
            return "error: empty command"
        verb, args = words[0], words[1:]
        if verb == "status":
            s = self.status
            doing = f"running {s.running}" if s.state == "running" else s.state
            return f"{doing}; profile {s.profile}; sessions {s.sessions}; last: {s.last}" + (
                f"; alarm: {s.alarm}" if s.alarm else ""
            )
        if verb == "start":
            if self.status.state == "alarm":
                return "refused: an alarm is latched; check the sleeve, then `legsleeve reset`"
            name = args[0] if args else self.status.profile
            if name not in [p.name for p in self.profiles]:
                return f"error: no profile {name!r} ({', '.join(p.name for p in self.profiles)})"
            if self.status.state == "running":
                return "refused: a session is running"
            self._start_request = name
            return f"starting {name}"
        if verb == "stop":
            if self.status.state == "running":
                self.status.requests.append("stop")
                return "stopping: venting"
            return "nothing running"
        if verb == "reset":
            return self.reset(now)
        return f"error: unknown command {verb!r} (start [PROFILE], stop, status, reset)"

    def reset(self, now: float) -> str:
        """The explicit reset of SAFE-13: a person has looked at the sleeve."""
        if self.status.state != "alarm":
            return "nothing to reset"
        if self.rig.panel.estop_pressed:
            return "refused: the E-stop is still pressed"
        self.annunciator.acknowledge()
        self.status.state, self.status.alarm = "idle", ""
        self.status.last = "alarm reset"
        log.warning("alarm reset by a person")
        return "reset: idle"

    def _raise(self, now: float, priority: Priority, message: str) -> None:
        self.status.state, self.status.alarm = "alarm", message
        self.annunciator.raise_alarm(now, priority, message)
        if self.notifier:
            self.notifier.status(f"ALARM: {message}")

    # -- a session -----------------------------------------------------------------------------------------
    def _session(self, name: str) -> None:
        profile = next(p for p in self.profiles if p.name == name)
        self.status.state, self.status.running = "running", name
        self.status.requests.clear()
        self.annunciator.acknowledge()
        if self.notifier:
            self.notifier.status(f"running {name}")
        log.info("session %s starting", name)
        log_path = None
        if self.log_dir is not None:
            import time as wall  # names the file only

            log_path = self.log_dir / f"{wall.strftime('%Y%m%d-%H%M%S')}-{name}.csv"

        def poll() -> str | None:
            now = self.rig.clock.now()
            if self.control is not None:
                self.control.poll(lambda line: self.command(line, now))
            if "stop" in self.status.requests:
                self.status.requests.clear()
                return "stopped from the control socket"
            return None

        now = self.rig.clock.now
        try:
            result = self.run_session(
                self.rig,
                profile,
                log_path=log_path,
                annunciator=self.annunciator,
                liveness=self.notifier.watchdog if self.notifier else None,
                poll=poll,
            )
        except SelfTestStopped as exc:
            self.rig.drive_safe()
            self.status.state, self.status.last = "idle", str(exc)
            self.annunciator.raise_alarm(now(), Priority.LOW, self.status.last)
            log.info("session %s not started: %s", name, exc)
            return
        except (SelfTestFailed, SensorFault) as exc:
            self.rig.drive_safe()
            self.status.sessions += 1
            self.status.last = f"self-test failed: {exc}"
            self._raise(now(), Priority.MEDIUM, str(exc))
            return
        self.status.sessions += 1
        o = result.outcome
        if o.trip is not None:
            self.status.last = f"tripped: {o.trip}"
            priority = Priority.HIGH if o.cannot_vent is not None else o.trip.priority
            alarm = o.cannot_vent or o.trip
            self._raise(now(), priority, f"{alarm} - {alarm.hint}")
        else:
            self.status.state = "idle"
            self.status.last = "stopped" if o.stopped else f"{name} complete"
            self.annunciator.raise_alarm(now(), Priority.LOW, self.status.last)
        if self.notifier:
            self.notifier.status(f"{self.status.state}: {self.status.last}")
        log.info("session %s ended: %s", name, self.status.last)
        panel = self.rig.panel
        if panel.button is not None and panel.button.is_pressed:
            self._pressed_at, self._long_done = now(), True  # the press that stopped it is spent
