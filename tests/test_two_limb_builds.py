"""Two legs on varied builds: the two-leg example with its simulated sleeves changed the way makers' parts differ
(tests/builds.py: pump 1.5 and 5 L/min, bladders half and double, seams ten times leakier, noisy sensors), each
running the alternating dvt profile and gradient (both legs at once) fault-free, and a leak, a stuck inlet and a
pulled-off hose on the left leg - all judged on the simulator's true pressures (tests/build_matrix.py's and
tests/fault_matrix.py's judges). Each build calibrated first (`legsleeve calibrate --sim`, ~12 s for eight zones), as
the build matrix's are: uncalibrated, the noisy sensors' 0.3 mmHg read as a leak against the reference's 0.08."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.build_matrix import FaultFree, calibrate, run_fault_free, run_with_cells
from tests.builds import write_build
from tests.fault_matrix import Cell
from tests.helpers import CONFIG_DIR

TWO_LEGS = CONFIG_DIR / "examples" / "two-legs"
BUILDS = ("pump1.5", "pump5", "small-bladders", "big-bladders", "leaky", "noisy-sensors")
FAULTS = (("leak", "hold"), ("inlet-stuck-open", "fill"), ("disconnected", "rest"))


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("two-leg-builds")
    return {name: write_build(name, out, source=TWO_LEGS) for name in BUILDS}


def _calibrated(builds: dict[str, Path], name: str) -> Path:
    config_dir = builds[name]
    if not (config_dir / "calibration.yaml").is_file():
        calibrate(config_dir)
    return config_dir


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILDS)
def test_two_legs_on_a_varied_build_run_clean_and_catch_faults(builds, name):
    """~30 s a build."""
    config_dir = _calibrated(builds, name)
    run = run_fault_free(name, config_dir, "dvt")
    assert run.trip is None and not run.problems, ("dvt", run.trip, run.problems)

    def cells_of(run: FaultFree) -> list[Cell]:
        """Planned from gradient's fault-free run, as the build matrix's cells are (none if that run failed)."""
        if run.trip is not None or run.problems:
            return []
        cells = []
        for fault, phase in FAULTS:
            at_s, zone = run.injections[phase]
            cells.append(Cell("gradient", phase, fault, zone, round(at_s, 2), config_dir))
        return cells

    # gradient's cells forked from its fault-free run (tests/build_matrix.py run_with_cells)
    run, cells, _ = run_with_cells(name, config_dir, "gradient", cells_of)
    assert run.trip is None and not run.problems, ("gradient", run.trip, run.problems)
    assert [(c.fault, c.phase) for c in cells] == list(FAULTS)
    for cell in cells:
        assert cell.zone.startswith("left.")
        assert not cell.problems, (cell.fault, cell.phase, cell.problems, cell.reason)
