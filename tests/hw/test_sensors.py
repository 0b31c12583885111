"""Sensors: the unmodified adafruit_mprls driver on simulated chips through the (simulated) TCA9548A, the deadline,
lock recovery, status bits, and the zero taken at start."""

from __future__ import annotations

import dataclasses
import random

import adafruit_mprls
import pytest

from legsleeve.core.clock import VirtualClock
from legsleeve.core.commands import FILL, HOLD, Commands
from legsleeve.core.units import HPA_PER_PSI, MMHG_PER_HPA
from legsleeve.errors import SensorFault
from legsleeve.hw.backends import open_sim
from legsleeve.hw.i2c import DeadlineI2C
from legsleeve.sim.bus import SimI2C
from legsleeve.sim.chips import COUNT_MAX, COUNT_MIN, SimMPRLS, SimTCA9548A, psi_to_count
from legsleeve.sim.faults import FaultSpec

RESOLUTION_MMHG = 25 * HPA_PER_PSI * MMHG_PER_HPA / (COUNT_MAX - COUNT_MIN)  # one count, ~1e-4 mmHg


def _quiet(cfg):
    """The shipped config with a noiseless, offset-free sensor model."""
    return dataclasses.replace(
        cfg, simulation=dataclasses.replace(cfg.simulation, sensor_noise_mmhg=0.0, sensor_offset_mmhg=0.0)
    )


def _chip_on_bus(true_hpa):
    clock = VirtualClock()
    bus = SimI2C(clock, frequency_hz=400_000, overhead_s=1e-4)
    chip = SimMPRLS(
        "z", clock, lambda: true_hpa[0], conversion_s=0.005, noise_mmhg=0.0, offset_mmhg=0.0, rng=random.Random(0)
    )
    bus.attach(0x18, chip)
    return clock, bus, chip


def test_chip_speaks_the_datasheet_protocol():
    clock, bus, chip = _chip_on_bus([1013.25])
    buf = bytearray(4)
    assert bus.try_lock()
    bus.readfrom_into(0x18, buf, end=1)
    assert buf[0] == 0x40  # powered, idle
    bus.writeto(0x18, bytes([0xAA, 0x00, 0x00]))
    bus.readfrom_into(0x18, buf, end=1)
    assert buf[0] == 0x60  # powered | busy while converting
    clock.advance(0.005)
    bus.readfrom_into(0x18, buf)
    assert buf[0] == 0x40
    count = (buf[1] << 16) | (buf[2] << 8) | buf[3]
    assert count == psi_to_count(1013.25 / HPA_PER_PSI)
    bus.unlock()


def test_transfer_function_endpoints():
    assert psi_to_count(0.0) == COUNT_MIN == 0x19999A
    assert psi_to_count(25.0) == COUNT_MAX == 0xE66666


def test_stock_driver_reads_the_chip_to_one_count():
    true = [1013.25]
    clock, bus, chip = _chip_on_bus(true)
    driver = adafruit_mprls.MPRLS(bus)  # the unmodified Adafruit driver, on our simulated busio.I2C
    for hpa in (950.0, 1013.25, 1100.0, 1200.0):
        true[0] = hpa
        t0 = clock.now()
        assert driver.pressure == pytest.approx(hpa, abs=2 * RESOLUTION_MMHG / MMHG_PER_HPA)
        # it waited out the conversion on the virtual clock, polling the busy bit
        assert 0.005 <= clock.now() - t0 < 0.008


def test_driver_through_mux_tracks_the_air_within_resolution(cfg):
    rig = open_sim(_quiet(cfg), seed=3)
    try:
        rig.zero_sensors()
        rig.apply(Commands(1.0, (FILL, FILL)))
        rig.clock.sleep(3.0)
        rig.apply(Commands(0.0, (HOLD, HOLD)))
        rig.clock.sleep(0.5)
        readings = rig.read()
        for i, name in enumerate(cfg.zone_names):
            true = rig.world.zone_mmhg(name)
            assert readings.zones[i].ok
            # holding: the air is still, so the reading matches it to the count
            assert readings.zones[i].mmhg == pytest.approx(true, abs=0.01), name
        assert readings.zones[0].mmhg > 10 and abs(readings.zones[2].mmhg) < 0.01
    finally:
        rig.close()


def test_deadline_turns_a_never_ready_sensor_into_a_fault(cfg):
    rig = open_sim(cfg, seed=1, faults=[FaultSpec("sensor-busy", "calf", 0.0)])
    try:
        sensor = rig.sensors.zones[1]
        sensor.baseline_hpa = 1013.25
        t0 = rig.clock.now()
        reading = sensor.read(t0)
        elapsed = rig.clock.now() - t0
        assert not reading.ok and "deadline missed" in reading.fault and "calf" in reading.fault
        # bounded: the deadline plus one poll, in virtual time
        assert cfg.i2c.deadline_s <= elapsed < cfg.i2c.deadline_s + 0.002
        # the bus is free again: the next sensor reads normally
        rig.sensors.zones[0].baseline_hpa = 1013.25
        assert rig.sensors.zones[0].read(rig.clock.now()).ok
    finally:
        rig.close()


class _FlakyMux(SimTCA9548A):
    """A mux whose next deselect (write of 0x00) fails, as a glitch on SDA would make it."""

    fail_next_deselect = False

    def write(self, data):
        if data == b"\x00" and self.fail_next_deselect:
            self.fail_next_deselect = False
            raise OSError(121, "Remote I/O error")
        super().write(data)


