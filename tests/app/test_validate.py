"""The whole session planned before anything moves (`legsleeve.app.validate`): each kind of finding, from a profile
crafted in a copy of the config, named by its file and line; the shipped profiles plan clean; and the plan checked
against the simulated rig (real drivers, the supervisor) judged on the simulator's true pressures."""

from __future__ import annotations

import dataclasses
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from legsleeve.app.builder import build_session, session_deadline_s
from legsleeve.app.validate import plan_session
from legsleeve.config.hardware import load_hardware
from legsleeve.config.model import HardwareConfig
from legsleeve.config.profiles import load_profile
from legsleeve.core.limits import VENTED_MMHG
from legsleeve.core.plan import Profile
from legsleeve.hw.backends import open_sim
from legsleeve.safety.trip import Trip
from tests.helpers import CONFIG_DIR, PROFILES

# -- a copy of the shipped config to craft profiles in --------------------------------------------------------------


@pytest.fixture
def config_dir(tmp_path) -> Path:
    shutil.copytree(CONFIG_DIR, tmp_path / "config")
    return tmp_path / "config"


def write_profile(config_dir: Path, name: str, body: str) -> Path:
    path = config_dir / "profiles" / f"{name}.yaml"
    path.write_text(f"name: {name}\ndescription: crafted for a test\n" + textwrap.dedent(body))
    return path


def set_limit(config_dir: Path, key: str, value: str) -> None:
    path = config_dir / "hardware.yaml"
    lines = path.read_text().splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.startswith(f"  {key}:")]
    assert len(hits) == 1, key
    lines[hits[0]] = f"  {key}: {value}\n"
    path.write_text("".join(lines))


