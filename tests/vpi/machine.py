"""The virtual Raspberry Pi's host side: build (or reuse) a Debian bookworm arm64 image, then boot it under QEMU and
collect what the checks inside reported.

    python -m tests.vpi.machine build          # the image, kernel, gpio-sim module and device tree, in the cache
    python -m tests.vpi.machine run            # build if needed, boot, run tests/vpi/guest.py inside, print PASS/FAIL

The cache (`$LEGSLEEVE_VPI_CACHE`, default ~/.cache/legsleeve-vpi) holds `rootfs.img`, `vmlinuz`, `initrd.img` and
`pi.dtb`, and `recipe` - a hash of everything below that shapes them: change the recipe and the next run rebuilds.
Building needs root, `debootstrap`, `qemu-user-static` with binfmt_misc, `dtc` and `mkfs.ext4`; booting needs only
`qemu-system-aarch64`. Standard library only: it runs before anything is installed.

The build (about 13 minutes on two busy cores, once):
  1. `debootstrap --foreign` of bookworm arm64 (minbase, plus systemd, udev, python3-venv, make, git, sudo, Debian's
     arm64 kernel with its headers and gcc), then the second stage in a chroot through qemu-aarch64-static;
  2. the machine's own settings: host name, fstab, a static address for QEMU's user network, a login user `pi`
     with passwordless sudo (as Raspberry Pi OS's first user has) and one `guest` with nothing, and `vpi-run`, a
     unit that mounts the host's 9p share at boot and runs the `run.sh` the host put there, then powers off;
  3. `gpio-sim` and `i2c-stub`, which Debian's kernel does not build: compiled out of tree in the chroot from Debian's
     linux-source-6.1 against the kernel's own headers, with irq_sim linked in (the kernel lacks it too; its one
     call the kernel does not export to modules, irq_to_desc(), replaced by the exported generic_handle_irq());
  4. QEMU's own device tree for the machine, with a Raspberry Pi 4's revision in /system/linux,revision (what
     gpiozero reads to know the board) and without the PL061 GPIO controller and its gpio-keys, so the simulated
     chip is /dev/gpiochip0 as the header's is on a Pi 4;
  5. `mkfs.ext4 -d`: the tree becomes a raw disk image. QEMU boots it with `-snapshot`: it stays clean run to run.

A run (`run`): the working tree - committed or not, untracked files too, ignored ones not - is committed on a side
index into a bare repository in a fresh share folder, so the VM can `git clone` it exactly as README tells a Pi owner
to. Then `qemu-system-aarch64 -M virt -cpu cortex-a72` (TCG: there is no KVM for arm64 on an x86 host) boots the
image; the console is copied to `console.log` in the share and to stdout; the checks write `results.jsonl` there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
HERE = Path(__file__).resolve().parent
SUITE = "bookworm"
MIRROR = os.environ.get("LEGSLEEVE_VPI_MIRROR", "http://deb.debian.org/debian")
PACKAGES = (
    "systemd-sysv,udev,kmod,dbus,procps,iproute2,ca-certificates,python3,python3-venv,make,git,sudo,"
    "linux-image-arm64,linux-headers-arm64,gcc,libc6-dev"
)
PI_REVISION = 0x00C03111  # a Raspberry Pi 4 Model B, 4 GB (gpiozero's PiBoardInfo knows it)
QEMU_MACHINE = ("-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "2048")
NICE = ("nice", "-n", "15")  # the build and the VM share two cores with other people's test runs
BOOT_TIMEOUT_S = 2400.0  # the whole run, boot to power-off; a normal one takes about 10 minutes (594 s)

# Files baked into the image: the machine's settings and the unit that runs the host's script at boot.
BAKED = {
    "etc/hostname": "raspberrypi\n",
    "etc/hosts": "127.0.0.1 localhost\n127.0.1.1 raspberrypi\n",
    "etc/fstab": "/dev/vda / ext4 defaults 0 1\n",
    "etc/resolv.conf": "nameserver 10.0.2.3\n",
    # QEMU's user network: the guest is 10.0.2.15, the host's NAT 10.0.2.2, its DNS 10.0.2.3
    "etc/systemd/network/10-qemu.network": (
        "[Match]\nName=eth0\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nDNS=10.0.2.3\n"
    ),
    "etc/sudoers.d/010_pi-nopasswd": "pi ALL=(ALL) NOPASSWD: ALL\n",
    "etc/modules-load.d/vpi.conf": "9pnet_virtio\n",
    "etc/systemd/system/vpi-run.service": (
        "[Unit]\n"
        "Description=legsleeve virtual Pi: the host's run.sh from the 9p share\n"
        "After=systemd-networkd.service systemd-udevd.service systemd-user-sessions.service\n"
        "Wants=systemd-networkd.service\n\n"
        "[Service]\n"
        "Type=exec\n"
        "ExecStart=/usr/local/sbin/vpi-run\n"
        "StandardOutput=journal+console\n"
        "StandardError=journal+console\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    ),
    "usr/local/sbin/vpi-run": (
        "#!/bin/sh\n"
        "# Mount the host's share, run its run.sh, power off whatever happened.\n"
        "mkdir -p /mnt/vpi\n"
        "if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 vpi /mnt/vpi; then\n"
        "  echo \"vpi: booted in $(cut -d' ' -f1 /proc/uptime) s\"\n"
        "  sh /mnt/vpi/run.sh\n"
        '  echo "vpi: run.sh exited $?"\n'
        "else\n"
        "  echo 'vpi: no 9p share'\n"
        "fi\n"
        "sync\n"
        "systemctl poweroff --no-block\n"
    ),
}
# Written before the second stage, to make it faster under qemu-user: dpkg without fsync (the image is rebuilt, not
# repaired, if the build dies), and an initrd with the few modules this machine boots from instead of "most" of them
# (mkinitramfs runs modinfo on every module: minutes under emulation).
BEFORE_SECOND_STAGE = {
    "etc/dpkg/dpkg.cfg.d/vpi-unsafe-io": "force-unsafe-io\n",
    "etc/initramfs-tools/conf.d/vpi": "MODULES=list\n",
    "usr/share/initramfs-tools/modules.d/vpi": "virtio_pci\nvirtio_blk\next4\ncrc32c_generic\n",
}
SETUP = """set -e
passwd -d root
useradd --create-home --shell /bin/bash --groups sudo pi
useradd --create-home --shell /bin/bash guest
chmod 0755 /usr/local/sbin/vpi-run
chmod 0440 /etc/sudoers.d/010_pi-nopasswd
systemctl enable systemd-networkd.service vpi-run.service
systemctl mask serial-getty@ttyAMA0.service getty@tty1.service
apt-get clean
"""
# gpio-sim as one module: with irq_sim linked in where the kernel lacks it (gpio-sim.c renamed, as a composite
# module's name may not be one of its parts')
KBUILD = "obj-m += gpio-sim.o\n"
KBUILD_WITH_IRQ_SIM = "obj-m += gpio-sim.o\ngpio-sim-y := gpio-sim-main.o irq_sim.o\n"
KBUILD_I2C_STUB = "obj-m += i2c-stub.o\n"
MODULE_SOURCES = {
    "gpio-sim": ("drivers/gpio/gpio-sim.c", "drivers/gpio/gpiolib.h", "kernel/irq/irq_sim.c"),
    "i2c-stub": ("drivers/i2c/i2c-stub.c",),
}
# irq_sim.c calls irq_to_desc(), which the kernel does not export to modules; generic_handle_irq() is exported and
# does the same (the descriptor's handler is the handle_simple_irq that irq_sim itself installs)
IRQ_SIM_PATCH = ("handle_simple_irq(irq_to_desc(irqnum));", "generic_handle_irq(irqnum);")
DTS_DROP = ("pl061@", "gpio-keys")


def recipe() -> str:
    """A hash of everything that shapes the cached image: change any of it and the next run rebuilds."""
    parts = [SUITE, MIRROR, PACKAGES, hex(PI_REVISION), " ".join(QEMU_MACHINE), SETUP, KBUILD, *DTS_DROP]
    parts += [KBUILD_WITH_IRQ_SIM, KBUILD_I2C_STUB, *IRQ_SIM_PATCH]
    parts += [f"{k}\n{v}" for k, v in sorted({**BAKED, **BEFORE_SECOND_STAGE}.items())]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "legsleeve-vpi"
    return Path(os.environ.get("LEGSLEEVE_VPI_CACHE", default))


ARTEFACTS = ("rootfs.img", "vmlinuz", "initrd.img", "pi.dtb")


def is_built(cache: Path) -> bool:
    stamp = cache / "recipe"
    return stamp.exists() and stamp.read_text().strip() == recipe() and all((cache / a).exists() for a in ARTEFACTS)


def missing_tools(*, build: bool) -> list[str]:
    """What this machine lacks to build (and boot) the virtual Pi, as a list a skip reason can print."""
    need = ["qemu-system-aarch64"]
    if build:
        need += ["debootstrap", "qemu-aarch64-static", "dtc", "mkfs.ext4", "chroot"]
    missing = [t for t in need if shutil.which(t) is None]
    if build and os.geteuid() != 0:
        missing.append("root (debootstrap, chroot and mount need it)")
    return missing


def _log(msg: str) -> None:
    print(f"vpi: {msg}", flush=True)


def _run(argv: list[str] | tuple[str, ...], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=True, **kw)


# -- build --------------------------------------------------------------------------------------------------------


def _binfmt() -> None:
    """The chroot's arm64 programs run through qemu-aarch64-static, registered with binfmt_misc."""
    misc = Path("/proc/sys/fs/binfmt_misc")
    if not (misc / "status").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(misc)])
    if not (misc / "qemu-aarch64").exists() or "enabled" not in (misc / "qemu-aarch64").read_text():
        _run(["update-binfmts", "--enable", "qemu-aarch64"])
    entry = (misc / "qemu-aarch64").read_text()
    if "enabled" not in entry or "F" not in entry.partition("flags:")[2].splitlines()[0]:
        raise RuntimeError("binfmt_misc: qemu-aarch64 is not enabled with the F flag (apt install qemu-user-static)")


