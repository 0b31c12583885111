"""The fault matrix, in the suite: one test per fault kind, each running that fault's cells (every shipped profile x
injection in fill, hold, vent and rest) end to end; every cell must pass. Each test's part of the summary is printed
at the end of the run (tests/conftest.py gathers them); nothing is written into the checkout."""

from __future__ import annotations

import itertools

import pytest

from tests.fault_matrix import EXPECTED, PHASES, PROFILES, run_fault, summary


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(EXPECTED))
def test_fault_matrix(fault, record_property):
    cells = run_fault(fault)
    text = summary(cells)
    record_property("fault_matrix", text)  # printed with the others at the end of the run, whichever worker ran it
    assert len(cells) == len(PROFILES) * len(PHASES)
    assert sorted((c.profile, c.phase) for c in cells) == sorted(itertools.product(PROFILES, PHASES))
    assert {c.fault for c in cells} == {fault}
    failures = [c for c in cells if c.problems]
    assert not failures, text
