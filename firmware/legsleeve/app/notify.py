"""SAFE-11 liveness: systemd's notify protocol (READY=1, WATCHDOG=1, STATUS=...) over $NOTIFY_SOCKET.

With no NOTIFY_SOCKET (a PC, a test, a shell) every call does nothing. The loop calls `watchdog()` after each tick
it completes; a loop that stalls stops pinging, systemd's WatchdogSec kills the service, and ExecStopPost vents.
Pings are sent at most every `min_interval_s` (the loop ticks 50 times a second; systemd needs one per second).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from legsleeve.core.clock import Clock, MonotonicClock

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None, clock: Clock | None = None, min_interval_s: float = 0.1):
        env = os.environ if env is None else env
        self._clock = clock or MonotonicClock()
        self._min_interval_s = min_interval_s
        self._last_ping = -float("inf")
        self._warned = False
        self._sock: socket.socket | None = None
        address = env.get("NOTIFY_SOCKET", "")
        if address:
            self._address = "\0" + address[1:] if address.startswith("@") else address  # abstract namespace
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, message: str) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendto(message.encode(), self._address)
        except OSError as exc:  # systemd gone: nothing to prove liveness to; say so once
            if not self._warned:
                log.warning("sd_notify %s failed: %s", message.split("=")[0], exc)
                self._warned = True

    def ready(self, status: str = "") -> None:
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def watchdog(self) -> None:
        now = self._clock.now()
        if now - self._last_ping >= self._min_interval_s:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
