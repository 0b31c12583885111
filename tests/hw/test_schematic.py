"""The schematic (legsleeve.hw.schematic): the shipped pictures show what config/hardware.yaml says, and
`legsleeve wiring --svg/--png` draws every shape of build - the reference, two legs over two multiplexers, a one-zone
build with no multiplexer, and the one-sensor branch's shape (one manifold sensor for every zone)."""

from __future__ import annotations

import html
import importlib.util
import re
import struct
import sys

import pytest

from legsleeve.app.cli import main
from legsleeve.config.hardware import load_hardware
from legsleeve.errors import ConfigError
from legsleeve.hw import circuit, schematic
from tests.helpers import CONFIG_DIR, ROOT
from tests.shapes import one_sensor_shape, write_one_zone_build

HARDWARE = ROOT / "hardware"
REGENERATE = "regenerate: legsleeve wiring --config config --svg hardware/schematic.svg --png hardware/schematic.png"


def _texts(svg: str) -> str:
    """Everything the SVG writes as text, one label per line."""
    return "\n".join(html.unescape(t) for t in re.findall(r"<tspan[^>]*>([^<]*)</tspan>", svg))


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_shipped_svg_shows_the_reference_config(cfg):
    svg = (HARDWARE / "schematic.svg").read_text()
    assert schematic.netlist_of_svg(svg) == schematic.netlist_text(cfg), REGENERATE


def test_the_shipped_png_shows_the_reference_config(cfg):
    data = (HARDWARE / "schematic.png").read_bytes()
    assert schematic.netlist_of_png(data) == schematic.netlist_text(cfg), REGENERATE
    width, height = _png_size(data)
    assert width > 1500 and height > 1500  # readable: every label at 8 pt and more


def _shows_every_part(cfg, svg: str) -> None:
    """Each stage's MOSFET, resistors, diode, GPIO and load; each sensor and multiplexer; fuse and E-stop, as text."""
    texts = _texts(svg)
    c = circuit.circuit(cfg)
    for s in c.stages:
        for word in (s.r_gate, s.r_pull, s.net, s.load):
            assert word in texts, word
        if s.active_high:
            assert s.q in texts and s.d in texts
    for s in c.sensors:
        assert f"{s.ref} MPRLS" in texts and s.name in texts
    for m in c.muxes:
        assert f"{m.ref} TCA9548A at 0x{m.address:02x}" in texts
    assert f"F1 T{c.supply.fuse_a:g}A" in texts and "S1A E-stop" in texts and "+12V_SW" in texts
    for g in (2, 3):
        assert f"GPIO{g}" in texts


def test_the_shipped_svg_shows_every_part(cfg):
    _shows_every_part(cfg, (HARDWARE / "schematic.svg").read_text())


def test_a_changed_config_no_longer_matches_the_shipped_picture(cfg, tmp_path):
    """The check above can fail: a valve moved to another GPIO changes the netlist."""
    text = (CONFIG_DIR / "hardware.yaml").read_text().replace("{pin: GPIO17,", "{pin: GPIO20,", 1)
    (tmp_path / "hardware.yaml").write_text(text)
    moved = load_hardware(tmp_path)
    shipped = schematic.netlist_of_svg((HARDWARE / "schematic.svg").read_text())
    assert shipped != schematic.netlist_text(moved)
    assert "ankle inlet valve (NC): its coil between +12V_SW and Q2's drain" in schematic.netlist_text(moved)
    assert "from GPIO20 (pin 38)" in schematic.netlist_text(moved)


def test_the_netlist_of_a_file_without_one_is_empty():
    assert schematic.netlist_of_svg("<svg></svg>") == ""
    assert schematic.netlist_of_png(b"\x89PNG\r\n\x1a\n") == ""


# -- drawing needs schemdraw (the schematic extra); the shipped-picture checks above do not -------------------------

needs_schemdraw = pytest.mark.skipif(
    importlib.util.find_spec("schemdraw") is None, reason="the schematic extra: pip install 'legsleeve[schematic]'"
)


@needs_schemdraw
@pytest.mark.parametrize("which", ["reference", "two-legs", "one-zone"])
def test_legsleeve_wiring_draws_svg_and_png(which, tmp_path, capsys):
    directory = {
        "reference": CONFIG_DIR,
        "two-legs": CONFIG_DIR / "examples" / "two-legs",
        "one-zone": write_one_zone_build(tmp_path / "one-zone"),
    }[which]
    svg, png = tmp_path / "s.svg", tmp_path / "s.png"
    assert main(["wiring", "--config", str(directory), "--svg", str(svg), "--png", str(png)]) == 0
    assert f"schematic: {svg}" in capsys.readouterr().out
    cfg = load_hardware(directory)
    text = svg.read_text()
    assert schematic.netlist_of_svg(text) == schematic.netlist_text(cfg)
    assert schematic.netlist_of_png(png.read_bytes()) == schematic.netlist_text(cfg)
    _shows_every_part(cfg, text)
    if which == "two-legs":
        assert "U2 TCA9548A at 0x71" in _texts(text) and "right.thigh" in _texts(text)
    if which == "one-zone":
        assert "TCA9548A" not in _texts(text) and "straight on the Pi's bus" in text


@needs_schemdraw
def test_the_one_sensor_shape_is_drawn(cfg):
    """No zone sensor, one manifold MPRLS straight on the bus, no multiplexer (the one-sensor branch's example)."""
    one = one_sensor_shape(cfg)
    text = schematic.svg(one)
    texts = _texts(text)
    assert "U1 MPRLS" in texts and "manifold" in texts and "TCA9548A" not in texts
    assert "measures each zone while that" in texts
    _shows_every_part(one, text)
    netlist = schematic.netlist_text(one)
    assert "U1 MPRLS manifold at 0x18: VIN 3V3, GND, SDA GPIO2, SCL GPIO3: straight on the Pi's bus" in netlist
    assert schematic.netlist_of_png(schematic.png(one)) == netlist


@needs_schemdraw
def test_the_drawing_is_the_same_every_time(cfg):
    assert schematic.svg(cfg) == schematic.svg(cfg)


def test_without_schemdraw_the_command_says_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "schemdraw", None)  # `import schemdraw` raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'legsleeve\[schematic\]'"):
        schematic.svg(load_hardware(CONFIG_DIR))
    assert main(["wiring", "--config", str(CONFIG_DIR), "--svg", str(tmp_path / "s.svg")]) == 2
    assert "legsleeve[schematic]" in capsys.readouterr().err
    assert not (tmp_path / "s.svg").exists()
