"""A simulated I2C bus with the interface of `busio.I2C`, on the virtual clock.

Each transfer costs the virtual time it takes on the wire (9 bit-times a byte plus the address byte, at the
configured bus frequency) plus a fixed per-transaction overhead (the kernel's ioctl and Python's call path on a Pi),
so drivers that poll or spin spend simulated time exactly as they would spend real time. Several devices answering
the same address (two mux channels open at once) pull the open-drain lines together: their bytes AND.
"""

from __future__ import annotations

from typing import TypeGuard

from legsleeve.core.clock import VirtualClock
from legsleeve.sim.chips import SimDevice, SimMux
from legsleeve.sim.nack import NackError

SPIN_COST_S = 5e-6  # one failed try_lock() + sched_yield() round on a Pi


def _is_mux(device: SimDevice) -> TypeGuard[SimMux]:
    return hasattr(device, "downstream")


class SimI2C:
    def __init__(self, clock: VirtualClock, *, frequency_hz: int, overhead_s: float):
        self._clock = clock
        self._bit_s = 1.0 / frequency_hz
        self._overhead_s = overhead_s
        self._cost_s: dict[int, float] = {}  # nbytes -> a transfer's virtual time (the same sum, computed once)
        self._devices: dict[int, SimDevice] = {}
        self._muxes: list[SimMux] = []
        self._mux: SimMux | None = None  # the multiplexer when there is just one: the routes are then keyed by an int
        self._routes: dict[int | tuple[int, tuple[int, ...]], list[SimDevice]] = {}
        self._locked = False
        self.transactions = 0
        self.deinitialised = False

    def attach(self, address: int, device: SimDevice) -> None:
        """Put a device at an address (replacing whatever was there)."""
        old = self._devices.get(address)
        if old is not None and _is_mux(old) and old in self._muxes:
            self._muxes.remove(old)
        self._devices[address] = device
        if _is_mux(device):
            self._muxes.append(device)
        self._mux = self._muxes[0] if len(self._muxes) == 1 else None
        self._routes.clear()

    # -- busio.I2C -----------------------------------------------------------------------------------------
    def try_lock(self) -> bool:
        if self._locked:
            self._clock.advance(SPIN_COST_S)
            return False
        self._locked = True
        return True

    def unlock(self) -> None:
        self._locked = False

    # (writeto and readfrom_into run twenty times a tick: `_transfer` and `_answering` are written out in them)
    def writeto(self, address: int, buffer, *, start: int = 0, end: int | None = None) -> None:
        data = bytes(buffer[start:end])
        if not self._locked:
            self._check_lock()
        self.transactions += 1
        n = len(data)
        cost_s = self._cost_s.get(n)
        if cost_s is None:
            cost_s = self._cost_s[n] = self._overhead_s + (n + 1) * 9 * self._bit_s
        self._clock.advance(cost_s)
        mux = self._mux
        key = (address << 8 | mux.mask) if mux is not None else (address, tuple(m.mask for m in self._muxes))
        devices = self._routes.get(key)
        if devices is None:
            devices = self._routes[key] = self._find(address)
        if len(devices) == 1:
            devices[0].write(data)
            return
        if not devices:
            raise NackError(address)
        for device in devices:
            device.write(data)

    def readfrom_into(self, address: int, buffer, *, start: int = 0, end: int | None = None) -> None:
        if end is None:
            end = len(buffer)
        n = end - start
        if not self._locked:
            self._check_lock()
        self.transactions += 1
        cost_s = self._cost_s.get(n)
        if cost_s is None:
            cost_s = self._cost_s[n] = self._overhead_s + (n + 1) * 9 * self._bit_s
        self._clock.advance(cost_s)
        mux = self._mux
        key = (address << 8 | mux.mask) if mux is not None else (address, tuple(m.mask for m in self._muxes))
        devices = self._routes.get(key)
        if devices is None:
            devices = self._routes[key] = self._find(address)
        if len(devices) == 1:
            buffer[start:end] = devices[0].read(n)
        else:
            buffer[start:end] = self._read(address, n)

    def writeto_then_readfrom(
        self,
        address: int,
        buffer_out,
        buffer_in,
        *,
        out_start: int = 0,
        out_end: int | None = None,
        in_start: int = 0,
        in_end: int | None = None,
    ) -> None:
        data = bytes(buffer_out[out_start:out_end])
        in_end = len(buffer_in) if in_end is None else in_end
        self._transfer(len(data) + 1 + in_end - in_start)  # repeated start: one more address byte
        for device in self._route(address):
            device.write(data)
        buffer_in[in_start:in_end] = self._read(address, in_end - in_start)

    def scan(self) -> list[int]:
        self._check_lock()
        found = set()
        for address in range(0x08, 0x78):
            self._clock.advance(self._overhead_s + 9 * self._bit_s)
            if self._answering(address):
                found.add(address)
        return sorted(found)

    def deinit(self) -> None:
        self.deinitialised = True

    # -- internals -----------------------------------------------------------------------------------------
    def _check_lock(self) -> None:
        if not self._locked:
            raise RuntimeError("I2C bus used without try_lock()")  # as CircuitPython's busio does

    def _transfer(self, nbytes: int) -> None:
        if not self._locked:
            self._check_lock()
        self.transactions += 1
        cost_s = self._cost_s.get(nbytes)
        if cost_s is None:
            cost_s = self._cost_s[nbytes] = self._overhead_s + (nbytes + 1) * 9 * self._bit_s
        self._clock.advance(cost_s)

    def invalidate(self) -> None:
        """Forget the routes (a chip stopped or started answering)."""
        self._routes.clear()

    def _answering(self, address: int) -> list[SimDevice]:
        """The devices that acknowledge `address` now: on the bus itself, or behind a mux's open channels."""
        # (keyed on the control bytes as they are now: a test may set a mux's mask directly)
        mux = self._mux
        key = (address << 8 | mux.mask) if mux is not None else (address, tuple(m.mask for m in self._muxes))
        found = self._routes.get(key)
        if found is None:
            found = self._routes[key] = self._find(address)
        return found

    def _find(self, address: int) -> list[SimDevice]:
        devices: list[SimDevice] = []
        top = self._devices.get(address)
        if top is not None and top.acks():
            devices.append(top)
        for mux in self._muxes:
            devices.extend(d for d in mux.downstream(address) if d.acks())
        return devices

    def _route(self, address: int) -> list[SimDevice]:
        devices = self._answering(address)
        if not devices:
            raise NackError(address)
        return devices

    def _read(self, address: int, n: int) -> bytes:
        devices = self._answering(address)
        if len(devices) == 1:
            return devices[0].read(n)
        if not devices:
            raise NackError(address)
        replies = [device.read(n) for device in devices]
        out = bytearray(replies[0])
        for reply in replies[1:]:
            for i, b in enumerate(reply):
                out[i] &= b
        return bytes(out)
