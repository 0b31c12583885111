"""The hardware docs say what config/hardware.yaml says."""

from __future__ import annotations

import pytest

from legsleeve.config.hardware import load_hardware
from legsleeve.hw import wiring
from tests.helpers import ROOT, write_multiplexed_hardware


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
