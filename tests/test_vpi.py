"""The virtual Raspberry Pi: each check that ran inside it (tests/vpi/guest.py) is one test here.

Marked `vpi` and collected only when `-m` names it (tests/conftest.py), so not by `make test`: `make vpi` runs
them. One boot serves every check (a module-scoped fixture); where this machine can neither boot the image (no
qemu-system-aarch64) nor build it (no debootstrap, qemu-user-static, dtc or root), every check is skipped with the
reason. A check missing from the results - the VM died, or a check before it broke the run - fails."""

from __future__ import annotations

import os

import pytest

from tests.vpi import machine
from tests.vpi.guest import CHECK_NAMES

pytestmark = pytest.mark.vpi


@pytest.fixture(scope="module")
def vpi_run() -> machine.RunResult:
    cache = machine.cache_dir()
    missing = machine.missing_tools(build=not machine.is_built(cache))
    if missing:
        pytest.skip(f"cannot run the virtual Pi here: missing {', '.join(missing)} (docs/virtual-pi.md)")
    build_s = machine.build(cache)
    result = machine.run(cache, only=os.environ.get("LEGSLEEVE_VPI_ONLY", ""))
    image = f"built in {build_s:.0f} s" if build_s else "reused"
    print(f"\nvpi: image {image}; {machine.summary(result)}")
    return result


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_inside_the_virtual_pi(vpi_run: machine.RunResult, name: str) -> None:
    only = set(filter(None, os.environ.get("LEGSLEEVE_VPI_ONLY", "").split(",")))
    if only and name not in only:
        pytest.skip(f"not in this reduced run (LEGSLEEVE_VPI_ONLY={','.join(sorted(only))})")
    found = [r for r in vpi_run.results if r["name"] == name]
    assert found, f"{name} did not run: see {vpi_run.share / 'console.log'}"
    assert found[0]["ok"], found[0]["detail"]
