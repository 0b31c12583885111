"""Pressure profiles: the shipped ones load and mean what they say; malformed ones are refused with file:line:key."""

from __future__ import annotations

import shutil
import textwrap

import pytest

from legsleeve.config.profiles import REVERSE_GRADIENT_MMHG, load_all, load_profile
from legsleeve.core.plan import StepKind
from legsleeve.errors import ConfigError
from tests.helpers import CONFIG_DIR, SHIPPED


@pytest.fixture(scope="module")
def shipped(cfg):
    profiles, problems = load_all(CONFIG_DIR, cfg)
    assert problems == []
    return {p.name: p for p in profiles}


def test_every_required_profile_ships(shipped):
    assert set(SHIPPED) <= set(shipped)


def test_every_shipped_profile_states_its_sources():
    for name in SHIPPED:
        text = (CONFIG_DIR / "profiles" / f"{name}.yaml").read_text()
        assert "Sources" in text and "docs/safety-requirements.md §B3" in text, name


def test_gradient_is_a_clinical_gradient(shipped):
    g = shipped["gradient"]
    assert g.targets_mmhg == (45, 40, 35, 30)  # ~45 at the ankle, 5 less per zone upward
    assert g.fill_order() == ["fill ankle", "fill calf", "fill knee", "fill thigh"]
    kinds = [s.kind.value for s in g.steps]
    # each zone held until all are full: no vent between the fills; then hold, vent all, rest
    assert kinds == ["fill", "fill", "fill", "fill", "hold", "vent", "rest"]
    assert g.steps[5].zones == (0, 1, 2, 3)


def test_pulse_is_in_the_recovery_boot_range_with_distal_release(shipped):
    p = shipped["pulse"]
    assert all(60 <= t <= 80 for t in p.targets_mmhg)
    inflated, most = set(), 0
    for step in p.steps:
        if step.kind is StepKind.FILL:
            inflated |= set(step.zones)
        elif step.kind in (StepKind.VENT, StepKind.REST):
            inflated -= set(step.zones)
        most = max(most, len(inflated))
    assert most == 2  # the distal zone is released as the next one holds


def test_lymphatic_clears_proximally_first_then_drains_upward(shipped):
    lym = shipped["lymphatic"]
    assert all(30 <= t <= 40 for t in lym.targets_mmhg)
    assert lym.fill_order() == ["fill thigh", "fill knee", "fill ankle", "fill calf", "fill knee", "fill thigh"]


def test_wave_moves_a_band_of_two(shipped):
    w = shipped["wave"]
    inflated, sizes = [], []
    for step in w.steps:
        if step.kind is StepKind.FILL:
            inflated += step.zones
        elif step.kind in (StepKind.VENT, StepKind.REST):
            inflated = [z for z in inflated if z not in step.zones]
        sizes.append(len(inflated))
    assert max(sizes) == 2 and sizes.count(2) >= 3
    assert w.fill_order() == ["fill ankle", "fill calf", "fill knee", "fill thigh"]


def test_massage_has_the_four_techniques(shipped):
    m = shipped["massage"]
    text = (CONFIG_DIR / "profiles" / "massage.yaml").read_text()
    for word in ("stroking", "kneading", "percussion", "finishing"):
        assert word in text
    scales = [s.scale for s in m.steps if s.kind is StepKind.FILL]
    assert 0.5 in scales and 1.0 in scales  # light and firm
    finishing = [s.scale for s in m.steps if s.kind is StepKind.FILL and s.scale in (0.9, 0.7)]
    assert finishing == [0.9] * 4 + [0.7] * 4  # falling pressure


def test_gentle_ramps_up(shipped):
    g = shipped["gentle"]
    assert g.targets_mmhg[0] < shipped["gradient"].targets_mmhg[0]
    fill = g.steps[0]
    assert [round(g.step_target(fill, 0, c), 1) for c in range(5)] == [21.0, 25.7, 30.3, 35.0, 35.0]


# -- validation table -------------------------------------------------------------------------------------------

BASE = """\
name: custom
description: a test profile
targets:
  default_mmhg: 40
  zones: {thigh: 30}
session:
  cycles: 2
cycle:
  - fill: ankle
  - fill: calf
  - hold_s: 5
  - vent: all
  - rest_s: 10
"""


def _write(tmp_path, text):
    shutil.copy(CONFIG_DIR / "hardware.yaml", tmp_path / "hardware.yaml")
    (tmp_path / "profiles").mkdir(exist_ok=True)
    (tmp_path / "profiles" / "custom.yaml").write_text(textwrap.dedent(text))


def test_base_profile_is_valid(tmp_path, cfg):
    _write(tmp_path, BASE)
    p = load_profile(tmp_path, "custom", cfg)
    assert p.targets_mmhg == (40, 40, 40, 30)
    assert [s.kind.value for s in p.steps] == ["fill", "fill", "hold", "vent", "rest"]


