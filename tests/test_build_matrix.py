"""The build-variation matrix's harness (tests/build_matrix.py): the draw, its coverage of the ranges and of every
fault kind x profile x phase, the builds' config dirs, the verdict on the truth, the calibration hook. The matrix itself
(every build's sessions and cells) is run by `python -m tests.build_matrix`, not here."""

from __future__ import annotations

import dataclasses
import itertools
import math
import sys

import pytest

from legsleeve.config.hardware import load_hardware
from tests.build_matrix import (
    CALIBRATE,
    CORNERS,
    MATRIX,
    N_DRAWN,
    RANGES,
    REFERENCE,
    BuildResult,
    CalibrationFailed,
    FaultFree,
    assignment,
    calibrate,
    draw,
    judge_truth,
    parameters,
    plan_cells,
    run_fault_free,
    summary,
    trip_cycle,
)
from tests.builds import BUILDS, write_build
from tests.fault_matrix import EXPECTED, PHASES, ZONE_FAULTS, reference
from tests.helpers import CONFIG_DIR, PROFILES


def test_the_draw_is_the_same_every_time_and_changes_with_its_seed():
    assert draw() == draw()
    assert draw(seed=1) != draw()
    assert len(MATRIX) == len(CORNERS) + N_DRAWN + len(BUILDS) == 24
    assert set(BUILDS) <= set(MATRIX) and set(CORNERS) <= set(MATRIX)


def test_the_ranges_run_from_the_shipped_reference_build():
    sim = load_hardware(CONFIG_DIR).simulation
    zones = list(sim.zones.values())
    assert REFERENCE == {
        "pump_free_flow_lpm": sim.pump_free_flow_lpm,
        "bladders": 1.0,
        "exhaust_lpm_per_mmhg": sim.exhaust_lpm_per_mmhg,
        "inlet_lpm_per_mmhg": sim.inlet_lpm_per_mmhg,
        "leak": 1.0,
        "manifold_volume_l": sim.manifold_volume_l,
        "sensor_noise_mmhg": sim.sensor_noise_mmhg,
    }
    assert all(z.leak_lpm_per_mmhg == zones[0].leak_lpm_per_mmhg for z in zones)
    for dim, (low, high) in RANGES.items():
        assert low < high and low <= REFERENCE[dim] <= high, dim
    # the ranges: slower exhaust, smaller inlet, leakier seams, bigger manifold, noisier sensors only
    assert RANGES["exhaust_lpm_per_mmhg"] == (sim.exhaust_lpm_per_mmhg / 2.5, sim.exhaust_lpm_per_mmhg)
    assert RANGES["inlet_lpm_per_mmhg"] == (sim.inlet_lpm_per_mmhg / 2, sim.inlet_lpm_per_mmhg)
    assert RANGES["manifold_volume_l"] == pytest.approx((sim.manifold_volume_l, 3 * sim.manifold_volume_l))
    assert RANGES["leak"] == (1.0, 10.0) and RANGES["bladders"] == (0.5, 2.0)
    assert RANGES["pump_free_flow_lpm"] == (1.5, 5.0) and RANGES["sensor_noise_mmhg"] == (0.08, 0.3)


def test_the_draw_is_a_latin_hypercube_over_the_ranges():
    points = list(draw().values())
    assert len(points) == N_DRAWN
    for dim, (low, high) in RANGES.items():
        # where each value sits in its range, geometrically: sorted, the i-th lies in the i-th of N_DRAWN strata
        u = sorted(math.log(p[dim] / low) / math.log(high / low) for p in points)
        for i, x in enumerate(u):
            assert i / N_DRAWN - 1e-3 <= x <= (i + 1) / N_DRAWN + 1e-3, (dim, i, x)


