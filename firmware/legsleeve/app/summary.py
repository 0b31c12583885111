"""What a session achieved, per zone: target, peak, plateau, time to target, top-ups, fault."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from legsleeve.core.controller import FILLING, HOLDING, Status
from legsleeve.core.plan import Profile
from legsleeve.core.readings import Readings


@dataclass
class ZoneStats:
    name: str
    target_mmhg: float
    peak_mmhg: float = -math.inf
    worst_overshoot_mmhg: float = -math.inf  # reading - target while filling or holding
    plateau_sum: float = 0.0  # readings while holding at the nominal target
    plateau_n: int = 0
    hold_errors_mmhg: list[float] = field(default_factory=list)  # each hold's mean (reading - target)
    _episode: list[float] = field(default_factory=list)

    @property
    def plateau_mmhg(self) -> float:
        return self.plateau_sum / self.plateau_n if self.plateau_n else math.nan

    @property
    def worst_plateau_error_mmhg(self) -> float:
        return max(self.hold_errors_mmhg, key=abs, default=math.nan)


class SessionStats:
    """Fed each tick with the readings and the controller's status; `table()` once the session is over."""

    def __init__(self, profile: Profile):
        self.zones = [ZoneStats(n, t) for n, t in zip(profile.zone_names, profile.targets_mmhg, strict=False)]
        self.status: Status | None = None  # the controller's at the end (finish): fill times and top-ups

    def update(self, readings: Readings, status: Status) -> None:
        # (FILLING, HOLDING: the controller's module names for the phases, cheaper than `Phase.HOLDING` every tick)
        for zs, z, r in zip(self.zones, status.zones, readings.zones, strict=False):
            phase = z.phase
            holding = phase is HOLDING
            if not holding and zs._episode:
                zs.hold_errors_mmhg.append(sum(zs._episode) / len(zs._episode))
                zs._episode = []
            if r.fault is not None:  # not r.ok
                continue
            zs.peak_mmhg = max(zs.peak_mmhg, r.mmhg)
            if holding or phase is FILLING:  # z.phase in (FILLING, HOLDING)
                zs.worst_overshoot_mmhg = max(zs.worst_overshoot_mmhg, r.mmhg - z.target_mmhg)
            if holding:
                zs._episode.append(r.mmhg - z.target_mmhg)
                if abs(z.target_mmhg - zs.target_mmhg) < 0.01:
                    zs.plateau_sum += r.mmhg
                    zs.plateau_n += 1

    def finish(self, status: Status) -> None:
        self.status = status
        for zs in self.zones:
            if zs._episode:
                zs.hold_errors_mmhg.append(sum(zs._episode) / len(zs._episode))
                zs._episode = []

    def table(self, faults: dict[str, str] | None = None) -> str:
        faults = faults or {}
        rows = [
            ("zone", "target", "peak", "plateau", "worst hold", "to target", "top-ups", "fault"),
            ("", "mmHg", "mmHg", "mmHg", "err mmHg", "s (mean)", "", ""),
        ]
        zones = self.status.zones if self.status is not None else ()
        for i, zs in enumerate(self.zones):
            fills = zones[i].fill_times_s if i < len(zones) else ()
            topups = zones[i].topups if i < len(zones) else 0
            rows.append(
                (
                    zs.name,
                    f"{zs.target_mmhg:.0f}",
                    _f(zs.peak_mmhg),
                    _f(zs.plateau_mmhg),
                    _f(zs.worst_plateau_error_mmhg, signed=True),
                    f"{sum(fills) / len(fills):.1f}" if fills else "-",
                    str(topups),
                    faults.get(zs.name, "-"),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows)


def _f(v: float, signed: bool = False) -> str:
    if not math.isfinite(v):
        return "-"
    return f"{v:+.1f}" if signed else f"{v:.1f}"
