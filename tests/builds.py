"""Varied builds: the shipped config with its `simulation` section scaled the way makers' parts differ from the
reference (pumps, bladders, valves, manifold 2-3x either way), so a rule or a matrix can be tried beyond
`config/hardware.yaml`'s figures.

`python -m tests.builds OUT_DIR` writes one config directory per build (hardware.yaml and profiles/; the relief valve
raised where check-config asks, as bring-up check 9 does), for example
`python -m tests.redteam --config OUT_DIR/pump1.5`. Only the simulated sleeve changes: every limit stays as shipped.
"""

from __future__ import annotations

import functools
import math
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from tests.helpers import CONFIG_DIR

# build -> simulation keys set; "zones" scales every zone's (volume, compliance, leak)
Build = dict[str, object]
BUILDS: dict[str, Build] = {
    "pump1.5": {"pump_free_flow_lpm": 1.5},
    "pump5": {"pump_free_flow_lpm": 5.0},
    "small-bladders": {"zones": (0.5, 0.5, 1.0)},
    "big-bladders": {"zones": (2.0, 2.0, 1.0)},
    "slow-exhaust": {"exhaust_lpm_per_mmhg": 0.08},
    "small-inlet": {"inlet_lpm_per_mmhg": 0.05},
    "leaky": {"zones": (1.0, 1.0, 10.0)},
    "big-manifold": {"manifold_volume_l": 0.06},
    "small-inlet-big-manifold-pump5": {
        "inlet_lpm_per_mmhg": 0.05,
        "manifold_volume_l": 0.06,
        "pump_free_flow_lpm": 5.0,
    },
    "noisy-sensors": {"sensor_noise_mmhg": 0.3},
}
_ZONE_KEYS = ("volume_l", "compliance_l_per_mmhg", "leak_lpm_per_mmhg")


def write_build(
    name: str, out_dir: Path, build: Build | None = None, *, source: Path = CONFIG_DIR, relief_checked: bool = True
) -> Path:
    """A copy of a config directory (the shipped one unless `source`), as out_dir/name, with the simulation of
    `build` (a dict as BUILDS holds; by default BUILDS[name]), its relief valve raised where check-config asks
    (`relief_checked`, as a maker's bring-up does); returns the directory."""
    target = out_dir / name
    if target.exists():
        shutil.rmtree(target)
    # A calibration fitted to one build is not another's: the build gets its own (`legsleeve calibrate`) or none.
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("calibration.yaml", "examples"))
    hardware = yaml.safe_load((target / "hardware.yaml").read_text())
    sim = hardware["simulation"]
    for key, value in (BUILDS[name] if build is None else build).items():
        if key != "zones":
            sim[key] = value
            continue
        assert isinstance(value, tuple)
        for zone in (sim["zone_defaults"], *sim.get("zones", {}).values()):
            for k, factor in zip(_ZONE_KEYS, value, strict=True):
                if k in zone:
                    zone[k] *= factor
    text = yaml.safe_dump(hardware, sort_keys=False)
    if relief_checked:
        profiles = tuple(sorted((p.name, p.read_text()) for p in (target / "profiles").glob("*.yaml")))
        text = _relief_checked(text, profiles)
    (target / "hardware.yaml").write_text(text)
    return target


@functools.cache
def _relief_checked(hardware_yaml: str, profiles: tuple[tuple[str, str], ...]) -> str:
    """hardware.yaml's text after `relief_as_checked` on a config dir of this hardware.yaml and these profiles (name,
    text), worked out once per process: each build's config dir is written by several tests (its load, its run, the
    named builds' own test), and each check plans a session (a second or two of CPU)."""
    with tempfile.TemporaryDirectory() as tmp:
        config_dir = Path(tmp)
        (config_dir / "profiles").mkdir()
        for name, profile in profiles:
            (config_dir / "profiles" / name).write_text(profile)
        (config_dir / "hardware.yaml").write_text(hardware_yaml)
        relief_as_checked(config_dir)
        return (config_dir / "hardware.yaml").read_text()


RELIEF_PROFILES = ("pulse", "gradient")  # the highest targets a build takes: pulse, else (one sensor) gradient


def relief_as_checked(config_dir: Path) -> float:
    """What a maker does at bring-up check 9: where `check-config` says the manifold runs too close to the relief
    valve for SAFE-4's pump check (a strong pump behind narrow inlets), set the valve where it says, and check again
    (the valve caps what the plan sees). Returns the setting."""
    from legsleeve.app.validate import plan_session
    from legsleeve.config.hardware import load_hardware
    from legsleeve.config.profiles import load_profile
    from legsleeve.errors import ConfigError

    path = config_dir / "hardware.yaml"
    for _ in range(4):
        cfg = load_hardware(config_dir)
        for name in RELIEF_PROFILES:
            try:
                profile = load_profile(config_dir, name, cfg)
                break
            except ConfigError:
                continue
        else:
            return cfg.simulation.relief_mmhg
        plan = plan_session(cfg, profile, cycles=1, sim=cfg.simulation)
        need = plan.manifold_peak_mmhg + cfg.limits.pump_off_rise_mmhg
        if not cfg.has_manifold_sensor or plan.relief_mmhg >= need:
            return plan.relief_mmhg
        hardware = yaml.safe_load(path.read_text())
        hardware["simulation"]["relief_mmhg"] = float(math.ceil(need + 5.0))
        path.write_text(yaml.safe_dump(hardware, sort_keys=False))
    return load_hardware(config_dir).simulation.relief_mmhg


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.builds OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name in BUILDS:
        print(write_build(name, out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
