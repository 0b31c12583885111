"""SAFE-6, occlusion: pressure moving far faster than a bladder fills or empties means the sensor sees only a
hose (kinked, blocked or pulled off)."""

from __future__ import annotations

from collections.abc import Sequence

from legsleeve.core.commands import FILL, HOLD, VENT, Commands, ZoneAction
from legsleeve.core.readings import Readings
from legsleeve.safety.trip import Priority, Trip


class Occlusion:
    """SAFE-6: a zone whose pressure moves far faster than a bladder fills or empties is not connected to its
    bladder: the hose is kinked or blocked between the sensor tee and the bladder (the sensor then sees only the
    hose), or pulled off it. Filling, that is a rise; venting, a fall - and then the bladder beyond the kink may
    still hold its pressure, so it is raised as "cannot vent".

    It sees the median of three (a spike is SAFE-9's business), which shows a step one tick late; a hose fills
    within a tick and the controller closes the inlet on the next, so a fill or a vent is judged for GRACE_S after
    the zone goes to hold."""

    raw = False
    rule = "SAFE-6"
    SPAN_S = 0.1
    GRACE_S = 0.06
    MIN_CHANGE_MMHG = 5.0  # a real change, not noise or the manifold's few millilitres arriving

    def __init__(self, names: Sequence[str], max_rate_mmhg_s: float):
        self.names = list(names)
        self.max_rate = max_rate_mmhg_s
        self.reset()

    def reset(self) -> None:
        """Forget everything seen: the monitor is as new (SAFE-13's explicit reset)."""
        n = len(self.names)
        self._history: list[list[tuple[float, float]]] = [[] for _ in range(n)]
        self._kind: list[ZoneAction] = [VENT] * n  # what is being judged: FILL, VENT, or HOLD (nothing)
        self._active_until = [0.0] * n
        self._filled_unread_s = [0.0] * n  # time filled since its last reading (a one-sensor build's zone, unread)
        self._filling = [False] * n  # its inlet open since the last check
        self._last_check_s: float | None = None

    def check(self, now_s: float, readings: Readings, applied: Commands) -> Trip | None:
        dt_s = 0.0 if self._last_check_s is None else max(now_s - self._last_check_s, 0.0)
        self._last_check_s = now_s
        zones = readings.zones
        actions = applied.actions(len(zones))
        kinds, active_until = self._kind, self._active_until
        filling, filled_unread_s = self._filling, self._filled_unread_s
        for i, r in enumerate(zones):
            history = self._history[i]
            action = actions[i]
            if filling[i]:
                filled_unread_s[i] += dt_s  # its inlet was open since the last check
            if action is not HOLD:
                active_until[i] = now_s + self.GRACE_S
                kind = action
            else:
                kind = kinds[i] if now_s <= active_until[i] else HOLD
            if kind is not kinds[i]:
                kinds[i] = kind
                last = history[-1] if history else None
                history.clear()
                if last is not None:
                    # the pressure this action starts from, at its start: where the last reading is older (a
                    # one-sensor build's peek), it is the same held, higher vented, so it is restamped to the
                    # action's start: a rise or fall counted from it is no more than the true one. A zone filled,
                    # unread, since that reading (a fill paused for another zone's peek, then resumed) can have
                    # risen only while its inlet was open: restamped back by that time, not to now
                    t0 = last[0] if now_s - last[0] <= self.SPAN_S else max(last[0], now_s - filled_unread_s[i])
                    history.append((t0, last[1]))
            filling[i] = action is FILL
            if r.fault is not None:  # not r.ok
                continue
            filled_unread_s[i] = 0.0
            history.append((r.t_s, r.mmhg))
            while len(history) > 2 and r.t_s - history[1][0] >= self.SPAN_S:
                history.pop(0)
            if kind is HOLD:
                continue
            t0, p0 = history[0]
            change = r.mmhg - p0
            if r.t_s <= t0 or abs(change) < self.MIN_CHANGE_MMHG:
                continue
            rate = change / (r.t_s - t0)
            name = self.names[i]
            if kind is FILL and rate > self.max_rate:
                return Trip(
                    self.rule,
                    name,
                    r.mmhg,
                    now_s,
                    f"rose {rate:.0f} mmHg/s while filling, far faster than a bladder fills "
                    f"({self.max_rate:g} mmHg/s at most): the sensor sees only the hose",
                    f"the hose of {name} is kinked, blocked or pulled off between the valve block and the "
                    "bladder: straighten or refit it",
                    priority=Priority.MEDIUM,
                )
            if kind is VENT and -rate > self.max_rate:
                return Trip(
                    self.rule,
                    name,
                    r.mmhg,
                    now_s,
                    f"cannot vent {name}: it fell {-rate:.0f} mmHg/s, far faster than a bladder empties - "
                    "the bladder may still hold its pressure beyond a kinked or blocked hose",
                    f"release {name} by hand now, then straighten or refit its hose",
                    cannot_vent=True,
                )
        return None
