"""The hardware docs say what config/hardware.yaml says: the wiring table, the bill of materials and the circuit the
schematic draws agree with the config and with each other (tests/hw/test_schematic.py checks the drawn files)."""

from __future__ import annotations

import dataclasses

import pytest

from legsleeve.config.hardware import load_hardware
from legsleeve.hw import circuit, parts, wiring
from tests.helpers import CONFIG_DIR, ROOT, write_multiplexed_hardware
from tests.shapes import one_sensor_shape, write_one_zone_build


def test_wiring_table_in_the_docs_matches_the_reference_config(cfg):
    doc = (ROOT / "hardware" / "README.md").read_text()
    assert wiring.markdown(cfg) in doc


def test_wiring_covers_every_pin_once(cfg):
    gpios = [r[0] for r in wiring.rows(cfg) if r[0]]  # the multiplexers' rows have no pin of their own
    assert len(gpios) == len(set(gpios))
    used = {cfg.pump.pin.gpio, *(z.inlet.pin.gpio for z in cfg.zones), *(z.exhaust.pin.gpio for z in cfg.zones)}
    c = cfg.controls
    used |= {d.pin.gpio for d in (c.button, c.estop, c.led, c.buzzer) if d is not None}
    assert {f"GPIO{g}" for g in used} | {"GPIO2", "GPIO3"} == set(gpios)


def test_wiring_command_prints_the_users_config(capsys):
    from legsleeve.app.cli import main

    assert main(["wiring", "--config", str(ROOT / "config")]) == 0
    out = capsys.readouterr().out
    assert "GPIO18" in out and "pump" in out and "ankle inlet valve (NC)" in out


@pytest.mark.parametrize(
    "address, pins",
    [
        (0x70, "A0-A2 low (the board's default)"),
        (0x71, "A0 high (tied to VIN), A1 and A2 low"),
        (0x72, "A1 high (tied to VIN), A0 and A2 low"),
        (0x73, "A0 and A1 high (tied to VIN), A2 low"),
        (0x77, "A0, A1 and A2 high (tied to VIN)"),
    ],
)
def test_a_multiplexers_address_pins(address, pins):
    assert wiring.address_pins(address) == pins