class _Chroot:
    """proc, sys and dev mounted into the tree while it is used; unmounted whatever happens."""

    def __init__(self, root: Path):
        self.root = root
        self.mounts: list[Path] = []

    def __enter__(self) -> _Chroot:
        for fs, args in (
            ("proc", ["-t", "proc", "proc"]),
            ("sys", ["-t", "sysfs", "sys"]),
            ("dev", ["--bind", "/dev"]),
        ):
            target = self.root / fs
            target.mkdir(exist_ok=True)
            _run(["mount", *args, str(target)])
            self.mounts.append(target)
        return self

    def __exit__(self, *exc) -> None:
        for target in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(target)], check=False)

    def sh(self, script: str) -> None:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
        _run([*NICE, "chroot", str(self.root), "/bin/sh", "-c", script], env=env)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def _kernel_version(root: Path) -> str:
    versions = sorted(p.name.removeprefix("vmlinuz-") for p in (root / "boot").glob("vmlinuz-*"))
    if len(versions) != 1:
        raise RuntimeError(f"expected one kernel in {root / 'boot'}, found {versions}")
    return versions[0]


def _modules(chroot: _Chroot, kver: str, work: Path) -> None:
    """gpio-sim and i2c-stub for Debian's kernel, out of tree, where the kernel lacks them (bookworm's 6.1 builds
    neither), from the matching linux-source-6.1 against the kernel's own headers."""
    root = chroot.root
    have = {p.name.split(".ko")[0] for p in (root / "lib/modules" / kver).rglob("*.ko*")}
    wanted = [m for m in ("gpio-sim", "i2c-stub") if m not in have]
    if not wanted:
        _log("the kernel has gpio-sim and i2c-stub")
        return
    with_irq_sim = "gpio-sim" in wanted and "CONFIG_IRQ_SIM=y" not in (root / "boot" / f"config-{kver}").read_text()
    _log(f"building {', '.join(wanted)}{' (with irq_sim)' if with_irq_sim else ''} out of tree from linux-source-6.1")
    archives = root / "var/cache/apt/archives"
    resolv = root / "etc/resolv.conf"
    vm_dns = resolv.read_text()
    shutil.copy2("/etc/resolv.conf", resolv)  # the host's DNS while the chroot downloads; the VM's after
    try:
        if not list(archives.glob("linux-source-6.1_*.deb")):
            chroot.sh("apt-get update -q >/dev/null && cd /var/cache/apt/archives && apt-get download linux-source-6.1")
    finally:
        resolv.write_text(vm_dns)
    deb = next(archives.glob("linux-source-6.1_*.deb"))
    src = work / "linux-source"
    _run(["dpkg-deb", "-x", str(deb), str(src)])
    tarball = next((src / "usr/src").glob("linux-source-6.1.tar.*"))
    members = [*MODULE_SOURCES["gpio-sim"], *MODULE_SOURCES["i2c-stub"]]
    _run([*NICE, "tar", "-xf", str(tarball), "-C", str(work), *[f"linux-source-6.1/{m}" for m in members]])
    src_dir = work / "linux-source-6.1"
    build = root / "usr/src/vpi-modules"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    kbuild = []
    if "gpio-sim" in wanted:
        shutil.copy2(src_dir / "drivers/gpio/gpiolib.h", build)
        if with_irq_sim:
            shutil.copy2(src_dir / "drivers/gpio/gpio-sim.c", build / "gpio-sim-main.c")
            irq_sim = (src_dir / "kernel/irq/irq_sim.c").read_text()
            if IRQ_SIM_PATCH[0] not in irq_sim:
                raise RuntimeError(f"irq_sim.c has changed: no {IRQ_SIM_PATCH[0]!r} to replace")
            (build / "irq_sim.c").write_text(irq_sim.replace(*IRQ_SIM_PATCH))
            kbuild.append(KBUILD_WITH_IRQ_SIM)
        else:
            shutil.copy2(src_dir / "drivers/gpio/gpio-sim.c", build)
            kbuild.append(KBUILD)
    if "i2c-stub" in wanted:
        shutil.copy2(src_dir / "drivers/i2c/i2c-stub.c", build)
        kbuild.append(KBUILD_I2C_STUB)
    (build / "Kbuild").write_text("".join(kbuild))
    t0 = time.monotonic()
    kos = " ".join(f"/usr/src/vpi-modules/{m}.ko" for m in wanted)
    chroot.sh(
        f"make -s -C /lib/modules/{kver}/build M=/usr/src/vpi-modules modules"
        f" && install -D -m 0644 -t /lib/modules/{kver}/updates {kos} && depmod -a {kver}"
    )
    deb.unlink()
    _log(f"{', '.join(wanted)} built in {time.monotonic() - t0:.0f} s")


