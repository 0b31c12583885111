"""`legsleeve calibrate` on the simulated rig: the figures it measures, the twin it fits (against the simulator's
true parameters), calibration.yaml, the limits derived from it, its refusals, and the self-test's baseline."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from legsleeve.app.calibrate import CalibrationRefused, calibrate, write_calibration
from legsleeve.app.selftest import SelfTestFailed, self_test
from legsleeve.config.calibration import FILENAME
from legsleeve.config.hardware import load_hardware
from legsleeve.core.limits import MAX_FILL_TIMEOUT_S, MAX_SENSOR_NOISE_MMHG, MAX_VENT_TIMEOUT_S
from legsleeve.errors import ConfigError
from legsleeve.hw.backends import open_sim
from tests.builds import write_build
from tests.helpers import CONFIG_DIR, ROOT

FIT_TOLERANCE = 0.15  # the bound on each fitted parameter
RMS_BOUND_MMHG = 2.0


def _calibrate(config_dir: Path, seed: int = 5):
    cfg = load_hardware(config_dir, calibrated=False)
    rig = open_sim(cfg, seed=seed)
    try:
        return calibrate(rig, firmware_version="test", now_text="2026-11-25T00:00:00Z")
    finally:
        rig.close()


def _edit(config_dir: Path, edit) -> Path:
    path = config_dir / "hardware.yaml"
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return config_dir


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The shipped build calibrated once, with its calibration.yaml written into a copy of config/."""
    target = tmp_path_factory.mktemp("ref") / "config"
    shutil.copytree(CONFIG_DIR, target)
    result = _calibrate(target)
    write_calibration(result.calibration, target / FILENAME)
    return target, result


def _true_and_fitted(truth, twin, name):
    t, f = truth.zones[name], twin.zones[name]
    return {
        "compliance": (t.compliance_l_per_mmhg, f.compliance_l_per_mmhg),
        "leak": (t.leak_lpm_per_mmhg, f.leak_lpm_per_mmhg),
        "inlet": (t.inlet_lpm_per_mmhg or truth.inlet_lpm_per_mmhg, f.inlet_lpm_per_mmhg),
        "exhaust": (t.exhaust_lpm_per_mmhg or truth.exhaust_lpm_per_mmhg, f.exhaust_lpm_per_mmhg),
    }


@pytest.mark.parametrize("build", ["reference", "pump1.5", "pump5", "big-bladders", "slow-exhaust", "leaky"])
def test_the_twin_fits_the_true_parameters_within_15_percent_and_replays_within_2_mmhg(tmp_path, build):
    config_dir = CONFIG_DIR if build == "reference" else write_build(build, tmp_path)
    truth = load_hardware(config_dir).simulation
    result = _calibrate(config_dir)
    twin = result.calibration.twin
    errors = {}
    for name in result.calibration.zone_names:
        for what, (true, fitted) in _true_and_fitted(truth, twin, name).items():
            errors[f"{name} {what}"] = abs(fitted - true) / true
    errors["dead-head"] = abs(twin.pump_deadhead_mmhg - truth.pump_deadhead_mmhg) / truth.pump_deadhead_mmhg
    worst = max(errors, key=errors.get)
    assert errors[worst] <= FIT_TOLERANCE, f"{worst} off by {errors[worst]:.0%}: {errors}"
    rms = result.calibration.twin_rms_mmhg
    assert set(rms) == set(result.calibration.zone_names)
    assert max(rms.values()) < RMS_BOUND_MMHG, rms


def test_pressures_alone_cannot_tell_a_pump_twice_as_strong_from_bladders_half_as_big(tmp_path):
    # the fit's anchor is the pump's stated free flow: state it 2x wrong and every fitted volume and conductance
    # comes out 2x too, while the twin still replays the sleeve as well (which is why the anchor is needed)
    truth = load_hardware(CONFIG_DIR).simulation
    right = _calibrate(CONFIG_DIR).calibration
    wrong_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, wrong_dir)
    # the simulated rig runs on hardware.yaml's simulation section, so the truth must stay: only the anchor moves
    wrong = _anchored(wrong_dir, 2.0 * truth.pump_free_flow_lpm)
    for name in right.zone_names:
        ratio = wrong.twin.zones[name].compliance_l_per_mmhg / right.twin.zones[name].compliance_l_per_mmhg
        assert ratio == pytest.approx(2.0, rel=0.05)
    assert max(wrong.twin_rms_mmhg.values()) < RMS_BOUND_MMHG


