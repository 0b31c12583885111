"""Two sleeves on one Pi (config/examples/two-legs): zones grouped by limb, profiles written once for a leg,
alternating cycles, rules judged within a limb, and a fault on one leg venting both - judged on the bladders."""

from __future__ import annotations

import shutil

import pytest

from legsleeve.config.hardware import load_hardware
from legsleeve.config.profiles import load_profile, load_profile_file
from legsleeve.core.commands import HOLD, Commands
from legsleeve.core.plan import StepKind
from legsleeve.errors import ConfigError
from legsleeve.safety.supervisor import Supervisor
from tests.helpers import CONFIG_DIR, TICK, rd_zones

TWO_LEGS = CONFIG_DIR / "examples" / "two-legs"
LEFT = ("left.ankle", "left.calf", "left.knee", "left.thigh")
RIGHT = ("right.ankle", "right.calf", "right.knee", "right.thigh")


@pytest.fixture(scope="module")
def legs():
    return load_hardware(TWO_LEGS)


def _edited(tmp_path, old: str, new: str):
    shutil.copytree(TWO_LEGS, tmp_path / "cfg", symlinks=False)
    path = tmp_path / "cfg" / "hardware.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return tmp_path / "cfg"


def test_zones_are_grouped_by_limb_and_named_limb_dot_zone(legs):
    assert legs.limbs == ("left", "right")
    assert legs.zone_names == LEFT + RIGHT
    assert legs.zone_sites == ("ankle", "calf", "knee", "thigh") * 2
    assert legs.limb_zones("right") == (4, 5, 6, 7)


def test_a_name_twice_in_one_limb_is_an_error_naming_the_line(tmp_path):
    cfg = _edited(tmp_path, "{name: calf,  limb: right", "{name: ankle, limb: right")
    with pytest.raises(ConfigError) as err:
        load_hardware(cfg)
    assert "zone 'ankle' of limb 'right' is already defined" in str(err.value)
    assert "hardware.yaml:26: zones[5].name" in str(err.value)


def test_a_single_limb_keeps_plain_zone_names(cfg):
    assert cfg.limbs == ("leg",) and cfg.zone_names == ("ankle", "calf", "knee", "thigh")


def test_a_profile_written_for_a_leg_works_both_legs_at_once(legs):
    gradient = load_profile(TWO_LEGS, "gradient", legs)
    fills = [s for s in gradient.steps if s.kind is StepKind.FILL]
    # every limb's ankle together, then every limb's calf ...
    assert [tuple(legs.zone_names[i] for i in s.zones) for s in fills] == [
        (a, b) for a, b in zip(LEFT, RIGHT, strict=True)
    ]
    assert gradient.targets_mmhg == (45.0, 40.0, 35.0, 30.0) * 2
    assert gradient.fill_order()[0] == "fill left.ankle right.ankle"


def test_an_alternating_cycle_works_each_limb_in_turn_with_refill_waits(legs):
    dvt = load_profile(TWO_LEGS, "dvt", legs)
    kinds = [(s.kind, s.limb or {legs.zone_limbs[i] for i in s.zones}.pop()) for s in dvt.steps if s.zones]
    limbs_in_order = [limb for _, limb in kinds]
    first_right = limbs_in_order.index("right")
    assert set(limbs_in_order[:first_right]) == {"left"} and set(limbs_in_order[first_right:]) == {"right"}
    assert kinds[0] == (StepKind.REFILL, "left") and kinds[first_right - 1] == (StepKind.MEASURE, "left")
    assert kinds[first_right] == (StepKind.REFILL, "right") and kinds[-1] == (StepKind.MEASURE, "right")
    assert dvt.describe(dvt.steps[0]) == "refill left"


def test_an_alternating_cycle_may_not_name_one_limbs_zone(tmp_path, legs):
    path = tmp_path / "alt.yaml"
    path.write_text(
        "name: alt\ndescription: d\ntargets: {default_mmhg: 40}\nsession: {cycles: 2}\nalternate: true\n"
        "cycle:\n  - fill: left.calf\n  - vent: all\n"
    )
    with pytest.raises(ConfigError) as err:
        load_profile_file(path, legs)
    assert "alt.yaml:7" in str(err.value) and "name zones by their name within a limb" in str(err.value)


