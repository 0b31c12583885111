"""The compiled build (`make compiled`) is the sources, faster: the same sessions give the same logs byte for byte.

`make test` runs the suite on the compiled copy and `make test-pure` the non-slow tests on the sources; this test
holds the two together on whole sessions - with faults, trips and vents, on the reference, one-sensor and two-leg
builds - run both ways in fresh interpreters."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from legsleeve._compiled import STAMP
from tests.helpers import CONFIG_DIR, ROOT

COMPILED_DIR = ROOT / ".compiled"
SESSIONS = {
    "blocked": ["--cycles", "1", "--fault", "blocked:calf@20"],
    "leak": ["--profile", "pulse", "--cycles", "1", "--fault", "leak:knee@25"],
    "one-sensor": ["--config", str(CONFIG_DIR / "examples" / "one-sensor"), "--cycles", "1"],
    "sensor-dead": ["--cycles", "1", "--fault", "sensor-dead:calf@20"],  # rows with a zone unread
    "two-legs": [
        "--config",
        str(CONFIG_DIR / "examples" / "two-legs"),
        "--cycles",
        "1",
        "--fault",
        "sensor-spike:left.ankle@15",
    ],
}


def _run(pythonpath: str, name: str, out) -> tuple[int, bytes, str]:
    log = out / f"{name}.csv"
    code = (
        "import json, sys, legsleeve.core.controller as c\n"
        "from legsleeve.app.cli import main\n"
        "try:\n"
        "    rc = main(sys.argv[1:])\n"
        "except SystemExit as e:\n"
        "    rc = e.code\n"
        "print(json.dumps([rc, c.__file__]), file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": pythonpath}
    proc = subprocess.run(
        [sys.executable, "-c", code, "simulate", *SESSIONS[name], "--log", str(log)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )
    rc, module = json.loads(proc.stderr.strip().splitlines()[-1])
    return rc, log.read_bytes(), module


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_the_compiled_build_logs_what_the_sources_log(name, tmp_path):
    if not (COMPILED_DIR / "legsleeve" / STAMP).exists():
        pytest.skip("no compiled build here (make compiled; make test builds it)")
    (tmp_path / "pure").mkdir()
    (tmp_path / "compiled").mkdir()
    rc_pure, log_pure, module_pure = _run(str(ROOT / "firmware"), name, tmp_path / "pure")
    rc_compiled, log_compiled, module_compiled = _run(str(COMPILED_DIR), name, tmp_path / "compiled")
    assert module_pure.endswith(".py") and not module_compiled.endswith(".py")  # each ran what it was meant to
    assert rc_pure == rc_compiled and rc_pure in (0, 3)
    assert log_compiled == log_pure