def _drop_node(dts: str, name: str) -> str:
    """The device tree source without the node whose name starts with `name` (and everything inside it)."""
    m = re.search(r"^(\s*)" + re.escape(name) + r"[^\n]*\{\n", dts, re.M)
    if m is None:
        raise RuntimeError(f"QEMU's device tree has no node {name!r}")
    depth, i = 1, m.end()
    while depth:
        j = dts.index("}", i)
        depth += dts.count("{", i, j) - 1
        i = j + 1
    end = dts.index("\n", i) + 1  # the "};" line
    return dts[: m.start()] + dts[end:]


def _device_tree(out: Path, work: Path) -> None:
    dtb = work / "virt.dtb"
    _run(["qemu-system-aarch64", *QEMU_MACHINE, "-machine", f"dumpdtb={dtb}", "-display", "none"])
    dts = _run(["dtc", "-q", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True, text=True).stdout
    for name in DTS_DROP:
        dts = _drop_node(dts, name)
    # gpiozero (and Blinka) read the board's revision here, as on a Pi
    system = f"\tsystem {{\n\t\tlinux,revision = <0x{PI_REVISION:08x}>;\n\t}};\n"
    end = dts.rindex("\n};")  # the root node's end: a node goes after its properties
    dts = dts[: end + 1] + system + dts[end + 1 :]
    (work / "pi.dts").write_text(dts)
    _run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(out), str(work / "pi.dts")])


