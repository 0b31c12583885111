"""The controller as a pure function: tables of (t, pressures) -> expected commands, on injected time."""

from __future__ import annotations

import dataclasses
import math

import pytest

from legsleeve.core.commands import FILL, HOLD, SAFE, VENT, Commands
from legsleeve.core.controller import Controller, Output, Phase, Status
from legsleeve.core.plan import RefillSpec, Step, StepKind, Turn
from tests.helpers import FILL0, FILL1, VENT_ALL, profile, readings

MIN_DUTY = 0.7


def run_table(ctl, table):
    """Each row: (t_s, pressures, expected actions, expected duty or None to skip, expected state or None)."""
    for t, pressures, actions, duty, state in table:
        cmd, status = ctl.step(t, readings(t, *pressures))
        assert tuple(cmd.action(i) for i in range(len(actions))) == tuple(actions), (t, cmd)
        if duty is not None:
            assert cmd.pump_duty == pytest.approx(duty), (t, cmd)
        if state is not None:
            assert status.step == state, t


def test_sequential_fill_hold_vent_rest():
    ctl = Controller(
        profile(
            [FILL0, FILL1, Step(StepKind.HOLD, duration_s=5), VENT_ALL, Step(StepKind.REST, (0, 1), duration_s=10)]
        ),
        min_duty=MIN_DUTY,
    )
    run_table(
        ctl,
        [
            (0.00, (0, 0), (FILL, VENT), 1.0, "fill ankle"),  # far from target: full duty
            (3.00, (20, 0), (FILL, VENT), 1.0, "fill ankle"),
            (5.00, (38, 0), (FILL, VENT), MIN_DUTY + (1 - MIN_DUTY) * 0.5, "fill ankle"),  # tapering, 2 mmHg short
            (5.02, (40.1, 0), (HOLD, FILL), 1.0, "fill calf"),  # reached: hold it, the next zone fills
            (8.00, (39.5, 30), (HOLD, FILL), 1.0, "fill calf"),
            (9.00, (39.4, 35.2), (HOLD, HOLD), 0.0, "hold 5s"),  # all full: pump off, both held
            (13.9, (39.0, 34.8), (HOLD, HOLD), 0.0, "hold 5s"),
            (14.0, (39.0, 34.8), (VENT, VENT), 0.0, "rest 10s"),  # vent (no wait) then rest
            (23.9, (0.5, 0.4), (VENT, VENT), 0.0, "rest 10s"),
            (24.0, (0.5, 0.4), (VENT, VENT), 0.0, "done"),  # one cycle asked for: done, safe
        ],
    )
    assert ctl.status.done and ctl.status.cycle == 1 and ctl.status.kind is None
    assert ctl.step(25.0, readings(25.0, 0, 0)).commands == SAFE
    assert ctl.status.zones[0].fill_times_s == (pytest.approx(5.02),)
    assert ctl.status.zones[1].fill_times_s == (pytest.approx(9.0 - 5.02),)


def test_closes_the_inlet_one_tick_early_at_the_present_rise():
    ctl = Controller(profile([FILL0, Step(StepKind.HOLD, duration_s=60)]), min_duty=MIN_DUTY)
    t, p = 0.0, 34.05
    while ctl.step(t, readings(t, p, 0)).commands.action(0) is FILL:
        t, p = t + 0.02, p + 0.2  # 10 mmHg/s, a reading every 20 ms
        assert p < 40.5, "never closed"
    # closed before the reading reached the target, by about one tick of rise (0.2 mmHg)
    assert 39.7 < p < 40.0


def test_top_up_below_hysteresis_only():
    ctl = Controller(profile([FILL0, Step(StepKind.HOLD, duration_s=60)]), min_duty=MIN_DUTY)
    run_table(
        ctl,
        [
            (0.0, (40.5, 0), (HOLD, VENT), 0.0, "hold 60s"),
            (10.0, (38.1, 0), (HOLD, VENT), 0.0, None),  # 1.9 below target: inside the 2 mmHg band, no top-up
            (11.0, (37.9, 0), (FILL, VENT), None, None),  # below the band: top up
            (12.0, (40.2, 0), (HOLD, VENT), 0.0, None),
        ],
    )
    assert ctl.status.zones[0].topups == 1
    assert ctl.status.zones[0].fill_times_s == (0.0,)  # a top-up is not a fill


