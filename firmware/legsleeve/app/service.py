"""The sleeve's long-running process (`legsleeve serve`, the systemd service): idle until told, one session at a time.

It starts idle and vented, whatever happened before: no session survives its process (SAFE-11), so a restart -
after a crash, a watchdog kill, a power cut - never resumes one. From idle:

- the button: a short press starts a session of the selected profile (a short press during it stops it); a long
  press (held 1.5 s) selects the next profile, announced by as many short beeps as its place in the list;
- the control socket (`legsleeve start|stop|status|reset`), for a person at a terminal. `ControlSocket` serves it
  from a thread of its own, so the loop never waits on a client; the loop takes the commands waiting at each tick
  - idle, every sweep of the self-test's zero, every tick of its valve check and of the session - and answers them.
  A stop is heard in every state and wins over a start that came with it (SAFE-12). `ControlSocket` also holds the
  single-instance lock: a second `serve` refuses before it touches anything.

A trip ends the session in the safe state and leaves its alarm sounding (latched, SAFE-13) until a person resets it:
a long press, or `legsleeve reset`. A short press silences the buzzer meanwhile. The loop pings the systemd watchdog
after every tick, idle or not (SAFE-11). An exception out of the loop drives the safe state, sounds the high alarm
and goes on up (SAFE-1).
"""

from __future__ import annotations

import fcntl
import grp
import logging
import os
import pwd
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from legsleeve.app.alarms import Annunciator
from legsleeve.app.selftest import SelfTestFailed, SelfTestStopped
from legsleeve.config.profiles import load_all
from legsleeve.core.clock import Clock, MonotonicClock
from legsleeve.core.plan import Profile
from legsleeve.errors import ConfigError, SensorFault, SleeveError
from legsleeve.hw.rig import Rig
from legsleeve.safety.trip import Priority

log = logging.getLogger(__name__)

LONG_PRESS_S = 1.5
IDLE_TICK_S = 0.05
FATAL_ALARM_S = 1.5  # one burst of the high pattern before an internal error ends the service
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


# -- the control socket ------------------------------------------------------------------------------------------
#
# The loop never waits on a client: a thread of its own accepts, checks who is asking, reads one line per client
# under a deadline, and hands each line over in a bounded queue. The loop takes what is waiting once a tick
# (`drain`, which never blocks) and answers from its own state (`answer`); the thread sends the answer back. An
# error answer always means that nothing was done.

MAX_LINE = 256  # bytes a command may have
MAX_CLIENTS = 16  # connections still sending their line; a newcomer beyond that lets the oldest one go
CLIENT_DEADLINE_S = 1.0  # wall time a client has to send its line
MAX_QUEUED = 32  # requests waiting for the loop; beyond that "busy", except a stop, which always gets in
REPLY_DEADLINE_S = 3.0  # wall time the loop has to take a request (it drains every tick), under the client's 5 s
BUSY_RETRY_S = 0.05  # how soon `send_command` asks again after a "busy"


class AlreadyServing(SleeveError, RuntimeError):
    """Another `legsleeve serve` holds the control socket's lock: this one must not touch the sleeve."""


def _groups_of(uid: int, gid: int) -> list[int]:
    return os.getgrouplist(pwd.getpwuid(uid).pw_name, gid)


@dataclass(frozen=True)
class PeerPolicy:
    """Who may command the sleeve over the control socket: root, the service's own user, and members of the
    `legsleeve` group (by the peer's primary group or its supplementary groups). The socket file's mode says the
    same; this check holds even when that mode or the directory's is wrong."""

    own_uid: int
    group_gid: int | None  # the `legsleeve` group, when the system has one
    groups_of: Callable[[int, int], list[int]] = _groups_of  # (uid, primary gid) -> every group of that user

    @classmethod
    def default(cls) -> PeerPolicy:
        try:
            gid: int | None = grp.getgrnam("legsleeve").gr_gid
        except KeyError:
            gid = None
        return cls(os.geteuid(), gid)

    def allows(self, uid: int, gid: int) -> bool:
        if uid in (0, self.own_uid):
            return True
        if self.group_gid is None:
            return False
        if gid == self.group_gid:
            return True
        try:
            return self.group_gid in self.groups_of(uid, gid)
        except (KeyError, OSError):  # a uid with no passwd entry is nobody we know
            return False


