"""Sensors: the unmodified adafruit_mprls driver on simulated chips through the (simulated) TCA9548As, the deadline,
lock recovery, status bits, the zero taken at start, and a sweep over several multiplexers."""

from __future__ import annotations

import dataclasses
import random

import adafruit_mprls
import pytest

from legsleeve.config.hardware import load_hardware
from legsleeve.core.clock import VirtualClock
from legsleeve.core.commands import FILL, HOLD, Commands
from legsleeve.core.units import HPA_PER_PSI, MMHG_PER_HPA
from legsleeve.errors import HardwareError, SensorFault
from legsleeve.hw.backends import open_sim
from legsleeve.hw.i2c import DeadlineI2C
from legsleeve.hw.rig import build_rig
from legsleeve.sim.bus import SimI2C
from legsleeve.sim.chips import COUNT_MAX, COUNT_MIN, SimMPRLS, SimTCA9548A, psi_to_count
from legsleeve.sim.faults import FaultSpec
from legsleeve.sim.world import SimWorld
from tests.helpers import fill_unevenly, quiet_sensors, write_multiplexed_hardware

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


class _Around:
    """A simulated TCA9548A with a test's change of behaviour, around the chip itself: what is not overridden here is
    the chip's (the simulated chips are compiled in the compiled build, and a compiled class takes no subclass)."""

    def __init__(self, mux: SimTCA9548A):
        self.mux = mux

    def __getattr__(self, name):
        return getattr(self.mux, name)

    @property
    def mask(self) -> int:  # (set too: a test opens channels as a run killed mid-sweep would leave them)
        return self.mux.mask

    @mask.setter
    def mask(self, value: int) -> None:
        self.mux.mask = value

    def write(self, data):
        self.mux.write(data)


class _FlakyMux(_Around):
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
        flaky = _FlakyMux(SimTCA9548A(0x70))
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


class _Failing:
    """The simulated bus, with one transfer failing and the lock's release failing while it is recovered: a double
    fault (a NACK, then a bus that will not unlock)."""

    def __init__(self, bus, fail_transfer: int):
        self._bus = bus
        self._transfers = 0
        self._fail_transfer = fail_transfer
        self._failing_unlock = False

    def __getattr__(self, name):
        return getattr(self._bus, name)

    def writeto(self, address, buffer, **kw):
        self._transfers += 1
        if self._transfers == self._fail_transfer:
            self._failing_unlock = True
            raise OSError(121, "Remote I/O error")
        self._bus.writeto(address, buffer, **kw)

    def unlock(self):
        if self._failing_unlock:
            self._failing_unlock = False
            raise RuntimeError("the bus will not unlock")
        self._bus.unlock()


@pytest.mark.parametrize("fail_transfer", [1, 2, 4, 7])
def test_a_transfer_failing_and_then_its_lock_failing_to_release_is_a_sensor_fault(cfg, fail_transfer):
    """A double fault inside the sweep - a transfer fails, and the lock will not release as its transaction is
    aborted - is still a faulted reading of that sensor (SAFE-9), not an exception out of the sweep, and every
    multiplexer counts as possibly open afterwards."""
    rig = open_sim(cfg, seed=1)
    try:
        rig.zero_sensors()
        rig.bus.bus = _Failing(rig.bus.bus, fail_transfer)
        readings = rig.read()
        faulted = [r for r in (*readings.zones, readings.manifold) if r is not None and not r.ok]
        assert any("will not unlock" in r.fault for r in faulted), readings  # the sensor whose transfer failed
        muxes = rig.sensors._muxes
        assert muxes is not None and muxes._selected is None  # forgotten: any channel may be open
        assert rig.bus.recovered_locks >= 1
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


# -- several multiplexers -----------------------------------------------------------------------------------------


@pytest.fixture
def four_on_two(tmp_path):
    """The reference four zones with the calf and thigh sensors on a second multiplexer (sensor channels 9 and 11):
    ankle 0x70/0, calf 0x71/1, knee 0x70/2, thigh 0x71/3, manifold 0x70/4."""
    return quiet_sensors(load_hardware(write_multiplexed_hardware(tmp_path, "[0x70, 0x71]", [0, 9, 2, 11], 4)))


class _RecordingMux(_Around):
    """A multiplexer that logs each control byte written to it as (address, byte), in a log shared by several."""

    def __init__(self, original: SimTCA9548A, log: list):
        super().__init__(original)
        self.log = log

    def write(self, data):
        self.log.append((self.address, data[-1]))
        super().write(data)


class _SilentMux(_RecordingMux):
    """A multiplexer that stops answering (a loose wire) while `silent`."""

    silent = False

    def acks(self):
        return not self.silent


def _silence(world, address, silent=True):
    world.muxes[address].silent = silent
    world.bus.invalidate()  # the bus caches who answers


def _swap_muxes(world, cls=_RecordingMux) -> list:
    log: list = []
    for address, mux in list(world.muxes.items()):
        world.muxes[address] = cls(mux, log)
        world.bus.attach(address, world.muxes[address])
    return log


