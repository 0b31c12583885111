"""The virtual Pi's host side, the parts that need no VM: the device tree's edits and the working tree's snapshot.
(The VM's own checks are tests/test_vpi.py, run by `make vpi`.)"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.vpi import machine

DTS = """/dts-v1/;

/ {
\tcompatible = "linux,dummy-virt";

\tgpio-keys {
\t\tcompatible = "gpio-keys";

\t\tpoweroff {
\t\t\tgpios = <0x8005 0x03 0x00>;
\t\t};
\t};

\tpl061@9030000 {
\t\tgpio-controller;
\t};

\tpl031@9010000 {
\t\tcompatible = "arm,pl031\\0arm,primecell";
\t};
};
"""


def test_dropping_a_node_takes_its_children_and_nothing_else():
    dts = machine._drop_node(machine._drop_node(DTS, "gpio-keys"), "pl061@")
    assert "gpio-keys" not in dts and "poweroff" not in dts and "pl061" not in dts
    assert "pl031@9010000 {\n\t\tcompatible" in dts and dts.count("{") == dts.count("}") == 2
    with pytest.raises(RuntimeError, match="no node 'pl061@'"):
        machine._drop_node(dts, "pl061@")


@pytest.mark.skipif(not (shutil.which("qemu-system-aarch64") and shutil.which("dtc")), reason="needs QEMU and dtc")
def test_the_device_tree_says_pi_4_and_has_no_pl061(tmp_path):
    """On QEMU's own tree: the Pi 4's revision where gpiozero reads it, the PL061 gone (gpio-sim is then chip 0)."""
    out = tmp_path / "pi.dtb"
    machine._device_tree(out, tmp_path)
    dts = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", str(out)], capture_output=True, text=True).stdout
    assert "linux,revision = <0xc03111>;" in dts
    assert "pl061" not in dts and "gpio-keys" not in dts and "pl011@" in dts


def test_the_snapshot_holds_the_working_tree_as_a_clone_sees_it(tmp_path):
    commit = machine.snapshot_repo(tmp_path)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(tmp_path / "legsleeve.git"), str(clone)], check=True)
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert head.strip() == commit
    assert (clone / "tests/vpi/guest.py").read_text() == (machine.ROOT / "tests/vpi/guest.py").read_text()
    assert not (clone / ".venv").exists()  # ignored files stay out
    assert not (tmp_path / "index").exists()  # the side index is gone; the real one was never touched


def test_the_recipe_changes_with_what_shapes_the_image(monkeypatch):
    before = machine.recipe()
    monkeypatch.setattr(machine, "PACKAGES", machine.PACKAGES + ",i2c-tools")
    assert machine.recipe() != before
