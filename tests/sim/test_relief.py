"""The mechanical relief valve: its setting follows limits.max_mmhg (hardware/BOM.md), the simulated rig uses it, and
it is what bounds the leg when every sensor lies alike - the one failure no software rule can see."""

from __future__ import annotations

import dataclasses

import pytest

from legsleeve.app.session import run_session
from legsleeve.config.hardware import load_hardware
from legsleeve.config.profiles import load_profile
from legsleeve.core.limits import ABS_MAX_MMHG, RELIEF_ABOVE_MAX_MMHG, relief_mmhg
from legsleeve.hw.backends import open_sim
from legsleeve.sim.faults import FaultSpec
from tests.helpers import CONFIG_DIR

RELIEF_LINE = "  # relief_mmhg: the mechanical relief valve on the manifold."


def _variant(tmp_path, *replacements: tuple[str, str]):
    text = (CONFIG_DIR / "hardware.yaml").read_text()
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new, 1)
    (tmp_path / "hardware.yaml").write_text(text)
    return load_hardware(tmp_path)


def test_the_relief_setting_follows_max_mmhg(cfg, tmp_path):
    assert cfg.simulation.relief_mmhg == cfg.limits.max_mmhg + RELIEF_ABOVE_MAX_MMHG == 110.0
    lower = _variant(tmp_path, ("  max_mmhg: 90", "  max_mmhg: 70"))
    assert lower.simulation.relief_mmhg == 90.0 and lower.warnings == ()
    assert relief_mmhg(ABS_MAX_MMHG) == ABS_MAX_MMHG  # never above the code's ceiling


def test_a_relief_valve_given_in_the_config_is_used_and_judged(tmp_path):
    given = _variant(tmp_path, (RELIEF_LINE, "  relief_mmhg: 104\n" + RELIEF_LINE))
    assert given.simulation.relief_mmhg == 104.0 and given.warnings == ()
    far = _variant(tmp_path, (RELIEF_LINE, "  relief_mmhg: 150\n" + RELIEF_LINE))
    assert far.simulation.relief_mmhg == 150.0
    assert any("simulation.relief_mmhg" in w and "set it just above max_mmhg (110" in w for w in far.warnings)
    low = _variant(tmp_path, (RELIEF_LINE, "  relief_mmhg: 95\n" + RELIEF_LINE))
    assert any("simulation.relief_mmhg" in w and "too near limits.max_mmhg" in w for w in low.warnings)


def _lying_session(cfg, faults):
    """The pulse profile (80 mmHg at the ankle) with `faults`; the true peak of every bladder and of the manifold."""
    rig = open_sim(cfg, seed=1, faults=faults)
    peaks = {"bladder": 0.0, "manifold": 0.0}
    read = rig.read

    def read_and_watch():
        readings = read()
        world = rig.world
        peaks["bladder"] = max(peaks["bladder"], *(world.physics.bladder_mmhg(i) for i in range(len(cfg.zones))))
        peaks["manifold"] = max(peaks["manifold"], world.manifold_mmhg())
        return readings

    rig.read = read_and_watch
    try:
        outcome = run_session(rig, load_profile(CONFIG_DIR, "pulse", cfg), cycles=1).outcome
    finally:
        rig.close()
    return peaks, outcome


# Both the ankle's sensor and the manifold's read 0.6x the truth from the start: they agree, so SAFE-15 sees nothing,
# and the controller fills until the ankle reads its 80 mmHg. A fault shared by both sensors is the documented limit
# of SAFE-15 (docs/safety-requirements.md); only the relief valve bounds it.
BOTH_LIE = (FaultSpec("sensor-gain", "ankle", 0.0, 0.6), FaultSpec("sensor-gain", "manifold", 0.0, 0.6))


