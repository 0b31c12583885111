"""Build shapes the hardware docs must draw besides the shipped configs: the one-sensor example of the one-sensor
branch (its loader is not on main yet, so it is built here as that loader returns it) and a one-zone build with its
sensor straight on the bus, which main's loader takes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.helpers import CONFIG_DIR


def one_sensor_shape(cfg):
    """The shape of config/examples/one-sensor on the one-sensor branch (not on main yet): no zone has a sensor of
    its own, one MPRLS on the manifold straight on the bus (its loader gives it channel 0), no multiplexer."""
    return dataclasses.replace(
        cfg,
        path=Path("config/examples/one-sensor/hardware.yaml"),
        zones=tuple(dataclasses.replace(z, sensor_channel=None) for z in cfg.zones),
        manifold_channel=0,
        i2c=dataclasses.replace(cfg.i2c, mux_addresses=()),
    )


def write_one_zone_build(directory: Path) -> Path:
    """A build main's loader takes with a single sensor: one zone, its sensor straight on the bus, no manifold."""
    text = (CONFIG_DIR / "hardware.yaml").read_text()
    zones_start = text.index("  - name: calf")
    zones_end = text.index("\n# Optional: a sensor on the manifold")
    text = text[:zones_start] + text[zones_end + 1 :]
    for old, new in (
        ("manifold_sensor:\n  channel: 4\n", ""),
        ("  mux_address: 0x70 ", "  mux_address: null "),
        ("  max_mmhg: 90", "  max_mmhg: 60"),
        ("  zones:\n    thigh:\n      compliance_l_per_mmhg: 0.008\n", ""),
    ):
        assert old in text, old
        text = text.replace(old, new, 1)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hardware.yaml").write_text(text)
    return directory