def test_the_matrix_reaches_both_ends_of_every_range_and_the_pump_bladder_corners():
    values = [parameters(build) for build in MATRIX.values()]
    for dim, (low, high) in RANGES.items():
        assert min(v[dim] for v in values) == low and max(v[dim] for v in values) == high, dim
    pump, bladders = RANGES["pump_free_flow_lpm"], RANGES["bladders"]
    weakest_biggest = [v for v in values if (v["pump_free_flow_lpm"], v["bladders"]) == (pump[0], bladders[1])]
    strongest_smallest = [v for v in values if (v["pump_free_flow_lpm"], v["bladders"]) == (pump[1], bladders[0])]
    assert weakest_biggest and strongest_smallest
    # the weak corner is the slow end of everything; the strong one keeps the reference's valves and seams
    assert weakest_biggest[0] == {
        "pump_free_flow_lpm": pump[0],
        "bladders": bladders[1],
        "exhaust_lpm_per_mmhg": RANGES["exhaust_lpm_per_mmhg"][0],
        "inlet_lpm_per_mmhg": RANGES["inlet_lpm_per_mmhg"][0],
        "leak": RANGES["leak"][1],
        "manifold_volume_l": RANGES["manifold_volume_l"][1],
        "sensor_noise_mmhg": RANGES["sensor_noise_mmhg"][1],
    }
    strong = strongest_smallest[0]
    assert (strong["exhaust_lpm_per_mmhg"], strong["inlet_lpm_per_mmhg"], strong["leak"]) == (
        REFERENCE["exhaust_lpm_per_mmhg"],
        REFERENCE["inlet_lpm_per_mmhg"],
        REFERENCE["leak"],
    )


def test_every_fault_kind_meets_every_profile_in_every_phase_once_and_each_build_injects_every_kind():
    seen = [(fault, *where) for name in MATRIX for fault, where in assignment(name).items()]
    assert sorted(seen) == sorted(itertools.product(EXPECTED, PROFILES, PHASES))
    for name in MATRIX:
        where = assignment(name)
        assert list(where) == list(EXPECTED)
        assert len(set(where.values())) == len(EXPECTED)  # no two of a build's cells share a profile and phase
        assert len({profile for profile, _ in where.values()}) == len(PROFILES), name


@pytest.mark.parametrize("name", list(MATRIX))
def test_a_build_loads_and_differs_from_the_reference_only_in_its_simulation(tmp_path, name):
    reference = load_hardware(CONFIG_DIR)
    config_dir = write_build(name, tmp_path, MATRIX[name])
    build = load_hardware(config_dir)
    raised = build.simulation.relief_mmhg != reference.simulation.relief_mmhg  # as check-config asked (builds.py)
    for f in dataclasses.fields(reference):
        if f.name == "warnings" and raised:
            # a relief valve raised for SAFE-4's pump check is warned as far above its setting: only that warning
            extra = [w for w in build.warnings if w not in reference.warnings]
            assert all("simulation.relief_mmhg" in w for w in extra), extra
        elif f.name not in ("path", "simulation"):
            assert getattr(build, f.name) == getattr(reference, f.name), f.name
    assert build.simulation != reference.simulation
    for shipped in (CONFIG_DIR / "profiles").iterdir():
        assert (config_dir / "profiles" / shipped.name).read_text() == shipped.read_text()
    assert not (config_dir / "calibration.yaml").exists()
    values = parameters(MATRIX[name])
    sim, ref = build.simulation, reference.simulation
    for dim in RANGES:
        if dim not in ("bladders", "leak"):
            assert getattr(sim, dim) == pytest.approx(values[dim]), dim
    for zone, ref_zone in zip(sim.zones.values(), ref.zones.values(), strict=True):
        assert zone.volume_l == pytest.approx(values["bladders"] * ref_zone.volume_l)
        assert zone.compliance_l_per_mmhg == pytest.approx(values["bladders"] * ref_zone.compliance_l_per_mmhg)
        assert zone.leak_lpm_per_mmhg == pytest.approx(values["leak"] * ref_zone.leak_lpm_per_mmhg)
    changed = {f.name for f in dataclasses.fields(sim) if getattr(sim, f.name) != getattr(ref, f.name)}
    assert changed <= set(RANGES) | {"zones", "relief_mmhg"}
    if raised:  # only ever up, and only where the plan's manifold leaves SAFE-4's pump check too little room
        assert sim.relief_mmhg > ref.relief_mmhg


def test_the_truth_is_judged_on_its_peak_and_its_vent():
    vented = [(0.0, [0.0, 0.0]), (10.0, [94.9, 30.0]), (20.0, [30.0, 2.0]), (29.0, [4.9, 4.0])]
    assert judge_truth(vented, 20.0, max_mmhg=90, vent_timeout_s=9.0) == (94.9, 9.0, [])
    peak, _, problems = judge_truth([(0.0, [95.2, 0.0]), (1.0, [0.0, 0.0])], 1.0, max_mmhg=90, vent_timeout_s=15)
    assert peak == 95.2 and problems == ["a zone reached 95.2 mmHg (limit 95)"]
    slow = vented[:-1] + [(29.5, [5.0, 0.0])]
    assert judge_truth(slow, 20.0, max_mmhg=90, vent_timeout_s=9.0)[1:] == (
        None,
        ["not vented within 9 s of the end (or the trip)"],
    )
    late = vented[:-1] + [(29.5, [4.0, 0.0])]
    assert judge_truth(late, 20.0, max_mmhg=90, vent_timeout_s=9.0)[2] == [
        "not vented within 9 s of the end (or the trip)"
    ]


