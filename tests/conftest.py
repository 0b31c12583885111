"""Shared fixtures: the shipped config, a simulated rig with the real drivers, gpiozero's MockFactory."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from legsleeve.config.hardware import load_hardware
from legsleeve.hw.backends import open_sim

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"


@pytest.fixture(scope="session")
def cfg():
    return load_hardware(CONFIG_DIR)


@pytest.fixture
def mock_factory():
    """gpiozero's own mock pins, PWM-capable, reset after the test."""
    factory = MockFactory(pin_class=MockPWMPin)
    yield factory
    factory.reset()
    factory.close()


@pytest.fixture
def sim_rig(cfg):
    """A zeroed simulated rig (seed 1); closed (driven safe) after the test."""
    rig = open_sim(cfg, seed=1)
    rig.zero_sensors()
    yield rig
    rig.close()
