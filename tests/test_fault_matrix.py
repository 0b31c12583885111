"""The fault matrix, in the suite: one test per fault kind, each running that fault's cells (every shipped profile x
injection in fill, hold, vent and rest) end to end; every cell must pass. Each test's part of the summary is printed
at the end of the run (tests/conftest.py gathers them); nothing is written into the checkout."""

from __future__ import annotations

import itertools

import pytest

from tests.fault_matrix import EXPECTED, PHASES, PROFILES, run_fault, summary
from tests.helpers import CONFIG_DIR


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


TWO_LEGS = CONFIG_DIR / "examples" / "two-legs"
TWO_LEG_PROFILES = ("dvt", "gradient")  # alternating with refill-adaptive rest; both legs at once


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(EXPECTED))
def test_fault_matrix_two_legs(fault, record_property):
    """The same fault kinds on the two-leg example build: the alternating dvt profile (each leg in turn, held at
    10 mmHg for the refill measure meanwhile) and gradient (both legs at once), faults on the left leg; judged on
    every bladder of both legs."""
    cells = run_fault(fault, TWO_LEGS, TWO_LEG_PROFILES)
    text = summary(cells)
    record_property("fault_matrix", text)
    assert sorted((c.profile, c.phase) for c in cells) == sorted(itertools.product(TWO_LEG_PROFILES, PHASES))
    assert all(c.zone is None or c.zone.startswith("left.") for c in cells)
    failures = [c for c in cells if c.problems]
    assert not failures, text


ONE_SENSOR = CONFIG_DIR / "examples" / "one-sensor"
ONE_SENSOR_PROFILES = ("gradient", "dvt")  # the reference sequence; the alternating one with its refill measures


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(EXPECTED))
def test_fault_matrix_one_sensor(fault, record_property):
    """The same fault kinds on the one-sensor example: every zone read through the manifold at its peeks, the
    sensor faults the one sensor's. Judged on every bladder, against what such a build can see
    (`tests.fault_matrix.EXPECTED_SHARED`, docs/one-sensor.md)."""
    cells = run_fault(fault, ONE_SENSOR, ONE_SENSOR_PROFILES)
    text = summary(cells)
    record_property("fault_matrix", text)
    assert sorted((c.profile, c.phase) for c in cells) == sorted(itertools.product(ONE_SENSOR_PROFILES, PHASES))
    assert all(c.shared for c in cells)
    assert all(c.zone == "manifold" for c in cells if fault.startswith("sensor-"))
    failures = [c for c in cells if c.problems]
    assert not failures, text