@dataclass(eq=False)
class Request:
    """One command line from one client. `reply` is set once: by the loop, or by the I/O thread when it refuses."""

    line: str
    received_s: float  # on the control socket's clock (the rig's, in tests)
    reply: str | None = None

    @property
    def verb(self) -> str:
        words = self.line.split()
        return words[0] if words else ""


@dataclass(eq=False)
class _Client:
    sock: socket.socket
    deadline: float  # wall time: for its line, then for the loop to take its request
    buf: bytes = b""
    request: Request | None = None


class ControlSocket:
    """The local control socket: one line in ("start [PROFILE]", "stop", "status", "reset"), one line out.

    Opening it takes the single-instance lock (`control.lock` beside the socket) before anything else, and starts
    the I/O thread. `allow(uid, gid)` says which peers may speak (default: `PeerPolicy.default().allows`); `clock`
    stamps requests (`received_s`); `wall` times the deadlines. Both are injected by tests.
    """

    def __init__(
        self,
        path: str,
        *,
        allow: Callable[[int, int], bool] | None = None,
        clock: Clock | None = None,
        wall: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
        client_deadline_s: float = CLIENT_DEADLINE_S,
        max_queued: int = MAX_QUEUED,
        reply_deadline_s: float = REPLY_DEADLINE_S,
    ):
        self.path = path
        self._allow = allow or PeerPolicy.default().allows
        self._clock = clock or MonotonicClock()
        self._wall = wall
        self.max_clients, self.client_deadline_s = max_clients, client_deadline_s
        self.max_queued, self.reply_deadline_s = max_queued, reply_deadline_s
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _take_lock(Path(path).with_suffix(".lock"), path)  # before the stale socket is touched
        self._queue: deque[Request] = deque()  # waiting for the loop; guarded by _lock
        self._lock = threading.Lock()
        self._readers: dict[int, _Client] = {}  # still sending their line, oldest first (I/O thread only)
        self._waiting: dict[int, _Client] = {}  # their line handed over, waiting for the answer (I/O thread only)
        self._closed = False
        self._listener: socket.socket | None = None
        self._inode = 0
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            self._listen()
        except BaseException:
            self._release()
            raise
        self._thread = threading.Thread(target=self._run, name="control-socket", daemon=True)
        self._thread.start()

    # -- the loop's side: never waits ----------------------------------------------------------------------------
    def drain(self) -> list[Request]:
        """Every request waiting, oldest first. Never blocks: if the I/O thread holds the queue at this instant,
        the requests are taken at the next tick."""
        if not self._lock.acquire(blocking=False):
            return []
        try:
            taken = list(self._queue)
            self._queue.clear()
        finally:
            self._lock.release()
        return taken

    def answer(self, request: Request, text: str) -> None:
        """The loop's answer to a request it drained; the I/O thread sends it (within 10 ms)."""
        request.reply = text

    def pending(self) -> int:
        """How many requests wait for the loop."""
        with self._lock:
            return len(self._queue)

    def clients(self) -> int:
        """How many connections are open: still sending their line, or waiting for their answer."""
        return len(self._readers) + len(self._waiting)

    def close(self) -> None:
        self._closed = True
        self._wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        for client in [*self._readers.values(), *self._waiting.values()]:
            client.sock.close()
        self._readers.clear()
        self._waiting.clear()
        self._release()

    def _release(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            try:
                if os.stat(self.path).st_ino == self._inode:  # ours: we hold the lock, nobody else bound there
                    os.unlink(self.path)
            except FileNotFoundError:
                pass
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()
        os.close(self._lock_fd)  # the lock goes with it; the lock file stays (unlinking it would race)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # full (the thread will wake anyway) or closed
            pass

    # -- the I/O thread ------------------------------------------------------------------------------------------
    def _listen(self) -> None:
        """Bind the socket afresh. Only the lock's holder gets here, so a file at the path is a stale one."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            listener.bind(self.path)
            os.chmod(self.path, 0o660)  # the service's user and group only
            listener.listen(64)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener, self._inode = listener, os.stat(self.path).st_ino
        self._sel.register(listener, selectors.EVENT_READ)
        self._checked_path = self._wall()

    def _run(self) -> None:
        backoff = 0.1
        while not self._closed:
            try:
                self._turn()
                backoff = 0.1
            except Exception:  # nothing here may end the thread: `stop` must keep working
                if self._closed:
                    return
                log.exception("control socket: unexpected error; its clients are dropped, the listener kept")
                time.sleep(backoff)  # this thread's, never the loop's; a lasting fault logs ever more slowly
                backoff = min(backoff * 2, 5.0)
                self._drop_all()

    def _drop_all(self) -> None:
        """After an error nobody foresaw: every connection goes (without an answer: a request already queued stays,
        so a stop still acts); the listener and the connections waiting in its backlog stay."""
        for client in [*self._readers.values(), *self._waiting.values()]:
            try:
                self._forget(client)
            except Exception:
                log.exception("control socket: dropping a client")
        self._readers.clear()
        self._waiting.clear()

    def _relisten(self) -> None:
        try:
            if self._listener is not None:
                self._sel.unregister(self._listener)
                self._listener.close()
                self._listener = None
            self._listen()
        except Exception:  # the next turn tries again
            log.exception("control socket: cannot listen on %s", self.path)

    def _turn(self) -> None:
        if self._listener is None:
            self._relisten()
        timeout = 0.01 if self._waiting else 0.5
        if self._readers:
            timeout = min(timeout, max(0.0, min(c.deadline for c in self._readers.values()) - self._wall()))
        for key, _ in self._sel.select(timeout):
            if key.fileobj is self._wake_r:
                try:
                    self._wake_r.recv(64)
                except BlockingIOError:
                    pass
            elif key.fileobj is self._listener:
                self._accept()
            else:
                client = self._readers.get(key.fd)
                if client is not None:
                    self._guarded(client, self._read)
        self._send_answers()
        self._expire()
        self._check_path()

    def _guarded(self, client: _Client, step: Callable[[_Client], None]) -> None:
        """One client's trouble is that client's: log it, drop it, serve the others."""
        try:
            step(client)
        except Exception:
            log.exception("control socket: a client's request failed; dropped")
            self._forget(client)

    def _accept(self) -> None:
        for _ in range(64):  # the listen queue's length; then the clients already in get their turn
            assert self._listener is not None
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            client = _Client(sock, self._wall() + self.client_deadline_s)
            self._guarded(client, self._admit)

    def _admit(self, client: _Client) -> None:
        sock = client.sock
        pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if not self._allow(uid, gid):
            log.warning("control socket: refused pid %d (uid %d, gid %d)", pid, uid, gid)
            self._say(
                client, f"refused: uid {uid} may not control the sleeve (root, the service's user, group legsleeve)"
            )
            return
        if len(self._readers) >= self.max_clients:
            oldest = next(iter(self._readers.values()))
            self._say(oldest, f"busy: {self.max_clients} clients are connecting at once; try again")
        self._readers[sock.fileno()] = client
        self._sel.register(sock, selectors.EVENT_READ)
        self._read(client)  # the line is usually there already

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(MAX_LINE + 1 - len(client.buf))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._forget(client)
            return
        client.buf += data
        line, newline, _ = client.buf.partition(b"\n")
        if newline or (not data and line.strip()):  # a line, or a last line closed by the client's shutdown
            self._submit(client, line.decode(errors="replace").strip())
        elif not data:
            self._forget(client)  # gone without a word
        elif len(client.buf) > MAX_LINE:
            self._say(client, f"error: a command is one line of at most {MAX_LINE} bytes")

    def _submit(self, client: _Client, line: str) -> None:
        self._sel.unregister(client.sock)
        del self._readers[client.sock.fileno()]
        request = Request(line, self._clock.now())
        client.request, client.deadline = request, self._wall() + self.reply_deadline_s
        self._waiting[client.sock.fileno()] = client
        with self._lock:
            if len(self._queue) >= self.max_queued:
                # Full. A stop still gets in (SAFE-12), in place of the newest request that is not a stop.
                victim = None
                if request.verb == "stop":
                    victim = next((r for r in reversed(self._queue) if r.verb != "stop"), None)
                if victim is None:
                    request.reply = (
                        "stop: already asked; the loop acts on it at its next tick"
                        if request.verb == "stop"
                        else f"busy: {self.max_queued} requests are waiting for the service; try again"
                    )
                    return
                self._queue.remove(victim)
                victim.reply = "refused: a stop went first; nothing was done"  # not "busy": no asking again
            self._queue.append(request)

    def _send_answers(self) -> None:
        for client in list(self._waiting.values()):
            assert client.request is not None
            if client.request.reply is not None:
                self._say(client, client.request.reply)

    def _expire(self) -> None:
        now = self._wall()
        for client in [c for c in self._readers.values() if now >= c.deadline]:
            self._say(
                client, f"error: no command within {self.client_deadline_s:g} s (start [PROFILE], stop, status, reset)"
            )
        for client in [c for c in self._waiting.values() if now >= c.deadline]:
            assert client.request is not None
            with self._lock:
                queued = client.request in self._queue
                if queued:
                    self._queue.remove(client.request)  # the loop will never see it
            if queued:
                self._say(
                    client,
                    f"error: the service did not take the command within {self.reply_deadline_s:g} s: nothing was done",
                )
            else:
                self._say(client, "error: the service took the command but did not answer")

    def _check_path(self) -> None:
        """Someone removed or replaced the socket file: bind it again (we hold the lock, the path is ours)."""
        now = self._wall()
        if now - self._checked_path < 1.0:
            return
        self._checked_path = now
        try:
            same = os.stat(self.path).st_ino == self._inode
        except FileNotFoundError:
            same = False
        if not same:
            log.warning("control socket %s was removed or replaced: listening afresh", self.path)
            self._relisten()

    def _say(self, client: _Client, text: str) -> None:
        """One line to the client, then the connection ends. Never waits: a client that does not read loses it."""
        try:
            client.sock.send((text + "\n").encode())
        except OSError:
            pass
        self._forget(client)

    def _forget(self, client: _Client) -> None:
        """Close a client. A request of its still in the queue stays there: a stop acts even if its client went."""
        fd = client.sock.fileno()
        if fd >= 0:
            if self._readers.pop(fd, None) is not None:
                self._sel.unregister(client.sock)
            self._waiting.pop(fd, None)
        client.sock.close()


def _take_lock(lock_path: Path, socket_path: str) -> int:
    """The single-instance lock: an flock held for the life of the service. Raises AlreadyServing."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660)
    except PermissionError:  # not the service's user: a read-only descriptor can still test the lock
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise AlreadyServing(
            f"another `legsleeve serve` (pid {holder}) holds {lock_path} and serves {socket_path}: "
            "stop it first (systemctl stop legsleeve)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # for the next one's message
    except OSError:
        pass  # read-only: the lock holds all the same
    return fd


def send_command(command: str, path: str | None = None, timeout_s: float = 5.0) -> str:
    """Client side of the control socket (`legsleeve start|stop|status|reset`): one line out, one line back.

    While the service is busy - a "busy" answer, or its listen queue full under a flood of other clients - it asks
    again until `timeout_s` has passed (then the last answer, or TimeoutError)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            reply: str | None = _ask(command, path or control_socket_path(), max(deadline - time.monotonic(), 0.1))
        except BlockingIOError:  # the listen queue stayed full for as long as we could wait
            reply = None
        if reply is not None and not reply.startswith("busy"):
            return reply
        if time.monotonic() + BUSY_RETRY_S >= deadline:
            if reply is None:
                raise TimeoutError(f"the control socket's listen queue stayed full for {timeout_s:g} s")
            return reply
        time.sleep(BUSY_RETRY_S)


def _ask(command: str, path: str, timeout_s: float) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
        # A blocking connect waits in the kernel for room in a full listen queue, for as long as SO_SNDTIMEO says;
        # with a Python timeout it would fail at once with EAGAIN (send_command then asks again).
        if not _connect_timeout(s, timeout_s):
            s.settimeout(timeout_s)
        s.connect(path)
        s.settimeout(timeout_s)
        try:
            s.sendall((command + "\n").encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before we spoke (a refusal, "busy"): the answer is there to read
        reply = read_reply(s)
    if not reply:
        raise ConnectionError("the service closed the connection without an answer")
    return reply


def read_reply(s: socket.socket) -> str:
    """The service's one-line answer on a connected client socket (within its timeout); "" if it closed first."""
    reply = b""
    while b"\n" not in reply:
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    return reply.decode(errors="replace").strip()


def _connect_timeout(s: socket.socket, timeout_s: float) -> bool:
    """SO_SNDTIMEO (a struct timeval: two longs, or two 64-bit fields where a 32-bit system has a 64-bit time_t)."""
    whole, part = divmod(timeout_s, 1.0)
    for layout in ("ll", "qq"):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack(layout, int(whole), int(part * 1e6)))
            return True
        except OSError:
            continue
    return False


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

    def _fatal(self, exc: Exception) -> None:
        """The service is going down on an error, the sleeve already safe: play one burst of the high alarm
        (`FATAL_ALARM_S`, under systemd's 2 s watchdog) so a person near the sleeve hears it, and put the reason in
        systemd's status. Nothing here may hide the exception."""
        message = f"internal error, the service stops: {type(exc).__name__}: {exc}; the sleeve was vented"
        try:
            clock = self.rig.clock
            end = clock.now() + FATAL_ALARM_S
            self._raise(clock.now(), Priority.HIGH, message)
            while clock.now() < end:
                self.annunciator.update(clock.now())
                clock.sleep(IDLE_TICK_S)
        except Exception:  # the original error is the one to report
            log.exception("could not sound the alarm")

    def _idle_tick(self, now: float) -> None:
        panel = self.rig.panel
        if panel.estop_pressed and self.status.state != "alarm":
            self._raise(now, Priority.MEDIUM, "E-stop pressed: release it when the sleeve is safe, then reset")
        if panel.button is not None:
            self._button(now, panel.button.is_pressed)
        self._serve_control(now)
        self.annunciator.update(now)

    def _serve_control(self, now: float) -> None:
        """Answer every request the control socket has handed over; never waits. A stop wins over a start that
        came with it, and over a press of the button this tick: nothing starts (SAFE-12)."""
        if self.control is None:
            return
        requests = self.control.drain()
        stop = any(r.verb == "stop" for r in requests)
        if stop:
            self._start_request = None
        for r in requests:
            if stop and r.verb == "start":
                reply = "refused: a stop came at the same time; nothing was started"
            else:
                reply = self.command(r.line, now)
            self.control.answer(r, reply)

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
                self.status.last = "stop asked: venting"  # until the session (or its self-test) has ended
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

            from legsleeve.app.sessionlog import prune_logs

            for old in prune_logs(self.log_dir):  # the oldest beyond 200 MiB, never the newest three (README)
                log.info("session log %s deleted (the logs keep 200 MiB)", old.name)
            log_path = self.log_dir / f"{wall.strftime('%Y%m%d-%H%M%S')}-{name}.csv"

        def poll() -> str | None:  # every tick of the self-test and of the session
            self._serve_control(self.rig.clock.now())
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
            priority = Priority.HIGH if o.cannot_vent is not None or o.unconfirmed else o.trip.priority
            alarm = o.cannot_vent or o.trip
            unconfirmed = (
                f"; vent not confirmed for {', '.join(o.unconfirmed)}: check by hand that every bladder has emptied"
                if o.unconfirmed
                else ""
            )
            self._raise(now(), priority, f"{alarm} - {alarm.hint}{unconfirmed}")
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