def _open_channels(world) -> int:
    return sum(bin(mux.mask).count("1") for mux in world.muxes.values())


ONE_MUX_SWEEP = [(0x70, 1 << ch) for ch in (0, 1, 2, 3, 4)] * 2  # starts, then reads: one write per channel
TWO_MUX_SWEEP = [
    # the previous sweep ended on 0x71: close it, then 0x70's sensors in the config's order, then 0x71's
    *[(0x71, 0), (0x70, 0x01), (0x70, 0x04), (0x70, 0x10), (0x70, 0), (0x71, 0x02), (0x71, 0x08)],  # starts
    *[(0x71, 0), (0x70, 0x01), (0x70, 0x04), (0x70, 0x10), (0x70, 0), (0x71, 0x02), (0x71, 0x08)],  # reads
]


@pytest.mark.parametrize("build, expected", [("shipped", ONE_MUX_SWEEP), ("two muxes", TWO_MUX_SWEEP)])
def test_a_sweep_writes_each_channel_once_and_closes_a_multiplexer_only_when_leaving_it(
    cfg, four_on_two, build, expected
):
    config = quiet_sensors(cfg) if build == "shipped" else four_on_two
    rig = open_sim(config, seed=3)
    try:
        log = _swap_muxes(rig.world)
        rig.zero_sensors()
        fill_unevenly(rig, 4)
        rig.read()
        for _ in range(3):  # in steady state every sweep writes the same bytes
            del log[:]
            readings = rig.read()
            assert log == expected
            for reading, name in zip(readings.zones, config.zone_names, strict=True):
                assert reading.mmhg == pytest.approx(rig.world.zone_mmhg(name), abs=0.01), name
            assert _open_channels(rig.world) == 1
    finally:
        rig.close()


def test_a_driver_read_first_closes_the_channel_a_sweep_left_open_on_another_multiplexer(four_on_two):
    rig = open_sim(four_on_two, seed=3)
    try:
        log = _swap_muxes(rig.world)
        rig.zero_sensors()
        fill_unevenly(rig, 4)
        rig.read()
        assert rig.world.muxes[0x71].mask == 0x08  # the sweep ends on the thigh, and leaves its channel open
        del log[:]
        ankle = rig.sensors.zones[0]
        mmhg = ankle.to_mmhg(ankle.read_hpa())  # the stock adafruit_mprls driver, through adafruit_tca9548a
        assert mmhg == pytest.approx(rig.world.zone_mmhg("ankle"), abs=0.01)
        # ours closes 0x71; the Adafruit channel opens 0x70 ch0 for the read and closes it on unlock()
        assert log == [(0x71, 0), (0x70, 0x01), (0x70, 0)]
        assert _open_channels(rig.world) == 0
        readings = rig.read()  # and the sweep after it opens its channels again
        assert [r.mmhg for r in readings.zones] == pytest.approx(
            [rig.world.zone_mmhg(n) for n in four_on_two.zone_names], abs=0.01
        )
    finally:
        rig.close()


def test_channels_left_open_by_an_earlier_run_are_closed_before_the_sensors_are_probed(four_on_two):
    world = SimWorld(four_on_two)
    world.muxes[0x70].mask, world.muxes[0x71].mask = 0x01, 0x02  # a run killed mid-sweep, the Pi left powered
    log = _swap_muxes(world)
    rig = build_rig(four_on_two, clock=world.clock, pin_factory=world.pin_factory, i2c_bus=world.bus, world=world)
    try:
        assert log[:2] == [(0x70, 0), (0x71, 0)]  # every multiplexer closed before the first probe
        assert _open_channels(world) == 0
        rig.zero_sensors()
        fill_unevenly(rig, 4)
        readings = rig.read()
        assert [r.mmhg for r in readings.zones] == pytest.approx(
            [world.zone_mmhg(n) for n in four_on_two.zone_names], abs=0.01
        )
    finally:
        rig.close()


def test_a_multiplexer_that_does_not_answer_at_start_is_named(four_on_two):
    world = SimWorld(four_on_two)
    _swap_muxes(world, _SilentMux)
    _silence(world, 0x71)
    with pytest.raises(HardwareError, match=r"TCA9548A multiplexer at 0x71 does not answer .*address pins"):
        build_rig(four_on_two, clock=world.clock, pin_factory=world.pin_factory, i2c_bus=world.bus, world=world)


def test_a_sensor_not_found_names_its_multiplexer(four_on_two):
    with pytest.raises(
        SensorFault, match=r"sensor calf: not found on mux channel 9 \(channel 1 of the TCA9548A at 0x71\)"
    ):
        open_sim(four_on_two, seed=1, faults=[FaultSpec("sensor-dead", "calf", 0.0)])


