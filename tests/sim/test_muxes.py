"""The simulated rig with several TCA9548A multiplexers: one simulated chip per address, the sensors on the right
channels, two open channels caught as an open-drain collision, and the firmware's sweep reading every sensor
right with nine sensors on two multiplexers."""

from __future__ import annotations

import pytest

from legsleeve.config.hardware import load_hardware
from legsleeve.core.units import HPA_PER_PSI, MMHG_PER_HPA
from legsleeve.hw.backends import open_sim
from legsleeve.sim.chips import COUNT_MAX, COUNT_MIN, PSI_MAX, SimTCA9548A
from legsleeve.sim.world import SimWorld
from tests.helpers import fill_unevenly, quiet_sensors, write_multiplexed_hardware

TWO = "[0x70, 0x71]"


@pytest.fixture
def four_on_two(tmp_path):
    """The reference four zones with the calf and thigh sensors on a second multiplexer (channels 9 and 11)."""
    return quiet_sensors(load_hardware(write_multiplexed_hardware(tmp_path, TWO, [0, 9, 2, 11], manifold_channel=4)))


@pytest.fixture
def nine_sensors(tmp_path):
    """Eight zones and the manifold: nine sensors, one more than a multiplexer has channels."""
    zones = [0, 1, 2, 3, 4, 5, 6, 7]
    return quiet_sensors(load_hardware(write_multiplexed_hardware(tmp_path, TWO, zones, manifold_channel=8)))


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


def _to_mmhg(buf, ambient_hpa):
    count = (buf[1] << 16) | (buf[2] << 8) | buf[3]
    return ((count - COUNT_MIN) * PSI_MAX / (COUNT_MAX - COUNT_MIN) * HPA_PER_PSI - ambient_hpa) * MMHG_PER_HPA


def _sweep_without_closing(world, ports):
    """A sweep as one multiplexer allows it: each sensor's channel byte written to its own multiplexer, whatever
    another multiplexer has open - the firmware's sweep before it knew of several. Returns (status, mmHg) by name."""
    bus, sensor = world.bus, world.config.i2c.sensor_address
    buf = bytearray(4)
    assert bus.try_lock()
    for address, channel in ports.values():
        bus.writeto(address, bytes((1 << channel,)))
        bus.writeto(sensor, b"\xaa\x00\x00")
    world.clock.advance(0.006)
    out = {}
    for name, (address, channel) in ports.items():
        bus.writeto(address, bytes((1 << channel,)))
        bus.readfrom_into(sensor, buf)
        out[name] = (buf[0], _to_mmhg(buf, world.config.simulation.ambient_hpa))
    bus.unlock()
    return out


def test_a_sweep_that_leaves_the_other_multiplexer_open_reads_two_sensors_at_once(four_on_two):
    """The collision model catches the bug: ankle (0x70 ch0) and calf (0x71 ch1) answer together, their bytes AND,
    and the status byte still says all is well - a wrong, plausible reading, never a fault."""
    rig = open_sim(four_on_two, seed=4)
    try:
        rig.zero_sensors()
        fill_unevenly(rig, 4, step_s=1.0)
        truth = {name: rig.world.zone_mmhg(name) for name in ("ankle", "calf")}
        assert truth["calf"] - truth["ankle"] > 5
        mixed = _sweep_without_closing(rig.world, {"ankle": (0x70, 0), "calf": (0x71, 1)})
        assert [status for status, _ in mixed.values()] == [0x40, 0x40]  # powered, not busy, no error bit
        errors = {name: mixed[name][1] - truth[name] for name in truth}
        assert mixed["ankle"] == mixed["calf"]  # both reads get the same mixture of the two chips' bytes
        assert max(abs(e) for e in errors.values()) > 5, errors  # far beyond the sensor's ~0.08 mmHg noise
        assert all(e <= 1e-3 for e in errors.values()), errors  # an AND only clears bits: never higher
        # the firmware's own sweep, on the same air, reads both right
        readings = rig.read()
        for i, name in enumerate(four_on_two.zone_names):
            assert readings.zones[i].mmhg == pytest.approx(rig.world.zone_mmhg(name), abs=0.01), name
    finally:
        rig.close()


def test_the_sweep_reads_nine_sensors_on_two_multiplexers_right(nine_sensors):
    rig = open_sim(nine_sensors, seed=5)
    try:
        rig.zero_sensors()
        fill_unevenly(rig, 8)
        for _ in range(3):
            readings = rig.read()
            truth = [rig.world.zone_mmhg(name) for name in nine_sensors.zone_names]
            assert len({round(p) for p in truth}) == 8  # every zone at its own pressure: a mix-up would show
            for reading, true, name in zip(readings.zones, truth, nine_sensors.zone_names, strict=True):
                assert reading.ok and reading.mmhg == pytest.approx(true, abs=0.01), name
            assert readings.manifold.mmhg == pytest.approx(rig.world.manifold_mmhg(), abs=0.01)
            # between sweeps no more than one channel is open anywhere
            assert sum(bin(mux.mask).count("1") for mux in rig.world.muxes.values()) <= 1
            rig.clock.sleep(0.02)
    finally:
        rig.close()