def build(cache: Path, *, force: bool = False) -> float:
    """Build the image into `cache` unless it is there for this recipe; returns the seconds it took (0: reused)."""
    if is_built(cache) and not force:
        _log(f"reusing the image in {cache} (recipe {recipe()})")
        return 0.0
    missing = missing_tools(build=True)
    if missing:
        raise RuntimeError("cannot build the virtual Pi here: missing " + ", ".join(missing))
    t0 = time.monotonic()
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "recipe").unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
    root = work / "root"
    try:
        _binfmt()
        _log(f"debootstrap {SUITE} arm64 (first stage) from {MIRROR}")
        _run(
            [
                *NICE,
                "debootstrap",
                "--arch=arm64",
                "--foreign",
                "--variant=minbase",
                f"--include={PACKAGES}",
                SUITE,
                str(root),
                MIRROR,
            ]
        )
        _write(root, BEFORE_SECOND_STAGE)
        with _Chroot(root) as chroot:
            _log(f"second stage under qemu-aarch64-static ({time.monotonic() - t0:.0f} s so far)")
            chroot.sh("/debootstrap/debootstrap --second-stage")
            _log(f"second stage done ({time.monotonic() - t0:.0f} s so far)")
            _write(root, BAKED)
            chroot.sh(SETUP)
            kver = _kernel_version(root)
            _modules(chroot, kver, work)
        _log(f"kernel {kver}; device tree with revision 0x{PI_REVISION:08x}")
        shutil.copy2(root / "boot" / f"vmlinuz-{kver}", cache / "vmlinuz")
        shutil.copy2(root / "boot" / f"initrd.img-{kver}", cache / "initrd.img")
        _device_tree(cache / "pi.dtb", work)
        _log("mkfs.ext4 -d: the tree becomes rootfs.img")
        img = cache / "rootfs.img"
        img.unlink(missing_ok=True)
        _run([*NICE, "mkfs.ext4", "-q", "-L", "vpiroot", "-d", str(root), str(img), "4G"])
        (cache / "recipe").write_text(recipe() + "\n")
    finally:
        for fs in ("proc", "sys", "dev"):  # in case a failure came between the mounts and their context
            subprocess.run(["umount", "-l", str(root / fs)], check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - t0
    _log(f"built in {seconds:.0f} s: {cache}")
    return seconds


# -- run ----------------------------------------------------------------------------------------------------------


def snapshot_repo(share: Path) -> str:
    """The working tree as it is (untracked files too, ignored ones not), committed on a side index into a bare
    repository at share/legsleeve.git, branch `main`: the VM clones it as a Pi owner clones the project."""
    env = dict(os.environ, GIT_INDEX_FILE=str(share / "index"))
    git = ["git", "-C", str(ROOT)]
    _run([*git, "read-tree", "HEAD"], env=env)
    _run([*git, "add", "-A"], env=env)
    tree = _run([*git, "write-tree"], env=env, capture_output=True, text=True).stdout.strip()
    commit = _run(
        [*git, "commit-tree", tree, "-p", "HEAD", "-m", "vpi: the working tree"],
        env=dict(env, GIT_AUTHOR_NAME="vpi", GIT_AUTHOR_EMAIL="vpi@localhost", GIT_COMMITTER_NAME="vpi")
        | {"GIT_COMMITTER_EMAIL": "vpi@localhost"},
        capture_output=True,
        text=True,
    ).stdout.strip()
    (share / "index").unlink()
    bare = share / "legsleeve.git"
    _run(["git", "init", "-q", "--bare", str(bare)])
    _run([*git, "push", "-q", str(bare), f"{commit}:refs/heads/main"])
    _run(["git", "-C", str(bare), "symbolic-ref", "HEAD", "refs/heads/main"])
    return commit


RUN_SH = """#!/bin/sh
# Written by tests/vpi/machine.py for one run; /usr/local/sbin/vpi-run runs it at boot, as root.
set -u
cd /mnt/vpi
# the host's certificate authorities for pip (see machine.run), as a site's own CA would be configured
[ -f /mnt/vpi/host-ca.crt ] && printf '[global]\ncert = /mnt/vpi/host-ca.crt\n' > /etc/pip.conf
rm -rf /home/pi/legsleeve
# as a Pi owner would: a clone of the repository, in the login user's home (the share belongs to the host's root)
git config --system --add safe.directory /mnt/vpi/legsleeve.git
runuser -u pi -- git clone -q /mnt/vpi/legsleeve.git /home/pi/legsleeve
python3 /home/pi/legsleeve/tests/vpi/guest.py --results /mnt/vpi/results.jsonl {only}
"""


@dataclass
class RunResult:
    share: Path
    results: list[dict]
    boot_s: float | None  # kernel start to the runner, as the guest saw it
    wall_s: float  # QEMU start to exit, on the host
    exit_code: int | None  # QEMU's; None if it was killed at the timeout


def run(cache: Path, share: Path | None = None, *, only: str = "", timeout_s: float = BOOT_TIMEOUT_S) -> RunResult:
    """Boot the image with a fresh share; return what the checks reported."""
    if not is_built(cache):
        raise RuntimeError(f"no image for recipe {recipe()} in {cache}: python -m tests.vpi.machine build")
    share = share or Path(tempfile.mkdtemp(prefix="run-", dir=cache))
    share.mkdir(parents=True, exist_ok=True)
    share.chmod(0o755)  # 9p with security_model=none shows the host's modes: the VM's login user clones from here
    commit = snapshot_repo(share)
    _log(f"sharing {share} (the working tree as commit {commit[:12]})")
    # the host's certificate authorities, for pip in the VM: where the network passes through a TLS proxy (as on
    # this project's CI machines), only the host's set knows its certificate
    ca = Path(os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
    if ca.is_file():
        shutil.copyfile(ca, share / "host-ca.crt")
    (share / "run.sh").write_text(RUN_SH.format(only=f"--only {only}" if only else ""))
    argv = [
        *NICE,
        "qemu-system-aarch64",
        *QEMU_MACHINE,
        "-display",
        "none",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-no-reboot",
        "-kernel",
        str(cache / "vmlinuz"),
        "-initrd",
        str(cache / "initrd.img"),
        "-dtb",
        str(cache / "pi.dtb"),
        "-append",
        "root=/dev/vda rw console=ttyAMA0 panic=-1 net.ifnames=0 loglevel=4",
        "-drive",
        f"file={cache / 'rootfs.img'},format=raw,if=virtio,snapshot=on",
        "-nic",
        "user,model=virtio-net-pci",
        "-virtfs",
        f"local,path={share},mount_tag=vpi,security_model=none,id=vpi",
    ]
    t0 = time.monotonic()
    boot_s = None
    code: int | None = None
    with open(share / "console.log", "w") as console:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        # the deadline holds even when the guest falls silent (a hung check): the timer kills QEMU, which ends the read
        deadline = threading.Timer(timeout_s, proc.kill)
        deadline.start()
        try:
            for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip("\r\n")
                console.write(line + "\n")
                console.flush()
                print(line, flush=True)
                m = re.search(r"vpi: booted in ([\d.]+) s", line)
                if m:
                    boot_s = float(m.group(1))
            proc.wait()
        finally:
            deadline.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        code = proc.returncode
        if time.monotonic() - t0 >= timeout_s:
            _log(f"timed out after {timeout_s:.0f} s: QEMU was stopped")
            code = None
    wall_s = time.monotonic() - t0
    results_file = share / "results.jsonl"
    results = [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.exists() else []
    return RunResult(share, results, boot_s, wall_s, code)


def summary(result: RunResult) -> str:
    passed = sum(r["ok"] for r in result.results)
    boot = f"{result.boot_s:.0f} s" if result.boot_s is not None else "never"
    return (
        f"{passed}/{len(result.results)} checks passed; boot to runner {boot}, QEMU ran {result.wall_s:.0f} s; "
        f"log {result.share / 'console.log'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The virtual Raspberry Pi (see this module's docstring).")
    parser.add_argument("action", choices=("build", "run"))
    parser.add_argument("--cache", type=Path, default=None, help="default: $LEGSLEEVE_VPI_CACHE or ~/.cache/...")
    parser.add_argument("--force", action="store_true", help="build: rebuild even if the cache is current")
    parser.add_argument("--only", default="", help="run: a comma-separated subset of the guest's checks")
    args = parser.parse_args(argv)
    cache = args.cache or cache_dir()
    try:
        build(cache, force=args.force)
        if args.action == "build":
            return 0
        result = run(cache, only=args.only)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"vpi: {exc}", file=sys.stderr)
        return 1
    for r in result.results:
        detail = f": {r['detail']}" if r["detail"] else ""
        print(f"{'PASS' if r['ok'] else 'FAIL'} {r['name']} ({r['seconds']:.1f} s){detail}")
    print(summary(result))
    return 0 if result.results and all(r["ok"] for r in result.results) else 1


if __name__ == "__main__":
    sys.exit(main())
