"""Hardware config validation: the shipped file loads; each malformed variant names file, line and key."""

from __future__ import annotations

import math

import pytest

from legsleeve.config.hardware import load_hardware
from legsleeve.core.limits import ABS_MAX_MMHG
from legsleeve.errors import ConfigError
from tests.helpers import CONFIG_DIR

SHIPPED = (CONFIG_DIR / "hardware.yaml").read_text()


def test_shipped_config_describes_the_reference_build(cfg):
    assert cfg.zone_names == ("ankle", "calf", "knee", "thigh")
    assert [z.index for z in cfg.zones] == [0, 1, 2, 3]
    assert all(not z.inlet.normally_open and z.exhaust.normally_open for z in cfg.zones)
    assert cfg.pump.pin.gpio == 18 and cfg.pump.min_duty == 0.7
    assert cfg.i2c.mux_address == 0x70 and cfg.i2c.sensor_address == 0x18
    assert cfg.manifold_channel == 4
    assert cfg.limits.max_mmhg <= ABS_MAX_MMHG
    assert cfg.warnings == ()
    assert cfg.simulation.zones["thigh"].compliance_l_per_mmhg > cfg.simulation.zones["ankle"].compliance_l_per_mmhg


def _load_variant(tmp_path, text):
    (tmp_path / "hardware.yaml").write_text(text)
    return load_hardware(tmp_path)


def _line_of(text: str, needle: str) -> int:
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError(f"{needle!r} not in variant")


