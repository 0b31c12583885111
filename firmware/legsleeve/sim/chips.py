"""Simulated I2C chips that speak their datasheets byte for byte: the Honeywell MPRLS and the TI TCA9548A.

MPRLS (datasheet 32332628): write `AA 00 00` to start a conversion; while it runs the status byte has the busy bit
(0x20); afterwards a read returns status + a 24-bit count on the 10-90 % transfer function of 0-25 psi absolute.
Status bits: 0x40 powered, 0x20 busy, 0x04 integrity failure, 0x01 math saturation. The chip takes its sample when
the conversion ends, so a reading is as old as the conversion that made it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
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


class NackError(OSError):
    """What Linux's i2c-dev raises when nobody acknowledges the address."""

    def __init__(self, address: int):
        super().__init__(121, f"Remote I/O error (no ACK from 0x{address:02x})")


class SimMPRLS:
    """One MPRLS0025PA00001A. `pressure_hpa()` gives the true absolute pressure at its port."""

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
    ):
        self.name = name
        self._clock = clock
        self._pressure_hpa = pressure_hpa
        self._conversion_s = conversion_s
        self._noise_hpa = mmhg_to_hpa(noise_mmhg)
        self._offset_hpa = mmhg_to_hpa(offset_mmhg)
        self._rng = rng
        self._done_s = -1.0
        self._pending = False
        self._count = 0
        self._status = STATUS_POWERED
        self.conversions = 0
        # faults
        self.dead = False
        self.stuck = False
        self.busy_forever = False
        self.integrity = False
        self.spikes = False

    def acks(self) -> bool:
        return not self.dead

    def write(self, data: bytes) -> None:
        if len(data) >= 1 and data[0] == CMD_MEASURE:
            self._done_s = self._clock.now() + self._conversion_s
            self._pending = True
        # An empty write is an address probe; other commands (standby) change nothing we model.

    def read(self, n: int) -> bytes:
        now = self._clock.now()
        busy = self.busy_forever or (self._pending and now < self._done_s)
        if self._pending and not busy:
            self._finish_conversion()
        status = self._status | (STATUS_BUSY if busy else 0) | (STATUS_INTEGRITY if self.integrity else 0)
        c = self._count
        return bytes((status, (c >> 16) & 0xFF, (c >> 8) & 0xFF, c & 0xFF, 0, 0, 0))[:n]

    def _finish_conversion(self) -> None:
        self._pending = False
        self.conversions += 1
        if self.stuck and self.conversions > 1:
            return  # the output register never changes again
        hpa = self._pressure_hpa() + self._offset_hpa + self._rng.gauss(0.0, self._noise_hpa)
        if self.spikes and self.conversions % SPIKE_EVERY == 0:
            hpa += mmhg_to_hpa(SPIKE_MMHG)
        count = psi_to_count(hpa / HPA_PER_PSI)
        self._status = STATUS_POWERED
        if not 0 <= count <= 0xFFFFFF:
            self._status |= STATUS_SATURATION
            count = min(max(count, 0), 0xFFFFFF)
        self._count = count


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
