"""Clients of the control socket for the tests: `legsleeve CMD` in a thread, a client that says nothing, a wait for
the I/O thread to get somewhere (a bound against a hang, never a timing assertion); and a service on the simulated rig
whose loop's ticks and requests are recorded."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import threading
import time

import pytest

from legsleeve.app.control import ControlSocket, send_command
from legsleeve.app.control import read_reply as service_reply
from legsleeve.app.service import Service
from legsleeve.hw.backends import open_sim
from tests.helpers import CONFIG_DIR


def wait_for(condition, what: str, timeout_s: float = 5.0) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.001)


class Ask:
    """`send_command` in a thread, as `legsleeve CMD` from a terminal would be; `round_trip_s` is its wall time."""

    def __init__(self, path: str, line: str, timeout_s: float = 5.0):
        self.reply: str | None = None
        self.error: BaseException | None = None
        self.round_trip_s: float | None = None
        self._thread = threading.Thread(target=self._run, args=(path, line, timeout_s), daemon=True)
        self._thread.start()

    def _run(self, path, line, timeout_s) -> None:
        t0 = time.perf_counter()
        try:
            self.reply = send_command(line, path, timeout_s=timeout_s)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc
        self.round_trip_s = time.perf_counter() - t0

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self, timeout_s: float = 10.0) -> str:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the client is still waiting"
        if self.error is not None:
            raise self.error
        assert self.reply is not None
        return self.reply


def silent(path: str) -> socket.socket:
    """A client that connects and says nothing."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def read_reply(s: socket.socket, timeout_s: float = 5.0) -> str:
    s.settimeout(timeout_s)
    return service_reply(s)


class SocketCalls:
    """Every call the current thread makes into a socket or a selector's poll object (C calls, seen by
    `sys.setprofile`, which watches this thread only): proof that a loop never touches a client."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _profile(self, frame, event, arg) -> None:
        if event == "c_call" and isinstance(getattr(arg, "__self__", None), (socket.socket, select.epoll)):
            self.calls.append(arg.__qualname__)

    def __enter__(self) -> SocketCalls:
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc) -> None:
        sys.setprofile(None)


class Ticks:
    """A notifier stand-in: each liveness ping (one per completed tick: idle, self-test and session) on the virtual
    clock and on the wall clock, the status lines, and a hook run in the loop's thread at each tick."""

    def __init__(self, clock):
        self.clock = clock
        self.virtual: list[float] = []
        self.wall: list[float] = []
        self.statuses: list[str] = []
        self.hook = None

    def ready(self, status: str = "") -> None:
        self.statuses.append(status)

    def status(self, text: str) -> None:
        self.statuses.append(text)

    def stopping(self) -> None:
        pass

    def watchdog(self) -> None:
        self.virtual.append(self.clock.now())
        self.wall.append(time.perf_counter())
        if self.hook is not None:
            self.hook()

    def wall_per_tick_s(self) -> list[float]:
        return [b - a for a, b in zip(self.wall, self.wall[1:], strict=False)]


class Recorded(ControlSocket):
    """The control socket, stamping requests on the rig's clock and noting for each request the loop takes: its line,
    when it arrived and when the loop took it (virtual seconds)."""

    def __init__(self, path, clock, **kw):
        super().__init__(path, clock=clock, **kw)
        self.rig_clock = clock
        self.taken: list[tuple[str, float, float]] = []

    def drain(self):
        requests = super().drain()
        self.taken += [(r.line, r.received_s, self.rig_clock.now()) for r in requests]
        return requests

    def when(self, line: str) -> tuple[float, float]:
        (found,) = [(received, taken) for ln, received, taken in self.taken if ln == line]
        return found


def served(cfg, tmp_path, faults=(), config_dir=CONFIG_DIR, **socket_kw):
    rig = open_sim(cfg, seed=3, faults=faults)
    sock = Recorded(str(tmp_path / "control.sock"), rig.clock, **socket_kw)
    ticks = Ticks(rig.clock)
    svc = Service(rig, config_dir, notifier=ticks, control=sock, log_dir=tmp_path)
    svc.load_profiles()
    return rig, sock, ticks, svc


def queued(sock, *lines: str) -> list[Ask]:
    """Clients asking, one after the other, each in the loop's queue before the next asks (the loop takes them in
    order) - or answered before it got there (the preparer answers a start whose profile has no file, or one that
    does not load)."""
    asks = []
    n = sock.pending()
    for line in lines:
        ask = Ask(sock.path, line)
        asks.append(ask)
        wait_for(lambda n=n, ask=ask: sock.pending() == n + 1 or ask.done, f"{line!r} in the queue or answered")
        n = sock.pending()
    return asks


FLOOD = r"""
import json, os, socket, sys, threading
os.nice(19)  # load the socket, not the machine: other tests run beside this one
path, clients, copies = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])

def client(payload, read):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(path)
        if payload:
            s.sendall(payload)
        if read:
            s.recv(100)
    except OSError:
        pass
    finally:
        s.close()

def forever(*args):
    while True:
        client(*args)

for payload, read in clients:
    for _ in range(copies):
        threading.Thread(target=forever, args=(payload.encode("latin-1"), read), daemon=True).start()
print("flooding", flush=True)
threading.Event().wait()  # until the test kills it
"""


def flood(path: str, clients: list[tuple[bytes, bool]], copies: int = 1) -> subprocess.Popen:
    """Another process flooding the socket at `path`: `copies` threads for each (payload, read its answer?), each
    connecting, sending, hanging up, again and again, until the test kills it."""
    spec = json.dumps([[payload.decode("latin-1"), read] for payload, read in clients])
    proc = subprocess.Popen([sys.executable, "-c", FLOOD, path, spec, str(copies)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "flooding"
    return proc