def _anchored(config_dir: Path, anchor_lpm: float):
    """Calibrate the true (shipped) sleeve while telling the fit the pump gives `anchor_lpm`."""
    cfg = load_hardware(config_dir, calibrated=False)
    rig = open_sim(cfg, seed=5)
    told = dataclasses.replace(cfg, simulation=dataclasses.replace(cfg.simulation, pump_free_flow_lpm=anchor_lpm))
    rig.config = told
    try:
        return calibrate(rig, firmware_version="test").calibration
    finally:
        rig.close()


def test_calibration_yaml_loads_and_derives_the_limits_with_their_sources(reference):
    config_dir, result = reference
    text = (config_dir / FILENAME).read_text()
    assert text.startswith("# Written by `legsleeve calibrate`")
    cfg = load_hardware(config_dir)
    assert cfg.calibration is not None and cfg.calibration.date == "2026-11-25T00:00:00Z"
    for f in dataclasses.fields(cfg.limits):  # as derived from the figures written (rounded to what they can say)
        assert getattr(cfg.limits, f.name) == pytest.approx(getattr(result.limits_after, f.name), rel=0.02), f.name
    assert cfg.configured_limits == load_hardware(CONFIG_DIR).limits
    sources = dict(cfg.limit_sources)
    assert set(sources) >= {"fill_timeout_s", "min_fill_rate_mmhg_s", "vent_timeout_s", "leak_rate_mmhg_s"}
    # never looser than the code's ceilings
    assert cfg.limits.fill_timeout_s <= MAX_FILL_TIMEOUT_S and cfg.limits.vent_timeout_s <= MAX_VENT_TIMEOUT_S
    assert cfg.limits.sensor_noise_mmhg <= MAX_SENSOR_NOISE_MMHG
    # the pressure limits are hardware.yaml's own, untouched
    for key in ("max_mmhg", "trip_margin_mmhg", "overpressure_debounce_s", "session_max_min", "max_above_venous_s"):
        assert getattr(cfg.limits, key) == getattr(cfg.configured_limits, key)
    # the reference's figures: a 2.6 s thigh vent time constant (tighter checks than the reference defaults)
    assert cfg.limits.vent_tau_s == pytest.approx(2.6, rel=0.1)
    assert cfg.limits.vent_timeout_s < cfg.configured_limits.vent_timeout_s
    assert cfg.limits.leak_rate_mmhg_s < cfg.configured_limits.leak_rate_mmhg_s


def test_a_calibration_of_another_build_is_refused_with_its_file_and_line(reference, tmp_path):
    config_dir, _ = reference
    other = tmp_path / "config"
    shutil.copytree(config_dir, other)
    _edit(other, lambda doc: doc["pump"].update(min_duty=0.8))
    with pytest.raises(ConfigError) as err:
        load_hardware(other)
    text = str(err.value)
    assert "calibration.yaml" in text and "min_duty" in text and "calibrate" in text
    assert load_hardware(other, calibrated=False).calibration is None


def test_calibrate_refuses_a_leaking_build_naming_the_zone(tmp_path):
    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config_dir)
    _edit(config_dir, lambda doc: doc["simulation"]["zones"].update(calf={"leak_lpm_per_mmhg": 0.006}))
    with pytest.raises(CalibrationRefused, match=r"calf loses \d+\.\d mmHg/s while held .*fix the leak first"):
        _calibrate(config_dir)


