"""Alarms a person notices: buzzer and LED patterns by priority, on the injected clock.

High (latched: over-pressure, cannot vent, a runaway pump): fast triple bursts and a fast-blinking LED. Medium
(leaks, sensor faults): three slow beeps every eight seconds, LED blinking once a second. Low (session end, session
limit): one beep, LED steady for a few seconds. A silenced alarm stops the buzzer - never the LED - for at most
`silence_s` (≤ 120 s), then sounds again. Without an alarm the LED shows the state: a short blink every two seconds
when idle, steady while a session runs. The patterns are computed from the clock each tick, so they run the same
on the sleeve and on the simulated rig's virtual time (gpiozero's blink threads run on wall time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from legsleeve.safety.trip import Priority

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pattern:
    period_s: float | None  # None: play once
    buzzer: tuple[tuple[float, float], ...]  # (on, off) offsets within the period
    led: tuple[tuple[float, float], ...]
    led_period_s: float

    def buzzer_on(self, t: float) -> bool:
        if self.period_s is None:
            return any(a <= t < b for a, b in self.buzzer)
        t %= self.period_s
        return any(a <= t < b for a, b in self.buzzer)

    def led_on(self, t: float) -> bool:
        t %= self.led_period_s
        return any(a <= t < b for a, b in self.led)


PATTERNS = {
    Priority.HIGH: Pattern(
        3.0, ((0.0, 0.15), (0.25, 0.4), (0.5, 0.65), (1.0, 1.15), (1.25, 1.4)), ((0.0, 0.125),), 0.25
    ),
    Priority.MEDIUM: Pattern(8.0, ((0.0, 0.2), (0.4, 0.6), (0.8, 1.0)), ((0.0, 0.5),), 1.0),
    Priority.LOW: Pattern(None, ((0.0, 0.3),), ((0.0, 5.0),), 1e9),
}
IDLE_LED = ((0.0, 0.1),), 2.0
LOW_ALARM_S = 5.0


class Annunciator:
    """Drives the panel's buzzer and LED. Call `update(now_s)` every tick."""

    def __init__(self, panel, *, silence_s: float):
        self._buzzer = panel.buzzer
        self._led = panel.led
        self.silence_s = silence_s
        self.priority: Priority | None = None
        self.message = ""
        self._since = 0.0
        self._silenced_until = -1.0
        self.running = False
        self._state: tuple[bool | None, bool | None] = (None, None)  # (buzzer, LED) as last driven; None: not yet

    def raise_alarm(self, now_s: float, priority: Priority, message: str) -> None:
        """A higher (or equal) priority replaces what sounds now; a lower one never masks it."""
        if self.priority is not None and priority.value < self.priority.value:
            return
        self.priority, self.message, self._since = priority, message, now_s
        self._silenced_until = -1.0
        level = {Priority.HIGH: logging.CRITICAL, Priority.MEDIUM: logging.WARNING, Priority.LOW: logging.INFO}[
            priority
        ]
        log.log(level, "%s (%s): %s", "ALARM" if priority != Priority.LOW else "notice", priority, message)

    def silence(self, now_s: float) -> None:
        if self.priority is not None:
            self._silenced_until = now_s + self.silence_s
            log.info("alarm silenced for %.0f s", self.silence_s)

    def silenced(self, now_s: float) -> bool:
        """Whether the buzzer is silenced now (the alarm still stands, the LED still shows it)."""
        return self.priority is not None and now_s < self._silenced_until

    def acknowledge(self) -> None:
        """A person has dealt with it: the alarm ends (the supervisor's latch is reset separately)."""
        self.priority, self.message = None, ""

    def update(self, now_s: float) -> None:
        if self.priority == Priority.LOW and now_s - self._since > LOW_ALARM_S:
            self.acknowledge()  # a low alarm is news, not a latch: it plays once and makes way for the state LED
        if self.priority is not None:
            pattern = PATTERNS[self.priority]
            t = now_s - self._since
            buzzer = pattern.buzzer_on(t) and now_s >= self._silenced_until
            led = pattern.led_on(t)
        else:
            buzzer = False
            on, period = IDLE_LED
            led = True if self.running else any(a <= now_s % period < b for a, b in on)
        if (buzzer, led) != self._state:
            self._state = (buzzer, led)
            if self._buzzer is not None:
                self._buzzer.value = buzzer
            if self._led is not None:
                self._led.value = led

    def off(self) -> None:
        self._state = (False, False)
        for dev in (self._buzzer, self._led):
            if dev is not None:
                dev.value = False