def line_of(path: Path, text: str) -> int:
    """The line (1-based) where `text` first appears in the file."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def load(config_dir: Path, name: str) -> tuple[HardwareConfig, Profile]:
    cfg = load_hardware(config_dir)
    return cfg, load_profile(config_dir, name, cfg)


# -- the same session on the simulated rig, judged on the true pressures --------------------------------------------


@dataclass
class RigRun:
    trip: Trip | None
    limited: bool
    cycles: int
    cycle_ends_s: list[float]  # from the session's first tick
    last_tick_s: float
    longest_above_s: dict[str, float]  # each zone's longest true stretch above limits.venous_safe_mmhg
    final_mmhg: dict[str, float]  # each zone's true pressure when the run ended


def on_the_rig(cfg: HardwareConfig, profile: Profile, **length) -> RigRun:
    """The session on the simulated rig with every rule on (the zero taken, the self-test left out)."""
    venous = cfg.limits.venous_safe_mmhg
    names = cfg.zone_names
    rig = open_sim(cfg, seed=0)
    try:
        rig.zero_sensors()
        world = rig.world
        assert world is not None
        start: list[float] = []
        since: dict[str, float | None] = dict.fromkeys(names)
        longest = dict.fromkeys(names, 0.0)
        ends: list[float] = []
        last = [0.0]

        def watch(runner, readings):
            if not start:
                start.append(readings.t_s)
            t = last[0] = readings.t_s - start[0]
            if runner.status.cycle > len(ends):
                ends.append(t)
            for n in names:
                if world.zone_mmhg(n) > venous:
                    since[n] = t if since[n] is None else since[n]
                    longest[n] = max(longest[n], t - since[n])
                else:
                    since[n] = None

        outcome = build_session(rig, profile, on_tick=watch, **length).run()
        final = {n: world.zone_mmhg(n) for n in names}
    finally:
        rig.close()
    return RigRun(outcome.trip, outcome.status.limited, outcome.status.cycle, ends, last[0], longest, final)


# -- the shipped config ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_shipped_profiles_plan_clean_and_cheaply(cfg, name):
    profile = load_profile(CONFIG_DIR, name, cfg)
    plan = plan_session(cfg, profile, sim=cfg.simulation)
    lim = cfg.limits
    assert plan.findings == () and plan.ok and plan.trip is None
    assert plan.cycle_s is not None and plan.session_s is not None and plan.session_cycles is not None
    minutes = profile.session_minutes
    assert minutes is not None  # every shipped profile gives minutes: the session ends with the first cycle after
    assert minutes * 60 <= plan.session_s < minutes * 60 + plan.cycle_s and not plan.limited
    for z in plan.zones:
        assert 0 < z.above_venous_s < lim.max_above_venous_s and z.above_from
        assert z.slowest_fill_s is not None and 0 < z.slowest_fill_s < lim.fill_timeout_s
        assert not z.never_vented
    # Cheap: each shipped cycle ends at rest, so the ramp's cycles and one at full pressure are all it plans.
    assert len(plan.cycles_s) == profile.ramp_cycles + 1
    assert plan.simulated_s == pytest.approx(sum(plan.cycles_s))


def test_the_plan_agrees_with_the_simulated_rig(cfg):
    """Two cycles of gradient: the plan's cycle lengths and each zone's longest squeeze, against the rig's true
    pressures."""
    profile = load_profile(CONFIG_DIR, "gradient", cfg)
    plan = plan_session(cfg, profile, cycles=2, sim=cfg.simulation)
    rig = on_the_rig(cfg, profile, cycles=2)
    assert plan.ok and rig.trip is None and rig.cycles == plan.session_cycles == 2
    assert plan.session_s == pytest.approx(rig.cycle_ends_s[-1], rel=0.02)
    assert plan.cycles_s[0] == pytest.approx(rig.cycle_ends_s[0], rel=0.02)
    for z in plan.zones:
        assert z.above_venous_s == pytest.approx(rig.longest_above_s[z.name], abs=1.5), z.name


# -- each kind of finding ----------------------------------------------------------------------------------------


def test_a_zone_vented_nowhere_in_the_cycle_is_refused_at_its_fill(config_dir):
    path = write_profile(
        config_dir,
        "novent",
        """\
        targets: {default_mmhg: 30}
        session: {cycles: 5}
        cycle:
          - fill: [ankle, calf]
          - hold_s: 30
          - vent: calf
            wait: true
          - hold_s: 10
        """,
    )
    cfg, profile = load(config_dir, "novent")
    plan = plan_session(cfg, profile, sim=cfg.simulation)
    [finding] = plan.findings
    assert finding.rule == "SAFE-10" and finding.zone == "ankle"
    assert str(finding).startswith(
        f"{path}:{line_of(path, 'fill: [ankle, calf]')}: cycle[0]: ankle is filled here but vented nowhere in the cycle"
    )
    assert "at most 120 s" in str(finding)
    ankle, calf = plan.zones[:2]
    assert ankle.never_vented and not calf.never_vented
    assert ankle.above_venous_s > 120 and calf.above_venous_s < 60
    # The plan stopped after two cycles (~90 s) and carried the squeeze to the session's end; the rig trips on it.
    assert plan.simulated_s < 120 and ankle.above_venous_s > 3 * 45
    rig = on_the_rig(cfg, profile)
    assert rig.trip is not None and (rig.trip.rule, rig.trip.zone) == ("SAFE-10", "ankle")
    assert rig.longest_above_s["ankle"] > cfg.limits.max_above_venous_s


JOINED = """\
    targets: {{default_mmhg: 35}}
    session: {{cycles: {cycles}}}
    cycle:
      - fill: ankle
      - hold_s: 60
      - vent: ankle
        wait: true
      - hold_s: 5
      - fill: ankle      # the second squeeze: 70 s, then the next cycle's first (60 s) follows at once
      - hold_s: 70
    """


def test_a_squeeze_across_the_cycles_join_counts_on_into_the_next(config_dir):
    """Each squeeze is under 120 s, but the second one of a cycle runs on into the next cycle's first: one cycle
    is fine, three are not."""
    path = write_profile(config_dir, "joined", JOINED.format(cycles=1))
    cfg, profile = load(config_dir, "joined")
    one = plan_session(cfg, profile, sim=cfg.simulation)
    assert one.ok and 70 < one.zones[0].above_venous_s < 90

    three = plan_session(cfg, profile, cycles=3, sim=cfg.simulation)
    [finding] = three.findings
    assert finding.rule == "SAFE-10" and finding.zone == "ankle" and finding.line == line_of(path, "second squeeze")
    assert str(finding).startswith(f"{path}:{finding.line}: cycle[4]: ankle would stay above 20 mmHg for more than")
    assert "from 'fill ankle' in cycle 1 on" in finding.message
    rig = on_the_rig(cfg, profile, cycles=3)
    assert rig.trip is not None and (rig.trip.rule, rig.trip.zone) == ("SAFE-10", "ankle")


def test_a_squeeze_that_never_ends_is_carried_to_the_sessions_end(config_dir):
    """A vent without `wait` lets the next fill start at once: the ankle never falls below venous pressure. Two
    planned cycles (~40 s) show it; the session's 20 cycles would hold it for minutes."""
    path = write_profile(
        config_dir,
        "novent2",
        """\
        targets: {default_mmhg: 35}
        session: {cycles: 20}
        cycle:
          - fill: ankle
          - hold_s: 20
          - vent: ankle
        """,
    )
    cfg, profile = load(config_dir, "novent2")
    short = plan_session(cfg, profile, cycles=3, sim=cfg.simulation)
    assert short.ok and short.zones[0].above_venous_s < 80
    plan = plan_session(cfg, profile, sim=cfg.simulation)
    [finding] = plan.findings
    assert plan.simulated_s < 60 and plan.session_s is not None and plan.session_cycles == 20
    assert plan.zones[0].above_venous_s == pytest.approx(plan.session_s, abs=5.0)
    assert finding.line == line_of(path, "fill: ankle") and finding.zone == "ankle"
    assert f"for {plan.session_s / 60:.1f} min without a break" in finding.message


