"""The session log as evidence: each row reaches the kernel as it is written (a SIGKILL loses nothing logged), and
the file is flushed to the disk at a trip and at close (SAFE-13)."""

from __future__ import annotations

import math
import os

from legsleeve.app.builder import build_session
from legsleeve.app.sessionlog import SessionLog, read_log
from legsleeve.config.profiles import load_profile
from legsleeve.core.commands import FILL, HOLD, SAFE, VENT, Commands
from legsleeve.core.readings import Reading, Readings
from legsleeve.hw.backends import open_sim
from legsleeve.sim.faults import FaultSpec
from tests.helpers import CONFIG_DIR


def _readings(t_s: float, n: int) -> Readings:
    return Readings(t_s, tuple(Reading(1.0 + i, t_s) for i in range(n)), None)


def test_each_row_is_in_the_file_before_close(tmp_path):
    """Read through another handle, as a process after a SIGKILL would: the header and every row are there."""
    path = tmp_path / "s.csv"
    names = ("ankle", "calf")
    log = SessionLog(path, names, has_manifold=False)
    try:
        for i in range(3):
            log.row(i * 0.02, "fill ankle", SAFE, _readings(i * 0.02, 2), [40.0, None], 0)
            lines = path.read_text().splitlines()  # another handle; no flush, no close
            assert len(lines) == 2 + i and lines[-1].startswith(f"{i * 0.02:.3f},fill ankle,")
    finally:
        log.close()
    assert [r["t_s"] for r in read_log(path)] == ["0.000", "0.020", "0.040"]
    log.close()  # twice: harmless


def test_a_row_is_written_cell_for_cell_with_or_without_every_reading(tmp_path):
    """The bytes of a row, pinned: a row with every zone read (one %-format of the log's template) and a row with a
    zone unread and no manifold reading (its cells empty), with a fault that needs quoting."""
    path = tmp_path / "s.csv"
    log = SessionLog(path, ("ankle", "calf"), has_manifold=True)
    targets = (45.0, None)
    try:
        read = Readings(1.25, (Reading(12.5, 1.25), Reading(7.0, 1.25)), Reading(20.0, 1.25))
        log.row(1.25, "fill ankle", Commands(0.5, (FILL, HOLD)), read, targets, 2)
        unread = Readings(2.0, (Reading(-0.0, 2.0), Reading(math.nan, 2.0, "stale")), None)
        log.row(2.0, "tripped", Commands(0.0, (VENT, VENT)), unread, targets, 3, 'SAFE-9 calf: x, "y"')
    finally:
        log.close()
    assert path.read_text().splitlines()[1:] == [
        "1.250,fill ankle,0.500,12.50,1,0,45.00,7.00,0,0,,20.00,2,",
        '2.000,tripped,0.000,-0.00,0,1,45.00,,0,1,,,3,"SAFE-9 calf: x, ""y"""',
    ]


def test_the_log_is_synced_at_the_trip_tick_and_at_close(cfg, tmp_path, monkeypatch):
    """Each fsync of the log is noted: how many rows it covered, and what the file held on the disk's side just
    after. (Seen through os.fsync rather than a subclass: a compiled SessionLog cannot be subclassed here.)"""
    path = tmp_path / "s.csv"
    syncs: list[tuple[int, str]] = []
    log: SessionLog | None = None
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        if log is not None and log._fd == fd:
            syncs.append((log.rows, path.read_text().splitlines()[-1]))

    monkeypatch.setattr(os, "fsync", fsync)
    rig = open_sim(cfg, seed=1, faults=[FaultSpec("sensor-dead", "calf", 20.0)])
    try:
        rig.zero_sensors()
        log = SessionLog(path, cfg.zone_names, cfg.has_manifold_sensor)
        runner = build_session(rig, load_profile(CONFIG_DIR, "gradient", cfg), cycles=2, session_log=log)
        outcome = runner.run()
        log.close()
    finally:
        rig.close()
    assert outcome.trip is not None and outcome.trip.zone == "calf"
    rows = read_log(path)
    first_trip = next(i for i, r in enumerate(rows) if r["state"] == "tripped")
    (at_trip, trip_line), (at_close, _) = syncs  # one at the trip, one at close: not one a tick
    assert at_trip == first_trip + 1 and ",tripped," in trip_line and "SAFE-9 calf" in trip_line
    assert at_close == len(rows) and math.isclose(float(rows[-1]["pump_duty"]), 0.0)


def test_prune_keeps_the_newest_within_the_budget_and_never_fewer_than_three(tmp_path):

    from legsleeve.app.sessionlog import prune_logs

    sizes = [300, 300, 300, 300, 300]  # bytes, oldest first
    for k, size in enumerate(sizes):
        path = tmp_path / f"2026010{k}-gentle.csv"
        path.write_bytes(b"x" * size)
        os.utime(path, (1000 + k, 1000 + k))
    (tmp_path / "notes.txt").write_text("not a log")
    budget_mib = 700 / (1024 * 1024)  # room for two of them
    deleted = prune_logs(tmp_path, keep_mib=budget_mib)
    assert sorted(p.name for p in deleted) == ["20260100-gentle.csv", "20260101-gentle.csv"]  # the newest three stay
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20260102-gentle.csv",
        "20260103-gentle.csv",
        "20260104-gentle.csv",
        "notes.txt",
    ]
    assert prune_logs(tmp_path, keep_mib=1.0) == []  # within budget: nothing goes
    assert prune_logs(tmp_path / "missing") == []
