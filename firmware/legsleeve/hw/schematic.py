"""The schematic of a build, drawn from its config with schemdraw (the `schematic` extra): SVG or PNG.

`legsleeve wiring --svg PATH` draws the user's own; hardware/schematic.svg and .png are the reference build's. Each
picture carries the circuit's netlist (`legsleeve.hw.circuit`): in the SVG's <desc>, in the PNG's Description text
chunk, so a test can tell whether a shipped picture still shows what config/hardware.yaml says without comparing
pixels. Wires with the same label (GPIO17, +12V_SW, 3V3, 5V) are one net: the sheet is drawn in blocks joined by
labels, as schematics of this size are.
"""

from __future__ import annotations

import html
import io
import re
import struct
import zlib
from pathlib import Path
from typing import Any

from legsleeve.config.model import HardwareConfig
from legsleeve.errors import ConfigError
from legsleeve.hw import parts
from legsleeve.hw.circuit import PIN_3V3, PIN_5V, PIN_GND, Circuit, Sensor, Stage, circuit
from legsleeve.hw.wiring import MANIFOLD, SCL, SDA, header_pin

STAGES_PER_ROW = 6
STAGE_W, STAGE_H = 7.5, 8.0
FONT = 10
SMALL = 8
PNG_DPI = 110
NETLIST_KEY = "Description"  # the PNG text chunk that holds the netlist


def _schemdraw() -> Any:
    try:
        import schemdraw
    except ImportError as exc:
        raise ConfigError(
            ["the schematic needs schemdraw: pip install 'legsleeve[schematic]' (not needed on the Pi)"]
        ) from exc
    return schemdraw


def netlist_text(cfg: HardwareConfig) -> str:
    return "\n".join(circuit(cfg).netlist())


def draw(cfg: HardwareConfig, *, backend: str = "svg") -> Any:
    """The schematic of `cfg` as a schemdraw Drawing on `backend` ("svg" or "matplotlib")."""
    schemdraw = _schemdraw()
    schemdraw.svgconfig.text = "text"  # labels as <text>: searchable, and no font paths to embed
    import schemdraw.elements as elm

    c = circuit(cfg)
    d = schemdraw.Drawing(canvas=backend, show=False, fontsize=FONT, unit=2.0)
    with d:
        top = _title(d, elm, cfg)
        y = top - 2.0
        y = _header_and_power(d, elm, c, cfg, y)
        y = _stages(d, elm, c.stages, y - 2.0)
        y = _panel(d, elm, c, y - 2.0)
        _bus(d, elm, c, y - 2.0)
    return d


def _title(d: Any, elm: Any, cfg: HardwareConfig) -> float:
    elm.Label().at((0, 0)).label(
        f"legsleeve: {cfg.path}  ({len(cfg.zones)} zones, {_muxes(len(cfg.i2c.mux_addresses))})",
        fontsize=14,
        halign="left",
    )
    elm.Label().at((0, -0.9)).label(
        "Wires with the same label are one net; GND and the ground symbol are one net. Every diode's band is its "
        "cathode.",
        fontsize=SMALL,
        halign="left",
    )
    return -1.0


def _muxes(n: int) -> str:
    return "no multiplexer" if n == 0 else "1 multiplexer" if n == 1 else f"{n} multiplexers"


def _tag(elm: Any, net: str, direction: str = "right") -> None:
    getattr(elm.Tag(), direction)().label(net, fontsize=SMALL)


