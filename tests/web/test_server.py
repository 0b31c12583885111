"""waitress as `legsleeve web` configures it (web/server.py `create_server`), on a real socket on 127.0.0.1: a body
too large is refused before the application sees it, logged in or not, and one address holding many idle
connections cannot keep a stop from another address out. No sleeps: socket timeouts bound every wait."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("waitress", reason="the web extra: pip install -e '.[web]'")

from legsleeve.web.app import MAX_BODY
from legsleeve.web.server import (
    CHANNEL_TIMEOUT_S,
    CLEANUP_INTERVAL_S,
    CONNECTION_LIMIT,
    PER_CLIENT_CONNECTIONS,
    create_server,
)
from tests.web.test_app import build

STOP = b"POST /api/stop HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\nContent-Length: 0\r\n\r\n"


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[Any, int]]:
    client, service, _, _ = build(tmp_path)
    server = create_server(client.app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield service, server.effective_port
    finally:
        # Everything in the server's loop - its socket, its trigger, the connections - closed in the loop's own thread
        # (a thunk its trigger runs there), and the loop, with nothing left, ends: closed from this thread while the
        # loop waits in select() on them, the select failed with EBADF in the server's thread.
        server.trigger.pull_trigger(lambda: [d.close() for d in list(server._map.values())])
        thread.join(timeout=10)
        assert not thread.is_alive(), "waitress's loop did not end"
        server.task_dispatcher.shutdown()


def _ask(port: int, data: bytes, *, source: str = "127.0.0.1", timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as s:
        s.sendall(data)
        return s.recv(200)


def test_the_limits_are_set():
    assert CHANNEL_TIMEOUT_S <= 30 and CLEANUP_INTERVAL_S <= 10
    assert PER_CLIENT_CONNECTIONS < CONNECTION_LIMIT <= 100
    assert MAX_BODY <= 256 * 1024


def test_a_body_too_large_is_refused_before_the_application(served):
    service, port = served
    head = b"POST /api/stop HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % (1024**3 - 1)
    assert _ask(port, head).startswith(b"HTTP/1.1 413")
    assert service.asked == []  # refused by waitress: the application never ran
    assert _ask(port, STOP).startswith(b"HTTP/1.1 200")  # and the server is still there


def test_one_address_holding_many_idle_connections_cannot_keep_a_stop_out(served):
    """100 connections from 127.0.0.2 that send one byte and then nothing: waitress's default (100 connections, all
    from anyone) would leave a stop from another address unanswered until the idle ones time out."""
    service, port = served
    idle = []
    try:
        for _ in range(100):
            c = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.2", 0))
            c.sendall(b"P")
            idle.append(c)
        assert _ask(port, STOP, source="127.0.0.1").startswith(b"HTTP/1.1 200")
        assert ("stop", {}) in service.asked
    finally:
        for c in idle:
            c.close()
