"""The sleeve's status for the web page: one subscription to the control socket, kept by a thread of its own, whose
latest frame every browser's poll is answered from. However many pages are open, the service sees one subscriber;
and a page's request never waits on the service (the loop itself never waits on any client: docs/control-protocol.md).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from legsleeve.app.control import Subscription, request

log = logging.getLogger(__name__)

HZ = 4.0  # frames a second asked of the service; the page polls at 2 Hz
QUIET_S = 2.0  # no frame for this long: the page says the service is silent
RETRY_S = 1.0  # after a failed connection, wait this long before the next


@dataclass(frozen=True)
class Latest:
    """What the page is told: the last status (or None), its age in s, and the connection's state in words."""

    status: dict[str, Any] | None
    age_s: float | None
    service: str  # "ok", "silent" (connected, no frame for QUIET_S), "down" (no connection)
    error: str


class Live:
    """Keeps one subscription open (reconnecting after RETRY_S), and the service's `hello` answer."""

    def __init__(self, socket_path: str, *, hz: float = HZ):
        self.socket_path = socket_path
        self.hz = hz
        self._lock = threading.Lock()
        self._status: dict[str, Any] | None = None
        self._at = 0.0
        self._connected = False
        self._error = "connecting to the service"
        self._hello: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="legsleeve-web-live", daemon=True)

    def start(self) -> Live:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()

    def latest(self) -> Latest:
        with self._lock:
            status, at, connected, error = self._status, self._at, self._connected, self._error
        age = time.monotonic() - at if status is not None else None
        if not connected:
            return Latest(status, age, "down", error)
        if age is None or age > QUIET_S:
            return Latest(status, age, "silent", "the service sends nothing: its loop may be stuck")
        return Latest(status, age, "ok", "")

    def hello(self, *, refresh: bool = False) -> dict[str, Any] | None:
        """The service's `hello` answer (asked again when `refresh`, or when none was had yet)."""
        if refresh or self._hello is None:
            try:
                reply = request("hello", self.socket_path, timeout_s=3.0)
            except OSError as exc:
                log.debug("hello: %s", exc)
                return self._hello
            if reply.get("ok"):
                self._hello = reply
        return self._hello

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with Subscription(self.socket_path, hz=self.hz, timeout_s=3.0) as sub:
                    if not sub.ack.get("ok"):
                        self._down(str(sub.ack.get("text", "the service refused the subscription")))
                    else:
                        self.hello(refresh=True)  # the service may have restarted with other profiles
                        self._follow(sub)
            except (FileNotFoundError, ConnectionRefusedError):
                self._down(f"the service is not running (no control socket at {self.socket_path})")
            except PermissionError as exc:
                self._down(f"control socket {self.socket_path}: {exc}: the web user must be in the group legsleeve")
            except (OSError, ValueError) as exc:  # closed, reset, timed out, or not JSON
                self._down(f"control socket {self.socket_path}: {exc}")
            self._stop.wait(RETRY_S)

    def _follow(self, sub: Subscription) -> None:
        with self._lock:
            self._connected, self._error = True, ""
        for frame in sub.frames(quiet_s=QUIET_S / 2):
            if self._stop.is_set():
                return
            if frame is not None:
                with self._lock:
                    self._status, self._at = frame["status"], time.monotonic()
        self._down("the service closed the connection")

    def _down(self, why: str) -> None:
        with self._lock:
            self._connected, self._error = False, why