# (id, old text, new text, key path expected, message fragment, line marker: text on the expected line)
CASES = [
    (
        "unknown key",
        "  min_duty: 0.7",
        "  min_duty: 0.7\n  max_presure_mmhg: 3",
        "pump.max_presure_mmhg",
        "unknown key",
        "max_presure_mmhg",
    ),
    (
        "typo suggests",
        "  trip_margin_mmhg: 10",
        "  trip_margn_mmhg: 10",
        "limits.trip_margn_mmhg",
        "did you mean 'trip_margin_mmhg'",
        "trip_margn_mmhg",
    ),
    ("wrong type", "  min_duty: 0.7 ", "  min_duty: fast ", "pump.min_duty", "must be a number", "min_duty"),
    ("bool is not a number", "tick_hz: 50", "tick_hz: true", "tick_hz", "must be a number", "tick_hz"),
    ("missing key", "  max_mmhg: 90\n", "", "limits.max_mmhg", "missing (required)", "limits:"),
    (
        "missing key in a list item",
        "    sensor_channel: 2\n",
        "",
        "zones[2].sensor_channel",
        "missing (required)",
        "- name: knee",
    ),
    ("missing section", "pump:\n", "pumpe:\n", "pump", "missing (required)", None),
    ("nan", "  max_mmhg: 90", "  max_mmhg: .nan", "limits.max_mmhg", "finite", "max_mmhg"),
    ("inf", "  ambient_hpa: 1013.25", "  ambient_hpa: .inf", "simulation.ambient_hpa", "finite", "ambient_hpa"),
    ("above hard ceiling", "  max_mmhg: 90", "  max_mmhg: 200", "limits.max_mmhg", "must be <= 150", "max_mmhg"),
    (
        "debounce ceiling",
        "  overpressure_debounce_s: 0.1",
        "  overpressure_debounce_s: 0.5",
        "limits.overpressure_debounce_s",
        "must be <= 0.1",
        "overpressure_debounce_s",
    ),
    (
        "negative",
        "  fill_timeout_s: 40",
        "  fill_timeout_s: -3",
        "limits.fill_timeout_s",
        "must be > 0",
        "fill_timeout_s",
    ),
    (
        "duplicate pin",
        "{pin: GPIO23,",
        "{pin: GPIO17,",
        "zones[1].exhaust.pin",
        "already used by zones[0].inlet.pin",
        "{pin: GPIO17, form: normally-open",
    ),
    (
        "duplicate pin by another name",
        "{pin: GPIO23,",
        "{pin: BOARD11,",
        "zones[1].exhaust.pin",
        "GPIO17 is already used",
        "{pin: BOARD11",
    ),
    ("invalid pin", "  pin: GPIO18 ", "  pin: GPIO40 ", "pump.pin", "not a GPIO on the 40-pin header", "GPIO40"),
    ("power pin", "  pin: GPIO18 ", "  pin: BOARD1 ", "pump.pin", "3V3, not a GPIO", "pin: BOARD1 "),
    ("i2c pin", "  pin: GPIO18 ", "  pin: GPIO2 ", "pump.pin", "carries the I2C bus", "GPIO2"),
    (
        "valve form that fails unsafe",
        "{pin: GPIO27, form: normally-open,",
        "{pin: GPIO27, form: normally-closed,",
        "zones[0].exhaust.form",
        "must be normally-open",
        "GPIO27",
    ),
    (
        "unknown valve form",
        "{pin: GPIO17, form: normally-closed,",
        "{pin: GPIO17, form: sometimes,",
        "zones[0].inlet.form",
        "must be one of",
        "sometimes",
    ),
    ("duplicate zone", "  - name: calf", "  - name: ankle", "zones[1].name", "already defined", None),
    (
        "duplicate channel",
        "    sensor_channel: 1",
        "    sensor_channel: 0",
        "zones[1].sensor_channel",
        "channel 0 is already used",
        None,
    ),
    (
        "manifold channel clash",
        "  channel: 4",
        "  channel: 3",
        "manifold_sensor.channel",
        "already used by zone",
        "  channel: 3",
    ),
    (
        "channel out of range",
        "    sensor_channel: 3",
        "    sensor_channel: 9",
        "zones[3].sensor_channel",
        "must be <= 7",
        "sensor_channel: 9",
    ),
    ("mux address", "  mux_address: 0x70", "  mux_address: 0x20", "i2c.mux_address", "must be >= 112", "mux_address"),
    ("deadline ceiling", "  deadline_s: 0.02", "  deadline_s: 2", "i2c.deadline_s", "must be <= 0.05", "deadline_s"),
    (
        "sim zone unknown",
        "    thigh:\n      compliance",
        "    thig:\n      compliance",
        "simulation.zones.thig",
        "no zone named 'thig'",
        "thig:",
    ),
    # A pin given no value is an error, never a device quietly left out: an "OK" config without its E-stop.
    ("estop pin null", "estop:  {pin: GPIO5}", "estop:  {pin: null}", "controls.estop.pin", "got nothing", "estop:"),
    ("pump pin empty", "  pin: GPIO18 ", "  pin:  ", "pump.pin", "got nothing", "pin:  "),
    ("valve pin empty", "{pin: GPIO17, form", "{pin: , form", "zones[0].inlet.pin", "got nothing", "{pin: , form"),
    (
        "zones not a list",
        "zones:\n  - name: ankle",
        "zones: ankle\nx:\n  - name: ankle",
        "zones",
        "must be a list",
        "zones: ankle",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_config_names_file_line_and_key(tmp_path, case):
    _id, old, new, key, fragment, marker = case
    assert old in SHIPPED, f"fixture out of date: {old!r}"
    text = SHIPPED.replace(old, new, 1)
    with pytest.raises(ConfigError) as err:
        _load_variant(tmp_path, text)
    matching = [p for p in err.value.problems if f": {key}: " in p and fragment in p]
    assert matching, f"no problem for {key} with {fragment!r}; got:\n" + "\n".join(err.value.problems)
    assert matching[0].startswith(f"{tmp_path / 'hardware.yaml'}:")
    if marker is not None:
        assert f":{_line_of(text, marker)}: {key}:" in matching[0]


def test_all_problems_are_reported_at_once(tmp_path):
    text = SHIPPED.replace("  max_mmhg: 90", "  max_mmhg: 500").replace("  min_duty: 0.7", "  min_duty: 2")
    with pytest.raises(ConfigError) as err:
        _load_variant(tmp_path, text)
    keys = " ".join(err.value.problems)
    assert "limits.max_mmhg" in keys and "pump.min_duty" in keys


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", ":1: file is empty"),
        ("# only a comment\n", ":1: file is empty"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("just words\n", "top level must be a mapping"),
        ("pump: {pin: 18\n", "YAML syntax"),
        ("tick_hz: 50\ntick_hz: 60\n", ":2: YAML syntax: duplicate key 'tick_hz' (first on line 1)"),
        ("a: [1, 2\nb: 3\n", "YAML syntax"),
    ],
)
def test_unusable_files(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as err:
        _load_variant(tmp_path, text)
    assert fragment in str(err.value)
    assert str(tmp_path / "hardware.yaml") in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_hardware(tmp_path)


def test_boot_pulled_up_gpio_warns_for_actuators_only(tmp_path):
    text = SHIPPED.replace("  buzzer: {pin: GPIO13}", "  buzzer: {pin: GPIO7}")
    cfg = _load_variant(tmp_path, text)
    assert any("controls.buzzer.pin: GPIO7 is pulled up at boot" in w for w in cfg.warnings)
    # inputs on GPIO 5/6 (the shipped button and E-stop) are fine: no warning
    assert not any("controls.button" in w or "controls.estop" in w for w in cfg.warnings)


def test_pin_names_resolve_to_bcm(tmp_path):
    text = SHIPPED.replace("  pin: GPIO18 ", "  pin: BOARD12 ").replace("{pin: GPIO17,", "{pin: 17,")
    cfg = _load_variant(tmp_path, text)
    assert cfg.pump.pin.gpio == 18 and cfg.pump.pin.name == "BOARD12"
    assert cfg.zones[0].inlet.pin.gpio == 17 and cfg.zones[0].inlet.pin.name == "GPIO17"


def test_numbers_are_floats_and_finite(cfg):
    for value in (cfg.limits.max_mmhg, cfg.tick_hz, cfg.simulation.ambient_hpa):
        assert isinstance(value, float) and math.isfinite(value)


# -- several multiplexers: sensor channel n is channel n % 8 of the multiplexer mux_address[n // 8] ---------------

TWO_MUXES = (
    SHIPPED.replace("  mux_address: 0x70", "  mux_address: [0x70, 0x71]")
    .replace("    sensor_channel: 1", "    sensor_channel: 9")
    .replace("    sensor_channel: 3", "    sensor_channel: 11")
)


def test_a_list_of_multiplexers_spreads_the_channels_over_them(tmp_path):
    cfg = _load_variant(tmp_path, TWO_MUXES)
    assert cfg.i2c.mux_addresses == (0x70, 0x71)
    assert cfg.i2c.mux_address == 0x70  # the first, for code that asks whether there is one
    assert [z.sensor_channel for z in cfg.zones] == [0, 9, 2, 11]
    assert [cfg.i2c.mux_channel(z.sensor_channel) for z in cfg.zones] == [(0x70, 0), (0x71, 1), (0x70, 2), (0x71, 3)]
    assert cfg.warnings == ()


@pytest.mark.parametrize(
    "value, addresses",
    [("0x70", (0x70,)), ("0x73", (0x73,)), ("[0x72]", (0x72,)), ("[0x71, 0x70, 0x77]", (0x71, 0x70, 0x77))],
)
def test_one_address_or_a_list(tmp_path, value, addresses):
    cfg = _load_variant(tmp_path, SHIPPED.replace("  mux_address: 0x70", f"  mux_address: {value}"))
    assert cfg.i2c.mux_addresses == addresses and cfg.i2c.mux_address == addresses[0]


def test_null_is_no_multiplexer(tmp_path):
    one = SHIPPED.replace("  mux_address: 0x70", "  mux_address: null").replace("manifold_sensor:\n  channel: 4\n", "")
    start, end = one.index("  - name: calf"), one.index("# Optional: a sensor")
    one = (one[:start] + one[end:]).replace("    thigh:\n      compliance", "    ankle:\n      compliance")
    one = one.replace("  max_mmhg: 90", "  max_mmhg: 60")  # no manifold sensor: SAFE-15's ceiling
    cfg = _load_variant(tmp_path, one)
    assert cfg.i2c.mux_addresses == () and cfg.i2c.mux_address is None


ONE = "  mux_address: 0x70"
TWO = "  mux_address: [0x70, 0x71]"

MUX_CASES = [
    # (id, edits to the shipped file, key path, message fragments, text on the expected line)
    (
        "channel needs a second multiplexer",
        [("    sensor_channel: 3", "    sensor_channel: 9")],
        "zones[3].sensor_channel",
        ("must be <= 7 (got 9)", "channel 1 of a second TCA9548A", "lists one (0x70)", "mux_address: [0x70, 0x71]"),
        "sensor_channel: 9",
    ),
    (
        "manifold channel needs a second multiplexer",
        [("  channel: 4", "  channel: 12")],
        "manifold_sensor.channel",
        ("channel 4 of a second TCA9548A", "mux_address: [0x70, 0x71]"),
        "channel: 12",
    ),
    (
        "channel needs a third multiplexer",
        [(ONE, TWO), ("    sensor_channel: 3", "    sensor_channel: 17")],
        "zones[3].sensor_channel",
        ("must be <= 15 (got 17)", "third TCA9548A", "lists two (0x70, 0x71)", "[0x70, 0x71, 0x72]"),
        "sensor_channel: 17",
    ),
    (
        "beyond three multiplexers",
        [("    sensor_channel: 3", "    sensor_channel: 24")],
        "zones[3].sensor_channel",
        ("must be <= 23",),
        "sensor_channel: 24",
    ),
    (
        "same channel on the second multiplexer",
        [(ONE, TWO), ("sensor_channel: 1", "sensor_channel: 8"), ("sensor_channel: 2", "sensor_channel: 8  # knee")],
        "zones[2].sensor_channel",
        ("channel 8 is already used by zones[1]",),
        "# knee",
    ),
    (
        "address out of range in a list",
        [(ONE, "  mux_address: [0x70, 0x20]")],
        "i2c.mux_address[1]",
        ("0x70-0x77 (got 0x20)",),
        "mux_address",
    ),
    (
        "address not a number",
        [(ONE, "  mux_address:\n    - 0x70\n    - second")],
        "i2c.mux_address[1]",
        ("must be a TCA9548A address", "'second'"),
        "- second",
    ),
    (
        "address listed twice",
        [(ONE, "  mux_address: [0x71, 0x71]")],
        "i2c.mux_address[1]",
        ("0x71 is listed twice", "A0-A2"),
        "mux_address",
    ),
    (
        "four multiplexers",
        [(ONE, "  mux_address: [0x70, 0x71, 0x72, 0x73]")],
        "i2c.mux_address",
        ("at most 3 multiplexers (24 sensor channels), got 4",),
        "mux_address",
    ),
    ("empty list", [(ONE, "  mux_address: []")], "i2c.mux_address", ("must not be empty",), "mux_address"),
]


@pytest.mark.parametrize("case", MUX_CASES, ids=[c[0] for c in MUX_CASES])
def test_bad_multiplexer_config_names_file_line_and_key(tmp_path, case):
    _id, edits, key, fragments, marker = case
    text = SHIPPED
    for old, new in edits:
        assert old in text, f"fixture out of date: {old!r}"
        text = text.replace(old, new, 1)
    with pytest.raises(ConfigError) as err:
        _load_variant(tmp_path, text)
    matching = [p for p in err.value.problems if f": {key}: " in p and all(f in p for f in fragments)]
    assert matching, f"no problem for {key} with {fragments!r}; got:\n" + "\n".join(err.value.problems)
    assert matching[0].startswith(f"{tmp_path / 'hardware.yaml'}:{_line_of(text, marker)}: {key}: ")


def test_a_multiplexer_with_no_sensor_on_it_warns(tmp_path):
    cfg = _load_variant(tmp_path, SHIPPED.replace(ONE, "  mux_address: [0x70, 0x74]"))
    assert cfg.i2c.mux_addresses == (0x70, 0x74)
    [warning] = cfg.warnings
    assert f":{_line_of(SHIPPED, ONE)}: i2c.mux_address: no sensor is on the multiplexer at 0x74" in warning
    assert "sensor channels 8-15" in warning


def test_a_manifold_sensor_beside_a_zone_sensor_needs_a_multiplexer(tmp_path):
    one = SHIPPED.replace(ONE, "  mux_address: null")
    start, end = one.index("  - name: calf"), one.index("# Optional: a sensor")
    one = (one[:start] + one[end:]).replace("    thigh:\n      compliance", "    ankle:\n      compliance")
    with pytest.raises(ConfigError) as err:
        _load_variant(tmp_path, one)
    [problem] = err.value.problems
    line = _line_of(one, "  channel: 4")
    assert f"hardware.yaml:{line}: manifold_sensor.channel: the manifold sensor and the zone's sensor both" in problem


# -- simulation.limbs: the venous model of the simulated leg ----------------------------------------------------

TWO_LIMBS = (
    SHIPPED.replace("  - name: knee\n", "  - name: knee\n    limb: right\n")
    .replace("  - name: thigh\n", "  - name: thigh\n    limb: right\n")
    .replace("  zones:\n    thigh:\n", "  zones:\n    right.thigh:\n")  # two limbs: zone ids are limb.name
)


def _with_limbs(text: str, extra: str) -> str:
    """The config with lines appended to its `simulation` section (the file's last)."""
    assert text.rstrip().endswith("compliance_l_per_mmhg: 0.008"), "fixture out of date: simulation is not last"
    return text.rstrip("\n") + "\n" + extra


def test_no_limbs_is_a_rigid_leg(cfg):
    assert cfg.simulation.limbs == {}


def test_limb_defaults_give_every_limb_the_code_defaults(tmp_path):
    from legsleeve.config.model import SimLimbSpec

    sim = _load_variant(tmp_path, _with_limbs(SHIPPED, "  limb_defaults: {}\n")).simulation
    assert sim.limbs == {"leg": SimLimbSpec(zones=("ankle", "calf", "knee", "thigh"))}
    leg = sim.limbs["leg"]
    assert (leg.refill_s, leg.venous_ml, leg.empty_mmhg, leg.empty_s, leg.thermal_mmhg, leg.thermal_s) == (
        30.0,
        60.0,
        40.0,
        2.0,
        0.0,
        5.0,
    )


def test_limbs_override_limb_defaults_per_limb(tmp_path):
    extra = "  limb_defaults:\n    refill_s: 40\n  limbs:\n    right:\n      venous_ml: 80\n      thermal_mmhg: 1.5\n"
    limbs = _load_variant(tmp_path, _with_limbs(TWO_LIMBS, extra)).simulation.limbs
    assert set(limbs) == {"leg", "right"}
    assert limbs["leg"].zones == ("leg.ankle", "leg.calf") and limbs["right"].zones == ("right.knee", "right.thigh")
    assert (limbs["leg"].refill_s, limbs["leg"].venous_ml, limbs["leg"].thermal_mmhg) == (40.0, 60.0, 0.0)
    assert (limbs["right"].refill_s, limbs["right"].venous_ml, limbs["right"].thermal_mmhg) == (40.0, 80.0, 1.5)


def test_limbs_without_defaults_model_only_the_limbs_named(tmp_path):
    limbs = _load_variant(tmp_path, _with_limbs(TWO_LIMBS, "  limbs:\n    right: {refill_s: 20}\n")).simulation.limbs
    assert list(limbs) == ["right"] and limbs["right"].refill_s == 20.0 and limbs["right"].venous_ml == 60.0


# (id, lines appended to simulation, key path expected, message fragment, text on the expected line)
LIMB_CASES = [
    ("limb typo", "  limbs:\n    leg:\n      refil_s: 30\n", "simulation.limbs.leg.refil_s", "did you mean", "refil_s"),
    ("refill too short", "  limbs:\n    leg: {refill_s: 3}\n", "simulation.limbs.leg.refill_s", "must be >= 5", "leg:"),
    (
        "refill too long",
        "  limbs:\n    leg:\n      refill_s: 200\n",
        "simulation.limbs.leg.refill_s",
        "must be <= 180",
        "refill_s",
    ),
    (
        "venous negative",
        "  limb_defaults:\n    venous_ml: -5\n",
        "simulation.limb_defaults.venous_ml",
        "must be >= 0",
        "venous_ml",
    ),
    (
        "empty pressure",
        "  limb_defaults:\n    empty_mmhg: 5\n",
        "simulation.limb_defaults.empty_mmhg",
        "must be >= 10",
        "empty_mmhg",
    ),
    ("empty time", "  limb_defaults:\n    empty_s: 0.1\n", "simulation.limb_defaults.empty_s", ">= 0.2", "empty_s"),
    (
        "thermal too big",
        "  limb_defaults:\n    thermal_mmhg: 6\n",
        "simulation.limb_defaults.thermal_mmhg",
        "must be <= 5",
        "thermal_mmhg",
    ),
    (
        "thermal time",
        "  limbs:\n    leg:\n      thermal_s: 0\n",
        "simulation.limbs.leg.thermal_s",
        "must be >= 0.5",
        "thermal_s",
    ),
    (
        "not a number",
        "  limb_defaults:\n    refill_s: slow\n",
        "simulation.limb_defaults.refill_s",
        "must be a number in s",
        "refill_s",
    ),
    (
        "unknown limb",
        "  limbs:\n    arm:\n      refill_s: 30\n",
        "simulation.limbs.arm",
        "no zone is on a limb named 'arm' (limbs: leg)",
        "arm:",
    ),
    ("limb not a mapping", "  limbs:\n    leg: 30\n", "simulation.limbs.leg", "must be a mapping", "leg: 30"),
    ("limbs not a mapping", "  limbs: [leg]\n", "simulation.limbs", "must be a mapping", "limbs:"),
    (
        "defaults typo",
        "  limb_default: {}\n",
        "simulation.limb_default",
        "did you mean 'limb_defaults'",
        "limb_default",
    ),
]


@pytest.mark.parametrize("case", LIMB_CASES, ids=[c[0] for c in LIMB_CASES])
def test_bad_limb_config_names_file_line_and_key(tmp_path, case):
    _id, extra, key, fragment, marker = case
    text = _with_limbs(SHIPPED, extra)
    with pytest.raises(ConfigError) as err:
        _load_variant(tmp_path, text)
    matching = [p for p in err.value.problems if f": {key}: " in p and fragment in p]
    assert matching, f"no problem for {key} with {fragment!r}; got:\n" + "\n".join(err.value.problems)
    assert matching[0].startswith(f"{tmp_path / 'hardware.yaml'}:{_line_of(text, marker)}: {key}:")


def test_unknown_limb_lists_every_limb_of_the_build(tmp_path):
    with pytest.raises(ConfigError) as err:
        _load_variant(tmp_path, _with_limbs(TWO_LIMBS, "  limbs:\n    left: {}\n"))
    assert any(
        "simulation.limbs.left: no zone is on a limb named 'left' (limbs: leg, right)" in p for p in err.value.problems
    )


def test_gpio_chip_defaults_to_auto_and_takes_a_number(cfg, tmp_path):
    assert cfg.gpio_chip is None  # found by its label at start (hw/backends.py: header_chip)
    assert _load_variant(tmp_path, "gpio_chip: 4\n" + SHIPPED).gpio_chip == 4
    assert _load_variant(tmp_path, "gpio_chip: auto\n" + SHIPPED).gpio_chip is None


def test_another_i2c_bus_by_number_frees_gpio2_and_3(tmp_path):
    """i2c.bus is any /dev/i2c-N; GPIO2/3 carry the bus only when it is the header's I2C1."""
    text = SHIPPED.replace("  bus: 1 ", "  bus: 3 ").replace("buzzer: {pin: GPIO13}", "buzzer: {pin: GPIO2}")
    cfg = _load_variant(tmp_path, text)
    assert cfg.i2c.bus == 3 and cfg.controls.buzzer.pin.gpio == 2
    with pytest.raises(ConfigError, match="carries the I2C bus"):
        _load_variant(tmp_path, text.replace("  bus: 3 ", "  bus: 1 "))


@pytest.mark.parametrize(
    "old, new, key, fragment",
    [
        ("  bus: 1 ", "  bus: -1 ", "i2c.bus", "must be >= 0"),
        ("  bus: 1 ", "  bus: 256 ", "i2c.bus", "must be <= 255"),
        ("tick_hz: 50", "tick_hz: 50\ngpio_chip: rp1", "gpio_chip", "must be auto or a gpiochip number 0-63"),
        ("tick_hz: 50", "tick_hz: 50\ngpio_chip: 64", "gpio_chip", "must be <= 63"),
    ],
)
def test_bad_bus_or_chip_names_file_line_and_key(tmp_path, old, new, key, fragment):
    text = SHIPPED.replace(old, new)
    assert text != SHIPPED
    with pytest.raises(ConfigError) as err:
        _load_variant(tmp_path, text)
    line = _line_of(text, new.splitlines()[-1].strip())
    assert any(f":{line}: {key}: " in p and fragment in p for p in err.value.problems), err.value.problems
