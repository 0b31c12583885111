"""Pressure sensors: the unmodified adafruit_mprls driver, through adafruit_tca9548a channels, under a deadline.

The Adafruit driver probes each sensor at start, takes the zero and serves single reads (`PressureSensor.read`);
the control loop reads all sensors at once with `SensorArray.read`, a sweep that speaks the same datasheet protocol
but overlaps the conversions. Each read runs inside a `DeadlineI2C` transaction; any driver error (OSError from a
NACK or bus timeout, the driver's RuntimeError for status bits, our I2CDeadline) becomes a `Reading` carrying the
fault, never an exception that escapes into the loop. Readings are gauge mmHg against a baseline taken at start
with the sleeve vented; hPa exists only here. The sensors sit behind one to three TCA9548A multiplexers
(`Multiplexers`), which keep at most one channel open across all of them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

import adafruit_mprls
import adafruit_tca9548a

from legsleeve.config.model import MUX_CHANNELS, HardwareConfig
from legsleeve.core.clock import Clock
from legsleeve.core.limits import AMBIENT_MAX_HPA, AMBIENT_MIN_HPA
from legsleeve.core.readings import Reading, Readings, new_reading
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
ZERO_NOISE_SIGMAS = 4.0  # the zero's settle test: two window means further apart than this many standard errors moved
CONVERSION_S = 0.005  # datasheet: a measurement takes up to ~5 ms
_UNREAD = Reading(math.nan, math.nan, "not read")  # a place in a sweep's results before its sensor's is set


class Multiplexers:
    """The build's TCA9548A multiplexers on one bus, and which of them may have a channel open.

    Every sensor answers at the same address, so at most one channel may be open across all the multiplexers: with
    two open, two sensors answer at once and their replies AND together on the open-drain bus into a count that is
    wrong yet may look plausible (low, most likely). So before a channel opens on one multiplexer, any other that
    may have one open is closed (written 0x00). With a single multiplexer nothing ever needs closing: a channel's
    byte replaces the one before. Within a sweep that is one write per channel change, plus one per change of
    multiplexer.

    Two paths open channels. The sweep (`open`) writes a channel's byte itself and leaves it open, writing nothing
    when it is open already. The stock drivers go through adafruit_tca9548a's channels, whose `try_lock()` opens the
    channel and whose `unlock()` closes it again (it writes 0x00 before releasing the bus, in 0.8.6 and every
    release since 2019; if that write fails it leaks the bus lock, which DeadlineI2C recovers). That closes only
    the driver's own multiplexer, so `before_driver` closes whatever the sweep left open on another; the one the
    driver used still counts as possibly open afterwards (its unlock may have failed, and costs nothing to
    distrust). After any failed transfer every multiplexer counts as possibly open (`forget`), and the next channel
    opened closes all the others first: a multiplexer that stops answering thus faults every sensor, since a
    channel it left open would answer with each of them.
    """

    def __init__(self, bus: DeadlineI2C, addresses: tuple[int, ...]):
        self._bus = bus
        self.addresses = addresses
        self._drivers = {address: adafruit_tca9548a.TCA9548A(bus, address=address) for address in addresses}
        self._open = set(addresses)  # the multiplexers that may have a channel open: any, until `reset`
        self._selected: tuple[int, int] | None = None  # the (multiplexer, channel) known to be the one open
        self._select_bytes = [bytes((1 << ch,)) for ch in range(MUX_CHANNELS)]
        self._several = len(addresses) > 1

    def channel(self, address: int, channel: int) -> adafruit_tca9548a.TCA9548A_Channel:
        """The Adafruit channel object (a `busio.I2C` look-alike) for a stock driver."""
        return self._drivers[address][channel]

    def reset(self) -> None:
        """Close every channel of every multiplexer: a run that stopped mid-sweep may have left one open. Raises
        HardwareError naming a multiplexer that does not answer."""
        for address in self.addresses:
            try:
                with self._bus.transaction(f"multiplexer 0x{address:02x}"):
                    self._lock()
                    self._bus.writeto(address, b"\x00")
                    self._bus.unlock()
            except (OSError, I2CDeadline) as exc:
                raise HardwareError(
                    f"the TCA9548A multiplexer at 0x{address:02x} does not answer ({exc}): check its power, SDA/SCL "
                    "and address pins (A0-A2)"
                ) from exc
            self._open.discard(address)
        self._selected = None

    def open(self, port: tuple[int, int]) -> None:
        """Open channel `port[1]` of the multiplexer at `port[0]`, and no other channel anywhere. The caller holds the
        bus lock, inside a transaction; a failed write raises (the caller then calls `forget`)."""
        if self._selected == port:
            return
        self._selected = None
        address = port[0]
        if self._several:  # (with one multiplexer there is nothing to close: see `_close_others`)
            self._close_others(address)
        self._open.add(address)
        self._bus.writeto(address, self._select_bytes[port[1]])
        self._selected = port

    def before_driver(self, address: int) -> None:
        """Ready the bus for a stock driver about to open a channel of the multiplexer at `address` itself (inside a
        transaction, the bus unlocked): close any other multiplexer's channel."""
        self._selected = None  # the driver's channel writes its own byte, and its unlock closes it
        if any(other != address for other in self._open):
            self._lock()
            self._close_others(address)
            self._bus.unlock()
        self._open.add(address)

    def forget(self) -> None:
        """A transfer failed: any multiplexer may have heard anything, so any may have a channel open."""
        self._selected = None
        self._open.update(self.addresses)

    def _close_others(self, address: int) -> None:
        if len(self.addresses) == 1:
            return  # one multiplexer: the channel byte about to be written replaces whatever was open
        for other in self.addresses:
            if other != address and other in self._open:
                self._bus.writeto(other, b"\x00")
                self._open.discard(other)

    def _lock(self) -> None:
        while not self._bus.try_lock():
            pass  # DeadlineI2C raises once the deadline passes: this loop cannot hang