CASES = [
    ("unknown key", ("  cycles: 2", "  cycles: 2\n  minuts: 3"), 8, "session.minuts", "unknown key"),
    ("name mismatch", ("name: custom", "name: other"), 1, "name", "must match the file name"),
    ("unknown zone in targets", ("{thigh: 30}", "{shin: 30}"), 5, "targets.zones.shin", "no zone named 'shin'"),
    (
        "target above max (SAFE-3)",
        ("default_mmhg: 40", "default_mmhg: 120"),
        4,
        "targets.default_mmhg",
        "must be <= 90",
    ),
    (
        "step target above max",
        ("  - fill: ankle", "  - {fill: ankle, target_mmhg: 95}"),
        9,
        "cycle[0].target_mmhg",
        "must be <= 90",
    ),
    ("unknown zone in a step", ("  - fill: calf", "  - fill: shin"), 10, "cycle[1].fill", "no zone named 'shin'"),
    ("zero duration", ("  - hold_s: 5", "  - hold_s: 0"), 11, "cycle[2].hold_s", "must be > 0"),
    ("negative rest", ("  - rest_s: 10", "  - rest_s: -10"), 13, "cycle[4].rest_s", "must be > 0"),
    ("two verbs", ("  - fill: calf", "  - {fill: calf, vent: calf}"), 10, "cycle[1]", "exactly one of"),
    ("no verb", ("  - fill: calf", "  - {scale: 0.5}"), 10, "cycle[1]", "exactly one of"),
    ("unknown pattern", ("  - fill: calf", "  - pattern: swirl"), 10, "cycle[1].pattern", "must be one of"),
    ("pattern typo", ("  - fill: calf", "  - {pattern: wave, hold: 3}"), 10, "cycle[1].hold", "did you mean 'hold_s'"),
    ("scale out of range", ("  - fill: calf", "  - {fill: calf, scale: 1.5}"), 10, "cycle[1].scale", "must be <= 1"),
    (
        "both minutes and cycles",
        ("  cycles: 2", "  cycles: 2\n  minutes: 3"),
        8,
        "session.minutes",
        "exactly one of minutes or cycles",
    ),
    ("session missing", ("session:\n  cycles: 2\n", ""), 1, "session", "missing (required)"),
    ("zone twice", ("  - fill: calf", "  - fill: [calf, calf]"), 10, "cycle[1].fill", "names a zone twice"),
    (
        "empty cycle",
        ("cycle:\n  - fill: ankle\n  - fill: calf\n  - hold_s: 5\n  - vent: all\n  - rest_s: 10\n", "cycle: []\n"),
        8,
        "cycle",
        "must not be empty",
    ),
    ("never fills", ("  - fill: ankle\n  - fill: calf\n", ""), 8, "cycle", "never fills a zone"),
    (
        "reverse gradient",
        ("  - fill: calf", "  - {fill: calf, target_mmhg: 55}"),
        10,
        "cycle[1]",
        "calf (55 mmHg) would be held 15 mmHg above ankle (40 mmHg) below it: a reverse gradient",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_profile_names_file_line_and_key(tmp_path, cfg, case):
    _id, (old, new), line, key, fragment = case
    assert old in BASE
    _write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_profile(tmp_path, "custom", cfg)
    path = tmp_path / "profiles" / "custom.yaml"
    expected = f"{path}:{line}: {key}: "
    matching = [p for p in err.value.problems if p.startswith(expected) and fragment in p]
    assert matching, f"wanted {expected}...{fragment!r}; got:\n" + "\n".join(err.value.problems)


def test_reverse_gradient_within_10_mmhg_is_fine(tmp_path, cfg):
    _write(tmp_path, BASE.replace("  - fill: calf", f"  - {{fill: calf, target_mmhg: {40 + REVERSE_GRADIENT_MMHG}}}"))
    assert load_profile(tmp_path, "custom", cfg).steps[1].target_mmhg == 50


def test_reverse_gradient_when_meant(tmp_path, cfg):
    text = BASE.replace("  - fill: calf", "  - {fill: calf, target_mmhg: 55}") + "allow_reverse_gradient: true\n"
    _write(tmp_path, text)
    assert load_profile(tmp_path, "custom", cfg).allow_reverse_gradient


def test_reverse_gradient_only_counts_zones_held_together(tmp_path, cfg):
    # the distal zone is vented before the proximal one fills higher: nothing is trapped
    text = BASE.replace("  - fill: calf", "  - vent: ankle\n  - {fill: calf, target_mmhg: 55}")
    _write(tmp_path, text)
    load_profile(tmp_path, "custom", cfg)


def test_unknown_profile_lists_the_known_ones(cfg):
    with pytest.raises(ConfigError, match="no such profile 'nope' .*gentle.*gradient"):
        load_profile(CONFIG_DIR, "nope", cfg)