def test_wiring_names_each_multiplexer_and_the_sensors_on_it(tmp_path, capsys):
    from legsleeve.app.cli import main

    directory = write_multiplexed_hardware(tmp_path, "[0x70, 0x71]", [0, 9, 2, 11], manifold_channel=4)
    rows = {r[2]: r for r in wiring.rows(load_hardware(directory))}
    assert rows["I2C SDA"][4] == "to SDA of every TCA9548A (0x70, 0x71)"
    assert rows["TCA9548A at 0x70"][4] == (
        "A0-A2 low (the board's default); SD0/SC0 ankle, SD2/SC2 knee, SD4/SC4 manifold: an MPRLS at 0x18 on each"
    )
    assert rows["TCA9548A at 0x71"][4] == (
        "A0 high (tied to VIN), A1 and A2 low; SD1/SC1 calf (sensor channel 9), SD3/SC3 thigh (sensor channel 11): "
        "an MPRLS at 0x18 on each"
    )
    assert main(["wiring", "--config", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "TCA9548A at 0x71" in out and "SD3/SC3 thigh (sensor channel 11)" in out


# -- the bill of materials, the schematic and the wiring: one build, three views, all from the config ------------

TWO_LEGS = CONFIG_DIR / "examples" / "two-legs"


@pytest.fixture(params=["reference", "two-legs", "one-zone", "one-sensor"])
def build(request, cfg, tmp_path):
    if request.param == "reference":
        return cfg
    if request.param == "two-legs":
        return load_hardware(TWO_LEGS)
    if request.param == "one-zone":
        return load_hardware(write_one_zone_build(tmp_path))
    return one_sensor_shape(cfg)


def _qty(lines, number_or_part):
    found = [line.qty for line in lines if number_or_part in (line.number, line.part)]
    assert len(found) == 1, number_or_part
    return found[0]


def test_bom_schematic_and_wiring_agree_with_the_config(build):
    """Every valve, the pump, each sensor and each multiplexer of the config is in the wiring table, has its stage
    or part in the schematic's circuit, and is counted in the bill of materials - the same numbers three ways."""
    c = circuit.circuit(build)
    lines = parts.bom(build)
    table = wiring.rows(build)
    n = len(build.zones)
    sensors = sum(z.sensor_channel is not None for z in build.zones) + build.has_manifold_sensor
    # drivers: one per coil and the pump
    assert len(c.stages) == 1 + 2 * n == _qty(lines, parts.MOSFET) == _qty(lines, parts.FLYBACK)
    assert _qty(lines, parts.GATE_R) == len(c.stages)
    assert _qty(lines, parts.PULL_DOWN_R) == len(c.stages) + (c.buzzer is not None)
    assert {s.gpio for s in c.stages} == {int(r[0][4:]) for r in table if "valve" in r[2] or r[2] == "pump"}
    for s in c.stages:
        assert f"GPIO{s.gpio}" in {r[0] for r in table} and s.header_pin == int(
            next(r for r in table if r[2] == s.load)[1]
        )
    # valves by form
    assert _qty(lines, "2/2 solenoid valve, 12 V, **normally closed**") == n
    assert _qty(lines, "2/2 solenoid valve, 12 V, **normally open**") == n
    # the sensor bus
    assert len(c.sensors) == sensors and len(c.muxes) == len(build.i2c.mux_addresses)
    if sensors:
        assert _qty(lines, "Adafruit 3965") == sensors
    if c.muxes:
        assert _qty(lines, "Adafruit 2717") == len(c.muxes)
        muxes = [r for r in table if r[2].startswith("TCA9548A at ")]
        assert [r[2] for r in muxes] == [f"TCA9548A at 0x{m.address:02x}" for m in c.muxes]
        for m in c.muxes:
            row = next(r for r in muxes if r[2] == f"TCA9548A at 0x{m.address:02x}")
            assert row[4].startswith(m.pins)
            for s in c.sensors:
                if s.mux == m.address:
                    assert f"SD{s.channel}/SC{s.channel} {s.name}" in row[4]
    else:
        assert not any("Adafruit 2717" == line.number for line in lines)
        assert all(s.mux is None for s in c.sensors)
    # the fuse and the supply the schematic draws are the BOM's
    fuse = next(line for line in lines if line.part.startswith("fuse"))
    assert fuse.figures.startswith(f"T{c.supply.fuse_a:g}A")
    # the relief valve is set from the config's limit
    relief = next(line for line in lines if line.part.startswith("relief valve"))
    assert relief.figures.startswith(f"opens at {build.simulation.relief_mmhg:g} mmHg")
    assert build.simulation.relief_mmhg == build.limits.max_mmhg + 20


def test_the_bom_in_the_docs_matches_the_reference_config(cfg):
    doc = (ROOT / "hardware" / "BOM.md").read_text()
    assert parts.markdown(cfg) in doc


def test_the_fuse_and_supply_are_sized_for_the_coils(cfg):
    one, two = parts.supply(cfg), parts.supply(load_hardware(TWO_LEGS))
    assert (one.coils, one.fuse_a, one.psu_a) == (8, 4.0, 5.0)  # 3.0 A running, 4.4 A worst
    assert (two.coils, two.fuse_a, two.psu_a) == (16, 8.0, 8.0)  # 5.4 A running, 6.8 A worst
    for s in (one, two):
        assert s.fuse_a >= 1.25 * s.running_a and s.psu_a >= max(s.worst_a, s.fuse_a)


def test_an_active_low_output_gets_a_pull_up_and_no_mosfet(cfg):
    """A released pin must mean off: for an active-low driver input that takes a pull-up, not this stage."""
    low = dataclasses.replace(cfg, pump=dataclasses.replace(cfg.pump, active_high=False))
    pump = circuit.circuit(low).stages[0]
    assert not pump.active_high and "pull-up from IN to 3V3" in pump.line() and parts.MOSFET not in pump.line()
    assert "pull-up to 3V3" in next(r for r in wiring.rows(low) if r[2] == "pump")[4]