def test_lower_target_bleeds_through_the_exhaust():
    steps = [
        FILL0,
        Step(StepKind.HOLD, duration_s=1),
        Step(StepKind.FILL, (0,), scale=0.5),
        Step(StepKind.HOLD, duration_s=60),
    ]
    ctl = Controller(profile(steps), min_duty=MIN_DUTY)
    run_table(
        ctl,
        [
            (0.0, (40.0, 0), (HOLD, VENT), 0.0, "hold 1s"),
            (1.0, (40.0, 0), (VENT, VENT), 0.0, "fill ankle"),  # target 20 now: bleed; the step waits for it
            (2.0, (25.0, 0), (VENT, VENT), 0.0, "fill ankle"),
            (2.5, (19.9, 0), (HOLD, VENT), 0.0, "hold 60s"),  # at or below the new target: hold, step done
        ],
    )
    assert ctl.status.zones[0].phase is Phase.HOLDING and ctl.status.zones[0].target_mmhg == 20


def test_never_fills_blind():
    ctl = Controller(profile([FILL0, FILL1, Step(StepKind.HOLD, duration_s=60)]), min_duty=MIN_DUTY)
    run_table(
        ctl,
        [
            (0.0, (10, 0), (FILL, VENT), 1.0, None),
            (0.1, (None, 0), (HOLD, VENT), 0.0, None),  # no reading: stop filling, no pump
            (0.2, (11, 0), (FILL, VENT), 1.0, None),
        ],
    )


def test_vent_wait_waits_for_5_mmhg():
    steps = [FILL0, Step(StepKind.VENT, (0,), wait=True), FILL1, Step(StepKind.HOLD, duration_s=1)]
    ctl = Controller(profile(steps), min_duty=MIN_DUTY)
    run_table(
        ctl,
        [
            (0.0, (40, 0), (VENT, VENT), 0.0, "vent ankle"),
            (3.0, (5.1, 0), (VENT, VENT), 0.0, "vent ankle"),
            (3.1, (4.9, 0), (VENT, FILL), 1.0, "fill calf"),
        ],
    )


def test_session_by_minutes_finishes_the_cycle_under_way():
    steps = [FILL0, Step(StepKind.HOLD, duration_s=30), VENT_ALL]
    ctl = Controller(profile(steps, cycles=None), min_duty=MIN_DUTY, minutes=1.0)
    t = 0.0
    for _ in range(10_000):
        if ctl.step(t, readings(t, 40.0, 0)).status.done:
            break
        t += 0.5
    # cycles of ~30 s: the first to start after 60 s is not begun
    assert ctl.status.done and ctl.status.cycle == 2 and 60.0 <= t < 61.0


def test_no_cycle_starts_that_would_end_past_the_deadline():
    """SAFE-10: a session asked for longer than the deadline allows ends at the last whole cycle that fits, done and
    vented, `limited` saying why; one asked for less is not touched."""
    steps = [FILL0, Step(StepKind.HOLD, duration_s=30), VENT_ALL]

    def run(**length):
        ctl = Controller(profile(steps, cycles=None), min_duty=MIN_DUTY, deadline_s=100.0, **length)
        t = 0.0
        while not ctl.step(t, readings(t, 40.0, 0)).status.done:
            t += 0.5
            assert t < 1000
        return ctl.status, t

    status, t = run(minutes=10.0)  # cycles of ~30 s: the fourth would end at ~120 s, past 100 s
    assert status.cycle == 3 and status.limited and 90.0 <= t <= 93.0
    status, t = run(cycles=3)  # the same three cycles, asked for: not limited
    assert status.cycle == 3 and not status.limited and 90.0 <= t <= 93.0
    status, t = run(minutes=1.0)  # ends at the first cycle end after 60 s, well inside the deadline
    assert status.cycle == 2 and not status.limited and 60.0 <= t <= 63.0


