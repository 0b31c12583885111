"""A forked child's result, for the matrices that fork one fault-free trunk run into many cells (tests/fault_matrix.py
and tests/redteam.py): the child pickles its result into a pipe; the parent reads it, within a deadline, and reaps the
child."""

from __future__ import annotations

import os
import pickle
import select
import signal
import time
import warnings
from typing import Any


def fork_with_pipe() -> tuple[int, int, int]:
    """(pid, read end, write end): fork, each side closing the end it does not use. The child (pid 0) writes."""
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+ warns of fork in a threaded process
        pid = os.fork()
    os.close(read_fd if pid == 0 else write_fd)
    return pid, read_fd, write_fd


def send(fd: int, result: object) -> None:
    """In the child: pickle `result` into the pipe and close it."""
    data = pickle.dumps(result)
    while data:
        data = data[os.write(fd, data) :]
    os.close(fd)


def collect(pid: int, read_fd: int, timeout_s: float) -> tuple[Any, int, float]:
    """In the parent: (the child's result or None, its wait status, its CPU seconds). A child silent past `timeout_s`
    is killed (its result then None)."""
    data = b""
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                break
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_fd)
    _, status, usage = os.wait4(pid, 0)
    return (pickle.loads(data) if data else None), status, usage.ru_utime + usage.ru_stime
