"""Recorded bus traffic played back: what `legsleeve bench` times the firmware's tick on, with the simulation
excluded (`legsleeve.app.bench.firmware_tick`).

`Recording` sits between the firmware's DeadlineI2C and the simulated bus during a session and keeps every call with
what it returned and the virtual time after it; `Replay` is a `busio.I2C` look-alike that plays that back to the same
firmware, and `ReplayClock` the virtual clock it sets. Whatever a played-back call costs is timed as the firmware's,
so this module is kept lean and is one of those `make compiled` compiles: the less the stand-in costs, the more of
the figure is the firmware's own (`Replay.playback_ns` measures what is left).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

Entry = tuple[tuple, bytes | None, object, float]  # (call, bytes read, result or exception, clock after)


class Recording:
    """A `busio.I2C` look-alike between the firmware's DeadlineI2C and the simulated bus: every call is passed on,
    and what it returned (the bytes read, a NACK) and the virtual time after it are recorded."""

    def __init__(self, bus, clock):
        self._bus = bus
        self._clock = clock
        self.entries: list[Entry] = []

    def _call(self, call: tuple, fn, buffer=None, start: int = 0, end: int | None = None):
        try:
            result = fn()
        except OSError as exc:
            self.entries.append((call, None, exc, self._clock.now()))
            raise
        read = None if buffer is None else bytes(buffer[start : len(buffer) if end is None else end])
        self.entries.append((call, read, result, self._clock.now()))
        return result

    def try_lock(self) -> bool:
        return self._call(("try_lock",), self._bus.try_lock)

    def unlock(self) -> None:
        self._call(("unlock",), self._bus.unlock)

    def writeto(self, address, buffer, *, start=0, end=None):
        data = bytes(buffer[start:end])
        self._call(("writeto", address, data), lambda: self._bus.writeto(address, data))

    def readfrom_into(self, address, buffer, *, start=0, end=None):
        end = len(buffer) if end is None else end
        self._call(
            ("readfrom_into", address, end - start),
            lambda: self._bus.readfrom_into(address, buffer, start=start, end=end),
            buffer,
            start,
            end,
        )

    def writeto_then_readfrom(
        self, address, buffer_out, buffer_in, *, out_start=0, out_end=None, in_start=0, in_end=None
    ):
        data = bytes(buffer_out[out_start:out_end])
        in_end = len(buffer_in) if in_end is None else in_end
        self._call(
            ("writeto_then_readfrom", address, data, in_end - in_start),
            lambda: self._bus.writeto_then_readfrom(address, data, buffer_in, in_start=in_start, in_end=in_end),
            buffer_in,
            in_start,
            in_end,
        )

    def scan(self) -> list[int]:
        return self._call(("scan",), self._bus.scan)

    def deinit(self) -> None:
        self._bus.deinit()


_TRY_LOCK, _UNLOCK, _SCAN = ("try_lock",), ("unlock",), ("scan",)


class Replay:
    """The recorded bus traffic played back: each call gets the recorded bytes or error and sets the clock to the
    recorded time after it. Every call the firmware makes is kept, and `check()` compares them with the recorded
    ones afterwards (the firmware is deterministic: given the same bytes at the same times it asks the same, and a
    run that asked anything else is refused). No simulated chip, bus or air is left: what runs is the firmware.
    (Checked afterwards, not call by call, so that the checking is not timed as the firmware's.)

    Whatever a played-back call costs is timed as the firmware's, so it is kept to a minimum: the recording is
    turned into (bytes read, error to raise, clock after) once, taken in turn from an iterator, and the four calls
    a sweep makes play it out themselves rather than through `_play` (one Python call less each: a sweep makes
    about twenty-five). `playback_ns()` measures what is left of it."""

    def __init__(self, entries: list[Entry], clock: ReplayClock):
        self._entries = entries
        self._clock = clock
        self.calls: list[tuple] = []
        self._ask = self.calls.append
        plays = [(read, r if isinstance(r, OSError) else None, r, t_s) for _, read, r, t_s in entries]
        self._take = iter(plays).__next__

    def _ended(self, call: tuple) -> RuntimeError:
        return RuntimeError(f"replay: the firmware asked {call} after the recording ended")

    def _play(self, call: tuple, buffer=None, start: int = 0):
        self._ask(call)
        try:
            read, error, result, self._clock._now_s = self._take()
        except StopIteration:
            raise self._ended(call) from None
        if read is not None:
            buffer[start : start + len(read)] = read
        elif error is not None:
            raise error
        return result

    def playback_ns(self, chunk: int = 50) -> float:
        """What one played-back call costs, ns: the calls asked played again on a fresh replay, with no firmware
        around them, in chunks of `chunk` (about two sweeps' worth); the median chunk's time per call (a chunk the
        scheduler interrupted is an outlier). Part of every timed tick, yet not the firmware's."""
        again = Replay(self._entries, ReplayClock())
        buffer = bytearray(8)
        plays: list[tuple[Callable[..., object], tuple]] = []
        for call in self.calls:
            if call[0] == "try_lock":
                plays.append((again.try_lock, ()))
            elif call[0] == "unlock":
                plays.append((again.unlock, ()))
            elif call[0] == "writeto":
                plays.append((again.writeto, call[1:]))
            elif call[0] == "readfrom_into":
                plays.append((again.readfrom_into, (call[1], memoryview(buffer)[: call[2]])))
            else:
                plays.append((again._play, (call, buffer)))
        times = []
        for k in range(0, len(plays) - chunk + 1, chunk):
            t0 = time.perf_counter_ns()
            for play, args in plays[k : k + chunk]:
                try:
                    play(*args)
                except OSError:
                    pass
            times.append((time.perf_counter_ns() - t0) / chunk)
        return statistics.median(times) if times else math.nan

    def check(self) -> None:
        """Raise unless the firmware asked exactly the recorded calls, all of them."""
        recorded = [entry[0] for entry in self._entries]
        if self.calls != recorded:
            at = next((k for k, (a, b) in enumerate(zip(self.calls, recorded, strict=False)) if a != b), None)
            if at is None:
                raise RuntimeError(f"replay: {len(self.calls)} calls asked, {len(recorded)} recorded")
            raise RuntimeError(f"replay diverged at call {at}: recorded {recorded[at]}, asked {self.calls[at]}")

    # -- the busio.I2C interface: try_lock, unlock, writeto and readfrom_into are `_play` written out -------------
    def try_lock(self) -> bool:
        self._ask(_TRY_LOCK)
        try:
            _, error, result, self._clock._now_s = self._take()
        except StopIteration:
            raise self._ended(_TRY_LOCK) from None
        if error is not None:
            raise error
        return bool(result)

    def unlock(self) -> None:
        self._ask(_UNLOCK)
        try:
            _, error, _, self._clock._now_s = self._take()
        except StopIteration:
            raise self._ended(_UNLOCK) from None
        if error is not None:
            raise error

    def writeto(self, address, buffer, *, start=0, end=None):
        call = ("writeto", address, bytes(buffer[start:end]))
        self._ask(call)
        try:
            _, error, _, self._clock._now_s = self._take()
        except StopIteration:
            raise self._ended(call) from None
        if error is not None:
            raise error

    def readfrom_into(self, address, buffer, *, start=0, end=None):
        end = len(buffer) if end is None else end
        call = ("readfrom_into", address, end - start)
        self._ask(call)
        try:
            read, error, _, self._clock._now_s = self._take()
        except StopIteration:
            raise self._ended(call) from None
        if read is not None:
            buffer[start : start + len(read)] = read
        elif error is not None:
            raise error

    def writeto_then_readfrom(
        self, address, buffer_out, buffer_in, *, out_start=0, out_end=None, in_start=0, in_end=None
    ):
        in_end = len(buffer_in) if in_end is None else in_end
        call = ("writeto_then_readfrom", address, bytes(buffer_out[out_start:out_end]), in_end - in_start)
        self._play(call, buffer_in, in_start)

    def scan(self) -> list[int]:
        return self._play(_SCAN)

    def deinit(self) -> None:
        pass


class ReplayClock:
    """A virtual clock the replayed bus sets to the recorded time after each call; the firmware's own sleeps move it
    as they moved the recording's."""

    def __init__(self) -> None:
        self._now_s = 0.0

    def now(self) -> float:
        return self._now_s

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._now_s += seconds

    def jump_to(self, t_s: float) -> None:
        self._now_s = t_s
