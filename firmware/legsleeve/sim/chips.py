"""Simulated I2C chips that speak their datasheets byte for byte: the Honeywell MPRLS and the TI TCA9548A.

MPRLS (datasheet 32332628): write `AA 00 00` to start a conversion; while it runs the status byte has the busy bit
(0x20); afterwards a read returns status + a 24-bit count on the 10-90 % transfer function of 0-25 psi absolute.
Status bits: 0x40 powered, 0x20 busy, 0x04 integrity failure, 0x01 math saturation. The chip takes its sample when
the conversion ends, so a reading is as old as the conversion that made it.

Besides the faults a driver can see (NACK, busy, status bits, a frozen register), a simulated MPRLS can make the
errors it cannot: a plausible reading of the wrong pressure (`SensorErrors`). A zero that steps or drifts (the
datasheet's total error band is ±1.5 %FSS, about ±19 mmHg, and it moves with temperature), a wrong span (gain,
around ambient: the sensor is absolute), a lag (a clogged or long sensor line) and a reading frozen on one pressure
while its noise goes on. They act on the pressure the chip converts, so the real driver reads them byte for byte.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from legsleeve.core.clock import VirtualClock
from legsleeve.core.units import HPA_PER_PSI, mmhg_to_hpa

STATUS_POWERED = 0x40
STATUS_BUSY = 0x20
STATUS_INTEGRITY = 0x04
STATUS_SATURATION = 0x01
COUNT_MIN = 0x19999A  # 10 % of 2^24: 0 psi
COUNT_MAX = 0xE66666  # 90 % of 2^24: 25 psi
PSI_MAX = 25.0
CMD_MEASURE = 0xAA
SPIKE_EVERY = 4  # sensor-spike: one conversion in this many reads high
SPIKE_MMHG = 60.0
MAX_LAG_S = 30.0  # sensor-lag: how far back the chip remembers the true pressure
_HISTORY_TRIM = 512  # forget old history in blocks this size (amortised)


class SimDevice(Protocol):
    """What the simulated bus asks of a chip: whether it acknowledges its address now, and its bytes."""

    def acks(self) -> bool: ...

    def write(self, data: bytes) -> None: ...

    def read(self, n: int) -> bytes: ...


class SimMux(SimDevice, Protocol):
    """A chip that switches further chips onto the bus (the TCA9548A): `mask` is its control byte."""

    mask: int

    def downstream(self, address: int) -> list[SimDevice]: ...


def psi_to_count(psi: float) -> int:
    return round(COUNT_MIN + psi / PSI_MAX * (COUNT_MAX - COUNT_MIN))


@dataclass
class SensorErrors:
    """How far a chip's conversions stray from the truth: `reads = ambient + gain·(p − ambient) + zero`, where p is
    the true absolute pressure `lag_s` ago (or the frozen one) and the zero is the sum of the steps and drifts."""

    offset_hpa: float = 0.0  # the zero's steps, summed
    drifts: list[tuple[float, float]] = field(default_factory=list)  # (from_s, hPa/s): the zero moving
    gain: float = 1.0  # on the gauge pressure
    lag_s: float = 0.0
    frozen_hpa: float | None = None  # the true pressure the chip keeps reporting
    frozen_noise_hpa: float | None = None  # its fresh noise meanwhile (None: the chip's own)

    def zero_hpa(self, now_s: float) -> float:
        return self.offset_hpa + sum(rate * (now_s - t0) for t0, rate in self.drifts)


class SimMPRLS:
    """One MPRLS0025PA00001A. `pressure_hpa()` gives the true absolute pressure at its port; `ambient_hpa` is the air
    around it (the point a gain error turns about)."""

    def __init__(
        self,
        name: str,
        clock: VirtualClock,
        pressure_hpa: Callable[[], float],
        *,
        conversion_s: float,
        noise_mmhg: float,
        offset_mmhg: float,
        rng: random.Random,
        ambient_hpa: float = 1013.25,
    ):
        self.name = name
        self._clock = clock
        self._pressure_hpa = pressure_hpa
        self._conversion_s = conversion_s
        self._noise_hpa = mmhg_to_hpa(noise_mmhg)
        self._offset_hpa = mmhg_to_hpa(offset_mmhg)
        self._rng = rng
        self._ambient_hpa = ambient_hpa
        self._done_s = -1.0
        self._pending = False
        self._count = 0
        self._status = STATUS_POWERED
        self._reply: bytes | None = None  # what a read returns while neither busy nor integrity-failed
        self.conversions = 0
        # faults
        self.dead = False
        self.stuck = False
        self.busy_forever = False
        self.integrity = False
        self.spikes = False
        self.errors = SensorErrors()
        # (time, true hPa) at every conversion, for sensor-lag: MAX_LAG_S of it, a block more at most
        self._hist_t: list[float] = []
        self._hist_hpa: list[float] = []

    # -- sensor errors (plausible readings of the wrong pressure), from now on -----------------------------------
    def shift_zero(self, mmhg: float) -> None:
        """sensor-offset: the zero steps by `mmhg` (negative: the chip reads low)."""
        self.errors.offset_hpa += mmhg_to_hpa(mmhg)

    def drift_zero(self, mmhg_per_s: float) -> None:
        """sensor-drift: the zero moves by `mmhg_per_s` every second from now on."""
        self.errors.drifts.append((self._clock.now(), mmhg_to_hpa(mmhg_per_s)))

    def set_gain(self, gain: float) -> None:
        """sensor-gain: the chip reads `gain` times the true gauge pressure (ambient reads right)."""
        self.errors.gain = gain

    def set_lag(self, seconds: float) -> None:
        """sensor-lag: the chip reports the true pressure of `seconds` ago (at most MAX_LAG_S)."""
        if not 0.0 <= seconds <= MAX_LAG_S:
            raise ValueError(f"sensor lag {seconds} s: must be within 0-{MAX_LAG_S:g} s")
        self.errors.lag_s = seconds

    def freeze(self, noise_mmhg: float | None = None) -> None:
        """sensor-frozen: from now on the chip converts the true pressure of this moment, plus fresh noise of
        `noise_mmhg` (None: its usual noise) at every conversion - so its count never repeats."""
        self.errors.frozen_hpa = self._true_hpa(self._clock.now())
        self.errors.frozen_noise_hpa = None if noise_mmhg is None else mmhg_to_hpa(noise_mmhg)

    def acks(self) -> bool:
        return not self.dead

    def write(self, data: bytes) -> None:
        if len(data) >= 1 and data[0] == CMD_MEASURE:
            self._done_s = self._clock.now() + self._conversion_s
            self._pending = True
        # An empty write is an address probe; other commands (standby) change nothing we model.

    def read(self, n: int) -> bytes:
        # (runs for every sensor every tick: the reply's bytes are made once per conversion, `_reply`)
        if self._pending:
            if self.busy_forever or self._clock.now() < self._done_s:
                return self._busy_reply(n)
            self._finish_conversion()
        elif self.busy_forever:
            return self._busy_reply(n)
        reply = self._reply
        if reply is None or self.integrity:
            reply = self._make_reply(0)
        return reply[:n]

    def _busy_reply(self, n: int) -> bytes:
        return self._make_reply(STATUS_BUSY)[:n]

    def _make_reply(self, busy: int) -> bytes:
        """Status (with the busy and integrity bits as they are now) + the 24-bit count + three padding bytes; kept in
        `_reply` when neither bit is set (until the next conversion changes it)."""
        status = self._status | busy | (STATUS_INTEGRITY if self.integrity else 0)
        reply = (((status << 24) | self._count) << 24).to_bytes(7, "big")  # the count is within 0-0xFFFFFF
        if status == self._status:
            self._reply = reply
        return reply

    def _finish_conversion(self) -> None:
        self._pending = False
        self.conversions += 1
        if self.stuck and self.conversions > 1:
            return  # the output register never changes again
        now_s = self._clock.now()
        e = self.errors
        if e.frozen_hpa is None and e.lag_s <= 0.0 and e.gain == 1.0 and not e.offset_hpa and not e.drifts:
            sensed_hpa, noise_hpa = self._true_hpa(now_s), self._noise_hpa  # _sensed_hpa without errors
        else:
            sensed_hpa, noise_hpa = self._sensed_hpa(now_s)
        hpa = sensed_hpa + self._offset_hpa + self._rng.gauss(0.0, noise_hpa)
        if self.spikes and self.conversions % SPIKE_EVERY == 0:
            hpa += mmhg_to_hpa(SPIKE_MMHG)
        # psi_to_count(hpa / HPA_PER_PSI), written out
        count = round(COUNT_MIN + hpa / HPA_PER_PSI / PSI_MAX * (COUNT_MAX - COUNT_MIN))
        status = STATUS_POWERED
        if not 0 <= count <= 0xFFFFFF:
            status |= STATUS_SATURATION
            count = min(max(count, 0), 0xFFFFFF)
        self._status = status
        self._count = count
        self._reply = None

    def _true_hpa(self, now_s: float) -> float:
        """The true pressure now, remembered for sensor-lag."""
        hpa = self._pressure_hpa()
        ts = self._hist_t
        if ts and now_s <= ts[-1]:
            self._hist_hpa[-1] = hpa  # the same instant looked at twice: keep the newer look
        else:
            ts.append(now_s)
            self._hist_hpa.append(hpa)
            if len(ts) > 2 * _HISTORY_TRIM and ts[_HISTORY_TRIM] < now_s - MAX_LAG_S:
                del ts[:_HISTORY_TRIM], self._hist_hpa[:_HISTORY_TRIM]
        return hpa

    def _past_hpa(self, t_s: float) -> float:
        """The true pressure at `t_s` (within the history; before it, the oldest remembered), interpolated."""
        ts, ps = self._hist_t, self._hist_hpa
        k = bisect.bisect_right(ts, t_s)
        if k == 0:
            return ps[0]
        if k == len(ts):
            return ps[-1]
        t0, t1 = ts[k - 1], ts[k]
        return ps[k - 1] + (ps[k] - ps[k - 1]) * (t_s - t0) / (t1 - t0)

    def _sensed_hpa(self, now_s: float) -> tuple[float, float]:
        """What this conversion measures, and its noise's standard deviation (hPa): the truth, through the sensor's
        errors."""
        e = self.errors
        true_hpa = self._true_hpa(now_s)
        noise = self._noise_hpa
        if e.frozen_hpa is not None:
            p = e.frozen_hpa
            if e.frozen_noise_hpa is not None:
                noise = e.frozen_noise_hpa
        elif e.lag_s > 0.0:
            p = self._past_hpa(now_s - e.lag_s)
        else:
            p = true_hpa
        if e.gain != 1.0:
            p = self._ambient_hpa + e.gain * (p - self._ambient_hpa)
        if e.offset_hpa or e.drifts:
            p += e.zero_hpa(now_s)
        return p, noise


class SimTCA9548A:
    """An 8-channel I2C switch. One control byte: bit n connects channel n downstream."""

    def __init__(self, address: int):
        self.address = address
        self.mask = 0
        self.channels: dict[int, dict[int, SimDevice]] = {n: {} for n in range(8)}
        self._routes: dict[tuple[int, int], list[SimDevice]] = {}

    def attach(self, channel: int, address: int, chip: SimDevice) -> None:
        self.channels[channel][address] = chip
        self._routes.clear()

    def acks(self) -> bool:
        return True

    def write(self, data: bytes) -> None:
        if data:
            self.mask = data[-1]

    def read(self, n: int) -> bytes:
        return bytes([self.mask] * n)

    def downstream(self, address: int) -> list[SimDevice]:
        """The chips at `address` on the channels the control byte connects."""
        key = (self.mask, address)
        found = self._routes.get(key)
        if found is None:
            found = self._routes[key] = [
                chips[address] for ch, chips in self.channels.items() if self.mask & (1 << ch) and address in chips
            ]
        return found