class PressureSensor:
    """One MPRLS: absolute hPa from the driver, gauge mmHg to everyone else. `channel` is its sensor channel as
    configured, `port` the (multiplexer address, channel 0-7) that means; both None without a multiplexer."""

    def __init__(
        self,
        name: str,
        driver: adafruit_mprls.MPRLS,
        bus: DeadlineI2C,
        channel: int | None = None,
        *,
        muxes: Multiplexers | None = None,
        port: tuple[int, int] | None = None,
    ):
        self.name = name
        self._driver = driver
        self._bus = bus
        self.channel = channel
        self.port = port
        self._muxes = muxes
        self.baseline_hpa: float | None = None
        self.noise_mmhg = math.nan  # one reading's standard deviation, measured at the last zero
        self.faults = 0
        self.label = f"sensor {name}"  # what a missed deadline names

    def read_hpa(self) -> float:
        """Absolute pressure, hPa. Raises SensorFault (SAFE-9) for anything but a plausible number."""
        try:
            with self._bus.transaction(self.label):
                if self._muxes is not None and self.port is not None:
                    self._muxes.before_driver(self.port[0])
                hpa = self._driver.pressure
        except (OSError, RuntimeError, ValueError, I2CDeadline) as exc:
            if self._muxes is not None:
                self._muxes.forget()
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
        muxes: Multiplexers | None,
        address: int,
    ):
        self.zones = zones
        self.manifold = manifold
        self._clock = clock
        self._bus = bus
        self._muxes = muxes
        self._address = address
        self._buf = bytearray(4)
        if muxes is not None:  # (build_sensors gives every sensor its channel when there is a multiplexer)
            for sensor in self.all:
                if sensor.port is None:
                    raise HardwareError(f"sensor {sensor.name}: no multiplexer channel")
        # The sweep's order: the sensors of one multiplexer together (in the config's order), so a sweep changes
        # multiplexer as few times as it can - each change costs one more write, closing the one left behind.
        order = sorted(self.all, key=lambda s: 0 if s.port is None else s.port[0])
        # ...each with its place in the readings (the zones in order, then the manifold): the sweep fills a list by
        # place instead of a dict by name (it runs every tick)
        place = {id(sensor): k for k, sensor in enumerate(self.all)}
        self._order = [(sensor, place[id(sensor)]) for sensor in order]
        self._n_zones = len(zones)

    @property
    def all(self) -> list[PressureSensor]:
        return self.zones + ([self.manifold] if self.manifold else [])

    def read(self) -> Readings:
        """One reading per sensor, in one sweep (`sweep`)."""
        return Readings(*self.sweep())

    def sweep(self) -> tuple[float, tuple[Reading, ...], Reading | None]:
        """One reading per sensor, in one sweep: start every conversion, wait one conversion time, read each. Returns
        (the time at its end, the zones' readings, the manifold's or None): `Readings` but for the panel's inputs,
        which the rig adds (`read` adds none).

        The stock driver waits out each sensor's conversion in turn (~5.7 ms x N: 29 ms for five sensors, more than
        a 20 ms tick). Starting them all first costs one conversion plus N short transfers. Every sensor's
        transactions keep their own deadline; a failing sensor gives a faulted Reading and the others go on.

        Each half of the sweep (the starts, then the reads) takes the bus lock once and keeps it from one sensor's
        transaction to the next, releasing it at the end of the half: the same transfers as a lock per sensor, with
        a third of the lock calls. A failed transfer still releases the lock as its transaction ends (the next
        sensor takes it again), and so does anything that escapes. (It runs every tick, so it is written out: each
        transaction is `DeadlineI2C.begin`/`end`/`abort` rather than a `with`: an exception aborts it first, and an
        error from the abort itself (a lock that will not release) is then judged as the transfer's would be, as it was
        when the `with` raised it.)
        """
        clock = self._clock
        bus = self._bus
        address = self._address
        muxes = self._muxes
        started: list[tuple[PressureSensor, int]] = []
        failed: list[tuple[int, str]] = []
        first_start = None
        try:
            for sensor, place in self._order:
                bus.begin(sensor.label)
                try:
                    try:
                        if not bus._held:
                            self._lock()
                        if muxes is not None:
                            muxes.open(sensor.port)  # type: ignore[arg-type]  # every sensor has one: see `__init__`
                        bus.writeto(address, CMD_MEASURE)
                    except BaseException:
                        bus.abort()  # (what leaving the `with` did: an error here is judged below, as one there was)
                        raise
                except (OSError, RuntimeError, I2CDeadline) as exc:
                    self._forget()
                    failed.append((place, str(SensorFault(sensor.name, _describe(exc)))))
                    continue
                bus.end()
                if first_start is None:
                    first_start = clock.now()
                started.append((sensor, place))
        finally:
            self._release()
        if first_start is not None:
            clock.sleep(first_start + CONVERSION_S - clock.now())
        results = [_UNREAD] * len(self._order)  # by place; every sensor's is set below
        # collect in the order started: each conversion is done by the time its turn comes (the reverse order would
        # save one multiplexer write but poll the last-started sensor while it still converts)
        try:
            for sensor, place in started:
                try:
                    hpa = self._collect(sensor)
                    results[place] = new_reading(sensor.to_mmhg(hpa), clock.now(), None)
                except SensorFault as fault:
                    sensor.faults += 1
                    results[place] = Reading(math.nan, clock.now(), str(fault))
        finally:
            self._release()
        now = clock.now()
        for place, message in failed:
            results[place] = Reading(math.nan, now, message)
        n = self._n_zones
        return now, tuple(results[:n]), results[n] if self.manifold else None

    def _lock(self) -> None:
        """Lock the bus (under the deadline): this half of the sweep does not hold it yet."""
        while not self._bus.try_lock():
            pass  # DeadlineI2C raises once the deadline passes: this loop cannot hang

    def _release(self) -> None:
        """The end of a half of the sweep: the lock its transactions shared goes back."""
        if self._bus.holds_lock:
            self._bus.unlock()

    def _forget(self) -> None:
        if self._muxes is not None:
            self._muxes.forget()

    def _collect(self, sensor: PressureSensor) -> float:
        """Read status + 24-bit count once the conversion is done; return absolute hPa."""
        buf = self._buf
        bus = self._bus
        muxes = self._muxes
        bus.begin(sensor.label)
        try:
            try:
                if not bus._held:
                    self._lock()
                if muxes is not None:
                    muxes.open(sensor.port)  # type: ignore[arg-type]  # every sensor has one: see `__init__`
                while True:
                    bus.readfrom_into(self._address, buf)
                    if not buf[0] & STATUS_BUSY:
                        break
            except BaseException:
                bus.abort()  # (what leaving the `with` did: an error here is judged below, as one there was)
                raise
        except (OSError, RuntimeError, I2CDeadline) as exc:
            self._forget()  # the multiplexers may have heard anything
            raise SensorFault(sensor.name, _describe(exc)) from exc
        bus.end()
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

        Waits until two successive windows agree for every sensor (the sleeve has stopped emptying), up to
        `settle_timeout_s`: within `tolerance_mmhg`, or within what the sensor's own noise makes of two window means
        (ZERO_NOISE_SIGMAS standard errors of their difference, the noise measured in the windows themselves: with
        nine noisy sensors a fixed 0.15 mmHg failed one or another half the time). Then checks each baseline is a
        plausible ambient pressure and that no sensor sits more than `max_spread_mmhg` from the median (a zone still
        under pressure, or a sensor far off its zero: SAFE-9). Raises SensorFault; returns the baselines in hPa.
        `on_wait` is called after every sweep (about 20 ms apart): the caller feeds the watchdog there and may raise
        to end the wait (a stop).
        """
        start = self._clock.now()
        previous: dict[str, tuple[float, float]] | None = None
        samples: dict[str, list[float]] = {s.name: [] for s in self.all}
        while True:
            windows = self._windows(window_s, on_wait, samples)
            means = {n: mean for n, (mean, _) in windows.items()}

            still = [n for n in windows if previous is not None and _moved(previous[n], windows[n], tolerance_mmhg)]
            if previous is not None and not still:
                break
            if self._clock.now() - start > settle_timeout_s:
                raise SensorFault(
                    ", ".join(still) or "all",
                    f"pressure still changing after {settle_timeout_s:g} s of venting; "
                    "cannot take the zero (check the exhaust valves)",
                )
            previous = windows
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
            sensor.noise_mmhg = reading_noise_mmhg([hpa * MMHG_PER_HPA for hpa in samples[sensor.name]])
        return means

    def _windows(
        self, window_s: float, on_wait: Callable[[], None] | None, every: dict[str, list[float]]
    ) -> dict[str, tuple[float, float]]:
        """Each sensor's (mean, standard error of the mean) over a window, in hPa and mmHg; its samples are also
        added to `every`."""
        samples: dict[str, list[float]] = {s.name: [] for s in self.all}
        end = self._clock.now() + window_s
        while self._clock.now() < end:
            for sensor in self.all:
                samples[sensor.name].append(sensor.read_hpa())
            self._clock.sleep(0.02)
            if on_wait is not None:
                on_wait()
        out = {}
        for name, values in samples.items():
            every[name] += values
            sd = statistics.stdev(values) * MMHG_PER_HPA if len(values) > 1 else 0.0
            out[name] = (statistics.fmean(values), sd / math.sqrt(len(values)))
        return out


def reading_noise_mmhg(ps: Sequence[float]) -> float:
    """One reading's standard deviation, from successive differences: blind to a slow drift (a sleeve still
    emptying) that a plain standard deviation would count as noise. NaN with fewer than two finite readings."""
    diffs = [(b - a) ** 2 for a, b in zip(ps, ps[1:], strict=False) if not (math.isnan(a) or math.isnan(b))]
    return math.sqrt(statistics.fmean(diffs) / 2.0) if diffs else math.nan


def _moved(before: tuple[float, float], after: tuple[float, float], tolerance_mmhg: float) -> bool:
    """Two windows' (mean hPa, standard error mmHg) differ by more than the tolerance and than their noise explains."""
    (m0, se0), (m1, se1) = before, after
    return abs(m1 - m0) * MMHG_PER_HPA > max(tolerance_mmhg, ZERO_NOISE_SIGMAS * math.hypot(se0, se1))


