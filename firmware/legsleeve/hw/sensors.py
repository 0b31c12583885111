"""Pressure sensors: the unmodified adafruit_mprls driver, through adafruit_tca9548a channels, under a deadline.

The Adafruit driver probes each sensor at start, takes the zero and serves single reads (`PressureSensor.read`);
the control loop reads all sensors at once with `SensorArray.read`, a sweep that speaks the same datasheet protocol
but overlaps the conversions. Each read runs inside a `DeadlineI2C` transaction; any driver error (OSError from a
NACK or bus timeout, the driver's RuntimeError for status bits, our I2CDeadline) becomes a `Reading` carrying the
fault, never an exception that escapes into the loop. Readings are gauge mmHg against a baseline taken at start
with the sleeve vented; hPa exists only here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import adafruit_mprls
import adafruit_tca9548a

from legsleeve.config.model import HardwareConfig
from legsleeve.core.clock import Clock
from legsleeve.core.limits import AMBIENT_MAX_HPA, AMBIENT_MIN_HPA
from legsleeve.core.readings import Reading, Readings
from legsleeve.core.units import HPA_PER_PSI, MMHG_PER_HPA
from legsleeve.errors import HardwareError, I2CDeadline, SensorFault
from legsleeve.hw.i2c import DeadlineI2C

MANIFOLD = "manifold"
# Datasheet range 0-25 psi absolute is 0-1724 hPa; anything outside the transfer band is not a pressure.
PHYSICAL_MIN_HPA, PHYSICAL_MAX_HPA = 0.0, 1723.7

# MPRLS protocol (Honeywell 32332628), for the sweep below; adafruit_mprls does the same for one sensor at a time.
CMD_MEASURE = b"\xaa\x00\x00"
STATUS_POWERED, STATUS_BUSY, STATUS_INTEGRITY, STATUS_SATURATION = 0x40, 0x20, 0x04, 0x01
COUNT_10PCT, COUNT_90PCT = 0x19999A, 0xE66666
PSI_MAX = 25.0
CONVERSION_S = 0.005  # datasheet: a measurement takes up to ~5 ms


class PressureSensor:
    """One MPRLS: absolute hPa from the driver, gauge mmHg to everyone else."""

    def __init__(self, name: str, driver: adafruit_mprls.MPRLS, bus: DeadlineI2C, channel: int | None = None):
        self.name = name
        self._driver = driver
        self._bus = bus
        self.channel = channel
        self.baseline_hpa: float | None = None
        self.faults = 0

    def read_hpa(self) -> float:
        """Absolute pressure, hPa. Raises SensorFault (SAFE-9) for anything but a plausible number."""
        try:
            with self._bus.transaction(f"sensor {self.name}"):
                hpa = self._driver.pressure
        except (OSError, RuntimeError, ValueError, I2CDeadline) as exc:
            self.faults += 1
            raise SensorFault(self.name, _describe(exc)) from exc
        if not math.isfinite(hpa) or not PHYSICAL_MIN_HPA <= hpa <= PHYSICAL_MAX_HPA:
            self.faults += 1
            raise SensorFault(self.name, f"reading {hpa!r} hPa is outside the sensor's 0-25 psi range")
        return hpa

    def to_mmhg(self, hpa: float) -> float:
        if self.baseline_hpa is None:
            raise SensorFault(self.name, "no zero taken yet (the sleeve must be vented at start)")
        return (hpa - self.baseline_hpa) * MMHG_PER_HPA

    def read(self, now_s: float) -> Reading:
        try:
            return Reading(self.to_mmhg(self.read_hpa()), now_s)
        except SensorFault as fault:
            return Reading(math.nan, now_s, str(fault))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, I2CDeadline):
        return f"read deadline missed ({exc})"
    if isinstance(exc, OSError) and exc.errno == 121:
        return "no answer on I2C (NACK): check its wiring and the multiplexer channel"
    if isinstance(exc, OSError) and exc.errno == 110:
        return "I2C bus timed out: check SDA/SCL wiring and pull-ups"
    if isinstance(exc, OSError):
        return f"I2C error: {exc}"
    return f"status: {exc}"  # the driver's RuntimeError("Integrity failure"/"Internal math saturation")


class SensorArray:
    """Every pressure sensor of the build, read as one sweep."""

    def __init__(
        self,
        zones: list[PressureSensor],
        manifold: PressureSensor | None,
        clock: Clock,
        *,
        bus: DeadlineI2C,
        mux_address: int | None,
        address: int,
    ):
        self.zones = zones
        self.manifold = manifold
        self._clock = clock
        self._bus = bus
        self._mux_address = mux_address
        self._address = address
        self._buf = bytearray(4)
        self._selected: PressureSensor | None = None
        self._select_bytes = {ch: bytes((1 << ch,)) for ch in range(8)}

    @property
    def all(self) -> list[PressureSensor]:
        return self.zones + ([self.manifold] if self.manifold else [])

    def read(self) -> Readings:
        """One reading per sensor, in one sweep: start every conversion, wait one conversion time, read each.

        The stock driver waits out each sensor's conversion in turn (~5.7 ms x N: 29 ms for five sensors, more than
        a 20 ms tick). Starting them all first costs one conversion plus N short transfers. Every sensor's
        transactions keep their own deadline; a failing sensor gives a faulted Reading and the others go on.
        """
        clock = self._clock
        sensors = self.all
        started: list[PressureSensor] = []
        faults: dict[str, str] = {}
        first_start = None
        self._selected = None  # anything may have used the bus since (a driver read, the zero)
        for sensor in sensors:
            try:
                with self._bus.transaction(f"sensor {sensor.name}"):
                    self._select(sensor)
                    self._bus.writeto(self._address, CMD_MEASURE)
                    self._bus.unlock()
                if first_start is None:
                    first_start = clock.now()
                started.append(sensor)
            except (OSError, RuntimeError, I2CDeadline) as exc:
                self._selected = None
                faults[sensor.name] = str(SensorFault(sensor.name, _describe(exc)))
        if first_start is not None:
            clock.sleep(first_start + CONVERSION_S - clock.now())
        results: dict[str, Reading] = {}
        # collect in the order started: each conversion is done by the time its turn comes (the reverse order would
        # save one multiplexer write but poll the last-started sensor while it still converts)
        for sensor in started:
            try:
                hpa = self._collect(sensor)
                results[sensor.name] = Reading(sensor.to_mmhg(hpa), clock.now())
            except SensorFault as fault:
                sensor.faults += 1
                results[sensor.name] = Reading(math.nan, clock.now(), str(fault))
        now = clock.now()
        for name, message in faults.items():
            results[name] = Reading(math.nan, now, message)
        zones = tuple(results[s.name] for s in self.zones)
        manifold = results[self.manifold.name] if self.manifold else None
        return Readings(now, zones, manifold)

    def _select(self, sensor: PressureSensor) -> None:
        """Lock the bus (under the deadline) and point the multiplexer at this sensor's channel."""
        while not self._bus.try_lock():
            pass  # DeadlineI2C raises once the deadline passes: this loop cannot hang
        if self._mux_address is not None and sensor is not self._selected:
            if sensor.channel is None:  # build_sensors gives every sensor its channel when there is a multiplexer
                raise HardwareError(f"sensor {sensor.name}: no multiplexer channel")
            self._bus.writeto(self._mux_address, self._select_bytes[sensor.channel])
        self._selected = sensor

    def _collect(self, sensor: PressureSensor) -> float:
        """Read status + 24-bit count once the conversion is done; return absolute hPa."""
        buf = self._buf
        try:
            with self._bus.transaction(f"sensor {sensor.name}"):
                self._select(sensor)
                while True:
                    self._bus.readfrom_into(self._address, buf)
                    if not buf[0] & STATUS_BUSY:
                        break
                self._bus.unlock()
        except (OSError, RuntimeError, I2CDeadline) as exc:
            self._selected = None  # the mux may have heard anything
            raise SensorFault(sensor.name, _describe(exc)) from exc
        status = buf[0]
        if not status & STATUS_POWERED:
            raise SensorFault(sensor.name, f"status: not powered (0x{status:02x})")
        if status & STATUS_SATURATION:
            raise SensorFault(sensor.name, "status: Internal math saturation")
        if status & STATUS_INTEGRITY:
            raise SensorFault(sensor.name, "status: Integrity failure")
        count = (buf[1] << 16) | (buf[2] << 8) | buf[3]
        hpa = (count - COUNT_10PCT) * PSI_MAX / (COUNT_90PCT - COUNT_10PCT) * HPA_PER_PSI
        if not PHYSICAL_MIN_HPA <= hpa <= PHYSICAL_MAX_HPA:
            raise SensorFault(sensor.name, f"reading {hpa:.1f} hPa is outside the sensor's 0-25 psi range")
        return hpa

    def zero(
        self,
        *,
        max_spread_mmhg: float,
        settle_timeout_s: float,
        window_s: float = 0.5,
        tolerance_mmhg: float = 0.15,
        on_wait: Callable[[], None] | None = None,
    ) -> dict[str, float]:
        """Take each sensor's ambient baseline with the sleeve vented (the caller vents first).

        Waits until two successive windows agree within `tolerance_mmhg` for every sensor (the sleeve has stopped
        emptying), up to `settle_timeout_s`. Then checks each baseline is a plausible ambient pressure and that no
        sensor sits more than `max_spread_mmhg` from the median (a zone still under pressure, or a sensor far off
        its zero: SAFE-9). Raises SensorFault; returns the baselines in hPa. `on_wait` is called after every
        sweep (about 20 ms apart): the caller feeds the watchdog there and may raise to end the wait (a stop).
        """
        start = self._clock.now()
        previous = None
        while True:
            means = self._window_means(window_s, on_wait)
            if previous is not None and all(
                abs(means[n] - previous[n]) * MMHG_PER_HPA <= tolerance_mmhg for n in means
            ):
                break
            if self._clock.now() - start > settle_timeout_s:
                moving = [n for n in means if previous and abs(means[n] - previous[n]) * MMHG_PER_HPA > tolerance_mmhg]
                raise SensorFault(
                    ", ".join(moving) or "all",
                    f"pressure still changing after {settle_timeout_s:g} s of venting; "
                    "cannot take the zero (check the exhaust valves)",
                )
            previous = means
        for name, hpa in means.items():
            if not AMBIENT_MIN_HPA <= hpa <= AMBIENT_MAX_HPA:
                raise SensorFault(
                    name,
                    f"ambient baseline {hpa:.1f} hPa is not a plausible air pressure "
                    f"({AMBIENT_MIN_HPA:g}-{AMBIENT_MAX_HPA:g} hPa)",
                )
        median = statistics.median(means.values())
        for name, hpa in means.items():
            off = (hpa - median) * MMHG_PER_HPA
            if abs(off) > max_spread_mmhg:
                raise SensorFault(
                    name,
                    f"zero is {off:+.1f} mmHg from the other sensors' (limit "
                    f"±{max_spread_mmhg:g}): a zone still under pressure, or a faulty sensor",
                )
        for sensor in self.all:
            sensor.baseline_hpa = means[sensor.name]
        return means

    def _window_means(self, window_s: float, on_wait: Callable[[], None] | None) -> dict[str, float]:
        samples: dict[str, list[float]] = {s.name: [] for s in self.all}
        end = self._clock.now() + window_s
        while self._clock.now() < end:
            for sensor in self.all:
                samples[sensor.name].append(sensor.read_hpa())
            self._clock.sleep(0.02)
            if on_wait is not None:
                on_wait()
        return {name: statistics.fmean(values) for name, values in samples.items()}