def _header_and_power(d: Any, elm: Any, c: Circuit, cfg: HardwareConfig, y: float) -> float:
    """The Pi's header with every pin the build uses, and the 12 V supply through the fuse and the E-stop."""
    used = sorted({s.gpio for s in c.stages} | {i.gpio for i in (c.estop, c.button) if i is not None})
    if c.led is not None:
        used = sorted({*used, c.led[0]})
    if c.buzzer is not None:
        used = sorted({*used, c.buzzer[0]})
    pins = [
        elm.IcPin(name="3V3", pin=str(PIN_3V3), side="right", anchorname="p3v3"),
        elm.IcPin(name="5V", pin=str(PIN_5V), side="right", anchorname="p5v"),
        elm.IcPin(name="GND", pin=str(PIN_GND), side="right", anchorname="pgnd"),
        elm.IcPin(name=f"GPIO{SDA} SDA", pin=str(header_pin(SDA)), side="right", anchorname="psda"),
        elm.IcPin(name=f"GPIO{SCL} SCL", pin=str(header_pin(SCL)), side="right", anchorname="pscl"),
    ] + [elm.IcPin(name=f"GPIO{g}", pin=str(header_pin(g)), side="right", anchorname=f"g{g}") for g in used]
    pins.reverse()  # an Ic lists a side's pins from the bottom up: 3V3 goes on top
    height = 0.6 * len(pins) + 1.0
    pi = elm.Ic(pins=pins, size=(3.2, height), pinspacing=0.6, edgepadH=0.5).right()
    pi.anchor("center").at((1.6, y - height / 2))
    pi.label("Raspberry Pi: J8 header\n(BCM GPIO, header pin)", loc="top", fontsize=SMALL)
    for anchor, net in (("p3v3", "3V3"), ("p5v", "5V"), ("pgnd", "GND"), ("psda", "SDA"), ("pscl", "SCL")):
        elm.Line().at(getattr(pi, anchor)).right(0.6)
        _tag(elm, net)
    for g in used:
        elm.Line().at(getattr(pi, f"g{g}")).right(0.6)
        _tag(elm, f"GPIO{g}")

    # The 12 V supply: + through F1 and the E-stop's first pole to +12V_SW; - to the common ground.
    x0, y0 = 12.0, y - 0.5
    psu = elm.BatteryCell().at((x0, y0 - 3.0)).up(3.0).reverse().label("12 V\nsupply", loc="bottom", fontsize=SMALL)
    elm.Ground().at(psu.start)
    s = c.supply
    elm.Line().at(psu.end).right(0.5)
    elm.Fuse().right(2.5).label(f"F1 T{s.fuse_a:g}A\nslow-blow", fontsize=SMALL)
    elm.Switch(nc=True, action="open").right(2.5).label("S1A E-stop\npole 1 (NC)", fontsize=SMALL)
    elm.Line().right(0.5)
    elm.Dot()
    _tag(elm, "+12V_SW")
    elm.Label().at((x0, y0 - 4.6)).label(
        f"+12V_SW feeds every coil and the pump. {s.coils} coils x {parts.COIL_A:g} A + pump {parts.PUMP_RUN_A:g} A "
        f"= {s.running_a:.1f} A running, {s.worst_a:.1f} A with the pump stalled: supply ≥ {s.psu_a:g} A.",
        fontsize=SMALL,
        halign="left",
    )
    elm.Label().at((x0, y0 - 5.4)).label(
        "Pressing the E-stop unpowers every valve (inlets close, exhausts open) and stops the pump, whatever "
        "the Pi does; its second pole (S1B) tells the Pi.",
        fontsize=SMALL,
        halign="left",
    )
    elm.Label().at((x0, y0 - 6.2)).label(
        "The Pi runs on its own 5 V supply (it stays up to log and sound the alarm). Join its GND to the 12 V "
        "supply's -.",
        fontsize=SMALL,
        halign="left",
    )
    return min(y - height - 1.0, y0 - 7.0)


def _stages(d: Any, elm: Any, stages: tuple[Stage, ...], y: float) -> float:
    elm.Label().at((0, y)).label(
        f"Driver stages: one per valve coil and one for the pump. Q = {parts.MOSFET}, gate resistor "
        f"{parts.GATE_R}, pull-down {parts.PULL_DOWN_R} (a released or floating pin means off), flyback "
        f"{parts.FLYBACK} with its band to +12V_SW.",
        fontsize=SMALL,
        halign="left",
    )
    y -= 1.5
    for k, stage in enumerate(stages):
        row, col = divmod(k, STAGES_PER_ROW)
        _stage(d, elm, stage, 1.5 + col * STAGE_W, y - row * STAGE_H)
    rows = (len(stages) + STAGES_PER_ROW - 1) // STAGES_PER_ROW
    return y - rows * STAGE_H


