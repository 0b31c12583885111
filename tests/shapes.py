"""Build shapes the hardware docs must draw besides the reference: the one-sensor example (config/examples/one-sensor)
and a one-zone build with its sensor straight on the bus."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import CONFIG_DIR


def one_sensor_shape(cfg=None):
    """config/examples/one-sensor as its loader reads it: no zone has a sensor of its own, one MPRLS on the
    manifold straight on the bus, no multiplexer. (`cfg` is unused: kept for the callers' fixture.)"""
    from legsleeve.config.hardware import load_hardware

    return load_hardware(CONFIG_DIR / "examples" / "one-sensor")


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
