"""Shared fixtures: the shipped config, a simulated rig with the real drivers, gpiozero's MockFactory, a supervisor
for the shipped build. And the order tests start in: the slow ones first, so the workers finish together."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from legsleeve.config.hardware import load_hardware
from legsleeve.hw.backends import open_sim
from legsleeve.safety.supervisor import Supervisor
from tests.helpers import CONFIG_DIR


def _compiled() -> bool:
    """Whether this run imports the compiled build (`make compiled`: PYTHONPATH=.compiled)."""
    import legsleeve.core.controller

    return not legsleeve.core.controller.__file__.endswith(".py")


COMPILED = _compiled()


def pytest_configure(config):
    """`make test` and `make test-pure` name the build they mean to test (LEGSLEEVE_EXPECT_BUILD): a run that
    imported another - a compiled copy missing, so the sources came in its place, or an inherited PYTHONPATH - stops."""
    import os

    expected = os.environ.get("LEGSLEEVE_EXPECT_BUILD")
    if expected and expected != ("compiled" if COMPILED else "pure"):
        import legsleeve.core.controller

        raise pytest.UsageError(
            f"LEGSLEEVE_EXPECT_BUILD={expected}, but this run imports {legsleeve.core.controller.__file__}"
        )


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pyproject.toml's addopts): a worker more than this process may use cores. Some tests wait on the
    wall clock rather than compute (a terminal follower paced at real time, subprocesses and sockets polled, a
    browser): with a worker per core, a core idles while one of them waits, about a tenth of the suite's time on two
    cores; a spare worker computes meanwhile."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + 1


def pytest_collection_modifyitems(config, items):
    """Tests marked `slow` (the fault matrix) first, in their own order, then the rest as collected: pytest-xdist
    hands tests out in this order, so the long ones start at once and short ones fill the gaps at the end.

    The virtual Pi's checks (marked `vpi`: a VM boot of minutes) run only when `-m` names them (`make vpi`)."""
    if "vpi" not in (config.getoption("markexpr") or ""):
        vpi = [item for item in items if item.get_closest_marker("vpi") is not None]
        if vpi:
            config.hook.pytest_deselected(items=vpi)
            items[:] = [item for item in items if item.get_closest_marker("vpi") is None]
    if COMPILED:  # tests that wrap a method of a compiled class run on the sources (`make test-pure`)
        skip = pytest.mark.skip(reason="wraps a method of a class the compiled build compiles: runs in make test-pure")
        for item in items:
            if item.get_closest_marker("pure_only") is not None:
                item.add_marker(skip)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: the order within each is kept


_fault_matrix: dict[str, str] = {}  # a test id -> its part of a matrix's summary (the red-team matrix's)
_fault_cells: dict[str, list[dict]] = {}  # a build's config dir -> the fault matrix's cells run on it, as plain data


def pytest_runtest_logreport(report):
    """Gather the matrices' summaries and cells as the reports come in (from the workers too: properties travel with
    them)."""
    for name, value in report.user_properties:
        if report.when != "call":
            continue
        if name == "fault_matrix":
            _fault_matrix[report.nodeid] = value
        elif name == "fault_matrix_cells":
            for cell in value:
                _fault_cells.setdefault(cell["config_dir"], []).append(cell)


def pytest_terminal_summary(terminalreporter):
    """The fault matrix's summary per fault kind on each build it ran on, then each red-team test's part."""
    if _fault_cells or _fault_matrix:
        terminalreporter.section("fault matrix")
    if _fault_cells:
        from pathlib import Path

        from tests.fault_matrix import EXPECTED, PHASES, Cell, summary

        for config_dir, plain in _fault_cells.items():
            cells = [Cell(**{**c, "config_dir": Path(c["config_dir"])}) for c in plain]
            cells.sort(key=lambda c: (list(EXPECTED).index(c.fault), c.profile, PHASES.index(c.phase)))
            terminalreporter.write_line(f"{config_dir}:")
            terminalreporter.write_line(summary(cells) + "\n")
    for nodeid in sorted(_fault_matrix):
        terminalreporter.write_line(_fault_matrix[nodeid] + "\n")


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
