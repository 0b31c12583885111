"""The session log: one CSV row per tick, readable by a person, a spreadsheet and `legsleeve plot`.

Columns: t_s, state, pump_duty, then per zone <zone>_mmhg, <zone>_inlet, <zone>_exhaust (1 = open) and
<zone>_target_mmhg (empty while vented), then manifold_mmhg (with a manifold sensor), cycle, and fault (empty
unless tripped). Pressures are gauge mmHg; a missing reading is an empty cell.

The file is the evidence of what the sleeve did, so it is written a row at a time: each row is one `os.write` to the
file's descriptor, with no buffer in this process (a SIGKILL or a watchdog kill loses nothing the process had
logged), and flushed to the disk itself (`sync`, an fsync) at a trip and at close, so a power cut right after a trip
keeps the trip's rows.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from legsleeve.core.commands import FILL, VENT, Commands
from legsleeve.core.readings import Readings


def header(zone_names: Sequence[str], has_manifold: bool) -> list[str]:
    cols = ["t_s", "state", "pump_duty"]
    for z in zone_names:
        cols += [f"{z}_mmhg", f"{z}_inlet", f"{z}_exhaust", f"{z}_target_mmhg"]
    if has_manifold:
        cols.append("manifold_mmhg")
    return cols + ["cycle", "fault"]


def _p(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.2f}"


_VALVES = {FILL: ",1,0,", VENT: ",0,1,"}  # an action's inlet and exhaust cells (1 = open), between its neighbours'
_HELD = ",0,0,"  # HOLD: both closed


class SessionLog:
    def __init__(self, path: Path, zone_names: Sequence[str], has_manifold: bool):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # a descriptor, not a file object: each row is one write to the kernel, nothing held back in a buffer here
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        self._n = len(zone_names)
        self._manifold = has_manifold
        self._write(",".join(header(zone_names, has_manifold)) + "\n")
        # a row with every zone read, as one %-format (each float as `f"{x:.2f}"` writes it: the same digits; the
        # cycle as `f"{cycle}"`, %s)
        self._template = "%.3f,%s,%.3f" + ",%.2f%s%s" * self._n + (",%s" if has_manifold else "") + ",%s,%s\n"
        self.rows = 0
        self._targets: tuple[float | None, ...] | None = None  # the last targets given as a tuple...
        self._target_cells: list[str] = []  # ...and their cells (a tuple cannot change: they are reused while it is)

    def _write(self, text: str) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path}: the session log is closed")
        data = text.encode("utf-8")
        while data:  # (a regular file takes it whole; a short write is finished rather than lost)
            written = os.write(self._fd, data)
            if written == 0:
                raise OSError(f"{self.path}: the session log takes no more")
            data = data[written:]

    def row(
        self,
        t_s: float,
        state: str,
        cmd: Commands,
        readings: Readings,
        targets: Sequence[float | None],
        cycle: int,
        fault: str = "",
    ) -> None:
        # (each zone's four cells as one string, and the targets' cells kept while the runner hands in the same tuple
        # - it rebuilds it only when the controller's status changes: this runs every tick)
        if targets is not self._targets:
            self._target_cells = [_p(targets[i]) for i in range(self._n)]
            self._targets = targets if isinstance(targets, tuple) else None
        target_cells = self._target_cells
        zones = readings.zones
        actions = cmd.actions(self._n)
        valves = _VALVES.get
        cells: list[object] = [t_s, state, cmd.pump_duty]
        every_zone_read = True
        for i in range(self._n):
            mmhg = zones[i].mmhg
            every_zone_read = every_zone_read and mmhg == mmhg  # NaN is the only value unequal to itself
            cells += (mmhg, valves(actions[i], _HELD), target_cells[i])
        if self._manifold:
            cells.append(_p(readings.manifold.mmhg if readings.manifold else None))
        cells += (cycle, _quote(fault) if fault else "")
        if every_zone_read:
            self._write(self._template % tuple(cells))
        else:  # a zone without a reading: its cell empty
            line = f"{t_s:.3f},{state},{cmd.pump_duty:.3f}"
            for i in range(self._n):
                line += f",{_p(zones[i].mmhg)}{valves(actions[i], _HELD)}{target_cells[i]}"
            self._write(line + "".join(f",{c}" for c in cells[3 + 3 * self._n :]) + "\n")  # manifold, cycle, fault
        self.rows += 1

    def sync(self) -> None:
        """Every row written so far onto the disk (fsync; nothing is buffered here): the runner calls it at a trip."""
        if self._fd is None:
            raise ValueError(f"{self.path}: the session log is closed")
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            self.sync()
        finally:
            fd, self._fd = self._fd, None
            os.close(fd)


def _quote(text: str) -> str:
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""').replace("\n", " ") + '"'
    return text


KEEP_MIB = 200.0  # the service keeps at most this much of session logs (~13 session-hours at ~15 MB each)...
KEEP_NEWEST = 3  # ...but never fewer than the newest three, whatever their size (a trip's evidence is the newest)


def prune_logs(directory: Path, *, keep_mib: float = KEEP_MIB, keep_newest: int = KEEP_NEWEST) -> list[Path]:
    """The service's policy for its session logs on the Pi (called as each session starts): newest first, keep logs
    while their total stays within `keep_mib`, and always the newest `keep_newest`; delete the rest, oldest first.
    Only `*.csv` files directly in `directory` are considered. Returns what was deleted; a file that cannot be
    deleted is left (and not counted against the others)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    logs = []
    for path in directory.glob("*.csv"):
        try:
            st = path.stat()
        except OSError:
            continue
        logs.append((st.st_mtime, path.name, path, st.st_size))
    logs.sort(reverse=True)  # newest first (the name, a timestamp, breaks ties)
    budget = keep_mib * 1024 * 1024
    total = 0
    deleted = []
    for k, (_, _, path, size) in enumerate(logs):
        total += size
        if k < keep_newest or total <= budget:
            continue
        try:
            path.unlink()
        except OSError:
            continue
        deleted.append(path)
    return deleted


def read_log(path: Path) -> list[dict[str, str]]:
    import csv

    with Path(path).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))