def test_a_fill_that_takes_longer_than_the_fill_timeout(config_dir, caplog):
    """pulse fills to 80 mmHg in ~12 s on the reference build: with limits.fill_timeout_s at 8 it cannot."""
    set_limit(config_dir, "fill_timeout_s", "8")
    cfg, profile = load(config_dir, "pulse")
    plan = plan_session(cfg, profile, sim=cfg.simulation)
    assert plan.trip is not None and not caplog.records  # a trip on the model is a finding, not a logged TRIP
    [finding] = plan.findings
    path = config_dir / "profiles" / "pulse.yaml"
    assert finding.rule == "SAFE-5" and finding.zone == "ankle"
    assert str(finding).startswith(
        f"{path}:{line_of(path, 'pattern: pulse-hold')}: cycle[0] (pattern pulse-hold): ankle cannot be filled to "
        "80 mmHg on this build"
    )
    assert "still filling after 8 s" in finding.message
    rig = on_the_rig(cfg, profile, cycles=1)
    assert rig.trip is not None and (rig.trip.rule, rig.trip.zone) == ("SAFE-5", "ankle")


def test_a_fill_that_stalls_on_a_weaker_model(cfg):
    """The model is a parameter: on a pump of 0.5 L/min (not the 3 of the config's simulation section) gradient's
    thigh gains less than 1 mmHg/s."""
    profile = load_profile(CONFIG_DIR, "gradient", cfg)
    weak = dataclasses.replace(cfg.simulation, pump_free_flow_lpm=0.5)
    plan = plan_session(cfg, profile, sim=weak)
    [finding] = plan.findings
    path = CONFIG_DIR / "profiles" / "gradient.yaml"
    assert finding.rule == "SAFE-5" and finding.zone == "thigh"
    assert str(finding).startswith(f"{path}:{line_of(path, 'pattern: sequential')}: cycle[0] (pattern sequential)")
    assert "thigh cannot be filled to 30 mmHg" in finding.message and "needs 1 mmHg/s" in finding.message
    assert plan.session_s is None  # it would not run to its end
    weak_cfg = dataclasses.replace(cfg, simulation=weak)
    rig = on_the_rig(weak_cfg, profile, cycles=1)
    assert rig.trip is not None and (rig.trip.rule, rig.trip.zone) == ("SAFE-5", "thigh")


def test_a_session_longer_than_the_limit(cfg, config_dir):
    gradient = load_profile(CONFIG_DIR, "gradient", cfg)
    deadline_s = session_deadline_s(cfg)

    [asked] = plan_session(cfg, gradient, minutes=61, sim=cfg.simulation).findings
    assert (asked.rule, asked.path, asked.key) == ("SAFE-10", None, "--minutes 61")
    assert "longer than limits.session_max_min (60 min" in asked.message and "at most 60" in asked.message

    path = write_profile(
        config_dir,
        "long",
        """\
        targets: {default_mmhg: 35}
        session:
          minutes: 90
        cycle:
          - pattern: sequential
          - rest_s: 10
        """,
    )
    c, long = load(config_dir, "long")
    [own] = plan_session(c, long, sim=c.simulation).findings
    assert str(own).startswith(f"{path}:{line_of(path, 'minutes: 90')}: session.minutes: a session of 90 min")

    at_limit = plan_session(cfg, gradient, minutes=60, sim=cfg.simulation)
    assert at_limit.ok and at_limit.limited and at_limit.session_s is not None
    assert deadline_s - at_limit.session_s < at_limit.cycle_s  # the last whole cycle that fits
    fit = at_limit.session_cycles
    assert fit is not None
    assert plan_session(cfg, gradient, cycles=fit, sim=cfg.simulation).ok
    [over] = plan_session(cfg, gradient, cycles=fit + 1, sim=cfg.simulation).findings
    assert over.key == f"--cycles {fit + 1}" and over.message.endswith(f"At most {fit} cycles fit")


def test_a_session_at_the_limit_ends_vented_inside_it_as_planned(config_dir):
    """SAFE-10 on the rig, with a 5-minute limit: asking for all of it ends with the last whole cycle that fits, no
    trip, every zone's true pressure vented inside the limit; the plan said how many cycles."""
    set_limit(config_dir, "session_max_min", "5")
    cfg, profile = load(config_dir, "gradient")
    plan = plan_session(cfg, profile, minutes=5, sim=cfg.simulation)
    rig = on_the_rig(cfg, profile, minutes=5)
    assert plan.ok and plan.limited and rig.limited and rig.trip is None
    assert rig.cycles == plan.session_cycles
    assert rig.last_tick_s < 5 * 60
    assert all(p < VENTED_MMHG for p in rig.final_mmhg.values())
    [over] = plan_session(cfg, profile, minutes=5.5, sim=cfg.simulation).findings
    assert "at most 5" in over.message


def test_a_cycle_longer_than_the_session_allows(config_dir):
    """With a 1-minute limit a session must end by 43 s (the final vent's 17 s kept): gradient's 63 s cycle cannot."""
    set_limit(config_dir, "session_max_min", "1")
    cfg, profile = load(config_dir, "gradient")
    plan = plan_session(cfg, profile, minutes=1, sim=cfg.simulation)
    [finding] = plan.findings
    assert finding.key == "--minutes 1" and finding.message.startswith("one cycle takes more than 43 s: not one fits")
    assert plan.limited and plan.session_cycles == 0 and plan.session_s == pytest.approx(43.0, abs=0.05)