def _stage(d: Any, elm: Any, s: Stage, x: float, y: float) -> None:
    """One low-side stage, its +12V_SW at (x, y): load down to the drain, the diode beside it, the gate on the right."""
    if not s.active_high:
        _active_low(d, elm, s, x, y)
        return
    elm.Vdd().at((x, y)).label("+12V_SW", fontsize=SMALL)
    load = elm.Motor() if s.motor else elm.Inductor2(loops=3)
    load.at((x, y)).down(2.0).label("M" if s.motor else "coil", loc="bottom", fontsize=SMALL)
    drain = elm.Dot()
    elm.Line().at((x, y)).left(1.2)
    elm.Diode().down(2.0).reverse().label(f"{s.d}\n{parts.FLYBACK}", loc="top", fontsize=SMALL)
    elm.Line().right(1.2)
    fet = elm.NFet().anchor("drain").at(drain.center).label(s.q, loc="left", fontsize=SMALL)
    elm.Ground().at(fet.source)
    elm.Line().at(fet.gate).right(0.3)
    gate = elm.Dot()
    elm.Resistor().right(1.8).label(f"{s.r_gate}\n{parts.GATE_R}", fontsize=SMALL)
    _tag(elm, s.net)
    elm.Resistor().at(gate.center).down(1.6).label(f"{s.r_pull} {parts.PULL_DOWN_R}", loc="bottom", fontsize=SMALL)
    elm.Ground()
    elm.Label().at((x + 1.5, fet.source[1] - 2.6)).label(f"{s.load}\n{s.net}, pin {s.header_pin}", fontsize=SMALL)


def _active_low(d: Any, elm: Any, s: Stage, x: float, y: float) -> None:
    """An active-low output drives a driver board's active-low input: a pull-UP keeps a released pin off."""
    box = elm.Ic(
        pins=[elm.IcPin(name="IN (active low)", side="right", anchorname="inp")], size=(2.2, 1.2), edgepadH=0.3
    ).right()
    box.at((x - 1.0, y - 3.0))
    box.label(f"driver board\n{s.load}", loc="top", fontsize=SMALL)
    elm.Line().at(box.inp).right(0.3)
    node = elm.Dot()
    elm.Resistor().right(1.6).label(f"{s.r_gate}\n{parts.GATE_R}", fontsize=SMALL)
    _tag(elm, s.net)
    elm.Resistor().at(node.center).up(1.6).label(f"{s.r_pull} {parts.PULL_DOWN_R}\npull-UP", fontsize=SMALL)
    elm.Vdd().label("3V3", fontsize=SMALL)
    elm.Label().at((x + 1.5, y - 6.4)).label(
        f"{s.load}: active low\n{s.net}, pin {s.header_pin}: no MOSFET", fontsize=SMALL
    )


