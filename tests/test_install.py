"""The installer against a temporary root with --dry-run: the expected files, idempotent, a user's edits kept,
and uninstall undoing it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.helpers import ROOT, installer_module


@pytest.fixture
def inst():
    return installer_module()


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _run(inst, root, action="install", login_user=None, **kw):
    out = io.StringIO()
    i = inst.Installer(root, dry_run=True, out=out, login_user=login_user)
    code = i.install() if action == "install" else i.uninstall(kw.get("purge", False))
    return code, i, out.getvalue()


@pytest.fixture
def pi_root(tmp_path):
    """A fresh Raspberry Pi OS tree: a boot config with something of the user's in it, no legsleeve."""
    (tmp_path / "boot/firmware").mkdir(parents=True)
    (tmp_path / "boot/firmware/config.txt").write_text("# the user's own\ndtoverlay=vc4-kms-v3d\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/group").write_text("gpio:x:997:\ni2c:x:998:\n")
    return tmp_path


def test_install_writes_the_expected_files(inst, pi_root):
    code, i, out = _run(inst, pi_root)
    assert code == 0
    assert (pi_root / "etc/legsleeve/hardware.yaml").read_text() == (ROOT / "config/hardware.yaml").read_text()
    assert (pi_root / "etc/legsleeve/profiles/gentle.yaml").exists()
    for unit in ("legsleeve.service", "legsleeve-web.service"):
        assert (pi_root / "etc/systemd/system" / unit).read_text() == (ROOT / "systemd" / unit).read_text()
    assert (pi_root / "etc/legsleeve/web.yaml").read_text() == (ROOT / "config/web.yaml").read_text()
    assert (pi_root / "etc/modules-load.d/legsleeve.conf").read_text().strip().endswith("i2c-dev")
    assert (pi_root / "opt/legsleeve/firmware/legsleeve/app/runner.py").exists()
    assert (pi_root / "opt/legsleeve/pyproject.toml").exists()
    boot = (pi_root / "boot/firmware/config.txt").read_text()
    assert boot.startswith("# the user's own\ndtoverlay=vc4-kms-v3d\n")  # theirs untouched
    for line in inst.BOOT_LINES:
        assert boot.count(line + "\n") == 1
    # the commands it would run: a system user in gpio and i2c, the venv with the pi extra, the unit enabled
    joined = "\n".join(i.commands)
    assert "useradd --system" in joined and "--groups gpio,i2c" in joined and "legsleeve" in joined
    assert "-m venv" in joined and "[pi,web]" in joined and "systemctl enable legsleeve.service" in joined
    # the web page: its own user in the group legsleeve, its unit enabled, the profiles directory its editor saves to
    assert "--groups legsleeve legsleeve-web" in joined and "systemctl enable legsleeve-web.service" in joined
    profiles = pi_root / "etc/legsleeve/profiles"
    assert f"chgrp legsleeve-web {profiles}" in joined and f"chmod 2775 {profiles}" in joined
    assert "http://127.0.0.1:8080/" in out and "web-password" in out
    assert "needs a password, on the Pi too" in out  # no password, no page: not even on localhost (docs/web.md)
    assert "reboot before the first session" in out and "legsleeve test-valve" in out
    # the devices to their groups (as Raspberry Pi OS's own rules do), and the command on PATH
    rules = (pi_root / "etc/udev/rules.d/60-legsleeve.rules").read_text()
    assert 'KERNEL=="gpiochip[0-9]*", GROUP="gpio", MODE="0660"' in rules and 'GROUP="i2c"' in rules
    assert "udevadm trigger" in joined
    assert (pi_root / "usr/local/bin/legsleeve").readlink() == Path("/opt/legsleeve/venv/bin/legsleeve")
    assert "groupadd" not in joined  # Raspberry Pi OS has both groups


def test_install_twice_changes_nothing(inst, pi_root):
    _run(inst, pi_root)
    first = _snapshot(pi_root)
    code, i, out = _run(inst, pi_root)
    assert code == 0 and i.changed == []
    assert _snapshot(pi_root) == first
    assert "0 file(s) changed" in out and "reboot" not in out


def test_a_users_edited_config_is_kept(inst, pi_root):
    _run(inst, pi_root)
    mine = pi_root / "etc/legsleeve/hardware.yaml"
    mine.write_text(mine.read_text().replace("max_mmhg: 90", "max_mmhg: 60"))
    code, i, out = _run(inst, pi_root)
    assert "max_mmhg: 60" in mine.read_text()  # theirs
    dist = pi_root / "etc/legsleeve/hardware.yaml.dist"
    assert dist.read_text() == (ROOT / "config/hardware.yaml").read_text()  # ours, beside it
    assert "hardware.yaml is yours" in out
    again = _run(inst, pi_root)[1]
    assert again.changed == []  # and that too is stable


