"""Shared fixtures: the shipped config, a simulated rig with the real drivers, gpiozero's MockFactory, a supervisor
for the shipped build. And the order tests start in: the slow ones first, so the workers finish together."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from legsleeve.config.hardware import load_hardware
from legsleeve.hw.backends import open_sim
from legsleeve.safety.supervisor import Supervisor
from tests.helpers import CONFIG_DIR


def pytest_collection_modifyitems(config, items):
    """Tests marked `slow` (the fault matrix) first, in their own order, then the rest as collected: pytest-xdist
    hands tests out in this order, so the long ones start at once and short ones fill the gaps at the end.

    The virtual Pi's checks (marked `vpi`: a VM boot of minutes) run only when `-m` names them (`make vpi`)."""
    if "vpi" not in (config.getoption("markexpr") or ""):
        vpi = [item for item in items if item.get_closest_marker("vpi") is not None]
        if vpi:
            config.hook.pytest_deselected(items=vpi)
            items[:] = [item for item in items if item.get_closest_marker("vpi") is None]
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: the order within each is kept


_fault_matrix: dict[str, str] = {}  # a fault kind's test id -> its part of the fault matrix's summary


def pytest_runtest_logreport(report):
    """Gather the fault matrix's summaries as the reports come in (from the workers too: properties travel with
    them)."""
    for name, text in report.user_properties:
        if name == "fault_matrix" and report.when == "call":
            _fault_matrix[report.nodeid] = text


def pytest_terminal_summary(terminalreporter):
    """Each fault kind's part of the fault matrix, in the matrix's own order."""
    if _fault_matrix:
        terminalreporter.section("fault matrix")
        for nodeid in sorted(_fault_matrix, key=_fault_order):
            terminalreporter.write_line(_fault_matrix[nodeid] + "\n")


def _fault_order(nodeid):
    from tests.fault_matrix import EXPECTED

    kinds = list(EXPECTED)
    fault = nodeid.rpartition("[")[2].partition("]")[0]
    return kinds.index(fault) if fault in kinds else len(kinds)


@pytest.fixture(scope="session")
def cfg():
    return load_hardware(CONFIG_DIR)


@pytest.fixture
def mock_factory():
    """gpiozero's own mock pins, PWM-capable, reset after the test."""
    factory = MockFactory(pin_class=MockPWMPin)
    yield factory
    factory.reset()
    factory.close()


@pytest.fixture
def sim_rig(cfg):
    """A zeroed simulated rig (seed 1); closed (driven safe) after the test."""
    rig = open_sim(cfg, seed=1)
    rig.zero_sensors()
    yield rig
    rig.close()


@pytest.fixture
def sup(cfg):
    """A supervisor for the shipped build on the gradient's targets (trip levels 55, 50, 45, 40 mmHg)."""
    return Supervisor(cfg, [45.0, 40.0, 35.0, 30.0])
