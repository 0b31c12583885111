"""The systemd units (the sleeve's and the web page's), checked by systemd itself: `systemd-analyze verify` (any
stderr is a failure: it exits 0 on a misspelt key) and `systemd-analyze security --offline=true` under a stated
threshold."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, installer_module

UNIT = ROOT / "systemd" / "legsleeve.service"
WEB_UNIT = ROOT / "systemd" / "legsleeve-web.service"
SECURITY_THRESHOLD = 2.0  # systemd calls below 2.0 "OK" or "SAFE"; the unit scores about 1.0, the web unit 1.5
UNITS_DIR = Path("/usr/lib/systemd/system")

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="systemd units are checked on Linux")


def _analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.fail("systemd-analyze is missing: apt install systemd (.ci/run does)")
    return exe


@pytest.fixture
def unit_root(tmp_path):
    """A tree like the installed sleeve's: the real unit, the real entry point where the unit runs it, and this
    machine's own system units (verify follows the dependencies). Links would lead out of the tree, so: copies."""
    entry = shutil.which("legsleeve") or str(Path(sys.executable).parent / "legsleeve")
    bin_dir = tmp_path / "opt/legsleeve/venv/bin"
    bin_dir.mkdir(parents=True)
    shutil.copy2(entry, bin_dir / "legsleeve")
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    shutil.copy2(UNIT, tmp_path / "etc/systemd/system/legsleeve.service")
    shutil.copy2(WEB_UNIT, tmp_path / "etc/systemd/system/legsleeve-web.service")
    (tmp_path / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(UNITS_DIR, tmp_path / "usr/lib/systemd/system", symlinks=True)
    return tmp_path


def _verify(root: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([_analyze(), "verify", f"--root={root}", name], capture_output=True, text=True)


@pytest.mark.parametrize("name", ["legsleeve.service", "legsleeve-web.service"])
def test_unit_verifies_clean(unit_root, name):
    proc = _verify(unit_root, name)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_verify_would_catch_a_misspelt_key(unit_root):
    """The check above can fail: the same unit with one key misspelt makes noise (though it still exits 0)."""
    bad = UNIT.read_text().replace("WatchdogSec=", "WatchdogSecs=")
    (unit_root / "etc/systemd/system/bad.service").write_text(bad)
    proc = _verify(unit_root, "bad.service")
    assert "Unknown key 'WatchdogSecs'" in proc.stderr


@pytest.mark.parametrize("unit", [UNIT, WEB_UNIT], ids=lambda u: u.name)
def test_security_exposure_under_threshold(unit):
    proc = subprocess.run([_analyze(), "security", "--offline=true", str(unit)], capture_output=True, text=True)
    m = re.search(rf"Overall exposure level for {unit.name}: (\d+\.\d+) (\w+)", proc.stdout + proc.stderr)
    assert m, proc.stdout[-500:] + proc.stderr
    assert float(m.group(1)) < SECURITY_THRESHOLD and m.group(2) in ("OK", "SAFE")


def _unit(path: Path = UNIT) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(path.read_text())
    return parser


def test_unit_says_what_the_sleeve_needs():
    svc = _unit()["Service"]
    assert svc["Type"] == "notify"
    assert svc["WatchdogSec"] == "2s"  # above the 1 s kernel I2C timeout
    assert svc["Restart"] == "on-failure"
    assert svc["ExecStopPost"].endswith("legsleeve vent --config /etc/legsleeve")  # vented after every stop
    assert svc["User"] == "legsleeve" and svc["SupplementaryGroups"] == "gpio i2c"
    assert svc["StateDirectory"] == "legsleeve"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert svc[key] == "yes"
    assert svc["ProtectSystem"] == "strict" and svc["DevicePolicy"] == "closed"
    assert "PrivateDevices" not in svc  # it would hide the GPIO chip and the I2C bus
    # ProcSubset=pid hides /proc/cpuinfo and /proc/device-tree: gpiozero and Blinka could not tell the board (vpi)
    assert svc.get("ProcSubset", "all") == "all" and svc["ProtectProc"] == "invisible"


def test_unit_runs_what_the_installer_installs():
    VENV = installer_module().VENV

    svc = _unit()["Service"]
    assert svc["ExecStart"].startswith(f"/{VENV}/bin/legsleeve serve")


def test_web_unit_is_a_client_of_the_socket_with_the_network_and_no_devices():
    """The web page (docs/web.md): its own user in the group legsleeve (the control socket), the network the
    sleeve's service never has, no GPIO or I2C, and no restart loop when it refuses to start (exit 2: the LAN open
    without a password)."""
    svc = _unit(WEB_UNIT)["Service"]
    main = _unit()["Service"]
    assert main["PrivateNetwork"] == "yes" and main["RestrictAddressFamilies"] == "AF_UNIX"  # the loop: no network
    assert svc["ExecStart"] == f"/{installer_module().VENV}/bin/legsleeve web --config /etc/legsleeve"
    assert svc["User"] == "legsleeve-web" and svc["SupplementaryGroups"] == "legsleeve"
    assert "gpio" not in svc["SupplementaryGroups"] and "i2c" not in svc["SupplementaryGroups"]
    assert set(svc["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert "PrivateNetwork" not in svc and svc["PrivateDevices"] == "yes"
    assert svc["Restart"] == "on-failure" and svc["RestartPreventExitStatus"] == "2"
    assert svc["ReadWritePaths"] == "-/etc/legsleeve/profiles" and svc["ProtectSystem"] == "strict"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "MemoryDenyWriteExecute", "RestrictSUIDSGID"):
        assert svc[key] == "yes", key
    assert svc["CapabilityBoundingSet"] == ""
    # local networks only: loopback, link-local, multicast (mDNS), the private ranges
    assert svc["IPAddressDeny"] == "any"
    assert set(svc["IPAddressAllow"].split()) == {
        "localhost",
        "link-local",
        "multicast",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
        "fe80::/10",
    }


def test_the_exit_code_the_web_unit_does_not_restart_on_is_the_refusals():
    """`legsleeve web` refuses with the command line's exit 2 (bad usage or config); the unit must name that one."""
    from legsleeve.app.cli import EXIT_USAGE

    assert _unit(WEB_UNIT)["Service"]["RestartPreventExitStatus"] == str(EXIT_USAGE)