def test_lock_leaked_by_a_failed_deselect_is_recovered(cfg):
    rig = open_sim(cfg, seed=1)
    try:
        world = rig.world
        flaky = _FlakyMux(0x70)
        for channel, name in ((z.sensor_channel, z.name) for z in cfg.zones):
            flaky.attach(channel, 0x18, world.chips[name])
        flaky.attach(cfg.manifold_channel, 0x18, world.chips["manifold"])
        world.bus.attach(0x70, flaky)
        for s in rig.sensors.all:
            s.baseline_hpa = 1013.25
        flaky.fail_next_deselect = True
        first = rig.sensors.zones[0].read(rig.clock.now())
        # adafruit_tca9548a's unlock() raised before releasing the bus lock: a fault for this read...
        assert not first.ok and "NACK" in first.fault
        assert rig.bus.recovered_locks == 1
        # ...but no hang and no stuck lock: every sensor reads on the next sweep
        assert all(r.ok for r in rig.read().zones)
    finally:
        rig.close()


@pytest.mark.parametrize(
    "fault, fragment",
    [
        ("sensor-dead", "no answer on I2C (NACK)"),
        ("sensor-integrity", "Integrity failure"),
        ("sensor-busy", "deadline missed"),
    ],
)
def test_sensor_faults_become_readings_not_exceptions(cfg, fault, fragment):
    rig = open_sim(cfg, seed=1, faults=[FaultSpec(fault, "knee", 10.0)])
    try:
        rig.zero_sensors()
        assert all(r.ok for r in rig.read().zones)
        rig.clock.sleep(10.0 - rig.clock.now())
        readings = rig.read()
        assert [r.ok for r in readings.zones] == [True, True, False, True]
        assert fragment in readings.zones[2].fault
    finally:
        rig.close()


def test_dead_sensor_at_start_is_a_fault_naming_it(cfg):
    with pytest.raises(SensorFault, match="sensor thigh: not found on mux channel 3"):
        open_sim(cfg, seed=1, faults=[FaultSpec("sensor-dead", "thigh", 0.0)])


def test_zero_empties_the_manifold_first(cfg):
    rig = open_sim(cfg, seed=1)
    try:
        rig.apply(Commands(1.0, (FILL,)))
        rig.clock.sleep(3.0)
        rig.drive_safe()
        assert rig.world.manifold_mmhg() > 30  # trapped behind the check valve and the closed inlets
        baselines = rig.zero_sensors()
        assert rig.world.manifold_mmhg() < 0.5
        assert baselines["manifold"] == pytest.approx(cfg.simulation.ambient_hpa, abs=5)
        assert not any(z.inlet.is_open for z in rig.zones)
    finally:
        rig.close()


def test_zero_rejects_implausible_ambient(cfg):
    thin_air = dataclasses.replace(cfg, simulation=dataclasses.replace(cfg.simulation, ambient_hpa=500.0))
    rig = open_sim(thin_air, seed=1)
    try:
        with pytest.raises(SensorFault, match="not a plausible air pressure"):
            rig.zero_sensors()
    finally:
        rig.close()


def test_zero_rejects_a_sensor_far_off_the_others(cfg):
    rig = open_sim(cfg, seed=1)
    try:
        rig.world.chips["calf"]._offset_hpa = 40 / MMHG_PER_HPA  # a sensor 40 mmHg off: beyond its error band
        with pytest.raises(SensorFault, match=r"sensor calf: zero is \+\d+\.\d mmHg from the other sensors'"):
            rig.zero_sensors()
        assert rig.pump.duty == 0 and not any(z.inlet.is_open for z in rig.zones)  # left safe
    finally:
        rig.close()


def test_zero_waits_for_a_quiet_sleeve_and_names_a_zone_that_will_not_empty(cfg):
    rig = open_sim(cfg, seed=1, faults=[FaultSpec("exhaust-stuck-closed", "calf", 0.0)])
    try:
        rig.apply(Commands(1.0, (HOLD, FILL)))
        rig.clock.sleep(5.0)
        rig.drive_safe()
        t0 = rig.clock.now()
        # it only empties slowly, back through its inlet and the manifold to the other zones' exhausts
        with pytest.raises(SensorFault, match="sensor calf: pressure still changing after 15 s"):
            rig.zero_sensors()
        assert rig.clock.now() - t0 < cfg.limits.vent_timeout_s + 1.0
        assert not any(z.inlet.is_open for z in rig.zones)
    finally:
        rig.close()


def test_single_sensor_build_without_mux(cfg):
    one = dataclasses.replace(
        cfg, zones=cfg.zones[:1], manifold_channel=None, i2c=dataclasses.replace(cfg.i2c, mux_addresses=())
    )
    rig = open_sim(one, seed=2)
    try:
        rig.zero_sensors()
        rig.apply(Commands(1.0, (FILL,)))
        rig.clock.sleep(2.0)
        reading = rig.read().zones[0]
        assert reading.ok and reading.mmhg == pytest.approx(rig.world.zone_mmhg("ankle"), abs=1.0)
    finally:
        rig.close()


def test_deadline_wrapper_raises_on_a_spinning_lock():
    clock = VirtualClock()
    bus = SimI2C(clock, frequency_hz=400_000, overhead_s=1e-4)
    wrapped = DeadlineI2C(bus, clock, 0.02)
    bus.try_lock()  # someone else holds it and never lets go
    with pytest.raises(TimeoutError):
        with wrapped.transaction("spin"):
            while not wrapped.try_lock():
                pass  # what adafruit_bus_device does (with time.sleep(0))
    assert 0.02 <= clock.now() < 0.021
