"""The red-team matrix, in the suite: one test per family (sensor offset, drift, gain, lag, frozen; the stop button and
the E-stop), each running that family's cells on every shipped profile end to end and judging them on the simulator's
true pressures; every cell must pass. Each test's part of the summary is printed at the end of the run with the fault
matrix's (tests/conftest.py gathers them); a failing test prints its table of failing cells. And the matrix's own
machinery: a forked cell is the fresh run, and the time above a level is measured right."""

from __future__ import annotations

import itertools
import os
from dataclasses import asdict

import pytest

from tests.redteam import (
    FAMILIES,
    PROFILES,
    Cell,
    longest_above,
    reference,
    run_cell,
    run_family,
    run_profile,
    summary,
)


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_redteam(family, record_property):
    cpu: dict[str, float] = {}
    cells = run_family(family, cpu=cpu)
    text = summary(cells, cpu)
    record_property("fault_matrix", text)  # printed with the fault matrix's summaries at the end of the run
    fam = FAMILIES[family]
    assert len(cells) == len(PROFILES) * len(fam.faults) * len(fam.phases)
    assert sorted((c.profile, c.fault, c.value, c.phase) for c in cells) == sorted(
        (p, f, v, ph) for p, (f, v), ph in itertools.product(PROFILES, fam.faults, fam.phases)
    )
    failures = [c for c in cells if c.problems]
    assert not failures, text


@pytest.mark.skipif(not hasattr(os, "fork"), reason="cells run fresh where there is no fork")
def test_a_forked_cell_is_the_fresh_run():
    """The matrix forks each cell from a healthy trunk run just before its injection; that is a shortcut only if the
    child's run is the very run `open_sim(..., faults=[...])` gives. A sensor error in the fill and a press in the
    hold: every recorded figure the same either way (the simulation is deterministic)."""
    times = reference("gradient").times
    cells = [
        Cell("gradient", "gain", "sensor-gain", 0.6, "ankle", "fill", times["fill"]),
        Cell("gradient", "stop", "button", None, None, "hold", times["hold"]),
    ]
    forked = run_profile("gradient", cells)
    assert all(c.forked for c in forked)
    for a in forked:
        b = run_cell(next(c for c in cells if c.key() == a.key()))
        assert not b.forked
        mine, theirs = asdict(a), asdict(b)
        for k in ("cpu_s", "forked"):
            del mine[k], theirs[k]
        assert mine == theirs


@pytest.mark.parametrize(
    "samples, level, expected",
    [
        ([(0, 0.0), (1, 10.0), (2, 0.0)], 5.0, 1.0),  # up through 5 at 0.5 s, down through it at 1.5 s
        ([(0, 6.0), (1, 4.0)], 5.0, 0.5),  # above from the first sample
        ([(0, 0.0), (1, 10.0), (2, 10.0)], 5.0, 1.5),  # still above at the end
        ([(0, 0.0), (1, 10.0), (2, 0.0), (3, 10.0), (4, 10.0), (5, 0.0)], 5.0, 2.0),  # the longer of two stretches
        ([(0, 0.0), (1, 5.0), (2, 0.0)], 5.0, 0.0),  # at the level is not above it
        ([], 5.0, 0.0),
    ],
)
def test_longest_above(samples, level, expected):
    assert longest_above(samples, level) == pytest.approx(expected)