def test_the_cli_writes_calibration_yaml_and_refuses_without_writing(tmp_path):
    good = tmp_path / "good"
    shutil.copytree(CONFIG_DIR, good)
    run = subprocess.run(
        [sys.executable, "-m", "legsleeve", "calibrate", "--sim", "--config", str(good)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    assert (good / FILENAME).is_file() and "twin RMS" in run.stdout and "limits from this calibration" in run.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "legsleeve", "check-config", "--config", str(good)], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert "derived from calibration.yaml" in shown.stdout
    assert "planned on your sleeve's twin (calibration.yaml)" in shown.stdout
    assert "vent_timeout_s" in shown.stdout and "calibration: thigh vents" in shown.stdout
    bad = tmp_path / "bad"
    shutil.copytree(CONFIG_DIR, bad)
    _edit(bad, lambda doc: doc["simulation"]["zones"].update(knee={"leak_lpm_per_mmhg": 0.006}))
    refused = subprocess.run(
        [sys.executable, "-m", "legsleeve", "calibrate", "--sim", "--config", str(bad)], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "knee loses" in refused.stderr
    assert not (bad / FILENAME).exists()


def test_simulate_on_the_twin_and_refused_without_a_calibration(reference, tmp_path):
    config_dir, _ = reference
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "legsleeve",
            "simulate",
            "--twin",
            "--config",
            str(config_dir),
            "--profile",
            "gradient",
            "--cycles",
            "1",
            "--log",
            str(tmp_path / "twin.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "no trip" in run.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "legsleeve", "profile", "show", "gentle", "--twin", "--config", str(CONFIG_DIR)],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "run `legsleeve calibrate`" in refused.stderr


def _self_test_on(config_dir: Path, seed: int = 8):
    rig = open_sim(load_hardware(config_dir), seed=seed)
    try:
        return self_test(rig)
    finally:
        rig.close()


def test_the_self_test_matches_its_calibration_and_names_what_changed(reference, tmp_path):
    config_dir, result = reference
    same = _self_test_on(config_dir)
    assert same.changes == ()
    for name, t in same.fill_times_s.items():
        assert t == pytest.approx(result.calibration.zone(name).selftest_fill_s, rel=0.1)
    # the calf's inlet a third as wide as at calibration (a pinched hose): slower, and said so
    changed = tmp_path / "changed"
    shutil.copytree(config_dir, changed)
    _edit(changed, lambda doc: doc["simulation"]["zones"].update(calf={"inlet_lpm_per_mmhg": 0.03}))
    seen = _self_test_on(changed)
    assert len(seen.changes) == 1 and seen.changes[0].startswith("calf fills")
    assert "slower than at calibration" in seen.changes[0] and "check its hose" in seen.changes[0]
    # a tenth as wide: the sleeve is not the one calibrated
    broken = tmp_path / "broken"
    shutil.copytree(config_dir, broken)
    _edit(broken, lambda doc: doc["simulation"]["zones"].update(calf={"inlet_lpm_per_mmhg": 0.01}))
    with pytest.raises(SelfTestFailed, match="calf fills .* slower than at calibration"):
        _self_test_on(broken)


def test_without_a_manifold_sensor_the_pump_and_inlets_stay_as_configured_and_the_rest_is_fitted(tmp_path):
    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config_dir)

    def no_manifold(doc):
        del doc["manifold_sensor"]
        doc["limits"]["max_mmhg"] = 60  # SAFE-15: the most a build without one may ask

    _edit(config_dir, no_manifold)
    truth = load_hardware(config_dir).simulation
    cal = _calibrate(config_dir).calibration
    assert cal.pump_deadhead_mmhg is None and cal.twin.pump_deadhead_mmhg == truth.pump_deadhead_mmhg
    assert cal.levels_mmhg == (16.7, 33.3, 50.0)
    for name in cal.zone_names:
        for what, (true, fitted) in _true_and_fitted(truth, cal.twin, name).items():
            assert fitted == pytest.approx(true, rel=FIT_TOLERANCE), (name, what)
    assert max(cal.twin_rms_mmhg.values()) < RMS_BOUND_MMHG
