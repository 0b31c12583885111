"""SAFE-9 sensor faults: no good reading for longer than the stale limit, implausible values, a stuck reading and
repeated spikes trip; a short gap and two spikes are tolerated. The manifold sensor is watched too."""

from __future__ import annotations

import math

import pytest

from legsleeve.core.readings import Reading, Readings
from legsleeve.safety.supervisor import Supervisor
from tests.helpers import HOLD_ALL, TICK, drive, rd


def test_safe9_a_bad_reading_shorter_than_stale_limit_is_tolerated(sup, cfg):
    drive(sup, 0, 0.1, HOLD_ALL, knee=20.0)
    _, tripped = drive(sup, 0.1, 0.1 + cfg.limits.sensor_stale_s - TICK, HOLD_ALL, knee=None)
    assert tripped is None
    _, tripped = drive(sup, 0.3, 1.0, HOLD_ALL, knee=20.0)
    assert tripped is None


def test_safe9_no_good_reading_for_longer_than_stale_limit_trips(sup, cfg):
    drive(sup, 0, 0.1, HOLD_ALL, knee=20.0)
    _, tripped = drive(sup, 0.1, 1.0, HOLD_ALL, knee=None)
    assert tripped == pytest.approx(0.08 + cfg.limits.sensor_stale_s + TICK, abs=TICK + 1e-9)
    assert sup.tripped.rule == "SAFE-9" and sup.tripped.zone == "knee" and "NACK" in sup.tripped.reason


def test_safe9_manifold_sensor_is_watched_too(sup):
    _, tripped = drive(sup, 0, 1.0, HOLD_ALL, faults={"manifold": "sensor: NACK"})
    assert sup.tripped.zone == "manifold"


@pytest.mark.parametrize("value, trips", [(-14.0, False), (-16.0, True), (math.nan, True)])
def test_safe9_implausible_values_count_as_bad(sup, value, trips):
    _, tripped = drive(sup, 0, 1.0, HOLD_ALL, thigh=value)
    assert (tripped is not None) == trips


def test_safe9_stuck_reading(sup, cfg):
    stuck = Reading(20.123456, 0.0)
    t = 0.0
    while t < cfg.limits.sensor_stuck_s - TICK / 2:
        r = rd(t, ankle=20.0)
        sup.review(t, Readings(t, (Reading(stuck.mmhg, t), *r.zones[1:]), r.manifold), HOLD_ALL)
        t += TICK
    assert sup.tripped is None  # identical for just under the limit
    for _ in range(3):
        r = rd(t, ankle=20.0)
        sup.review(t, Readings(t, (Reading(stuck.mmhg, t), *r.zones[1:]), r.manifold), HOLD_ALL)
        t += TICK
    assert sup.tripped.rule == "SAFE-9" and "stuck" in sup.tripped.reason


def _spiky(sup, n_spikes):
    t = 0.0
    for k in range(200):
        p = 30.0 + (60.0 if k % 20 == 10 and k // 20 < n_spikes else 0.0)
        sup.review(t, rd(t, ankle=p), HOLD_ALL)
        if sup.tripped:
            return True
        t += TICK
    return False


def test_safe9_two_spikes_are_tolerated_three_trip(cfg):
    assert not _spiky(Supervisor(cfg, [45.0, 40.0, 35.0, 30.0]), 2)
    sup = Supervisor(cfg, [45.0, 40.0, 35.0, 30.0])
    assert _spiky(sup, 3)
    assert sup.tripped.rule == "SAFE-9" and "jumped" in sup.tripped.reason
