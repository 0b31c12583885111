"""The hardware docs say what config/hardware.yaml says."""

from __future__ import annotations

from legsleeve.hw import wiring
from tests.helpers import ROOT


def test_wiring_table_in_the_docs_matches_the_reference_config(cfg):
    doc = (ROOT / "hardware" / "README.md").read_text()
    assert wiring.markdown(cfg) in doc


def test_wiring_covers_every_pin_once(cfg):
    gpios = [r[0] for r in wiring.rows(cfg)]
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