def test_a_cycle_under_way_at_the_deadline_ends_there_vented():
    """A cycle longer than those before it (a slow fill) does not run past the deadline: every zone vents then."""
    steps = [FILL0, Step(StepKind.HOLD, duration_s=30), VENT_ALL]
    ctl = Controller(profile(steps, cycles=None), min_duty=MIN_DUTY, minutes=10.0, deadline_s=70.0)
    t = 0.0
    while t < 69.99:
        p = 0.0 if t >= 30.0 else 40.0  # from the second cycle on, the ankle never fills
        out = ctl.step(t, readings(t, p, 0))
        assert not out.status.done
        t += 0.5
    assert out.commands.action(0) is FILL
    out = ctl.step(70.0, readings(70.0, 0.0, 0))
    assert out.commands == SAFE and out.status.done and out.status.limited and out.status.cycle == 1


def test_ramp_scales_targets_by_cycle():
    p = profile([FILL0, Step(StepKind.HOLD, duration_s=1), VENT_ALL], cycles=4, ramp_cycles=2, ramp_start=0.5)
    ctl = Controller(p, min_duty=MIN_DUTY)
    seen, t, pressure = [], 0.0, 0.0
    while not ctl.status.done and t < 100:
        z = ctl.step(t, readings(t, pressure, 0)).status.zones[0]
        if z.phase is Phase.FILLING:
            if not seen or seen[-1] != z.target_mmhg:
                seen.append(z.target_mmhg)
            pressure = z.target_mmhg  # reach it by the next tick
        elif z.phase is Phase.VENTED:
            pressure = 0.0
        t += 0.5
    assert seen == [20.0, 30.0, 40.0]  # the fourth cycle runs at the full 40 too
    assert ctl.status.done and ctl.status.cycle == 4


def test_multi_zone_fill_tapers_on_the_furthest_zone():
    ctl = Controller(profile([Step(StepKind.FILL, (0, 1)), Step(StepKind.HOLD, duration_s=9)]), min_duty=MIN_DUTY)
    cmd = ctl.step(0.0, readings(0.0, 39.0, 20.0)).commands
    assert cmd.zones == (FILL, FILL) and cmd.pump_duty == 1.0
    cmd = ctl.step(1.0, readings(1.0, 40.5, 33.0)).commands
    assert cmd.zones == (HOLD, FILL) and cmd.pump_duty == pytest.approx(MIN_DUTY + (1 - MIN_DUTY) * 0.5)


def test_commands_default_to_the_safe_state():
    assert Commands() == SAFE and SAFE.is_safe()
    assert SAFE.action(7) is VENT
    assert not Commands(0.0, (HOLD,)).is_safe()


@pytest.mark.parametrize("zones", [(), (FILL,), (FILL, HOLD), (FILL, HOLD, VENT, FILL)])
@pytest.mark.parametrize("n", [0, 1, 2, 4])
def test_actions_are_action_of_each_zone(zones, n):
    """`actions(n)`, the rules' one call a tick, is `action(i)` for every zone i < n: missing zones vented."""
    cmd = Commands(1.0, zones)
    assert cmd.actions(n) == tuple(cmd.action(i) for i in range(n))


