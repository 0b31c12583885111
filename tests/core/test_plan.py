"""The plan: step kinds are the StepKind enum, in every shipped profile; a plan made in code (Profile.of_steps) is
one cycle at one target for every zone."""

from __future__ import annotations

from pathlib import Path

from legsleeve.config.profiles import load_profile_file
from legsleeve.core.controller import Controller
from legsleeve.core.plan import Profile, Step, StepKind
from tests.helpers import CONFIG_DIR, readings


def test_shipped_profiles_contain_only_step_kind_members(cfg):
    # the four primitives, and the two of refill-adaptive rest
    assert {k.value for k in StepKind} == {"fill", "hold", "vent", "rest", "measure", "refill"}
    paths = sorted((CONFIG_DIR / "profiles").glob("*.yaml"))
    assert len(paths) >= 6
    for path in paths:
        profile = load_profile_file(path, cfg)
        assert profile.steps, path.name
        for step in profile.steps:
            assert type(step.kind) is StepKind, (path.name, step)  # the enum itself, not a str or a look-alike


def test_of_steps_builds_a_one_cycle_plan_at_one_target_for_every_zone():
    zones = ("ankle", "calf", "knee")
    steps = (Step(StepKind.FILL, (0, 1, 2)), Step(StepKind.HOLD, duration_s=2.0), Step(StepKind.VENT, (0, 1, 2)))
    plan = Profile.of_steps("valves", zones, steps, 25.0)
    assert plan.name == "valves" and plan.zone_names == zones and plan.steps == steps
    assert plan.targets_mmhg == (25.0, 25.0, 25.0)
    assert plan.session_cycles == 1 and plan.session_minutes is None
    assert plan.path == Path("<valves>")
    assert [plan.step_target(steps[0], i, 0) for i in range(3)] == [25.0, 25.0, 25.0]  # no ramp
    assert [plan.peak_target_mmhg(i) for i in range(3)] == [25.0, 25.0, 25.0]
    assert Profile.of_steps("valves", zones, steps, 25.0, cycles=3).session_cycles == 3
    # and a controller runs it once: fill every zone to 25, hold 2 s, vent, done
    ctl = Controller(plan, min_duty=0.7)
    t, pressure = 0.0, 0.0
    while not ctl.status.done and t < 60:
        status = ctl.step(t, readings(t, pressure, pressure, pressure)).status
        if status.kind is StepKind.FILL:
            pressure = min(pressure + 5.0, 25.0)
            assert all(z.target_mmhg == 25.0 for z in status.zones)
        t += 0.1
    assert ctl.status.done and ctl.status.cycle == 1 and t < 10


def test_session_length_is_what_was_asked_else_the_profiles_own():
    plan = Profile.of_steps("valves", ("ankle",), (Step(StepKind.FILL, (0,)),), 25.0, cycles=3)
    assert plan.session_length(None, None) == (3, None)  # the profile's own
    assert plan.session_length(5, None) == (5, None)
    assert plan.session_length(None, 2.5) == (None, 2.5)  # minutes asked: the profile's cycles do not apply
