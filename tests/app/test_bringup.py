"""Bring-up's valve test and leak test (legsleeve.app.bringup), on the simulated rig: the loss rate of a held zone
against its stated bound, bad input refused before anything moves, and every way out ending vented (SAFE-1)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from legsleeve.app.bringup import JUDGE_MIN_S, LEAK_BOUND_FRACTION, check_valve_args, leak_report, run_valve_test
from legsleeve.app.cli import main
from legsleeve.errors import ConfigError
from legsleeve.hw.backends import open_sim
from tests.helpers import CONFIG_DIR


def _pins_vented(rig):
    """Pump off, every coil unpowered: inlets (NC) closed, exhausts (NO) open."""
    pf = rig.world.pin_factory
    cfg = rig.config
    assert pf.pin(cfg.pump.pin.name).state == 0
    for z in cfg.zones:
        assert pf.pin(z.inlet.pin.name).state == 0 and pf.pin(z.exhaust.pin.name).state == 0


def _leaky(cfg, zone: str, leak_lpm_per_mmhg: float):
    zones = dict(cfg.simulation.zones)
    zones[zone] = dataclasses.replace(zones[zone], leak_lpm_per_mmhg=leak_lpm_per_mmhg)
    return dataclasses.replace(cfg, simulation=dataclasses.replace(cfg.simulation, zones=zones))


def _test(cfg, zone="ankle", mmhg=20.0, hold_s=60.0, row=None):
    rig = open_sim(cfg, seed=1)
    try:
        result = run_valve_test(rig, zone, mmhg=mmhg, hold_s=hold_s, row=row)
        _pins_vented(rig)
        return result
    finally:
        rig.close()


def test_a_sound_zone_passes_its_leak_test(cfg):
    result = _test(cfg)
    assert result.trip is None and result.leak_judged and not result.leaks
    assert result.leak_bound_mmhg_s == LEAK_BOUND_FRACTION * cfg.limits.leak_rate_mmhg_s == pytest.approx(0.1)
    # the reference bladder's seams: 0.0002 L/min per mmHg, ~0.01 mmHg/s at 20 mmHg
    assert 0.0 < result.loss_mmhg_s < 0.3 * result.leak_bound_mmhg_s
    assert result.measured_s > 55.0 and result.topups == 0
    assert "leak: sound" in leak_report(result)


@pytest.mark.parametrize("leak_lpm_per_mmhg", [0.005, 0.01])
def test_a_leaking_zone_fails_its_leak_test_without_tripping(cfg, leak_lpm_per_mmhg):
    """A leak of a few tenths of a mmHg/s: under SAFE-7's 1 mmHg/s, so a session would run on it with top-ups, but
    over the bring-up bound, so the maker is told before one does. The loss is measured between the top-ups."""
    result = _test(_leaky(cfg, "calf", leak_lpm_per_mmhg), zone="calf")
    assert result.trip is None
    assert result.leaks and result.leak_bound_mmhg_s < result.loss_mmhg_s < cfg.limits.leak_rate_mmhg_s
    assert result.topups >= 1
    assert "LEAKS" in leak_report(result)


def test_the_loss_scales_with_the_leak(cfg):
    small = _test(_leaky(cfg, "knee", 0.005), zone="knee").loss_mmhg_s
    large = _test(_leaky(cfg, "knee", 0.01), zone="knee").loss_mmhg_s
    assert large == pytest.approx(2 * small, rel=0.25)


def test_a_short_hold_is_not_judged(cfg):
    result = _test(_leaky(cfg, "calf", 0.01), zone="calf", hold_s=10.0)
    assert not result.leak_judged and not result.leaks
    assert f"at least {JUDGE_MIN_S:g} s" in leak_report(result)


@pytest.mark.parametrize("hold_s", [0.0, -5.0, math.nan, math.inf, 1e6])
def test_a_bad_hold_is_refused_before_anything_moves(cfg, hold_s):
    with pytest.raises(ConfigError, match="--hold-s"):
        check_valve_args(cfg.zone_names, cfg.limits.max_mmhg, "ankle", 20.0, hold_s)
    rig = open_sim(cfg, seed=1)
    try:
        with pytest.raises(ConfigError):
            run_valve_test(rig, "ankle", mmhg=20.0, hold_s=hold_s)
        assert rig.world.physics.bladder_mmhg(0) < 0.5  # nothing was filled
        _pins_vented(rig)
    finally:
        rig.close()


class Boom(RuntimeError):
    pass


def test_an_exception_mid_hold_ends_vented(cfg):
    """SAFE-1: whatever raises during the leak test (here the row printer, mid-hold, the zone held at 20 mmHg), the
    rig is left vented: pump off, inlets closed, exhausts open."""
    seen = []

    def row(t_s, step, readings):
        seen.append(step)
        if step.startswith("hold") and readings.zones[0].mmhg > 15.0:
            raise Boom("printer fell over")

    rig = open_sim(cfg, seed=1)
    try:
        with pytest.raises(Boom):
            run_valve_test(rig, "ankle", mmhg=20.0, hold_s=60.0, row=row)
        assert any(s.startswith("hold") for s in seen)
        _pins_vented(rig)
    finally:
        rig.close()


def test_the_command_reports_the_leak_test(capsys):
    code = main(["test-valve", "ankle", "--sim", "--hold-s", "60", "--config", str(CONFIG_DIR)])
    out = capsys.readouterr().out
    assert code == 0 and "leak: sound - lost" in out and "bound 0.10 mmHg/s" in out


def test_the_command_refuses_a_bad_hold(capsys):
    assert main(["test-valve", "ankle", "--sim", "--hold-s", "-1", "--config", str(CONFIG_DIR)]) == 2
    assert "--hold-s must be above 0" in capsys.readouterr().err


def test_the_e_stop_during_the_leak_test_trips_and_vents(cfg):
    """Bring-up check 8: the E-stop pressed mid-hold is SAFE-12, and the zone empties (its true pressure)."""
    from legsleeve.sim.faults import FaultSpec

    rig = open_sim(cfg, seed=1, faults=[FaultSpec("estop", None, 12.0)])  # after the zero and the fill: mid-hold
    try:
        result = run_valve_test(rig, "ankle", mmhg=20.0, hold_s=30.0)
        assert result.trip is not None and result.trip.rule == "SAFE-12"
        assert result.peaks_mmhg["ankle"] > 15.0  # it was held at 20 mmHg when the E-stop went
        _pins_vented(rig)
        rig.clock.sleep(cfg.limits.vent_timeout_s)
        assert rig.world.physics.bladder_mmhg(0) < 5.0
    finally:
        rig.close()
