#!/usr/bin/env python3
"""Install (or remove) legsleeve on a Raspberry Pi: `sudo make install` / `sudo make uninstall` run this.

Standard library only: it runs before legsleeve is installed. Every step checks before it acts, so running it twice
changes nothing the second time. `--root DIR` installs into another tree (an image, or a test's temporary
directory); `--dry-run` writes files under the root but runs no commands (user creation, pip, systemctl), printing
them instead. Exit status: 0 done, 1 a step failed, 2 bad usage.

What it does:
  groups     the groups gpio and i2c, where the system lacks them (Raspberry Pi OS has both; plain Debian neither)
  user       a system user `legsleeve` in the groups gpio and i2c (no login, no home), and `legsleeve-web` (the web
             page's) in the group legsleeve (the control socket); with --login-user NAME
             (`sudo make install` passes the user who ran sudo), NAME joins legsleeve (the control socket), gpio and
             i2c (the bring-up commands), from their next login
  udev       /etc/udev/rules.d/60-legsleeve.rules: /dev/gpiochip* to gpio, /dev/i2c-* to i2c, mode 0660 (what
             Raspberry Pi OS's own rules do; plain Debian leaves them to root)
  venv       /opt/legsleeve/venv with legsleeve and its `pi` extra; the source in /opt/legsleeve
  config     /etc/legsleeve/hardware.yaml and profiles/, never overwriting a file you edited: the new version of
             such a file is written beside it as NAME.dist
  boot       /boot/firmware/config.txt (or /boot/config.txt): I2C on at 400 kHz, the hardware watchdog, and
             strict_gpiod (released outputs revert to inputs) - docs/safety-requirements.md §B1; a reboot is
             needed after this changes
  modules    /etc/modules-load.d/legsleeve.conf: i2c-dev
  profiles   /etc/legsleeve/profiles/ to the group legsleeve-web, mode 2775: the web page's profile editor saves
             there (checked by the firmware's loader first, written whole and renamed in one step: docs/web.md)
  unit       /etc/systemd/system/legsleeve.service and legsleeve-web.service, enabled (started at the next boot, or
             with systemctl start); the page needs a password first (legsleeve web-password), and listens on
             127.0.0.1:8080 until web.yaml opens it
  command    /usr/local/bin/legsleeve, a link to the venv's: `legsleeve` on every user's PATH
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent
USER = "legsleeve"
WEB_USER = "legsleeve-web"  # the web page's own user: in the group legsleeve, no GPIO, no I2C
GROUPS = ("gpio", "i2c")
UDEV_RULES = Path("etc/udev/rules.d/60-legsleeve.rules")
UDEV_TEXT = """# legsleeve (systemd/install.py): GPIO chips and I2C buses to their groups, as Raspberry Pi OS's rules do
SUBSYSTEM=="gpio", KERNEL=="gpiochip[0-9]*", GROUP="gpio", MODE="0660"
SUBSYSTEM=="i2c-dev", GROUP="i2c", MODE="0660"
"""
COMMAND = Path("usr/local/bin/legsleeve")
PREFIX = Path("opt/legsleeve")
VENV = PREFIX / "venv"
ETC = Path("etc/legsleeve")
UNIT = Path("etc/systemd/system/legsleeve.service")
WEB_UNIT = Path("etc/systemd/system/legsleeve-web.service")
MODULES = Path("etc/modules-load.d/legsleeve.conf")
BOOT_CANDIDATES = (Path("boot/firmware/config.txt"), Path("boot/config.txt"))
BOOT_LINES = ("dtparam=i2c_arm=on", "dtparam=i2c_arm_baudrate=400000", "dtparam=watchdog=on", "dtparam=strict_gpiod")
# The block marker is written into the Pi's boot config and found there again on uninstall: it keeps the name of
# the design document it was first written with (now docs/safety-requirements.md §B1), so existing installs still
# uninstall cleanly.
BEGIN, END = "# >>> legsleeve (DESIGN.md §1) >>>", "# <<< legsleeve <<<"
SOURCE_ITEMS = ("firmware", "config", "systemd", "hardware", "docs", "pyproject.toml", "README.md")


class Installer:
    def __init__(self, root: Path, dry_run: bool, out=sys.stdout, login_user: str | None = None):
        self.root = root
        self.dry_run = dry_run
        self.out = out
        self.login_user = login_user
        self.changed: list[str] = []
        self.commands: list[str] = []

    # -- helpers ---------------------------------------------------------------------------------------------
    def path(self, rel: Path) -> Path:
        return self.root / rel

    def say(self, what: str, status: str) -> None:
        print(f"  {status:<9} {what}", file=self.out)

    def run(self, argv: list[str], what: str) -> None:
        line = " ".join(argv)
        self.commands.append(line)
        if self.dry_run:
            self.say(f"{what}: {line}", "would run")
            return
        self.say(what, "running")
        subprocess.run(argv, check=True)

    def write(self, rel: Path, text: str, mode: int = 0o644) -> None:
        target = self.path(rel)
        if target.exists() and target.read_text() == text:
            self.say(str(rel), "ok")
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)
        self.changed.append(str(rel))
        self.say(str(rel), "written")

    def copy_tree(self, src: Path, rel: Path) -> None:
        """Mirror a source tree: changed or new files are copied, nothing else is touched."""
        for path in sorted(src.rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            target = self.path(rel / path.relative_to(src))
            if target.exists() and filecmp.cmp(path, target, shallow=False):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            self.changed.append(str(rel / path.relative_to(src)))

    # -- steps -----------------------------------------------------------------------------------------------
    def groups(self) -> None:
        for group in GROUPS:
            if self._group_exists(group):
                self.say(f"group {group}", "ok")
            else:
                self.run(["groupadd", "--system", group], f"group {group}")

    def user(self) -> None:
        if not self._user_exists(USER):
            self.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--home-dir",
                    "/var/lib/legsleeve",
                    "--shell",
                    "/usr/sbin/nologin",
                    "--user-group",
                    "--groups",
                    ",".join(GROUPS),
                    USER,
                ],
                f"user {USER}",
            )
        else:
            self._join(USER, GROUPS)
        if not self._user_exists(WEB_USER):
            self.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    "--user-group",
                    "--groups",
                    USER,
                    WEB_USER,
                ],
                f"user {WEB_USER}",
            )
        else:
            self._join(WEB_USER, (USER,))
        if self.login_user:
            self._join(self.login_user, (USER, *GROUPS))

    def _join(self, user: str, groups: tuple[str, ...]) -> None:
        """`user` in every one of `groups` (usermod -aG, only for those it is not in yet)."""
        missing = [g for g in groups if user not in self._members(g)]
        if not missing:
            self.say(f"{user} in {', '.join(groups)}", "ok")
            return
        self.run(["usermod", "--append", "--groups", ",".join(missing), user], f"{user} joins {', '.join(missing)}")
        if user == self.login_user:
            self.relogin = True

    def _members(self, name: str) -> set[str]:
        group = self.path(Path("etc/group"))
        for line in group.read_text().splitlines() if group.exists() else ():
            fields = line.split(":")
            if fields[0] == name and len(fields) > 3:
                return set(filter(None, fields[3].split(",")))
        return set()

    def udev(self) -> None:
        before = len(self.changed)
        self.write(UDEV_RULES, UDEV_TEXT)
        if len(self.changed) > before:
            self.run(["udevadm", "control", "--reload-rules"], "udev reload")
            self.run(
                ["udevadm", "trigger", "--action=add", "--subsystem-match=gpio", "--subsystem-match=i2c-dev"],
                "udev: the existing GPIO chips and I2C buses",
            )

    def command(self) -> None:
        """`legsleeve` on PATH: a link to the venv's entry point, unless something else already has the name."""
        link, target = self.path(COMMAND), Path("/") / VENV / "bin/legsleeve"
        if link.is_symlink() and Path(os.readlink(link)) == target:
            self.say(str(COMMAND), "ok")
        elif link.exists() or link.is_symlink():
            self.say(f"{COMMAND} is not ours: left alone; the command is {target}", "kept")
        else:
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target)
            self.changed.append(str(COMMAND))
            self.say(f"{COMMAND} -> {target}", "written")

    def _user_exists(self, name: str) -> bool:
        passwd = self.path(Path("etc/passwd"))
        return passwd.exists() and any(line.split(":")[0] == name for line in passwd.read_text().splitlines())

    def _gid(self, name: str) -> int | None:
        group = self.path(Path("etc/group"))
        for line in group.read_text().splitlines() if group.exists() else ():
            fields = line.split(":")
            if fields[0] == name and len(fields) > 2 and fields[2].isdigit():
                return int(fields[2])
        return None

    def _group_exists(self, name: str) -> bool:
        group = self.path(Path("etc/group"))
        return group.exists() and any(line.split(":")[0] == name for line in group.read_text().splitlines())

    def source(self) -> None:
        before = len(self.changed)
        for item in SOURCE_ITEMS:
            src = SOURCE / item
            if src.is_dir():
                self.copy_tree(src, PREFIX / item)
            elif src.is_file():
                target = self.path(PREFIX / item)
                if not (target.exists() and filecmp.cmp(src, target, shallow=False)):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, target)
                    self.changed.append(str(PREFIX / item))
        self.say(f"{PREFIX} (source)", "written" if len(self.changed) > before else "ok")
        self._source_changed = len(self.changed) > before

    def venv(self) -> None:
        python = self.path(VENV / "bin/python")
        if not python.exists():
            self.run([sys.executable, "-m", "venv", str(self.path(VENV))], "virtual environment")
        if self._source_changed or not self.path(VENV / "bin/legsleeve").exists():
            self.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "-q",
                    f"{self.path(PREFIX)}[pi,web]",
                ],
                "legsleeve and its pi and web extras",
            )
        else:
            self.say(f"{VENV}", "ok")

    def config(self) -> None:
        """Ship config, never overwriting what the user edited: the new version lands beside it as .dist."""
        src_root = SOURCE / "config"
        for src in sorted(src_root.rglob("*.yaml")):
            rel = ETC / src.relative_to(src_root)
            target = self.path(rel)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
                self.changed.append(str(rel))
                self.say(str(rel), "written")
            elif filecmp.cmp(src, target, shallow=False):
                self.say(str(rel), "ok")
            else:
                dist = target.with_name(target.name + ".dist")
                if dist.exists() and filecmp.cmp(src, dist, shallow=False):
                    self.say(f"{rel} (yours kept)", "ok")
                else:
                    shutil.copy2(src, dist)
                    self.changed.append(str(rel) + ".dist")
                    self.say(f"{rel} is yours: the new version is {dist.name}", "kept")

    def boot(self) -> None:
        rel = next((c for c in BOOT_CANDIDATES if self.path(c).exists()), BOOT_CANDIDATES[0])
        target = self.path(rel)
        text = target.read_text() if target.exists() else ""
        present = {line.strip() for line in text.splitlines()}
        missing = [line for line in BOOT_LINES if line not in present]
        if not missing:
            self.say(f"{rel} (I2C, watchdog, strict_gpiod)", "ok")
            return
        block = "\n".join([BEGIN, *missing, END]) + "\n"
        self.write(rel, text + ("\n" if text and not text.endswith("\n") else "") + block)
        self.reboot = True

    def modules(self) -> None:
        self.write(MODULES, "# legsleeve: the I2C bus's character device\ni2c-dev\n")

    def profiles(self) -> None:
        """The profiles directory writable by the web page's group (setgid: saved files keep the group), readable by
        all: the service reads it, the web page's editor saves into it."""
        target = self.path(ETC / "profiles")
        gid = self._gid(WEB_USER)
        st = target.stat() if target.exists() else None
        if st is not None and gid is not None and st.st_gid == gid and (st.st_mode & 0o7777) == 0o2775:
            self.say(f"{ETC / 'profiles'} (group {WEB_USER}, 2775)", "ok")
            return
        self.run(["chgrp", WEB_USER, str(target)], f"profiles: group {WEB_USER} (the web editor)")
        self.run(["chmod", "2775", str(target)], "profiles: group-writable, setgid")

    def unit(self) -> None:
        before = len(self.changed)
        self.write(UNIT, (SOURCE / "systemd" / "legsleeve.service").read_text())
        self.write(WEB_UNIT, (SOURCE / "systemd" / "legsleeve-web.service").read_text())
        if len(self.changed) > before:
            self.run(["systemctl", "daemon-reload"], "systemd reload")
        for name in ("legsleeve.service", "legsleeve-web.service"):
            enabled = self.path(Path("etc/systemd/system/multi-user.target.wants") / name)
            if enabled.exists() or enabled.is_symlink():
                self.say(f"{name} enabled", "ok")
            else:
                self.run(["systemctl", "enable", name], f"enable {name}")

    def install(self) -> int:
        self.reboot = False
        self.relogin = False
        self._source_changed = False
        print(
            f"installing legsleeve into {self.root}{' (dry run: no commands)' if self.dry_run else ''}", file=self.out
        )
        for step in (
            self.groups,
            self.user,
            self.udev,
            self.source,
            self.venv,
            self.config,
            self.profiles,
            self.boot,
            self.modules,
            self.unit,
            self.command,
        ):
            step()
        print(
            f"\n{len(self.changed)} file(s) changed, {len(self.commands)} command(s)"
            f"{' to run' if self.dry_run else ' run'}.",
            file=self.out,
        )
        relogin = (
            f"\n{self.login_user} joined groups: log out and in again (or reboot) before the steps below.\n"
            if self.relogin
            else ""
        )
        print(
            NEXT_STEPS
            + ("\nThe boot config changed: reboot before the first session.\n" if self.reboot else "")
            + relogin,
            file=self.out,
        )
        return 0

    def uninstall(self, purge: bool) -> int:
        print(f"removing legsleeve from {self.root}{' (dry run)' if self.dry_run else ''}", file=self.out)
        if self.path(WEB_UNIT).exists():
            self.run(["systemctl", "disable", "--now", "legsleeve-web.service"], "stop and disable the web page")
            self._remove(WEB_UNIT)
        if self.path(UNIT).exists():
            self.run(["systemctl", "disable", "--now", "legsleeve.service"], "stop and disable the service")
            self._remove(UNIT)
            self.run(["systemctl", "daemon-reload"], "systemd reload")
        self._remove(MODULES)
        self._remove(UDEV_RULES)
        link = self.path(COMMAND)
        if link.is_symlink() and Path(os.readlink(link)) == Path("/") / VENV / "bin/legsleeve":
            self._remove(COMMAND)
        self._remove(PREFIX)
        rel = next((c for c in BOOT_CANDIDATES if self.path(c).exists()), None)
        if rel is not None:
            text = self.path(rel).read_text()
            if BEGIN in text:
                start, end = text.index(BEGIN), text.index(END) + len(END) + 1
                self.write(rel, text[:start] + text[end:])
        if purge:
            self._remove(ETC)
            self._remove(Path("var/lib/legsleeve"))
            if self._user_exists(WEB_USER) or self.dry_run:
                self.run(["userdel", WEB_USER], f"user {WEB_USER}")
            if self._user_exists(USER) or self.dry_run:
                self.run(["userdel", USER], f"user {USER}")
        else:
            self.say(f"{ETC} and /var/lib/legsleeve (your config and session logs): kept; --purge removes them", "kept")
        return 0

    def _remove(self, rel: Path) -> None:
        target = self.path(rel)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        else:
            return
        self.changed.append(str(rel))
        self.say(str(rel), "removed")