def _panel(d: Any, elm: Any, c: Circuit, y: float) -> float:
    """The E-stop's sense pole, the button, the LED and the buzzer."""
    elm.Label().at((0, y)).label("Panel", fontsize=FONT, halign="left")
    y -= 1.5
    x = 1.5
    for inp in (c.estop, c.button):
        if inp is None:
            continue
        elm.Tag().at((x, y)).left().label(f"GPIO{inp.gpio}", fontsize=SMALL)
        elm.Line().at((x, y)).down(0.5)
        if inp.ref == "S1B":
            elm.Switch(nc=True, action="open").down(2.0).label(f"{inp.ref}\nE-stop pole 2 (NC)", fontsize=SMALL)
        else:
            elm.Button().down(2.0).label(f"{inp.ref}\nbutton", fontsize=SMALL)
        elm.Ground()
        pull = "internal pull-up" if inp.pull_up else "add 10 kΩ to 3V3"
        elm.Label().at((x, y - 4.4)).label(f"pin {inp.header_pin}, {pull}", fontsize=SMALL)
        x += 6.0
    if c.led is not None:
        gpio, pin, r, led = c.led
        elm.Tag().at((x, y)).left().label(f"GPIO{gpio}", fontsize=SMALL)
        elm.Resistor().at((x, y)).down(1.6).label(f"{r} {parts.LED_R}", fontsize=SMALL)
        elm.LED().down(1.4).label(led, fontsize=SMALL)
        elm.Ground()
        elm.Label().at((x, y - 4.4)).label(f"pin {pin}: status", fontsize=SMALL)
        x += 6.0
    if c.buzzer is not None:
        gpio, pin, rb, rp, q, diode, bz = c.buzzer
        bx, by = x + 2.6, y - 3.6  # the NPN's base
        npn = elm.BjtNpn().right().anchor("base").at((bx, by))
        npn.label(f"{q}\n{parts.BUZZER_NPN}", loc="right", fontsize=SMALL)
        elm.Ground().at(npn.emitter)
        elm.Tag().at((bx - 2.6, by)).left().label(f"GPIO{gpio}", fontsize=SMALL)
        elm.Resistor().at((bx - 2.6, by)).right(1.9).label(f"{rb} {parts.BUZZER_BASE_R}", fontsize=SMALL)
        base = elm.Dot()
        elm.Line().to(npn.base)
        elm.Resistor().at(base.center).down(1.4).label(f"{rp} {parts.PULL_DOWN_R}", loc="bottom", fontsize=SMALL)
        elm.Ground()
        elm.Line().at(npn.collector).up(0.4)
        collector = elm.Dot()
        buzzer = elm.Ic(
            pins=[
                elm.IcPin(name="+", side="top", anchorname="plus"),
                elm.IcPin(name="-", side="bottom", anchorname="minus"),
            ],
            size=(1.0, 0.9),
            leadlen=0.3,
        ).right()
        buzzer.anchor("minus").at(collector.center).label(f"{bz}\nbuzzer", loc="left", fontsize=SMALL)
        elm.Line().at(buzzer.plus).up(0.3)
        plus = elm.Dot()
        elm.Vdd().label("5V", fontsize=SMALL)
        elm.Line().at(plus.center).right(1.2)
        elm.Diode().down(plus.center[1] - collector.center[1]).reverse().label(
            f"{diode} {parts.BUZZER_DIODE}", loc="bottom", fontsize=SMALL
        )
        elm.Line().left(1.2)
        elm.Label().at((x + 2.5, y - 6.4)).label(f"pin {pin}: alarms", fontsize=SMALL)
    return y - 7.0


def _bus(d: Any, elm: Any, c: Circuit, y: float) -> None:
    """The sensors: each multiplexer with its address pins and a sensor on each channel used; or one sensor."""
    if c.muxes:
        heading = "Sensor bus: every MPRLS answers at 0x18, so each has a multiplexer channel of its own. All on 3V3."
    elif c.sensors and all(s.name == MANIFOLD for s in c.sensors):
        heading = "Sensor bus: one MPRLS, on the manifold, straight on the Pi's bus; it measures each zone while that "
        heading += "zone's inlet is open. On 3V3."
    else:
        heading = "Sensor bus: one MPRLS straight on the Pi's bus (no multiplexer). On 3V3."
    elm.Label().at((0, y)).label(heading, fontsize=FONT, halign="left")
    y -= 1.5
    if not c.muxes:
        for k, sensor in enumerate(c.sensors):
            _sensor(elm, sensor, 4.0 + 9.0 * k, y - 1.5, bus_tags=True)
        return
    x = 1.5
    for m in c.muxes:
        on = [s for s in c.sensors if s.mux == m.address]
        slots = 5 * max(len(on), 2)  # a sensor every 5 slots of 0.6: 3 units, the height of its box and label
        right = []
        for k, s in enumerate(on):  # from the top down; an Ic counts a side's slots from the bottom up
            sd = slots - 5 * k - 2
            right += [
                elm.IcPin(name=f"SD{s.channel}", side="right", slot=f"{sd}/{slots}", anchorname=f"sd{s.channel}"),
                elm.IcPin(name=f"SC{s.channel}", side="right", slot=f"{sd - 1}/{slots}", anchorname=f"sc{s.channel}"),
            ]
        left = [
            elm.IcPin(name=name, side="left", slot=f"{slots - k}/{slots}", anchorname=name.lower())
            for k, name in enumerate(("VIN", "GND", "SDA", "SCL", "A0", "A1", "A2"))
        ]
        height = 0.6 * (slots - 1) + 1.2
        mux = elm.Ic(pins=left + right, size=(2.6, height), pinspacing=0.6, edgepadH=0.6).right()
        mux.anchor("center").at((x + 4.3, y - height / 2))
        mux.label(f"{m.ref} TCA9548A at 0x{m.address:02x}\n{m.pins}", loc="bottom", fontsize=SMALL)
        bits = m.address - 0x70
        address = [(f"a{n}", "3V3" if bits >> n & 1 else "GND") for n in range(3)]  # each pin high adds 1, 2, 4
        for pin, net in (("vin", "3V3"), ("gnd", "GND"), ("sda", "SDA"), ("scl", "SCL"), *address):
            elm.Line().at(getattr(mux, pin)).left(0.6)
            _tag(elm, net, "left")
        for s in on:
            sd, sc = getattr(mux, f"sd{s.channel}"), getattr(mux, f"sc{s.channel}")
            sx = sd[0] + 2.0
            elm.Line().at(sd).to((sx, sd[1]))
            elm.Line().at(sc).to((sx, sc[1]))
            _sensor(elm, s, sx, sd[1], bus_tags=False)
        x += 17.0


