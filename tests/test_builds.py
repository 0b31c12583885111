"""The varied builds (tests/builds.py) load as configs, change only the simulated sleeve, and change it as named."""

from __future__ import annotations

import pytest

from legsleeve.config.hardware import load_hardware
from tests.builds import BUILDS, write_build
from tests.helpers import CONFIG_DIR


@pytest.mark.parametrize("name", list(BUILDS))
def test_a_varied_build_loads_with_the_shipped_limits_and_its_own_sleeve(tmp_path, name):
    reference = load_hardware(CONFIG_DIR)
    build = load_hardware(write_build(name, tmp_path))
    assert build.limits == reference.limits and build.zones == reference.zones
    assert build.simulation != reference.simulation
    for key, value in BUILDS[name].items():
        if key == "zones":
            volume, _, leak = value
            for zone, ref in zip(build.simulation.zones.values(), reference.simulation.zones.values(), strict=True):
                assert zone.volume_l == pytest.approx(volume * ref.volume_l)
                assert zone.leak_lpm_per_mmhg == pytest.approx(leak * ref.leak_lpm_per_mmhg)
        else:
            assert getattr(build.simulation, key) == value