def test_a_gradient_is_judged_within_a_limb(legs, tmp_path):
    """Left thigh above the right ankle is two legs, not a reverse gradient; left thigh above left ankle is one."""
    path = tmp_path / "cross.yaml"
    path.write_text(
        "name: cross\ndescription: d\ntargets: {default_mmhg: 20, zones: {left.thigh: 40}}\n"
        "session: {cycles: 1}\ncycle:\n  - fill: [right.ankle, left.thigh]\n  - vent: all\n"
    )
    load_profile_file(path, legs)  # right ankle 20, left thigh 40: different legs, no reversal
    path.write_text(path.read_text().replace("right.ankle", "left.ankle"))
    with pytest.raises(ConfigError, match="reverse gradient"):
        load_profile_file(path, legs)

    sup = Supervisor(legs, [45.0] * 8)
    wish = Commands(0.0, (HOLD,) * 8)
    t = 0.0
    while t < 3.0:  # right ankle 10, left thigh 35 - for three seconds
        sup.review(t, rd_zones(t, [30, 30, 30, 35, 10, 10, 10, 10], manifold=0.0), wish)
        t += TICK
    assert sup.tripped is None
    sup = Supervisor(legs, [45.0] * 8)
    t = 0.0
    while t < 3.0 and sup.tripped is None:  # left ankle 10 below left thigh 35
        sup.review(t, rd_zones(t, [10, 15, 18, 35, 10, 10, 10, 10], manifold=0.0), wish)
        t += TICK
    assert sup.tripped is not None and sup.tripped.rule == "SAFE-10" and sup.tripped.zone == "left.thigh"


def _dvt_refills(tmp_path, left_s: float, right_s: float, thermal_mmhg: float):
    text = (TWO_LEGS / "hardware.yaml").read_text()
    text = text.replace("left:  {refill_s: 30}", f"left:  {{refill_s: {left_s}}}")
    text = text.replace("right: {refill_s: 45}", f"right: {{refill_s: {right_s}}}")
    text = text.replace("thermal_mmhg: 0.5", f"thermal_mmhg: {thermal_mmhg}")
    cfg_dir = tmp_path / "legs"
    cfg_dir.mkdir()
    (cfg_dir / "hardware.yaml").write_text(text)
    (cfg_dir / "profiles").symlink_to(CONFIG_DIR / "profiles")
    from legsleeve.app.session import run_session
    from legsleeve.hw.backends import open_sim

    cfg = load_hardware(cfg_dir)
    assert cfg.simulation.limbs["left"].refill_s == left_s and cfg.simulation.limbs["right"].refill_s == right_s
    rig = open_sim(cfg, seed=1)
    try:
        result = run_session(rig, load_profile(cfg_dir, "dvt", cfg), cycles=5)
    finally:
        rig.close()
    assert result.outcome.trip is None, result.outcome.trip
    return result


@pytest.mark.slow
@pytest.mark.parametrize(("left_s", "right_s"), [(20.0, 60.0), (30.0, 45.0)])
def test_refill_adaptive_rest_measures_each_legs_own_refill(tmp_path, left_s, right_s):
    """The alternating DVT profile on two legs of different refill times (the simulator's truth): the log shows
    the limbs taking turns, and each leg's measured refill is within 15 % of its own. With the rewarming artefact
    off: with it, see the next test. ~15 s."""
    result = _dvt_refills(tmp_path, left_s, right_s, thermal_mmhg=0.0)
    fills = [state for _, state in result.steps if state.startswith("fill ")]
    limbs = [state.split()[1].split(".")[0] for state in fills]
    turns = [limb for i, limb in enumerate(limbs) if i == 0 or limbs[i - 1] != limb]
    assert turns == ["left", "right"] * 5  # each leg in turn, five times
    truth = {"left": left_s, "right": right_s}
    refills = result.outcome.status.refills
    assert [r.limb for r in refills] == ["left", "right"] * 4  # a rest before each leg's next compression
    for r in refills:
        measured = r.refill_s if r.refill_s is not None else r.rest_s  # undetected: rested to the bound
        assert measured == pytest.approx(truth[r.limb], rel=0.15), r
        assert 20.0 <= r.rest_s <= 60.0 + 0.1  # the profile's bounds


@pytest.mark.slow
def test_the_sleeves_rewarming_after_a_vent_shortens_the_measured_refill(tmp_path):
    """Morris 2002: the air rewarming in a closed bladder after a vent reads as refill. With the example's
    0.5 mmHg artefact (a third of the rise) the measure reads short - here, and so on a real sleeve; the profile's
    min_s is the floor (docs/refill.md records the figures)."""
    result = _dvt_refills(tmp_path, 30.0, 45.0, thermal_mmhg=0.5)
    refills = result.outcome.status.refills
    measured = {limb: [r.refill_s for r in refills if r.limb == limb and r.refill_s] for limb in ("left", "right")}
    assert all(v for v in measured.values())
    assert max(measured["right"]) < 0.8 * 45.0  # the artefact's bias: what docs/refill.md states
    assert all(r.rest_s >= 20.0 for r in refills)
