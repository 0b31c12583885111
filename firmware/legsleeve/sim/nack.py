"""The simulated bus's NACK, the error Linux's i2c-dev raises (sim/bus.py raises it).

A module of its own, left interpreted in the compiled build (Makefile, COMPILED_MODULES): mypyc does not compile a
subclass of OSError ("inheriting from most builtin types is unimplemented"), and the chips and the bus that raise it
are compiled.
"""

from __future__ import annotations


class NackError(OSError):
    """What Linux's i2c-dev raises when nobody acknowledges the address."""

    def __init__(self, address: int):
        super().__init__(121, f"Remote I/O error (no ACK from 0x{address:02x})")
