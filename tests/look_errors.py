"""How far a one-sensor build's looks are from the truth: `python -m tests.look_errors [BUILD ...]` runs two cycles
of `gradient` and `dvt` on the one-sensor example ("example") or on varied builds of it (tests/builds.py), and
prints, per session, every look's reading minus the simulator's true pressure of that zone at that moment
(percentiles and the largest), with the trip if any. docs/one-sensor.md quotes it."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.builds import write_build
from tests.fault_matrix import run_followed
from tests.helpers import CONFIG_DIR

ONE = CONFIG_DIR / "examples" / "one-sensor"


def look_errors(config_dir: Path, profile: str) -> tuple[str | None, list[float]]:
    """(the trip's rule or None, each look's error in mmHg: the reading logged where a zone's reading changed,
    less that zone's true pressure at the same read)."""
    cfg, outcome, rows, truth = run_followed(config_dir, profile)
    true_at = {round(t, 3): p for t, p in truth}
    errors, previous = [], {}
    for row in rows:
        t = round(float(row["t_s"]), 3)
        for i, zone in enumerate(cfg.zone_names):
            value = row[f"{zone}_mmhg"]
            if value and value != previous.get(zone) and t in true_at:
                errors.append(float(value) - true_at[t][i])
            previous[zone] = value
    return (outcome.trip.rule if outcome.trip else None), sorted(errors)


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in argv or ["example"]:
            config_dir = ONE if name == "example" else write_build(name, Path(tmp), source=ONE)
            for profile in ("gradient", "dvt"):
                trip, e = look_errors(config_dir, profile)
                n = len(e)
                print(
                    f"{name} {profile}: trip {trip}, {n} looks, look - truth: p1 {e[n // 100]:.2f}, median "
                    f"{e[n // 2]:.2f}, p99 {e[99 * n // 100]:.2f} mmHg, largest {max(map(abs, e)):.2f}"
                )


if __name__ == "__main__":
    main(sys.argv[1:])