@pytest.mark.parametrize(
    "relief, bound_mmhg, trip",
    [
        (None, 110.0, "SAFE-5"),  # the config's own (max_mmhg + 20): the fill stalls on the valve and SAFE-5 trips
        (150.0, 150.0, None),  # the old fixed setting, for comparison: 133 mmHg reached the leg (80 / 0.6)
    ],
)
def test_the_relief_valve_bounds_sensors_that_lie_alike(cfg, relief, bound_mmhg, trip):
    if relief is not None:
        cfg = dataclasses.replace(cfg, simulation=dataclasses.replace(cfg.simulation, relief_mmhg=relief))
    peaks, outcome = _lying_session(cfg, BOTH_LIE)
    assert peaks["manifold"] < bound_mmhg + 3.0  # the valve passes the pump's flow a couple of mmHg above its setting
    assert peaks["bladder"] < bound_mmhg
    if trip is None:  # the old setting let the truth reach what the lie asked for
        assert peaks["bladder"] > 0.95 * 80.0 / 0.6
    else:  # measured: 108.2 mmHg on the bladder, 111.5 in the manifold, then SAFE-5 on the ankle
        assert peaks["bladder"] > cfg.limits.max_mmhg  # the relief valve, not a software rule, stopped the rise
        assert outcome.trip is not None and outcome.trip.rule == trip and outcome.trip.zone == "ankle"


@pytest.mark.parametrize("relief, found_within_s", [(None, 1.5), (100.0, None)])
def test_the_relief_valve_leaves_the_pump_check_its_room(cfg, relief, found_within_s):
    """SAFE-4's pump check finds a pump running while told off by the manifold rising 10 mmHg with every inlet closed.
    In the pulse profile's hold the manifold rests near 96 mmHg after the 80 mmHg fills: the config's relief valve
    (max_mmhg + 20 = 110) leaves it that room; one at max_mmhg + 10 caps the rise first, and the pump is found late
    (the fault matrix's bound is 1.5 s; measured 3.2 s)."""
    if relief is not None:
        cfg = dataclasses.replace(cfg, simulation=dataclasses.replace(cfg.simulation, relief_mmhg=relief))
    at_s = 23.03  # in the hold after the first fills (the fault matrix's pulse/hold cell)
    peaks, outcome = _lying_session(cfg, (FaultSpec("pump-stuck-on", None, at_s),))
    trip = outcome.trip
    assert trip is not None and trip.rule == "SAFE-4"
    if found_within_s is not None:
        assert trip.zone == "manifold" and trip.t_s - at_s <= found_within_s
    else:
        assert trip.t_s - at_s > 1.5
    assert peaks["bladder"] <= 80.0 + 5.0  # on the leg, the closed inlets held it off either way


def test_check_config_warns_when_the_relief_valve_leaves_the_pump_check_no_room(cfg, tmp_path):
    """The planner measures how high the manifold runs in every planned fill. On the reference build the pulse
    profile's 80 mmHg fills take it to ~96 mmHg, 14 below the 110 relief valve: room for SAFE-4's 10 mmHg pump check.
    A build with half-size inlets and a 5 L/min pump runs its manifold far higher above the zone, and is told to set
    its relief valve higher (the fault matrix found its stuck pump 2 s late behind 110)."""
    from legsleeve.app.validate import describe, plan_session
    from tests.builds import write_build

    rise = cfg.limits.pump_off_rise_mmhg
    ref = plan_session(cfg, load_profile(CONFIG_DIR, "pulse", cfg), cycles=1, sim=cfg.simulation)
    assert 90.0 < ref.manifold_peak_mmhg < 100.0 and ref.pump_check_room_mmhg >= rise
    assert not any("warning: the manifold" in line for line in describe(ref, cfg))
    directory = write_build("small-inlet-big-manifold-pump5", tmp_path, relief_checked=False)
    build = load_hardware(directory)
    plan = plan_session(build, load_profile(directory, "pulse", build), cycles=1, sim=build.simulation)
    assert plan.pump_check_room_mmhg < rise
    warning = next(line for line in describe(plan, build) if "warning: the manifold" in line)
    assert f"at least {plan.manifold_peak_mmhg + rise:.0f} mmHg" in warning
    # what bring-up check 9 then does (tests/builds.relief_as_checked): the valve set where asked, no more warning
    from tests.builds import relief_as_checked

    relief_as_checked(directory)
    build = load_hardware(directory)
    plan = plan_session(build, load_profile(directory, "pulse", build), cycles=1, sim=build.simulation)
    assert plan.pump_check_room_mmhg >= rise
    assert not any("warning: the manifold" in line for line in describe(plan, build))