def build_sensors(config: HardwareConfig, bus: DeadlineI2C, clock: Clock) -> SensorArray:
    """Create the Adafruit drivers on `bus`. A sensor that does not answer raises SensorFault."""
    mux = (
        adafruit_tca9548a.TCA9548A(bus, address=config.i2c.mux_address) if config.i2c.mux_address is not None else None
    )

    def make(name: str, channel: int | None) -> PressureSensor:
        port = mux[channel] if mux is not None else bus
        try:
            with bus.transaction(f"probe {name}"):
                driver = adafruit_mprls.MPRLS(port, addr=config.i2c.sensor_address, psi_min=0, psi_max=25)
        except (OSError, ValueError, RuntimeError, I2CDeadline) as exc:
            where = f"mux channel {channel}" if mux is not None else "the bus"
            raise SensorFault(name, f"not found on {where} at 0x{config.i2c.sensor_address:02x} ({exc})") from exc
        return PressureSensor(name, driver, bus, channel)

    zones = [make(z.name, z.sensor_channel) for z in config.zones]
    manifold = make(MANIFOLD, config.manifold_channel) if config.manifold_channel is not None else None
    return SensorArray(
        zones, manifold, clock, bus=bus, mux_address=config.i2c.mux_address, address=config.i2c.sensor_address
    )
