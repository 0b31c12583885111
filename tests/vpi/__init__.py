"""The virtual Raspberry Pi: a Debian bookworm arm64 system under QEMU, where the project is installed as README tells
a Pi owner and checked under a real systemd, on a simulated GPIO chip (gpio-sim). `machine.py` builds and boots it
(on the host), `guest.py` runs the checks inside it; `tests/test_vpi.py` collects them. See docs/virtual-pi.md."""
