"""Time, injected: a monotonic wall clock for the sleeve and a virtual clock for simulation and tests.

Control code never reads the time itself; it is handed `now_s` by whoever owns a clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale (the origin means nothing)."""

    def sleep(self, seconds: float) -> None:
        """Let `seconds` pass."""


class MonotonicClock:
    """Real time from `time.monotonic` (never `time.time`, which steps with NTP)."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """Simulated time that moves only when told to.

    Listeners are called with the new time after every advance; the pneumatic model integrates itself there,
    so whatever the pins say during an interval is what the air feels during that interval.
    """

    def __init__(self, start_s: float = 0.0):
        self._now_s = float(start_s)
        self._listeners: list[Callable[[float], None]] = []

    def now(self) -> float:
        return self._now_s

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"time cannot run backwards ({seconds} s)")
        self._now_s += seconds
        for listener in self._listeners:
            listener(self._now_s)

    def on_advance(self, listener: Callable[[float], None]) -> None:
        self._listeners.append(listener)


class RealTimePacer:
    """A VirtualClock listener that holds simulated time back to the wall clock, for `--realtime` and
    `serve --sim`: the simulated rig then behaves at the pace a person can watch."""

    def __init__(self, clock: VirtualClock, slack_s: float = 0.005):
        self._t0 = clock.now()
        self._w0 = time.monotonic()
        self._slack = slack_s
        clock.on_advance(self)

    def __call__(self, t_s: float) -> None:
        ahead = (t_s - self._t0) - (time.monotonic() - self._w0)
        if ahead > self._slack:
            time.sleep(ahead)