def test_step_returns_output_with_a_frozen_status():
    """step() returns Output(commands, status); the status is frozen, a snapshot that later steps leave alone, and
    the same object for as long as nothing in it changes."""
    ctl = Controller(profile([FILL0, Step(StepKind.HOLD, duration_s=60)]), min_duty=MIN_DUTY)
    assert ctl.status.step == "start" and ctl.status.kind is None and not ctl.status.done  # before the first step

    out = ctl.step(0.0, readings(0.0, 0, 0))
    assert isinstance(out, Output) and isinstance(out.commands, Commands) and isinstance(out.status, Status)
    commands, filling = out
    assert (commands, filling) == (out.commands, out.status) and filling is ctl.status
    assert (filling.step, filling.kind, filling.cycle, filling.done) == ("fill ankle", StepKind.FILL, 0, False)
    assert isinstance(filling.kind, StepKind)
    ankle = filling.zones[0]
    assert (ankle.phase, ankle.target_mmhg, ankle.fill_times_s, ankle.topups) == (Phase.FILLING, 40.0, (), 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        filling.step = "hold 60s"
    with pytest.raises(dataclasses.FrozenInstanceError):
        filling.zones[0].phase = Phase.HOLDING
    as_it_was = repr(filling)  # every field, the zones' too (a compiled frozen dataclass has no deepcopy)

    # nothing changes: the same object
    assert ctl.step(0.02, readings(0.02, 1.0, 0)).status is filling
    # the ankle reaches its target: a phase change, and the step moves on - a new status
    holding = ctl.step(0.04, readings(0.04, 40.5, 0)).status
    assert holding is not filling and holding.step == "hold 60s" and holding.kind is StepKind.HOLD
    assert holding.zones[0].phase is Phase.HOLDING and holding.zones[0].fill_times_s == (pytest.approx(0.04),)
    assert ctl.step(1.0, readings(1.0, 40.2, 0)).status is holding
    # a top-up: the step stays, the zone's phase changes - a new status
    topping_up = ctl.step(2.0, readings(2.0, 37.9, 0)).status
    assert topping_up is not holding and topping_up.step == holding.step
    assert topping_up.zones[0].phase is Phase.FILLING and topping_up.zones[0].topups == 1
    # done: no kind
    done = ctl.step(61.0, readings(61.0, 40.0, 0)).status
    assert done.done and done.kind is None and done.step == "done" and done.cycle == 1

    # the statuses handed out earlier are as they were
    assert repr(filling) == as_it_was and filling.step == "fill ankle" and filling.zones[0].phase is Phase.FILLING
    assert holding.zones[0].phase is Phase.HOLDING and holding.zones[0].topups == 0 and not holding.done


def test_a_top_up_pauses_a_lower_fill_sharing_the_pump():
    # one pump, two open inlets: the air goes to the lower zone, so a top-up beside a fill would starve. The top-up
    # takes the pump alone for its moment; the lower fill waits, then goes on.
    ctl = Controller(profile([FILL0, FILL1, Step(StepKind.HOLD, duration_s=60)]), min_duty=MIN_DUTY)
    run_table(
        ctl,
        [
            (0.00, (0, 0), (FILL, VENT), 1.0, "fill ankle"),
            (5.00, (40.1, 0), (HOLD, FILL), 1.0, "fill calf"),
            (6.00, (38.5, 10), (HOLD, FILL), 1.0, "fill calf"),  # within the band: no top-up yet
            (6.02, (37.9, 11), (FILL, HOLD), None, "fill calf"),  # the ankle sags: its top-up alone
            (6.30, (39.5, 11), (FILL, HOLD), None, "fill calf"),
            (6.32, (40.2, 11), (HOLD, FILL), 1.0, "fill calf"),  # topped up: the calf's fill goes on
            (7.00, (39.8, 20), (HOLD, FILL), 1.0, "fill calf"),
        ],
    )
    assert ctl.status.zones[0].topups == 1


def test_a_top_up_shares_the_pump_with_a_fill_close_to_it():
    # a fill within share_mmhg of the top-up is not starved by it: both inlets stay open
    ctl = Controller(profile([FILL0, FILL1, Step(StepKind.HOLD, duration_s=60)]), min_duty=MIN_DUTY)
    run_table(
        ctl,
        [
            (0.00, (0, 0), (FILL, VENT), 1.0, "fill ankle"),
            (5.00, (40.1, 0), (HOLD, FILL), 1.0, "fill calf"),
            (6.00, (37.9, 34), (FILL, FILL), None, "fill calf"),
        ],
    )


# -- refill-adaptive rest: limbs taken by readiness, the sleeves' loss checked ----------------------------------


class _Legs:
    """A plant for the refill tests: one zone per limb. A fill raises its zone 25 mmHg/s, a vent lets it down with
    a 0.8 s time constant, and a zone held below 20 mmHg after a compression rises as the limb's veins refill (T90
    `refill_s`, 1.5 mmHg in all; what refills while it vents is vented away); a held zone loses `loss_per_s` of its
    pressure each second."""

    def __init__(self, refill_s, loss_per_s=0.0, rise_mmhg=1.5):
        self.refill_s = refill_s
        self.loss_per_s = loss_per_s
        self.rise_mmhg = rise_mmhg
        self.p = [0.0] * len(refill_s)
        self.released_s = [None] * len(refill_s)

    def apply(self, t, dt, commands):
        for i, tau in enumerate(s / 2.302585 for s in self.refill_s):
            action, p = commands.action(i), self.p[i]
            if action is FILL and commands.pump_duty > 0.0:
                p += 25.0 * dt
            elif action is VENT:
                if p > 30.0:
                    self.released_s[i] = t
                p *= math.exp(-dt / 0.8)
            else:
                since = None if self.released_s[i] is None else t - self.released_s[i]
                if since is not None and p < 20.0:
                    p += self.rise_mmhg * (math.exp(-(since - dt) / tau) - math.exp(-since / tau))
                p -= self.loss_per_s * p * dt
            self.p[i] = p


def _turns_profile(limbs, *, min_s=10.0, max_s=60.0, leak_check_s=0.0, cycles=3):
    """An alternating cycle on one zone per limb: wait for its refill, fill to 40, hold 2 s, vent, measure."""
    steps, turns = [], []
    for i, limb in enumerate(limbs):
        body = [
            Step(StepKind.REFILL, (i,), limb=limb),
            Step(StepKind.FILL, (i,)),
            Step(StepKind.HOLD, duration_s=2.0, limb=limb),
            Step(StepKind.VENT, (i,)),
            Step(StepKind.MEASURE, (i,), limb=limb),
        ]
        turns.append(Turn(limb, len(steps), len(steps) + len(body)))
        steps += body
    return dataclasses.replace(
        profile(steps, targets=(40.0,) * len(limbs), cycles=cycles),
        zone_names=tuple(limbs),
        zone_limbs=tuple(limbs),
        alternate=True,
        refill=RefillSpec(10.0, min_s, max_s, rewarm_s=0.0, leak_check_s=leak_check_s),
        turns=tuple(turns),
    )


def _run_legs(ctl, legs, until_s=600.0):
    """Tick the controller on the plant until done; the limbs in the order their compressions began."""
    t, dt, order, last = 0.0, 0.02, [], None
    while not ctl.status.done and t < until_s:
        out = ctl.step(t, readings(t, *legs.p))
        step = out.status.step
        if step.startswith("fill ") and step != last:
            order.append(step.split()[1])
        last = step
        legs.apply(t, dt, out.commands)
        t += dt
    return order


def test_turns_go_by_readiness_so_each_limb_rests_its_own_refill_time():
    """A limb refilling in 15 s beside one taking 45 s: strict turns would rest both ~45 s. By readiness the quick
    one is compressed at least twice to the slow one's once, and each rest follows its own limb's refill."""
    legs = _Legs((15.0, 45.0))
    ctl = Controller(_turns_profile(("left", "right")), min_duty=MIN_DUTY)
    order = _run_legs(ctl, legs)
    assert ctl.status.done and ctl.status.cycle == 3 and not ctl.status.limited
    assert order[:2] == ["left", "right"]  # both ready at the start: in the profile's order
    assert order.count("right") == 3 and order.count("left") >= 2 * order.count("right")
    truth = {"left": 15.0, "right": 45.0}
    for r in ctl.status.refills:
        assert r.refill_s == pytest.approx(truth[r.limb], rel=0.1), r
        if r.rest_s - r.ready_s < 0.05:  # compressed as soon as ready: it rested its own refill time
            assert r.rest_s == pytest.approx(truth[r.limb], rel=0.15), r
        else:  # ready while the other limb was compressed: that compression (~4 s here) ran on
            assert r.rest_s - r.ready_s < 5.0, r


def test_a_cycle_ends_once_every_limb_has_had_its_turn():
    """Turns by readiness go left, right, left, left, right: the second cycle holds two of left's turns and ends
    with right's. Two cycles asked for: done after it, every limb compressed at least twice."""
    legs = _Legs((15.0, 45.0))
    ctl = Controller(_turns_profile(("left", "right"), cycles=2), min_duty=MIN_DUTY)
    t, turns, last = 0.0, [], None
    while not ctl.status.done and t < 600.0:
        out = ctl.step(t, readings(t, *legs.p))
        if out.status.step.startswith("fill ") and out.status.step != last:
            turns.append((out.status.step.split()[1], out.status.cycle))
        last = out.status.step
        legs.apply(t, 0.02, out.commands)
        t += 0.02
    assert turns == [("left", 0), ("right", 0), ("left", 1), ("left", 1), ("right", 1)]
    assert ctl.status.done and ctl.status.cycle == 2 and not ctl.status.limited


def test_a_limb_at_its_bound_goes_before_one_ready_since():
    """Three limbs: two refill in 12 s, one shows no rise (its rest runs to max_s). When that one reaches its bound
    it goes at the end of the turn under way, before the quick ones that became ready since: it never starves."""
    legs = _Legs((12.0, 12.0, 12.0))
    legs.rise_mmhg = 1.5
    ctl = Controller(_turns_profile(("a", "b", "c"), max_s=30.0, cycles=3), min_duty=MIN_DUTY)
    flat = 2  # c's veins give nothing: its zone is held still
    t, order, last = 0.0, [], None
    while not ctl.status.done and t < 600.0:
        out = ctl.step(t, readings(t, *legs.p))
        step = out.status.step
        if step.startswith("fill ") and step != last:
            order.append(step.split()[1])
        last = step
        before = legs.p[flat]
        legs.apply(t, 0.02, out.commands)
        if out.commands.action(flat) is HOLD:
            legs.p[flat] = before
        t += 0.02
    c_rests = [r for r in ctl.status.refills if r.limb == "c"]
    assert c_rests and all(r.refill_s is None for r in c_rests)  # not detected: rested to the bound
    assert all(r.rest_s < 30.0 + 5.0 for r in c_rests)  # at most the turn under way at its bound on top
    assert order[:3] == ["a", "b", "c"]


def test_the_sleeves_are_checked_for_their_own_loss_before_the_first_compression():
    """Every limb's zone is filled to the refill level in turn, held closed, and its loss measured; the first
    compression waits for the check; the measures then allow for the loss."""
    legs = _Legs((20.0, 40.0), loss_per_s=1e-3)
    ctl = Controller(_turns_profile(("left", "right"), leak_check_s=30.0, cycles=2), min_duty=MIN_DUTY)
    t, first_fill, steps = 0.0, None, []
    while not ctl.status.done and t < 600.0:
        out = ctl.step(t, readings(t, *legs.p))
        if not steps or steps[-1] != out.status.step:
            steps.append(out.status.step)
        if t < 0.3:  # one zone at a time: the left first, the right waiting (vented)
            assert out.commands.action(0) is FILL and out.commands.action(1) is VENT
            assert out.status.zones[1].phase is Phase.VENTED
        if first_fill is None and out.status.step.startswith("fill "):
            first_fill = t
        legs.apply(t, 0.02, out.commands)
        t += 0.02
    assert steps[0] == "leak check left right"
    assert first_fill is not None and first_fill >= 30.0  # the check's 30 s after the left zone was held
    losses = dict(ctl.status.sleeve_losses)
    assert losses["left"] == pytest.approx(1e-3, rel=0.1) and losses["right"] == pytest.approx(1e-3, rel=0.1)
    # the fills counted are the compressions', the first from the refill level ((40 - 10) / 25 s): the check's
    # fill to it is not a therapy fill
    assert ctl.status.zones[0].fill_times_s[0] == pytest.approx(1.2, abs=0.05)
    truth = {"left": 20.0, "right": 40.0}
    assert ctl.status.refills and all(r.refill_s == pytest.approx(truth[r.limb], rel=0.1) for r in ctl.status.refills)
