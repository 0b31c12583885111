"""One cycle of a profile planned on the simulated rig, before anything runs: what `legsleeve profile show` prints
and the web page's profile editor shows. The same code for both, so that the page's preview is the command's.

The simulated sleeve is the user's own config: hardware.yaml's `simulation` section, or with `twin` the twin that
`legsleeve calibrate` fitted to the sleeve (calibration.yaml).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from legsleeve.errors import ConfigError

if TYPE_CHECKING:
    from legsleeve.config.model import HardwareConfig
    from legsleeve.core.plan import Profile


@dataclass(frozen=True)
class CyclePreview:
    """One planned cycle: each step's start (s from the cycle's start) and name, its length, a trip if the plan
    tripped on the simulated rig, and which model it ran on (in words)."""

    steps: list[tuple[float, str]]
    duration_s: float
    trip: str | None
    model: str


def twin_config(cfg: HardwareConfig) -> HardwareConfig:
    """The config whose simulated sleeve is the twin calibration fitted (ConfigError without a calibration)."""
    if cfg.calibration is None:
        raise ConfigError(
            [f"--twin: no calibration.yaml in {cfg.path.parent}: run `legsleeve calibrate` on the sleeve first"]
        )
    return dataclasses.replace(cfg, simulation=cfg.calibration.twin)


def preview_cycle(cfg: HardwareConfig, profile: Profile, log_path: Path, *, twin: bool = False) -> CyclePreview:
    """Run one cycle of `profile` on the simulated rig built from `cfg` (already the twin's when `twin`), under the
    full supervisor, logging every tick to `log_path` (`legsleeve.app.plot.plot_log` draws it)."""
    from legsleeve.app.session import run_session
    from legsleeve.hw import backends

    rig = backends.open_sim(cfg, seed=0)
    try:
        result = run_session(rig, profile, cycles=1, log_path=log_path)
    finally:
        rig.close()
    model = "the twin of your sleeve (calibration.yaml)" if twin else "your hardware.yaml's simulation section"
    trip = str(result.outcome.trip) if result.outcome.trip is not None else None
    return CyclePreview(list(result.steps), result.outcome.duration_s, trip, model)