def test_a_fault_free_run_of_the_shipped_build_passes_and_plans_as_the_fault_matrix_does():
    ff = run_fault_free("shipped", CONFIG_DIR, "gentle")
    assert ff.problems == [] and ff.trip is None and ff.unplanned == ""
    assert ff.peak_mmhg > 20  # it squeezed
    assert ff.injections == reference("gentle").injections()


def test_cells_are_planned_where_the_assignment_says_and_a_phase_never_reached_is_not_run(tmp_path):
    name = "lhs-01"
    where = assignment(name)
    sound = {
        p: FaultFree(name, p, injections={ph: (10.0 + i, "calf") for i, ph in enumerate(PHASES)}) for p in PROFILES
    }
    cells, not_run = plan_cells(name, tmp_path, sound)
    assert not not_run and [c.fault for c in cells] == list(EXPECTED)
    for c in cells:
        assert (c.profile, c.phase) == where[c.fault] and c.config_dir == tmp_path
        assert c.at_s == 10.0 + PHASES.index(c.phase)
        assert c.zone == ("calf" if c.fault in ZONE_FAULTS else None)
    profile, phase = where["leak"]
    cut = dict(sound)
    cut[profile] = dataclasses.replace(
        sound[profile],
        injections={ph: v for ph, v in sound[profile].injections.items() if ph != phase},
        unplanned=f"no {phase} in the fault-free run, which tripped (SAFE-7 at 30.0 s) before",
    )
    cells, not_run = plan_cells(name, tmp_path, cut)
    assert [(x.fault, x.profile, x.phase) for x in not_run] == [
        (f, p, ph) for f, (p, ph) in where.items() if (p, ph) == (profile, phase)
    ]
    assert "leak" not in {c.fault for c in cells} and "SAFE-7 at 30.0 s" in not_run[0].why


def test_a_false_trip_is_reported_with_the_cycle_it_came_in(tmp_path):
    rows = [{"cycle": "0", "fault": ""}, {"cycle": "1", "fault": ""}, {"cycle": "1", "fault": "SAFE-8 thigh: x"}]
    assert trip_cycle(rows) == 2 and trip_cycle(rows[:2]) is None
    late = FaultFree("lhs-01", "pulse", trip="SAFE-8 thigh: x", rule="SAFE-8", trip_cycle=2, problems=["tripped"])
    early = FaultFree("lhs-01", "gentle", trip="SAFE-8 thigh: y", rule="SAFE-8", trip_cycle=1, problems=["tripped"])
    text = summary([BuildResult("lhs-01", tmp_path, fault_free=[early, late])])
    assert "gentle SAFE-8 (cycle 1), pulse SAFE-8 (cycle 2)" in text
    assert "false trips in 2 of 2 fault-free sessions (SAFE-8 2), 1 of them after the first cycle" in text


def test_the_calibration_hook_runs_legsleeve_calibrate_and_a_failure_fails_the_build_clearly(tmp_path):
    assert CALIBRATE == (sys.executable, "-m", "legsleeve", "calibrate", "--sim", "--config")
    with pytest.raises(CalibrationFailed, match=r"exited 3: .*no pump here"):
        calibrate(tmp_path, (sys.executable, "-c", "import sys; print('no pump here'); sys.exit(3)"))
    with pytest.raises(CalibrationFailed, match="exited 0 but wrote no calibration.yaml"):
        calibrate(tmp_path, (sys.executable, "-c", "import sys; assert sys.argv[1]"))
    writes = "import pathlib, sys; (pathlib.Path(sys.argv[1]) / 'calibration.yaml').write_text('{}')"
    calibrate(tmp_path, (sys.executable, "-c", writes))  # nothing raised
    assert (tmp_path / "calibration.yaml").is_file()
    failed = BuildResult("lhs-01", tmp_path, calibrated=True, calibration_failed="`-m legsleeve ...` exited 2: no")
    text = summary([failed])
    assert "each calibrated first (legsleeve calibrate --sim)" in text and "| calibration failed |" in text
    assert "0/1 builds clean; 1 calibration failed" in text
    assert "- lhs-01: `-m legsleeve ...` exited 2: no" in text
    assert not failed.ok