def test_a_dead_sensor_on_the_second_multiplexer_faults_alone(four_on_two):
    rig = open_sim(four_on_two, seed=1, faults=[FaultSpec("sensor-dead", "calf", 10.0)])
    try:
        rig.zero_sensors()
        fill_unevenly(rig, 4)
        rig.clock.sleep(10.0 - rig.clock.now())
        for _ in range(3):
            readings = rig.read()
            assert [r.ok for r in readings.zones] == [True, False, True, True] and readings.manifold.ok
            assert "NACK" in readings.zones[1].fault
            for i in (0, 2, 3):
                name = four_on_two.zone_names[i]
                assert readings.zones[i].mmhg == pytest.approx(rig.world.zone_mmhg(name), abs=0.01), name
    finally:
        rig.close()


def test_a_sweep_shares_one_lock_per_half_and_a_failed_transfer_still_releases_it(four_on_two):
    """Each half of a sweep keeps the bus lock from one sensor's transaction to the next; a NACK in one ends that
    sensor's transaction with the lock released (the next takes it again), and the bus is free after every sweep."""
    rig = open_sim(four_on_two, seed=1, faults=[FaultSpec("sensor-dead", "knee", 10.0)])
    try:
        rig.zero_sensors()
        rig.clock.sleep(10.0 - rig.clock.now())
        recovered = rig.bus.recovered_locks
        for _ in range(2):
            readings = rig.read()
            assert [r.ok for r in readings.zones] == [True, True, False, True] and readings.manifold.ok
            assert not rig.bus.holds_lock and rig.world.bus.try_lock()  # free: nobody holds it
            rig.world.bus.unlock()
        assert rig.bus.recovered_locks == recovered + 2  # the dead sensor's start, each sweep (never read)
    finally:
        rig.close()


def test_deadline_wrapper_keeps_a_lock_only_on_a_normal_way_out():
    clock = VirtualClock()
    bus = SimI2C(clock, frequency_hz=400_000, overhead_s=1e-4)
    wrapped = DeadlineI2C(bus, clock, 0.02)
    with wrapped.transaction("first", keep_lock=True):
        assert wrapped.try_lock()
    assert wrapped.holds_lock and wrapped.recovered_locks == 0
    with pytest.raises(OSError):
        with wrapped.transaction("second", keep_lock=True):
            wrapped.writeto(0x18, b"\xaa")  # nobody at 0x18: NACK
    assert not wrapped.holds_lock and wrapped.recovered_locks == 1
    assert bus.try_lock()  # released on the bus itself
    bus.unlock()
    with wrapped.transaction("third"):  # without keep_lock: released on the way out, as before
        assert wrapped.try_lock()
    assert not wrapped.holds_lock and wrapped.recovered_locks == 2


def test_a_multiplexer_that_stops_answering_faults_every_sensor_until_it_answers_again(four_on_two):
    """It may still have a channel open - a sensor that would answer with every other one - so until it can be
    closed no sensor is trusted (SAFE-9 trips the session on the faults)."""
    rig = open_sim(four_on_two, seed=1)
    try:
        _swap_muxes(rig.world, _SilentMux)
        rig.zero_sensors()
        fill_unevenly(rig, 4)
        _silence(rig.world, 0x71)
        readings = rig.read()
        assert not any(r.ok for r in (*readings.zones, readings.manifold))
        assert all("NACK" in r.fault for r in readings.zones)
        _silence(rig.world, 0x71, False)
        readings = rig.read()
        assert [r.mmhg for r in readings.zones] == pytest.approx(
            [rig.world.zone_mmhg(n) for n in four_on_two.zone_names], abs=0.01
        )
    finally:
        rig.close()


@pytest.mark.parametrize("noise_mmhg", [0.08, 0.3])
def test_the_zero_measures_each_sensors_reading_noise(cfg, noise_mmhg):
    """What the safety rules judge a loss clear of (Supervisor's measured_noise_mmhg): one reading's standard
    deviation, measured on the vented sleeve at every zero, within the spread 50-100 samples allow (NOISE_MARGIN
    covers its low side)."""
    noisy = dataclasses.replace(cfg, simulation=dataclasses.replace(cfg.simulation, sensor_noise_mmhg=noise_mmhg))
    rig = open_sim(noisy, seed=3)
    try:
        assert rig.measured_noise_mmhg is None  # before any zero
        rig.zero_sensors()
        assert rig.sensors is not None
        for sensor in rig.sensors.all:
            assert 0.6 * noise_mmhg < sensor.noise_mmhg < 1.4 * noise_mmhg, sensor.name
        assert rig.measured_noise_mmhg == max(s.noise_mmhg for s in rig.sensors.all)
    finally:
        rig.close()


def test_reading_noise_is_blind_to_a_slow_drift():
    from legsleeve.hw.sensors import reading_noise_mmhg

    rng = random.Random(5)
    white = [rng.gauss(0.0, 0.2) for _ in range(400)]
    drifting = [p + 0.05 * k for k, p in enumerate(white)]  # a sleeve still emptying, 2.5 mmHg/s at 50 Hz
    assert reading_noise_mmhg(white) == pytest.approx(0.2, rel=0.15)
    assert reading_noise_mmhg(drifting) == pytest.approx(reading_noise_mmhg(white), rel=0.05)
    assert reading_noise_mmhg([1.0]) != reading_noise_mmhg([1.0])  # NaN: nothing to say
