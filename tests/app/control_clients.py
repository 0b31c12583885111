"""Clients of the control socket for the tests: `legsleeve CMD` in a thread, a client that says nothing, and a wait
for the I/O thread to get somewhere (a bound against a hang, never a timing assertion)."""

from __future__ import annotations

import select
import socket
import sys
import threading
import time

import pytest

from legsleeve.app.service import read_reply as service_reply
from legsleeve.app.service import send_command


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