def build_sensors(config: HardwareConfig, bus: DeadlineI2C, clock: Clock) -> SensorArray:
    """Create the Adafruit drivers on `bus`: one TCA9548A per multiplexer address (each checked and closed first),
    one MPRLS per sensor on its channel. A multiplexer that does not answer raises HardwareError; a sensor,
    SensorFault."""
    i2c = config.i2c
    muxes = Multiplexers(bus, i2c.mux_addresses) if i2c.mux_addresses else None
    if muxes is not None:
        muxes.reset()

    def make(name: str, channel: int | None) -> PressureSensor:
        port = None
        if muxes is not None:
            if channel is None:  # hardware.yaml gives every sensor a channel when there is a multiplexer
                raise HardwareError(f"sensor {name}: no multiplexer channel")
            port = i2c.mux_channel(channel)
        try:
            with bus.transaction(f"probe {name}"):
                target: object = bus  # this bus, or a multiplexer's channel (a busio.I2C look-alike)
                if muxes is not None and port is not None:
                    muxes.before_driver(port[0])
                    target = muxes.channel(*port)
                driver = adafruit_mprls.MPRLS(target, addr=i2c.sensor_address, psi_min=0, psi_max=25)
        except (OSError, ValueError, RuntimeError, I2CDeadline) as exc:
            if muxes is not None:
                muxes.forget()
            where = "the bus" if port is None else f"mux channel {channel}"
            if port is not None and len(i2c.mux_addresses) > 1:
                where += f" (channel {port[1]} of the TCA9548A at 0x{port[0]:02x})"
            raise SensorFault(name, f"not found on {where} at 0x{i2c.sensor_address:02x} ({exc})") from exc
        return PressureSensor(name, driver, bus, channel, muxes=muxes, port=port)

    zones = [make(z.name, z.sensor_channel) for z in config.zones if not config.shared_sensor]
    manifold = make(MANIFOLD, config.manifold_channel) if config.manifold_channel is not None else None
    return SensorArray(zones, manifold, clock, bus=bus, muxes=muxes, address=i2c.sensor_address)
