"""The simulated world's pin class (the world, sim/world.py, builds its pins of it).

A module of its own, left interpreted in the compiled build (Makefile, COMPILED_MODULES): it subclasses gpiozero's
MockPWMPin, a Python class, which a compiled class cannot; the world around it is compiled.
"""

from __future__ import annotations

from collections.abc import Callable

from gpiozero.pins.mock import MockPWMPin

PIN_HISTORY = 1000  # each pin's `states` keeps at least its last this many changes (and at most twice as many)


class SimPin(MockPWMPin):
    """gpiozero's MockPWMPin, as the simulated world's pin class (`MockFactory(pin_class=SimPin)`): it tells the
    world when it moves, and keeps a bounded history.

    The world used to sum the lengths of every actuator pin's `states` list at every clock advance to notice a
    change, and those lists grew by an entry per change for as long as the process lived (about 14 MiB a simulated
    day of `serve --sim`). Here a change of level or duty calls `on_change` (set by the world on the pins it
    watches; as before, a change of function alone is taken up with the next change of level: the rig releases
    its outputs only after driving them safe), and `states` keeps only its last PIN_HISTORY to 2 x PIN_HISTORY
    entries (a list still: tests read whole histories of short runs, and slices of them).
    """

    def __init__(self, factory, info):
        self.on_change: Callable[[], None] | None = None
        super().__init__(factory, info)

    def _change_state(self, value):
        changed = super()._change_state(value)
        if changed:
            states = self.states
            if len(states) > 2 * PIN_HISTORY:
                del states[:PIN_HISTORY]
            if self.on_change is not None:
                self.on_change()
        return changed