def _sensor(elm: Any, s: Sensor, x: float, y: float, *, bus_tags: bool) -> None:
    """One MPRLS breakout, its SDA pin at (x, y)."""
    box = elm.Ic(
        pins=[
            elm.IcPin(name="SCL", side="left", anchorname="scl"),  # bottom up: SDA above SCL, as on the mux
            elm.IcPin(name="SDA", side="left", anchorname="sda"),
            elm.IcPin(name="GND", side="right", anchorname="gnd"),
            elm.IcPin(name="VIN", side="right", anchorname="vin"),
        ],
        size=(2.2, 1.8),
        pinspacing=0.6,
        leadlen=0.0,
    ).right()
    box.anchor("sda").at((x, y))
    box.label(f"{s.ref} MPRLS\n{s.name}", loc="top", fontsize=SMALL)
    if bus_tags:
        elm.Line().at(box.sda).left(0.8)
        _tag(elm, "SDA", "left")
        elm.Line().at(box.scl).left(0.8)
        _tag(elm, "SCL", "left")
    elm.Line().at(box.vin).right(0.5)
    _tag(elm, "3V3")
    elm.Line().at(box.gnd).right(0.5)
    elm.Ground()


# -- files ---------------------------------------------------------------------------------------------------------


def svg(cfg: HardwareConfig) -> str:
    """The schematic as SVG text, the netlist in its <desc>."""
    d = draw(cfg, backend="svg")
    text = d.get_imagedata("svg").decode()
    desc = (
        f"<title>legsleeve schematic: {html.escape(str(cfg.path))}</title><desc>{html.escape(netlist_text(cfg))}</desc>"
    )
    return re.sub(r"(<svg\b[^>]*>)", lambda m: m.group(1) + desc, text, count=1)


def png(cfg: HardwareConfig) -> bytes:
    """The schematic as PNG bytes (matplotlib draws it), the netlist in its Description text chunk."""
    import matplotlib

    matplotlib.use("Agg")
    d = draw(cfg, backend="matplotlib")
    d.draw(show=False)
    fig = d.fig.getfig()  # sized to the drawing (schemdraw's inches per unit)
    buf = io.BytesIO()
    fig.savefig(
        buf,
        format="png",
        dpi=PNG_DPI,
        bbox_inches="tight",
        pad_inches=0.2,
        facecolor="white",
        metadata={NETLIST_KEY: netlist_text(cfg), "Software": None},
    )
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def write(cfg: HardwareConfig, path: Path) -> None:
    """Write the schematic to `path`: PNG if it ends in .png, SVG otherwise."""
    if path.suffix.lower() == ".png":
        path.write_bytes(png(cfg))
    else:
        path.write_text(svg(cfg))


def netlist_of_svg(text: str) -> str:
    """The netlist a schematic SVG carries ('' if none)."""
    found = re.search(r"<desc>(.*?)</desc>", text, re.S)
    return html.unescape(found.group(1)) if found else ""


def netlist_of_png(data: bytes) -> str:
    """The netlist a schematic PNG carries in its tEXt or iTXt chunk ('' if none)."""
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            if key == NETLIST_KEY.encode():
                return value.decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            if key == NETLIST_KEY.encode():
                compressed, _method = rest[0], rest[1]
                _lang, _, rest = rest[2:].partition(b"\0")
                _translated, _, value = rest.partition(b"\0")
                return (zlib.decompress(value) if compressed else value).decode()
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            if key == NETLIST_KEY.encode():
                return zlib.decompress(rest[1:]).decode("latin-1")
        pos += 12 + length
    return ""
