"""The fault matrix, in the suite: one test per profile of a build, each running every fault kind injected at each of
its phases (fill, hold, vent, rest) end to end (`run_profile_cells`: its cells forked from checkpoints of its healthy
run, tests/fault_matrix.py); every cell must pass. The summary per fault kind, over all of a build's cells, is printed
at the end of the run (tests/conftest.py gathers the cells); nothing is written into the checkout."""

from __future__ import annotations

import dataclasses
import os

import pytest

from legsleeve.app.selftest import SelfTestFailed
from tests.fault_matrix import (
    EXPECTED,
    PHASES,
    PROFILES,
    Cell,
    _reference,
    plan,
    run_branches,
    run_cell,
    run_followed,
    run_planned,
    run_profile_cells,
)
from tests.helpers import CONFIG_DIR

TWO_LEGS = CONFIG_DIR / "examples" / "two-legs"
TWO_LEG_PROFILES = ("dvt", "gradient")  # alternating with refill-adaptive rest; both legs at once
ONE_SENSOR = CONFIG_DIR / "examples" / "one-sensor"
ONE_SENSOR_PROFILES = ("gradient", "dvt")  # the reference sequence; the alternating one with its refill measures


def _run(config_dir, profile, record_property) -> list[Cell]:
    cells = run_profile_cells(profile, config_dir)
    # every cell, for the summary per fault kind at the end of the run, whichever worker ran it
    record_property("fault_matrix_cells", [_plain(c) for c in cells])
    for phase in PHASES:
        mine = [c for c in cells if c.phase == phase]
        assert sorted(c.fault for c in mine) == sorted(EXPECTED), f"{profile} never reached its {phase}"
    assert {(c.profile, c.phase) for c in cells} == {(profile, phase) for phase in PHASES}
    return cells


def _plain(cell: Cell) -> dict:
    """A cell as plain data (what pytest-xdist carries from a worker)."""
    return {k: (str(v) if k == "config_dir" else v) for k, v in dataclasses.asdict(cell).items()}


def _failures(cells: list[Cell]) -> str:
    return "\n".join(f"- {c.profile}/{c.phase} {c.spec()}: {'; '.join(c.problems)}" for c in cells if c.problems)


@pytest.mark.slow
@pytest.mark.parametrize("profile", PROFILES)
def test_fault_matrix(profile, record_property):
    cells = _run(CONFIG_DIR, profile, record_property)
    assert not _failures(cells), _failures(cells)


@pytest.mark.slow
@pytest.mark.parametrize("profile", TWO_LEG_PROFILES)
def test_fault_matrix_two_legs(profile, record_property):
    """The same fault kinds on the two-leg example build: the alternating dvt profile (each leg in turn, held at
    10 mmHg for the refill measure meanwhile) and gradient (both legs at once), faults on the left leg; judged on
    every bladder of both legs."""
    cells = _run(TWO_LEGS, profile, record_property)
    assert all(c.zone is None or c.zone.startswith("left.") for c in cells)
    assert not _failures(cells), _failures(cells)


@pytest.mark.slow
@pytest.mark.parametrize("profile", ONE_SENSOR_PROFILES)
def test_fault_matrix_one_sensor(profile, record_property):
    """The same fault kinds on the one-sensor example: every zone read through the manifold at its peeks, the
    sensor faults the one sensor's. Judged on every bladder, against what such a build can see
    (`tests.fault_matrix.EXPECTED_SHARED`, docs/one-sensor.md)."""
    cells = _run(ONE_SENSOR, profile, record_property)
    assert all(c.shared for c in cells)
    assert all(c.zone == "manifold" for c in cells if c.fault.startswith("sensor-"))
    assert not _failures(cells), _failures(cells)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="cells run fresh where there is no fork")
def test_a_forked_cell_is_the_fresh_run():
    """The matrix forks each cell from a fault-free trunk run just before its injection; that is a shortcut only if
    the child's run is the very run `open_sim(..., faults=[...])` gives. A leak in the fill, a dead sensor in the
    hold and a stuck exhaust at the vent (each child's session log a copy of the trunk's so far): every recorded
    figure the same either way."""
    ref = _reference("gradient", CONFIG_DIR)
    planned = {(c.fault, c.phase): c for c in plan({"gradient": ref})}
    cells = [planned[("leak", "fill")], planned[("sensor-dead", "hold")], planned[("exhaust-stuck-closed", "vent")]]
    forked = run_branches(cells)
    for a, cell in zip(forked, cells, strict=True):
        b = run_cell(dataclasses.replace(cell, problems=[]))
        assert dataclasses.asdict(a) == dataclasses.asdict(b)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="cells run fresh where there is no fork")
def test_cells_forked_from_the_fault_free_runs_checkpoints_are_the_fresh_runs():
    """`run_planned` (the build matrix's: the fault-free run is its cells' trunk) forks each cell from a checkpoint the
    fault-free run left before its injection, and the checkpoints change nothing of the fault-free run itself: its
    outcome, log and truth are `run_followed`'s, and each cell is the fresh run - a leak in the fill, a dead sensor in
    the hold, a stuck exhaust at the vent, a pulled-off hose in the rest."""
    ref = _reference("gradient", CONFIG_DIR)
    planned = {(c.fault, c.phase): c for c in plan({"gradient": ref})}
    keys = [("leak", "fill"), ("sensor-dead", "hold"), ("exhaust-stuck-closed", "vent"), ("disconnected", "rest")]
    cells = [planned[k] for k in keys]
    seen = []

    def planner(cfg, outcome, rows, truth):
        seen.append(rows)
        return [dataclasses.replace(c, problems=[]) for c in cells]

    cfg, outcome, rows, truth, forked = run_planned(CONFIG_DIR, "gradient", planner)
    _, fresh_outcome, fresh_rows, fresh_truth = run_followed(CONFIG_DIR, "gradient")
    assert seen == [rows] and (outcome, rows, truth) == (fresh_outcome, fresh_rows, fresh_truth)
    for a, cell in zip(forked, cells, strict=True):
        b = run_cell(dataclasses.replace(cell, problems=[]))
        assert dataclasses.asdict(a) == dataclasses.asdict(b)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="cells run fresh where there is no fork")
def test_a_forked_cell_that_raises_raises_in_the_trunk():
    """A fault that stops the self-test (before the session log opens) raises from a fresh cell; forked, the child
    reports it and the trunk raises it, naming the cell - never a child returning into the test."""
    cell = dataclasses.replace(
        next(c for c in plan({"gradient": _reference("gradient", CONFIG_DIR)}) if c.fault == "pump-stuck-on"),
        at_s=5.0,  # the self-test's valve check
    )
    with pytest.raises(SelfTestFailed):
        run_cell(dataclasses.replace(cell, problems=[]))
    with pytest.raises(RuntimeError, match=r"pump-stuck-on@5\.00 raised SelfTestFailed"):
        run_branches([cell])
