"""The profile editor's back end: a profile's text checked with the firmware's own loader, previewed with the
same code as `legsleeve profile show`, and saved so that the service can never read half a file or a bad one.

Saving: the text is checked first (hardware.yaml and calibration.yaml as the service loads them, then
`load_profile_file`, the very function `legsleeve serve` calls); only a profile that loads is written, to a hidden
temporary file in the profiles directory (`.NAME.yaml.tmp`: `*.yaml` does not match it), flushed to disk, then
renamed over `NAME.yaml` in one step (rename is atomic within a directory), and the directory is flushed too. The
service reads a profile's file each time a session of it starts (and scans the directory at each `hello`): at any
moment it sees the old file or the new one, both valid, and the next start runs what was saved, without a restart.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from legsleeve.config.hardware import load_hardware
from legsleeve.config.profiles import list_profiles, load_profile_file, profile_dir
from legsleeve.errors import ConfigError

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")  # a file name and a protocol profile name alike (fullmatch)
MAX_TEXT = 64 * 1024  # characters of a profile (the shipped ones have about 2,000)
_LOCATED = re.compile(r"^(?P<file>.*?):(?P<line>\d+): (?P<rest>.*)$")


@dataclass(frozen=True)
class Problem:
    """One error, as the loader words it (`profiles/wave.yaml:14: cycle[2].hold_s: must be > 0 (got -3)`), and its
    line (0 when it names none)."""

    line: int
    text: str


class Editor:
    def __init__(self, config_dir: Path):
        self.config_dir = Path(config_dir)
        self._save_lock = threading.Lock()

    def names(self) -> list[str]:
        return [p.stem for p in list_profiles(self.config_dir)]

    def path_of(self, name: str) -> Path:
        check_name(name)
        return profile_dir(self.config_dir) / f"{name}.yaml"

    def read(self, name: str) -> str:
        return self.path_of(name).read_text(encoding="utf-8")

    def check(self, name: str, text: str) -> tuple[Any, list[Problem]]:
        """(the profile, []) when `text` loads as profile `name` under this config, else (None, its problems), each
        naming the file as it will be (`.../profiles/NAME.yaml`) and its line."""
        target = self.path_of(name)
        if len(text) > MAX_TEXT:
            return None, [Problem(0, f"{target}: longer than {MAX_TEXT} characters")]
        try:
            hw = load_hardware(self.config_dir)
        except ConfigError as exc:  # the sleeve's own config is broken: nothing can be checked against it
            return None, [Problem(0, f"hardware config: {p}") for p in exc.problems]
        with tempfile.TemporaryDirectory(prefix="legsleeve-edit-") as tmp:
            path = Path(tmp) / f"{name}.yaml"  # the loader wants the file's name to be the profile's
            path.write_text(text, encoding="utf-8")
            try:
                return load_profile_file(path, hw), []
            except ConfigError as exc:
                return None, [_located(p.replace(str(path), str(target))) for p in exc.problems]

    def save(self, name: str, text: str) -> tuple[Path | None, list[Problem]]:
        """Check, then write atomically (see the module's docstring). (the path, []) or (None, the problems)."""
        with self._save_lock:
            profile, problems = self.check(name, text)
            if profile is None:
                return None, problems
            target = self.path_of(name)
            tmp = target.with_name(f".{target.name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, text.encode("utf-8"))
                os.fsync(fd)
                os.fchmod(fd, 0o644)  # the service (another user) reads it
            finally:
                os.close(fd)
            os.replace(tmp, target)
            dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            return target, []

    def preview(self, name: str, text: str, log_path: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
        """One cycle planned as `legsleeve profile show` plans it (on the calibrated twin when there is a
        calibration.yaml), logged to `log_path`; (the plan as plain data, []) or (None, the problems)."""
        from legsleeve.app.preview import preview_cycle, twin_config

        profile, problems = self.check(name, text)
        if profile is None:
            return None, problems
        hw = load_hardware(self.config_dir)
        twin = hw.calibration is not None
        plan = preview_cycle(twin_config(hw) if twin else hw, profile, log_path, twin=twin)
        return {
            "name": profile.name,
            "description": profile.description,
            "targets": [{"zone": z, "mmhg": t} for z, t in zip(profile.zone_names, profile.targets_mmhg, strict=False)],
            "ramp": {"cycles": profile.ramp_cycles, "start": profile.ramp_start} if profile.ramp_cycles else None,
            "steps": [{"t_s": round(t, 1), "step": s} for t, s in plan.steps],
            "duration_s": round(plan.duration_s, 1),
            "trip": plan.trip,
            "model": plan.model,
        }, []


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ValueError(
            "a profile's name: lower-case letters, digits, - and _ (at most 32), starting with a letter or digit"
        )
    return name


def _located(text: str) -> Problem:
    m = _LOCATED.match(text)
    return Problem(int(m.group("line")) if m else 0, text)
