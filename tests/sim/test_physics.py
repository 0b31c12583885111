"""The pneumatic model: the physics a sleeve obeys, checked on its own and through the mock pins."""

from __future__ import annotations

import pytest

from legsleeve.core.commands import FILL, HOLD, SAFE, VENT, Commands
from legsleeve.sim.physics import Pneumatics


def _model(cfg):
    return Pneumatics(cfg.simulation, cfg.zone_names, pump_stall_duty=cfg.simulation.pump_stall_duty)


def test_filling_a_zone_raises_its_pressure_and_no_other(sim_rig):
    w = sim_rig.world
    sim_rig.apply(Commands(1.0, (VENT, FILL)))
    sim_rig.clock.sleep(3.0)
    assert w.zone_mmhg("calf") > 15
    assert [w.zone_mmhg(n) for n in ("ankle", "knee", "thigh")] == [0.0, 0.0, 0.0]


def test_venting_falls_toward_zero(sim_rig):
    w = sim_rig.world
    sim_rig.apply(Commands(1.0, (FILL,)))
    sim_rig.clock.sleep(6.0)
    sim_rig.apply(SAFE)
    trace = []
    for _ in range(10):
        sim_rig.clock.sleep(1.0)
        trace.append(w.zone_mmhg("ankle"))
    assert all(b < a for a, b in zip(trace, trace[1:], strict=False))
    assert trace[-1] < 1.0


def test_holding_keeps_pressure(sim_rig):
    w = sim_rig.world
    sim_rig.apply(Commands(1.0, (FILL,)))
    sim_rig.clock.sleep(5.0)
    sim_rig.apply(Commands(0.0, (HOLD,)))
    before = w.zone_mmhg("ankle")
    sim_rig.clock.sleep(30.0)
    # only the seams' slow leak: well under 1 mmHg a minute at this pressure
    assert 0 < before - w.zone_mmhg("ankle") < 1.0


def test_pump_flow_falls_with_back_pressure(cfg):
    m = _model(cfg)
    flows = [m.pump_flow_lps(1.0, p) for p in (0, 50, 100, 200, 300)]
    assert flows[0] == pytest.approx(cfg.simulation.pump_free_flow_lpm / 60)
    assert all(b < a for a, b in zip(flows, flows[1:], strict=False))
    assert flows[-1] == 0.0  # dead-head
    assert m.pump_flow_lps(0.5, 0.0) == 0.0  # below the stall duty: nothing
    assert m.pump_flow_lps(0.8, 0.0) == pytest.approx(0.8 * flows[0])


def test_relief_valve_caps_the_manifold(cfg):
    m = _model(cfg)
    m.set_inputs(1.0, [False] * 4, [True] * 4)
    m.advance_to(5.0)
    relief = cfg.simulation.relief_mmhg
    assert relief < m.manifold_mmhg < relief + 3.0


def test_leak_loses_pressure(cfg):
    tight, holed = _model(cfg), _model(cfg)
    holed.set_zone_fault(0, "leak")
    for m in (tight, holed):
        m.set_inputs(1.0, [True, False, False, False], [False] * 4)
        m.advance_to(5.0)
    holed_start, tight_start = holed.zone_mmhg(0), tight.zone_mmhg(0)
    for m in (tight, holed):
        m.set_inputs(0.0, [False] * 4, [False] * 4)
        m.advance_to(15.0)
    assert tight_start - tight.zone_mmhg(0) < 0.5
    assert holed_start - holed.zone_mmhg(0) > 10.0


def test_bigger_chamber_fills_slower(sim_rig):
    w = sim_rig.world
    sim_rig.apply(Commands(1.0, (FILL,)))
    sim_rig.clock.sleep(3.0)
    ankle = w.zone_mmhg("ankle")
    sim_rig.apply(SAFE)
    sim_rig.clock.sleep(15.0)
    sim_rig.apply(Commands(1.0, (VENT, VENT, VENT, FILL)))
    sim_rig.clock.sleep(3.0)
    assert w.zone_mmhg("thigh") < 0.8 * ankle


def test_fill_time_is_in_the_range_of_real_sleeves(sim_rig):
    """A 45 mmHg ankle chamber on a 3 L/min pump: a few seconds, not milliseconds nor minutes."""
    w = sim_rig.world
    sim_rig.apply(Commands(1.0, (FILL,)))
    t0 = sim_rig.clock.now()
    while w.zone_mmhg("ankle") < 45:
        sim_rig.clock.sleep(0.05)
    assert 3.0 < sim_rig.clock.now() - t0 < 12.0


def test_released_pins_mean_off(cfg, mock_factory):
    """A pin nobody drives (released) leaves the pump off and the valves at rest: the pull-downs win."""
    from legsleeve.sim.world import SimWorld

    w = SimWorld(cfg)
    w.clock.advance(2.0)
    assert w.manifold_mmhg() == 0.0 and w.zone_mmhg("ankle") == 0.0
