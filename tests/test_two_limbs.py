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
