"""What the command line needs of its terminal: output that outlives its reader, and signals that stop a session.

- `PipeSafe` wraps stdout and stderr. When the reader goes away (`legsleeve check-config | head -1`), the next write
  fails with EPIPE; from then on the stream writes into /dev/null, so the command finishes what it was doing (a
  session its summary, log and plot; `check-config` its verdict and exit code) without a traceback, and a command that
  streams (`sensors --follow`, `watch`) sees `gone` and ends.
- `SignalStop` turns SIGINT and SIGTERM into a stop. While a session listens (`listening()`), the first signal asks it
  to stop at its next tick, as the stop button does (SAFE-12): it vents, the log records the sleeve emptying, and the
  summary and the plot follow. Otherwise - before a rig is open, or a second signal - it raises `Interrupted` at
  once, and whatever is open is driven safe on its way out (SAFE-1).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any, TextIO


class Interrupted(BaseException):
    """A signal asked us to stop. BaseException, so no `except Exception` on the way swallows it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class PipeSafe:
    """A text stream whose reader may go away: the first write or flush that meets EPIPE points the file descriptor
    at /dev/null (so the interpreter's last flush at exit succeeds too) and sets `gone`; later writes vanish."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        self.gone = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self.stream.fileno())
            finally:
                os.close(devnull)
        except (OSError, ValueError, AttributeError):  # no file descriptor (a test's capture): nothing to redirect
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def reader_gone(stream: object) -> bool:
    """Whether the reader of `stream` (sys.stdout, wrapped by `PipeSafe`) has gone away."""
    return bool(getattr(stream, "gone", False))


class SignalStop:
    """SIGINT and SIGTERM for the command line (see the module's docstring). `install()` returns what restores the
    handlers that were there before."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None  # the signal that asked a listening session to stop
        self._listening = 0

    def install(self) -> dict[int, Any]:
        return {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    @staticmethod
    def restore(old: dict[int, Any]) -> None:
        for s, handler in old.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self._listening and self.signum is None:
            self.signum = signum  # the session's next tick stops it (poll)
            return
        raise Interrupted(signum)

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """While inside: the first signal is a stop the session hears through `poll`, not an exception."""
        self._listening += 1
        try:
            yield
        finally:
            self._listening -= 1

    @property
    def name(self) -> str:
        """The signal that came ("SIGINT"), or "" before one did."""
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def poll(self) -> str | None:
        """For the runner and the self-test, every tick: the reason to stop, once a signal came."""
        return f"{signal.Signals(self.signum).name} received" if self.signum is not None else None
