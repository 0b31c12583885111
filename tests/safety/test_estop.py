"""SAFE-12 the E-stop: a pressed E-stop trips at once, in the supervisor on its own and end to end on the rig."""

from __future__ import annotations

from legsleeve.app.session import run_session
from legsleeve.config.profiles import load_profile
from legsleeve.core.commands import SAFE
from legsleeve.core.readings import Readings
from legsleeve.hw.backends import open_sim
from legsleeve.sim.faults import FaultSpec
from tests.helpers import CONFIG_DIR, FILL_CALF, TICK, rd


def test_safe12_estop(sup):
    r = rd(0.0)
    sup.review(0.0, r, FILL_CALF)
    assert sup.tripped is None
    pressed = Readings(TICK, r.zones, r.manifold, estop_pressed=True)
    assert sup.review(TICK, pressed, FILL_CALF) == SAFE and sup.tripped.rule == "SAFE-12"


def test_estop_trips_safe12(cfg):
    rig = open_sim(cfg, seed=1, faults=[FaultSpec("estop", None, 20.0)])
    try:
        result = run_session(rig, load_profile(CONFIG_DIR, "gradient", cfg), cycles=1)
    finally:
        rig.close()
    assert result.outcome.trip.rule == "SAFE-12" and result.outcome.vented