NEXT_STEPS = """
Next (the service is enabled, not started: the bring-up steps need the sleeve to themselves; if it runs,
`sudo systemctl stop legsleeve` first - it vents on the way out):
  1. Wire the build as hardware/README.md shows; check your pins:   legsleeve wiring --config /etc/legsleeve
  2. Reboot if the boot config changed, then check each sensor:     legsleeve sensors --config /etc/legsleeve
  3. Check each valve and hose, one zone at a time:                  legsleeve test-valve ankle --config /etc/legsleeve
  4. Start the service and watch it:    sudo systemctl start legsleeve && journalctl -fu legsleeve
  5. Press the button (or: legsleeve start) for a first session of the gentle profile.
  6. The web page needs a password, on the Pi too (until it has one, legsleeve-web refuses to start, once, saying
     why): sudo legsleeve web-password, then sudo systemctl restart legsleeve-web, then http://127.0.0.1:8080/
     on the Pi. To open it to your LAN: listen: 0.0.0.0:8080 in /etc/legsleeve/web.yaml, and restart it. (To
     trust every account on the Pi instead, auth: none in web.yaml, for localhost only: docs/web.md.)"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install legsleeve on a Raspberry Pi (see the module docstring).")
    parser.add_argument("action", choices=("install", "uninstall"))
    parser.add_argument("--root", type=Path, default=Path("/"), help="install into this tree (default /)")
    parser.add_argument("--dry-run", action="store_true", help="write files under --root but run no commands")
    parser.add_argument("--purge", action="store_true", help="uninstall: also remove config, logs and the user")
    parser.add_argument(
        "--login-user",
        metavar="NAME",
        default=None,
        help="install: add NAME to the groups legsleeve (the control socket), gpio and i2c (the bring-up commands)",
    )
    args = parser.parse_args(argv)
    if args.root == Path("/") and not args.dry_run and os.geteuid() != 0:
        print("install: run as root (sudo make install), or use --root DIR --dry-run to look first", file=sys.stderr)
        return 2
    installer = Installer(args.root.resolve(), args.dry_run, login_user=args.login_user or None)
    try:
        return installer.install() if args.action == "install" else installer.uninstall(args.purge)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"install: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
