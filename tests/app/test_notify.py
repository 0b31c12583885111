"""SAFE-11 liveness over a real notify socket: the systemd protocol, and a session that pings only after completed
ticks, so a stalled tick stops the pings (and systemd's watchdog would act)."""

from __future__ import annotations

import socket

import pytest

from legsleeve.app.notify import Notifier
from legsleeve.app.session import run_session
from legsleeve.config.profiles import load_profile
from legsleeve.core.clock import VirtualClock
from legsleeve.hw.backends import open_sim
from tests.helpers import CONFIG_DIR


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0)
    yield str(path), sock
    sock.close()


def _drain(sock):
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_notifier_speaks_the_systemd_protocol(notify_socket):
    path, sock = notify_socket
    clock = VirtualClock()
    n = Notifier({"NOTIFY_SOCKET": path}, clock=clock, min_interval_s=0.1)
    n.ready("idle")
    for _ in range(5):  # five ticks within 0.1 s: one ping
        n.watchdog()
        clock.advance(0.02)
    clock.advance(0.02)
    n.watchdog()
    n.stopping()
    assert _drain(sock) == ["READY=1\nSTATUS=idle", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]


def test_notifier_without_socket_does_nothing():
    n = Notifier({})
    assert not n.enabled
    n.ready()
    n.watchdog()  # no error, no effect


def test_abstract_socket_address(tmp_path):
    name = f"legsleeve-test-{id(tmp_path)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_session_pings_after_completed_ticks_and_a_stalled_tick_stops_them(cfg, notify_socket):
    path, sock = notify_socket
    rig = open_sim(cfg, seed=1)
    pings: list[float] = []
    notifier = Notifier({"NOTIFY_SOCKET": path}, clock=rig.clock, min_interval_s=0.1)

    def liveness():
        before = len(pings)
        notifier.watchdog()
        if _drain(sock):
            pings.append(rig.clock.now())
        assert len(pings) >= before

    real_read = rig.read
    stalled = {"done": False}

    def read():
        if rig.clock.now() > 30 and not stalled["done"]:
            stalled["done"] = True
            rig.clock.sleep(3.0)  # a tick stuck for 3 s (a kernel I2C timeout and more)
        return real_read()

    rig.read = read
    try:
        run_session(rig, load_profile(CONFIG_DIR, "gradient", cfg), cycles=1, liveness=liveness)
    finally:
        rig.close()
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    assert len(pings) > 500
    assert max(gaps) >= 3.0  # systemd's WatchdogSec=2 would have killed us here: that is the point
    assert sorted(gaps)[-2] < 0.2  # otherwise a ping every 0.1 s or so
