"""The sleeve's long-running process (`legsleeve serve`, the systemd service): idle until told, one session at a time.

It starts idle and vented, whatever happened before: no session survives its process (SAFE-11), so a restart -
after a crash, a watchdog kill, a power cut - never resumes one. From idle:

- the button: a short press starts a session of the selected profile (a short press during it stops it); a long
  press (held 1.5 s) selects the next profile, announced by as many short beeps as its place in the list;
- the control socket (`legsleeve.app.control.ControlSocket`: `legsleeve start|stop|status|...`, `watch`, a web
  process), which speaks the control protocol (`legsleeve.app.protocol`, docs/control-protocol.md) from a thread of
  its own, so the loop never waits on a client: the loop takes the requests waiting at each tick - idle, every sweep
  of the self-test's zero, every tick of its valve check and of the session - answers them from its own state, and
  hands the socket a status snapshot for its subscribers a few times a second. A stop is heard in every state and
  wins over a start that came with it (SAFE-12).

Profiles are read from disk when a session starts, so a profile saved from the web page or edited by hand runs as
it now is, without a restart; a file that no longer loads refuses the start with the loader's `file:line: key:
message`, before anything moves. For a `start` over the socket the file is read by the socket's preparer thread
(`prepare`), before the loop sees the request, and the loop answers with the profile it was handed: no file is read
within a tick. For the button, the loop reads it as the session begins, idle and vented, where it opens the
session's log too. `hello` scans the profiles directory afresh (in the preparer thread as well).

A trip ends the session in the safe state and leaves its alarm sounding (latched, SAFE-13) until a person resets it:
a long press, or `legsleeve reset`. A short press (or `legsleeve silence`) silences the buzzer meanwhile. The loop
pings the systemd watchdog after every tick, idle or not (SAFE-11). An exception out of the loop drives the safe
state, sounds the high alarm and goes on up (SAFE-1). Each session, started or not, is remembered in
`history.jsonl` beside the session logs (`history`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from legsleeve import __version__
from legsleeve.app import protocol
from legsleeve.app.alarms import Annunciator
from legsleeve.app.builder import session_deadline_s
from legsleeve.app.control import ControlSocket
from legsleeve.app.protocol import Command, ProtocolError
from legsleeve.app.selftest import SelfTestFailed, SelfTestStopped
from legsleeve.app.snapshot import Alarm, SessionTracker, snapshot
from legsleeve.app.snapshot import text as snapshot_text
from legsleeve.config.profiles import list_profiles, load_all, load_profile, profile_dir
from legsleeve.core.plan import Profile
from legsleeve.errors import ConfigError, HardwareError, SensorFault
from legsleeve.hw.rig import Rig
from legsleeve.hw.sensors import build_sensors
from legsleeve.safety.trip import Priority

log = logging.getLogger(__name__)

LONG_PRESS_S = 1.5
IDLE_TICK_S = 0.05
FATAL_ALARM_S = 1.5  # one burst of the high pattern before an internal error ends the service
PUBLISH_S = 0.1  # how often the loop hands the control socket a status for its subscribers (clock time)
HISTORY_FILE = "history.jsonl"  # beside the session logs: one line per session, newest last
HISTORY_TAIL_BYTES = 64 * 1024  # how much of it is read at start (the last HISTORY_MAX sessions fit)


@dataclass
class ServiceState:
    """The service's own state. `state` is coarse (a session's self-test and its vent are "running"); what a client
    is told is finer: `legsleeve.app.snapshot.snapshot`."""

    state: str = "idle"  # idle | running | alarm
    selected: str = ""  # the profile the button starts (a long press selects the next)
    running: str = ""  # the session's profile while one runs
    last: str = "started idle"
    sessions: int = 0
    alarm: str = ""  # the latched alarm in words ("" when none): `alarm_info.text()`
    alarm_info: Alarm | None = None
    requests: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StartRequest:
    """What a start asked for: the profile, its intensity (percent of its targets) and the minutes (None: the
    profile's own length); `loaded`, the profile as read from its file when the start was asked (None for the
    button's: read as the session begins)."""

    profile: str
    intensity_pct: float = 100.0
    minutes: float | None = None
    loaded: Profile | None = None


def with_intensity(profile: Profile, intensity_pct: float) -> Profile:
    """The profile with every target scaled to `intensity_pct` percent: its zones' nominal targets and the steps'
    own targets. The refill measurement's low level is not a squeeze, and stays."""
    if intensity_pct == 100.0:
        return profile
    f = intensity_pct / 100.0
    steps = tuple(
        dataclasses.replace(s, target_mmhg=s.target_mmhg * f) if s.target_mmhg is not None else s for s in profile.steps
    )
    return dataclasses.replace(profile, targets_mmhg=tuple(t * f for t in profile.targets_mmhg), steps=steps)


def highest_intensity_pct(profile: Profile, max_mmhg: float) -> float:
    """The highest intensity at which no step of `profile` asks more than `max_mmhg` of any zone (SAFE-3: the same
    bound a profile file is held to), in whole percent."""
    peak = max((profile.peak_target_mmhg(i) for i in range(len(profile.zone_names))), default=0.0)
    return math.floor(100.0 * max_mmhg / peak) if peak > 0 else protocol.INTENSITY_MAX_PCT


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
        self._start_request: StartRequest | None = None
        self._tracker: SessionTracker | None = None  # the session under way, from its self-test on
        self._published_s = -math.inf  # when the loop last handed the socket a status (clock time)
        self._published = 0  # how many it has handed over (each one's number)
        self.history: list[dict[str, Any]] = []  # the sessions, oldest first (at most protocol.HISTORY_MAX)
        self.stopping = False
        if control is not None:  # the files a start or a hello needs are read there, never in the loop
            control.prepare_with(self.prepare, ("start", "hello"))

    # -- the loop --------------------------------------------------------------------------------------------
    def load_profiles(self) -> None:
        profiles, problems = load_all(self.config_dir, self.rig.config)
        if problems:
            raise ConfigError(problems)
        if not profiles:
            raise ConfigError([f"{self.config_dir / 'profiles'}: no profiles"])
        self.profiles = profiles
        names = [p.name for p in profiles]
        self.status.selected = "gentle" if "gentle" in names else names[0]

    def prepare(self, command: Command) -> Any:
        """What a request needs from disk, read in the control socket's preparer thread (never the loop's): for
        `start`, its profile loaded now from its file (`load_profile`, the loader `serve` and `check-config` use;
        ProtocolError when there is no such file or it does not load); for `hello`, the profiles directory scanned
        afresh (`load_all`: the profiles that load, and the problems of those that do not)."""
        if command.cmd == "start":
            return self.load(command.args.get("profile") or self.status.selected)
        if command.cmd == "hello":
            return load_all(self.config_dir, self.rig.config)
        return None

    def load(self, name: str) -> Profile:
        """The profile `name` as its file says now. ProtocolError: `unknown-profile` without a file of that name,
        `refused` with the loader's `file:line: key: message` when it does not load."""
        path = profile_dir(self.config_dir) / f"{name}.yaml"
        if not path.is_file():
            known = ", ".join(p.stem for p in list_profiles(self.config_dir)) or "none"
            raise ProtocolError("unknown-profile", f"error: no profile {name!r} ({known})")
        try:
            return load_profile(self.config_dir, name, self.rig.config)
        except ConfigError as exc:
            raise ProtocolError(
                "refused", f"refused: profile {name} does not load, nothing was started: {'; '.join(exc.problems)}"
            ) from None

    def serve(self, *, until_s: float | None = None) -> None:
        """Idle loop. `until_s` (clock time) ends it, for tests; the service runs until a signal.

        An exception out of it drives the safe state first (SAFE-1), then sounds the high alarm and says why in
        systemd's status before it goes on up (`legsleeve serve` then exits 1 and systemd restarts it, idle)."""
        try:
            self._serve(until_s)
        except BaseException as exc:
            self.rig.drive_safe()
            if isinstance(exc, Exception):  # a bug or a broken device; a signal is a stop, not an alarm
                self._fatal(exc)
            raise

    def _serve(self, until_s: float | None) -> None:
        self.rig.drive_safe()
        if not self.profiles:
            self.load_profiles()
        self._load_history()
        clock = self.rig.clock
        # Before READY=1: probing a bus that hangs (1 s a transfer in the kernel) is bounded by the start timeout,
        # not by the watchdog, which READY arms
        try:
            self._connect_sensors()
        except SensorFault as exc:  # the service stays up, vented, and says why: a restart loop would only hide it
            log.error("%s", exc)
            self._raise(clock.now(), _sensor_alarm(exc))
        if self.notifier:
            self.notifier.ready(f"idle, profile {self.status.selected}")
        log.info("idle, profile %s: waiting for the button or `legsleeve start`", self.status.selected)
        while not self.stopping and (until_s is None or clock.now() < until_s):
            now = clock.now()
            self._idle_tick(now)
            if self._start_request is not None:
                start, self._start_request = self._start_request, None
                self._session(start)
                continue
            if self.notifier:
                self.notifier.watchdog()
            clock.sleep(IDLE_TICK_S)

    def _connect_sensors(self) -> None:
        """The rig's sensors, if it has none yet (the service opens the rig without them): a sensor or multiplexer
        that does not answer is a SensorFault, so no session starts without every sensor (SAFE-9)."""
        if self.rig.sensors is not None:
            return
        try:
            self.rig.sensors = build_sensors(self.rig.config, self.rig.bus, self.rig.clock)
        except HardwareError as exc:  # a multiplexer that does not answer: no sensor behind it can
            raise SensorFault("bus", str(exc)) from exc

    def _fatal(self, exc: Exception) -> None:
        """The service is going down on an error, the sleeve already safe: play one burst of the high alarm
        (`FATAL_ALARM_S`, under systemd's 2 s watchdog) so a person near the sleeve hears it, and put the reason in
        systemd's status. Nothing here may hide the exception."""
        message = f"internal error, the service stops: {type(exc).__name__}: {exc}; the sleeve was vented"
        try:
            clock = self.rig.clock
            end = clock.now() + FATAL_ALARM_S
            self._raise(clock.now(), Alarm(Priority.HIGH, message))
            while clock.now() < end:
                self.annunciator.update(clock.now())
                clock.sleep(IDLE_TICK_S)
        except Exception:  # the original error is the one to report
            log.exception("could not sound the alarm")

    def _idle_tick(self, now: float) -> None:
        panel = self.rig.panel
        if panel.estop_pressed and self.status.state != "alarm":
            self._raise(
                now,
                Alarm(
                    Priority.MEDIUM, "E-stop pressed", "SAFE-12", None, "release it when the sleeve is safe, then reset"
                ),
            )
        if panel.button is not None:
            self._button(now, panel.button.is_pressed)
        self._serve_control(now)
        self.annunciator.update(now)

    def _serve_control(self, now: float) -> None:
        """Answer every request the control socket has handed over, and hand it a status for its subscribers a few
        times a second; never waits, touches no socket. A stop wins over a start that came with it, and over a press
        of the button this tick: nothing starts (SAFE-12)."""
        if self.control is None:
            return
        requests = self.control.drain()
        stop = any(r.verb == "stop" for r in requests)
        if stop:
            self._start_request = None
        for r in requests:
            if stop and r.verb == "start":
                reply = protocol.error("refused", "refused: a stop came at the same time; nothing was started", "start")
            else:
                reply = self.respond(r.command, now, r.prepared)
            self.control.answer(r, reply)
        if self.control.subscribed and now - self._published_s >= PUBLISH_S:
            self._published_s, self._published = now, self._published + 1
            self.control.publish(self._published, self.snapshot(now))

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
            self._start_request = StartRequest(self.status.selected)

    def _long_press(self, now: float) -> None:
        if self.status.state == "alarm":
            self.reset(now)
            return
        names = [p.name for p in self.profiles]
        if not names:  # the directory was emptied since (a `hello` saw it): nothing to select
            return
        i = (names.index(self.status.selected) + 1) % len(names) if self.status.selected in names else 0
        self.status.selected = names[i]
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
        """One text command ("start [PROFILE]", "stop", "status", ...), answered in one line."""
        return self.handle(line, now)["text"]

    def handle(self, line: str, now: float) -> dict[str, Any]:
        """One request line of either form (JSON or text), answered as plain data."""
        try:
            command = protocol.parse(line)
        except ProtocolError as exc:
            return protocol.error(exc.code, exc.text)
        return self.respond(command, now)

    def respond(self, command: Command, now: float, prepared: Any = None) -> dict[str, Any]:
        """Answer one checked request (`legsleeve.app.protocol`): `ok`, `text` for a person, and for a program the
        data (`status`, `sessions`, ...) or, when not ok, the `error` code: then nothing was done. `prepared` is
        what `prepare` read for it in the control socket's preparer; without it (a request not from the socket:
        `handle`, the tests) it is read here."""
        cmd, args = command.cmd, command.args
        if cmd == "status":
            snap = self.snapshot(now)
            return protocol.ok(cmd, snapshot_text(snap), status=snap)
        if cmd in ("start", "hello") and prepared is None:
            try:
                prepared = self.prepare(command)
            except ProtocolError as exc:
                return protocol.error(exc.code, exc.text, cmd)
        if cmd == "start":
            return self._start(prepared, args.get("intensity_pct", 100.0), args.get("minutes"))
        if cmd == "stop":
            return self._stop()
        if cmd == "reset":
            return self.reset(now)
        if cmd == "silence":
            return self._silence(now)
        if cmd == "history":
            return self._history(int(args.get("limit", 20)))
        if cmd == "hello":
            return self._hello(*prepared)
        return protocol.error("unknown-command", f"error: unknown command {cmd!r}", cmd)

    def snapshot(self, now: float) -> dict[str, Any]:
        """The sleeve now (`legsleeve.app.snapshot.snapshot`)."""
        s = self.status
        return snapshot(
            now_s=now,
            zone_names=self.rig.config.zone_names,
            service_state=s.state,
            selected=s.selected,
            sessions=s.sessions,
            last=s.last,
            alarm=s.alarm_info,
            silenced=self.annunciator.silenced(now),
            tracker=self._tracker,
        )

    def _start(self, profile: Profile, intensity_pct: float, minutes: float | None) -> dict[str, Any]:
        """A start of `profile`, as loaded from its file when the start was asked."""
        if self.status.state == "alarm":
            return protocol.error(
                "refused",
                f"refused: an alarm is latched ({self.status.alarm}); check the sleeve, then `legsleeve reset`",
                "start",
            )
        name = profile.name
        if self.status.state == "running":
            return protocol.error("refused", f"refused: a session of {self.status.running} is running", "start")
        if self._start_request is not None:  # asked this tick (another request, or the button): it goes first
            return protocol.error(
                "refused", f"refused: a session of {self._start_request.profile} is about to start", "start"
            )
        limits = self.rig.config.limits
        highest = highest_intensity_pct(profile, limits.max_mmhg)
        if intensity_pct > highest:
            return protocol.error(
                "out-of-range",
                f"error: {name} at {intensity_pct:g} % would ask more than limits.max_mmhg ({limits.max_mmhg:g} mmHg) "
                f"of a zone: at most {highest:g} %",
                "start",
            )
        if minutes is not None and minutes > limits.session_max_min:
            return protocol.error(
                "out-of-range",
                f"error: {minutes:g} min is longer than limits.session_max_min ({limits.session_max_min:g} min)",
                "start",
            )
        self._start_request = StartRequest(name, intensity_pct, minutes, loaded=profile)
        words = f"starting {name}" + (f" at {intensity_pct:g} %" if intensity_pct != 100.0 else "")
        return protocol.ok("start", words + (f" for {minutes:g} min" if minutes is not None else ""))

    def _stop(self) -> dict[str, Any]:
        """Stop is never refused: whatever runs (the self-test too) ends at the loop's next tick and vents."""
        if self.status.state == "running":
            self.status.requests.append("stop")
            self.status.last = "stop asked: venting"  # until the session (or its self-test) has ended
            if self._tracker is not None:
                self._tracker.stop_asked = True
            return protocol.ok("stop", "stopping: venting")
        return protocol.ok("stop", "nothing running")

    def _silence(self, now: float) -> dict[str, Any]:
        if self.annunciator.priority is None:
            return protocol.ok("silence", "nothing sounding")
        self.annunciator.silence(now)
        return protocol.ok(
            "silence", f"buzzer silenced for {self.annunciator.silence_s:g} s (the LED still shows the alarm)"
        )

    def reset(self, now: float) -> dict[str, Any]:
        """The explicit reset of SAFE-13: a person has looked at the sleeve."""
        if self.status.state != "alarm":
            return protocol.ok("reset", "nothing to reset")
        if self.rig.panel.estop_pressed:
            return protocol.error("refused", "refused: the E-stop is still pressed", "reset")
        self.annunciator.acknowledge()
        self.status.state, self.status.alarm, self.status.alarm_info = "idle", "", None
        self.status.last = "alarm reset"
        log.warning("alarm reset by a person")
        return protocol.ok("reset", "reset: idle")

    def _history(self, limit: int) -> dict[str, Any]:
        sessions = self.history[::-1][:limit]  # a new list: the loop may append to its own meanwhile
        return protocol.ok(
            "history", f"{len(sessions)} of {len(self.history)} session(s), newest first", sessions=sessions
        )

    def _hello(self, profiles: list[Profile], problems: list[str]) -> dict[str, Any]:
        """What a client needs to know first: the protocol and firmware versions, the zones, the profiles (as the
        directory was just scanned: the button's list follows it) with their highest intensity, the files that do
        not load, the limits a start is held to."""
        self.profiles = profiles
        names = [p.name for p in profiles]
        if names and self.status.selected not in names:  # the button's profile was removed
            self.status.selected = "gentle" if "gentle" in names else names[0]
        limits = self.rig.config.limits
        return protocol.ok(
            "hello",
            f"legsleeve {__version__}, control protocol {protocol.VERSION}",
            protocol=protocol.VERSION,
            firmware=__version__,
            zones=list(self.rig.config.zone_names),
            profiles=[
                {
                    "name": p.name,
                    "description": p.description,
                    "minutes": p.session_minutes,
                    "cycles": p.session_cycles,
                    "intensity_max_pct": min(highest_intensity_pct(p, limits.max_mmhg), protocol.INTENSITY_MAX_PCT),
                }
                for p in self.profiles
            ],
            problems=problems,
            selected=self.status.selected,
            intensity_pct={"min": protocol.INTENSITY_MIN_PCT, "max": protocol.INTENSITY_MAX_PCT, "default": 100.0},
            max_mmhg=limits.max_mmhg,
            session_max_min=limits.session_max_min,
            commands=list(protocol.COMMANDS),
        )

    # -- the session history ------------------------------------------------------------------------------
    def _load_history(self) -> None:
        """The last sessions from `history.jsonl` (its tail; lines that do not parse are skipped)."""
        if self.log_dir is None:
            return
        path = self.log_dir / HISTORY_FILE
        try:
            with path.open("rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(size - HISTORY_TAIL_BYTES, 0))
                tail = f.read()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("session history %s: %s", path, exc)
            return
        lines = tail.split(b"\n")[1:] if size > HISTORY_TAIL_BYTES else tail.split(b"\n")
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                self.history.append(entry)
        del self.history[: -protocol.HISTORY_MAX]

    def _remember(self, entry: dict[str, Any]) -> None:
        """One session in the history, in memory and at the end of `history.jsonl`."""
        self.history.append(entry)
        del self.history[: -protocol.HISTORY_MAX]
        if self.log_dir is None:
            return
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with (self.log_dir / HISTORY_FILE).open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry, allow_nan=False) + "\n")
        except (OSError, ValueError) as exc:  # the session is over and the sleeve safe: say so, go on
            log.error("could not write the session history: %s", exc)

    def _raise(self, now: float, alarm: Alarm) -> None:
        self.status.state, self.status.alarm, self.status.alarm_info = "alarm", alarm.text(), alarm
        self.annunciator.raise_alarm(now, alarm.priority, alarm.text())
        if self.notifier:
            self.notifier.status(f"ALARM: {alarm.text()}")

    # -- a session -----------------------------------------------------------------------------------------
    def _session(self, start: StartRequest) -> None:
        name = start.profile
        loaded = start.loaded
        if loaded is None:  # the button: its profile read now, idle and vented, before anything moves
            try:
                loaded = self.load(name)
            except ProtocolError as exc:
                self.status.last = f"{name} not started: {exc.text}"
                self.annunciator.raise_alarm(self.rig.clock.now(), Priority.LOW, self.status.last)
                log.error("session %s not started: %s", name, exc.text)
                self._remember(
                    {
                        "started": _wall_now(),
                        "profile": name,
                        "intensity_pct": start.intensity_pct,
                        "minutes": start.minutes,
                        "outcome": "not started",
                        "text": self.status.last,
                        "duration_s": None,
                        "cycles": None,
                        "alarm": None,
                        "log": None,
                    }
                )
                return
        profile = with_intensity(loaded, start.intensity_pct)
        self.status.state, self.status.running = "running", name
        self.status.requests.clear()
        self.annunciator.acknowledge()
        if self.notifier:
            self.notifier.status(f"running {name}")
        log.info("session %s starting (intensity %g %%)", name, start.intensity_pct)
        import time as wall  # names the file and dates the history: nothing else

        started = wall.strftime("%Y-%m-%dT%H:%M:%S")
        log_path = None
        if self.log_dir is not None:
            from legsleeve.app.sessionlog import prune_logs

            for old in prune_logs(self.log_dir):  # the oldest beyond 200 MiB, never the newest three (README)
                log.info("session log %s deleted (the logs keep 200 MiB)", old.name)
            log_path = self.log_dir / f"{wall.strftime('%Y%m%d-%H%M%S')}-{name}.csv"
        entry: dict[str, Any] = {
            "started": started,
            "profile": name,
            "intensity_pct": start.intensity_pct,
            "minutes": start.minutes,
            "outcome": "not started",
            "text": "",
            "duration_s": None,
            "cycles": None,
            "alarm": None,
            "log": None,
        }

        def poll() -> str | None:  # every tick of the self-test and of the session
            self._serve_control(self.rig.clock.now())
            if "stop" in self.status.requests:
                self.status.requests.clear()
                return "stopped from the control socket"
            return None

        now = self.rig.clock.now
        try:
            self._connect_sensors()  # again: they may have been wired since the service started
        except SensorFault as exc:  # no session without every sensor (SAFE-9); nothing has moved
            self.rig.drive_safe()
            self.status.last = f"{name} not started: a sensor fault"  # which one: the alarm says
            self._raise(now(), _sensor_alarm(exc))
            log.error("session %s not started: %s", name, exc)
            self._remember({**entry, "text": self.status.last, "alarm": self._alarm_dict()})
            return
        cycles, minutes = profile.session_length(None, start.minutes)
        tracker = SessionTracker(name, start.intensity_pct, cycles, minutes, now(), session_deadline_s(self.rig.config))
        self._tracker = tracker
        try:
            result = self.run_session(
                self.rig,
                profile,
                minutes=start.minutes,
                log_path=log_path,
                annunciator=self.annunciator,
                liveness=self.notifier.watchdog if self.notifier else None,
                poll=poll,
                on_start=tracker.started,
                on_tick=tracker.tick,
            )
        except SelfTestStopped as exc:
            self.rig.drive_safe()
            self.status.state, self.status.last = "idle", str(exc)
            self.annunciator.raise_alarm(now(), Priority.LOW, self.status.last)
            log.info("session %s not started: %s", name, exc)
            self._remember({**entry, "text": self.status.last})
            return
        except (SelfTestFailed, SensorFault) as exc:
            self.rig.drive_safe()
            self.status.sessions += 1
            self.status.last = f"self-test failed: {exc}"
            trip = getattr(exc, "trip", None)
            if isinstance(exc, SensorFault):
                alarm = _sensor_alarm(exc)
            elif trip is not None:
                alarm = Alarm(Priority.MEDIUM, str(exc), trip.rule, trip.zone, None)
            else:
                alarm = Alarm(Priority.MEDIUM, str(exc), "SELF-TEST")
            self._raise(now(), alarm)
            self._remember({**entry, "text": self.status.last, "alarm": self._alarm_dict()})
            return
        finally:
            self._tracker = None
        self.status.sessions += 1
        o = result.outcome
        if o.trip is not None:
            self.status.last = f"tripped: {o.trip}"
            priority = Priority.HIGH if o.cannot_vent is not None or o.unconfirmed else o.trip.priority
            unconfirmed = (
                f"; vent not confirmed for {', '.join(o.unconfirmed)}: check by hand that every bladder has emptied"
                if o.unconfirmed
                else ""
            )
            self._raise(now(), Alarm.of_trip(o.cannot_vent or o.trip, priority, unconfirmed))
        else:
            self.status.state = "idle"
            self.status.last = "stopped" if o.stopped else f"{name} complete"
            self.annunciator.raise_alarm(now(), Priority.LOW, self.status.last)
        outcome = "tripped" if o.trip is not None else "stopped" if o.stopped else "complete"
        self._remember(
            {
                **entry,
                "outcome": outcome,
                "text": o.stop_reason if o.stopped and o.trip is None else self.status.last,
                "duration_s": round(o.duration_s, 1),
                "cycles": o.status.cycle,
                "alarm": self._alarm_dict() if o.trip is not None else None,
                "log": log_path.name if log_path is not None else None,
            }
        )
        if self.notifier:
            self.notifier.status(f"{self.status.state}: {self.status.last}")
        log.info("session %s ended: %s", name, self.status.last)
        panel = self.rig.panel
        if panel.button is not None and panel.button.is_pressed:
            self._pressed_at, self._long_done = now(), True  # the press that stopped it is spent

    def _alarm_dict(self) -> dict[str, Any] | None:
        info = self.status.alarm_info
        return info.as_dict() if info is not None else None


def _wall_now() -> str:
    """The local wall time, as the history dates a session."""
    import time as wall

    return wall.strftime("%Y-%m-%dT%H:%M:%S")


def _sensor_alarm(exc: SensorFault) -> Alarm:
    return Alarm(
        Priority.MEDIUM,
        str(exc),
        "SAFE-9",
        exc.sensor,
        "check the sensors' wiring (SDA/SCL, 3.3 V, the multiplexer channel), then `legsleeve reset`",
    )
