"""The simulated rig with several TCA9548A multiplexers: one simulated chip per address, the sensors on the right
channels."""

from __future__ import annotations

import dataclasses

import pytest

from legsleeve.config.hardware import load_hardware
from legsleeve.sim.chips import SimTCA9548A
from legsleeve.sim.world import SimWorld
from tests.helpers import write_multiplexed_hardware

TWO = "[0x70, 0x71]"


def _quiet(cfg):
    """No sensor noise or offset: a reading is the air's pressure to the count."""
    sim = dataclasses.replace(cfg.simulation, sensor_noise_mmhg=0.0, sensor_offset_mmhg=0.0)
    return dataclasses.replace(cfg, simulation=sim)


@pytest.fixture
def four_on_two(tmp_path):
    """The reference four zones with the calf and thigh sensors on a second multiplexer (channels 9 and 11)."""
    return _quiet(load_hardware(write_multiplexed_hardware(tmp_path, TWO, [0, 9, 2, 11], manifold_channel=4)))


@pytest.fixture
def nine_sensors(tmp_path):
    """Eight zones and the manifold: nine sensors, one more than a multiplexer has channels."""
    zones = [0, 1, 2, 3, 4, 5, 6, 7]
    return _quiet(load_hardware(write_multiplexed_hardware(tmp_path, TWO, zones, manifold_channel=8)))


def test_one_simulated_multiplexer_per_address_with_each_sensor_on_its_channel(four_on_two):
    world = SimWorld(four_on_two)
    assert sorted(world.muxes) == [0x70, 0x71]
    assert all(isinstance(mux, SimTCA9548A) for mux in world.muxes.values())
    assert world.bus.try_lock()
    assert world.bus.scan() == [0x70, 0x71]  # every channel closed: only the multiplexers answer
    world.bus.unlock()
    where = {
        chip.name: (address, channel)
        for address, mux in world.muxes.items()
        for channel, chips in mux.channels.items()
        for chip in chips.values()
    }
    assert where == {
        "ankle": (0x70, 0),
        "calf": (0x71, 1),
        "knee": (0x70, 2),
        "thigh": (0x71, 3),
        "manifold": (0x70, 4),
    }
