"""A deadline around every I2C transaction, wrapping anything shaped like `busio.I2C`.

The stock drivers can wait forever: adafruit_mprls polls the busy bit in `while True` holding the bus lock;
adafruit_bus_device and the TCA9548A channel spin on `try_lock()`; and the TCA channel's `unlock()` leaks the bus
lock when its deselect write raises (safety-requirements §B2). Each call through `DeadlineI2C` checks the open
transaction's deadline on the injected clock and raises `I2CDeadline` once it has passed, so every such loop
ends; leaving the transaction releases a lock the driver left held. Nothing in the drivers is patched: they are
simply handed this bus.
"""

from __future__ import annotations

import math

from legsleeve.core.clock import Clock
from legsleeve.errors import I2CDeadline


class _Transaction:
    """What `DeadlineI2C.transaction` returns: its `with` ends the transaction. (A plain class, not a
    `@contextmanager` generator: this runs for every transfer of every sweep, and a generator costs several times as
    much.) The deadline starts when `transaction()` is called, as the `with` statement enters."""

    __slots__ = ("_bus", "_keep_lock")

    def __init__(self, bus: DeadlineI2C, keep_lock: bool):
        self._bus = bus
        self._keep_lock = keep_lock

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        bus = self._bus
        bus._expires_s = math.inf
        if bus._held and (exc_type is not None or not self._keep_lock):
            bus._recover_lock()


class DeadlineI2C:
    """The `busio.I2C` interface, with a per-transaction deadline (seconds on `clock`)."""

    def __init__(self, bus, clock: Clock, deadline_s: float):
        self.bus = bus
        self._clock = clock
        self.deadline_s = deadline_s
        self._expires_s = math.inf
        self._what = ""
        self._held = False
        self.recovered_locks = 0
        self._transaction = _Transaction(self, keep_lock=False)
        self._keeping = _Transaction(self, keep_lock=True)

    def transaction(self, what: str, deadline_s: float | None = None, *, keep_lock: bool = False) -> _Transaction:
        """Use as `with bus.transaction(what):` - the body runs under a deadline; on the way out, any lock the
        driver leaked is released. `keep_lock`: a lock taken inside is kept on a normal way out (a sweep's
        transactions, one per sensor, share one lock: see `legsleeve.hw.sensors.SensorArray.read`); an exception
        still releases it."""
        self._expires_s = self._clock.now() + (self.deadline_s if deadline_s is None else deadline_s)
        self._what = what
        return self._keeping if keep_lock else self._transaction

    def begin(self, what: str) -> None:
        """`with transaction(what, keep_lock=True):` without the `with`, for the sweep (twenty transactions a tick):
        the deadline starts now. The caller ends it with `end()` on a normal way out, keeping any lock, and with
        `abort()` on any exception, which releases a lock still held."""
        self._expires_s = self._clock.now() + self.deadline_s
        self._what = what

    def end(self) -> None:
        self._expires_s = math.inf

    def abort(self) -> None:
        self._expires_s = math.inf
        if self._held:
            self._recover_lock()

    @property
    def holds_lock(self) -> bool:
        """Whether the bus lock is ours (taken through this wrapper and not yet released)."""
        return self._held

    def _recover_lock(self) -> None:
        # A driver raised between lock and unlock (a failed mux deselect, say): free the bus ourselves.
        self._held = False
        self.recovered_locks += 1
        self.bus.unlock()

    def _check(self) -> None:
        if self._clock.now() > self._expires_s:
            self._late()

    def _late(self) -> None:
        raise I2CDeadline(f"{self._what}: no answer within {self.deadline_s * 1000:.0f} ms")

    # -- the busio.I2C interface -------------------------------------------------------------------------
    # (the deadline check is written out in the transfers: they run twenty times a tick)
    def try_lock(self) -> bool:
        if self._clock.now() > self._expires_s:
            self._late()
        if self.bus.try_lock():
            self._held = True
            return True
        return False

    def unlock(self) -> None:
        self._held = False
        self.bus.unlock()

    # (the whole buffer, the usual case, is passed without `start`/`end`: a call with keywords costs more, here and in
    # busio, whose `writeto` then slices a memoryview)
    def writeto(self, address: int, buffer, *, start: int = 0, end: int | None = None) -> None:
        if self._clock.now() > self._expires_s:
            self._late()
        if start == 0 and end is None:
            self.bus.writeto(address, buffer)
        else:
            self.bus.writeto(address, buffer, start=start, end=len(buffer) if end is None else end)

    def readfrom_into(self, address: int, buffer, *, start: int = 0, end: int | None = None) -> None:
        if self._clock.now() > self._expires_s:
            self._late()
        if start == 0 and end is None:
            self.bus.readfrom_into(address, buffer)
        else:
            self.bus.readfrom_into(address, buffer, start=start, end=len(buffer) if end is None else end)

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
        self._check()
        self.bus.writeto_then_readfrom(
            address,
            buffer_out,
            buffer_in,
            out_start=out_start,
            out_end=len(buffer_out) if out_end is None else out_end,
            in_start=in_start,
            in_end=len(buffer_in) if in_end is None else in_end,
        )

    def scan(self) -> list[int]:
        self._check()
        return self.bus.scan()

    def deinit(self) -> None:
        self.bus.deinit()