def test_older_pi_os_boot_config_location(inst, tmp_path):
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot/config.txt").write_text("")
    _run(inst, tmp_path)
    assert "dtparam=i2c_arm=on" in (tmp_path / "boot/config.txt").read_text()
    assert not (tmp_path / "boot/firmware").exists()


def test_uninstall_undoes_it_and_keeps_the_users_data(inst, pi_root):
    before = (pi_root / "boot/firmware/config.txt").read_text()
    _run(inst, pi_root)
    code, i, out = _run(inst, pi_root, "uninstall")
    assert code == 0
    assert not (pi_root / "etc/systemd/system/legsleeve.service").exists()
    assert not (pi_root / "etc/systemd/system/legsleeve-web.service").exists()
    assert not (pi_root / "opt/legsleeve").exists()
    assert not (pi_root / "etc/modules-load.d/legsleeve.conf").exists()
    assert not (pi_root / "etc/udev/rules.d/60-legsleeve.rules").exists()
    assert not (pi_root / "usr/local/bin/legsleeve").is_symlink()
    assert (pi_root / "boot/firmware/config.txt").read_text() == before
    assert (pi_root / "etc/legsleeve/hardware.yaml").exists()  # config kept without --purge
    assert "systemctl disable --now legsleeve.service" in "\n".join(i.commands)
    assert "systemctl disable --now legsleeve-web.service" in "\n".join(i.commands)
    _run(inst, pi_root, "uninstall", purge=True)
    assert not (pi_root / "etc/legsleeve").exists()


def test_refuses_a_real_install_without_root(inst, monkeypatch):
    monkeypatch.setattr(inst.os, "geteuid", lambda: 1000)
    assert inst.main(["install"]) == 2


def test_on_plain_debian_the_groups_are_created_first(inst, tmp_path):
    """Without gpio and i2c systemd cannot start the unit (SupplementaryGroups=): found on the virtual Pi."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/group").write_text("root:x:0:\nsudo:x:27:pi\n")
    i = _run(inst, tmp_path)[1]
    assert i.commands[:2] == ["groupadd --system gpio", "groupadd --system i2c"]
    assert any(c.startswith("useradd") for c in i.commands[2:])


def test_the_login_user_joins_the_groups_it_lacks(inst, pi_root):
    (pi_root / "etc/group").write_text("gpio:x:997:pi\ni2c:x:998:\nlegsleeve:x:996:\n")
    code, i, out = _run(inst, pi_root, login_user="pi")
    assert "usermod --append --groups legsleeve,i2c pi" in i.commands
    assert "pi joined groups: log out and in again" in out
    (pi_root / "etc/group").write_text("gpio:x:997:pi\ni2c:x:998:pi\nlegsleeve:x:996:pi\n")
    code, i, out = _run(inst, pi_root, login_user="pi")
    assert not any(c.startswith("usermod") for c in i.commands) and "log out" not in out


def test_a_legsleeve_command_that_is_not_ours_is_left_alone(inst, pi_root):
    (pi_root / "usr/local/bin").mkdir(parents=True)
    (pi_root / "usr/local/bin/legsleeve").write_text("#!/bin/sh\necho mine\n")
    out = _run(inst, pi_root)[2]
    assert (pi_root / "usr/local/bin/legsleeve").read_text() == "#!/bin/sh\necho mine\n"
    assert "usr/local/bin/legsleeve is not ours" in out
    _run(inst, pi_root, "uninstall")
    assert (pi_root / "usr/local/bin/legsleeve").exists()  # nor removed


def test_the_profiles_directory_is_left_alone_once_it_is_the_web_groups(inst, pi_root):
    """A second install runs no chgrp/chmod when the profiles directory already has the web page's group and 2775."""
    import os

    gid = os.getgid()
    (pi_root / "etc/group").write_text(f"gpio:x:997:\ni2c:x:998:\nlegsleeve-web:x:{gid}:\n")
    _run(inst, pi_root)
    (pi_root / "etc/legsleeve/profiles").chmod(0o2775)
    commands = _run(inst, pi_root)[1].commands
    assert not any(c.startswith(("chgrp", "chmod")) for c in commands)
