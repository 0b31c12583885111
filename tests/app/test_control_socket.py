"""The control socket on its own (`legsleeve.app.control.ControlSocket`): who may speak, one `serve` at a time,
deadlines and limits that keep any client from holding anything up, and an I/O thread that survives its own errors.
The test plays the control loop's part (`drain`, `answer`). Deadlines run on an injected wall clock; the waits
below only wait for the I/O thread to get there, they time nothing."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from legsleeve.app import protocol
from legsleeve.app.cli import main
from legsleeve.app.control import AlreadyServing, ControlSocket, PeerPolicy, Request, send_command
from tests.app.control_clients import Ask, read_reply, silent, wait_for
from tests.helpers import CONFIG_DIR


class FakeWall:
    """The I/O thread's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "control.sock")


@pytest.fixture
def wall():
    return FakeWall()


@pytest.fixture
def sock(path, wall):
    s = ControlSocket(path, wall=wall)
    yield s
    s.close()


def loop_answers(sock: ControlSocket, n: int, reply=lambda r: protocol.ok(r.verb, f"ok {r.line}")) -> list[Request]:
    """Play the control loop: take n requests, answer each."""
    wait_for(lambda: sock.pending() >= n, f"{n} request(s) in the queue")
    taken = sock.drain()
    for r in taken:
        sock.answer(r, reply(r))
    return taken


# -- the protocol ------------------------------------------------------------------------------------------------


def test_one_line_in_one_line_out_answered_by_the_loop(sock, path):
    ask = Ask(path, "status")
    (request,) = loop_answers(sock, 1)
    assert request.line == "status" and request.verb == "status"
    assert ask.result() == "ok status"
    wait_for(lambda: sock.clients() == 0, "the connection closed")


def test_a_last_line_without_newline_counts(sock, path):
    """`printf stop | socat - UNIX:...`: the line ends with the client's shutdown, not a newline."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.sendall(b"stop")
        s.shutdown(socket.SHUT_WR)
        loop_answers(sock, 1)
        assert read_reply(s) == "ok stop"


def test_drain_never_waits_for_the_queue(sock):
    """The loop's side: with the I/O thread holding the queue, drain returns at once, empty; the request is taken
    at the next tick."""
    with sock._lock:  # the I/O thread at this instant
        t0 = time.perf_counter()
        assert sock.drain() == []
        assert time.perf_counter() - t0 < 0.05
    assert sock.drain() == []


def test_a_silent_client_gets_a_clear_answer_at_its_deadline(sock, path, wall):
    s = silent(path)
    wait_for(lambda: sock.clients() == 1, "the client accepted")
    wall.t += 0.9
    s.settimeout(0.05)
    with pytest.raises(TimeoutError):
        s.recv(100)  # not yet: it has a second
    wall.t += 0.2
    assert read_reply(s) == (
        "error: no request within 1 s (hello, status, start [PROFILE], stop, reset, silence, history)"
    )
    s.close()
    wait_for(lambda: sock.clients() == 0, "the client let go")


def test_a_request_the_loop_never_takes_is_withdrawn_and_the_client_told_nothing_was_done(sock, path, wall):
    """An error answer means nothing was done: the request leaves the queue before the client hears of it."""
    ask = Ask(path, "start wave")
    wait_for(lambda: sock.pending() == 1, "the request queued")
    wall.t += 3.1
    assert ask.result() == "error: the service did not take the command within 3 s: nothing was done"
    assert sock.pending() == 0 and sock.drain() == []


def test_a_line_too_long_is_refused(sock, path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.sendall(b"x" * 2000)
        assert read_reply(s) == "error: a request is one line of at most 1024 bytes"
    assert sock.pending() == 0


def test_beyond_max_clients_the_oldest_silent_one_makes_way(path, wall):
    """Silent clients cannot lock anyone out: a newcomer beyond the limit lets the oldest silent one go."""
    sock = ControlSocket(path, wall=wall, max_clients=3)
    try:
        quiet = [silent(path) for _ in range(3)]
        wait_for(lambda: sock.clients() == 3, "three clients")
        ask = Ask(path, "stop")
        assert read_reply(quiet[0]) == "busy: 3 clients are connecting at once; try again"
        loop_answers(sock, 1)
        assert ask.result() == "ok stop"
        wait_for(lambda: sock.clients() == 2, "the stop's connection closed")  # the two younger silent ones wait on
        for q in quiet:
            q.close()
    finally:
        sock.close()


def test_a_full_queue_says_busy_but_a_stop_always_gets_in(path, wall):
    sock = ControlSocket(path, wall=wall, max_queued=2)
    try:
        first = Ask(path, "status")
        wait_for(lambda: sock.pending() == 1, "the first request queued")
        second = silent(path)  # raw sockets: the answer to one try (send_command would ask again)
        second.sendall(b"start wave\n")
        wait_for(lambda: sock.pending() == 2, "two requests queued")
        third = silent(path)
        third.sendall(b"status\n")
        assert read_reply(third) == "busy: 2 requests are waiting for the service; try again"
        stop = Ask(path, "stop")
        # the stop takes the place of the newest request that is not a stop, which is refused: stop wins, and a
        # refusal is not a "busy" that `legsleeve start` would ask again after
        assert read_reply(second) == "refused: a stop went first; nothing was done"
        taken = loop_answers(sock, 2)
        assert [r.line for r in taken] == ["status", "stop"]
        assert first.result() == "ok status" and stop.result() == "ok stop"
    finally:
        sock.close()


def test_send_command_asks_again_after_busy(path, wall):
    """`legsleeve stop` does not give up on a "busy": it asks again until its timeout."""
    connections = []

    def count(uid, gid):
        connections.append(uid)
        return True

    sock = ControlSocket(path, wall=wall, max_queued=1, allow=count)
    try:
        Ask(path, "status")
        wait_for(lambda: sock.pending() == 1, "the queue full")
        retrying = Ask(path, "reset")
        wait_for(lambda: len(connections) >= 3, "the reset told busy and asking again")
        loop_answers(sock, 1)  # the status; the queue has room again
        (again,) = loop_answers(sock, 1)
        assert again.line == "reset" and retrying.result() == "ok reset"
    finally:
        sock.close()


def test_stop_waits_its_turn_in_a_full_listen_queue(path):
    """The I/O thread held up (here: in its peer check) while 64 connections fill the listen queue: `legsleeve stop`
    waits in the kernel for room, instead of failing at once with EAGAIN, and gets its answer once the thread goes
    on. Meanwhile the loop's drain returns at once."""
    held, checked = threading.Event(), threading.Event()

    def slow_check(uid, gid):
        checked.set()
        held.wait(10)
        return True

    sock = ControlSocket(path, allow=slow_check)
    crowd = []
    try:
        crowd.append(silent(path))
        wait_for(checked.is_set, "the thread held in its check")
        while True:  # fill the listen queue
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(path)
            except BlockingIOError:
                s.close()
                break
            crowd.append(s)
        assert len(crowd) > 60 and sock.drain() == []
        stop = Ask(path, "stop")
        time.sleep(0.05)  # let it reach the kernel's queue (not a timing assertion)
        assert not stop.done  # waiting, not failed
        held.set()
        loop_answers(sock, 1)
        assert stop.result() == "ok stop"
    finally:
        held.set()
        for s in crowd:
            s.close()
        sock.close()


# -- SO_PEERCRED -------------------------------------------------------------------------------------------------

GROUP = 901  # the `legsleeve` group, on a made-up system


@pytest.mark.parametrize(
    "uid, gid, supplementary, allowed",
    [
        (0, 0, [], True),  # root
        (990, 990, [], True),  # the service's own user
        (1001, GROUP, [], True),  # primary group legsleeve
        (1002, 1002, [1002, 27, GROUP], True),  # legsleeve among its supplementary groups
        (1003, 1003, [1003, 27], False),  # anybody else
        (4242, 4242, KeyError, False),  # a uid with no passwd entry
    ],
)
def test_peer_policy(uid, gid, supplementary, allowed):
    def groups_of(u, g):
        if supplementary is KeyError:
            raise KeyError(u)
        return supplementary

    assert PeerPolicy(own_uid=990, group_gid=GROUP, groups_of=groups_of).allows(uid, gid) is allowed


def test_peer_policy_without_the_group_allows_root_and_the_service_only():
    policy = PeerPolicy(own_uid=990, group_gid=None, groups_of=lambda u, g: [GROUP])
    assert [policy.allows(u, u) for u in (0, 990, 1001)] == [True, True, False]


def test_peer_policy_default_is_this_process_and_the_systems_group():
    policy = PeerPolicy.default()
    assert policy.own_uid == os.geteuid() and policy.allows(os.geteuid(), os.getegid())


def test_a_peer_the_policy_refuses_is_told_so_and_its_command_never_reaches_the_loop(path):
    seen = []

    def nobody(uid, gid):
        seen.append((uid, gid))
        return False

    sock = ControlSocket(path, allow=nobody)
    try:
        reply = send_command("stop", path)
        assert reply == (
            f"refused: uid {os.getuid()} may not control the sleeve (root, the service's user, group legsleeve)"
        )
        assert seen == [(os.getuid(), os.getgid())]  # the kernel's word for who connected, not the client's
        assert sock.pending() == 0 and sock.drain() == []
    finally:
        sock.close()


# -- one serve at a time -----------------------------------------------------------------------------------------


def test_a_second_socket_on_the_same_path_refuses_and_leaves_the_first_serving(sock, path, tmp_path):
    inode = os.stat(path).st_ino
    with pytest.raises(AlreadyServing, match=rf"pid {os.getpid()}\) holds .*control.lock and serves"):
        ControlSocket(path)
    assert os.stat(path).st_ino == inode  # neither unlinked nor bound again
    ask = Ask(path, "status")
    loop_answers(sock, 1)
    assert ask.result() == "ok status"
    assert (tmp_path / "control.lock").exists()


def test_after_a_close_the_next_one_may_serve_and_a_stale_socket_is_replaced(path):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)  # a socket file left by a killed service: nobody holds the lock
    stale.close()
    first = ControlSocket(path)
    first.close()
    assert not os.path.exists(path)
    second = ControlSocket(path)
    try:
        ask = Ask(path, "status")
        loop_answers(second, 1)
        assert ask.result() == "ok status"
    finally:
        second.close()


def test_a_second_serve_refuses_before_it_opens_the_rig(path, monkeypatch, capsys):
    """`legsleeve serve` while one runs: exit 1, a clear message, no pin touched, the first socket intact."""
    from legsleeve.hw import backends

    def must_not_open(*a, **kw):
        raise AssertionError("the second serve opened the rig")

    monkeypatch.setattr(backends, "open_sim", must_not_open)
    first = ControlSocket(path)
    try:
        inode = os.stat(path).st_ino
        code = main(["serve", "--sim", "--config", str(CONFIG_DIR), "--socket", path])
        err = capsys.readouterr().err
        assert code == 1 and "another `legsleeve serve`" in err and "nothing was actuated" in err
        assert os.stat(path).st_ino == inode
    finally:
        first.close()


# -- the I/O thread's own errors ---------------------------------------------------------------------------------


def test_an_error_with_one_client_drops_that_client_only(path, caplog):
    calls = []

    def flaky(uid, gid):
        calls.append(uid)
        if len(calls) == 1:
            raise RuntimeError("a bug in the policy")
        return True

    sock = ControlSocket(path, allow=flaky)
    try:
        with pytest.raises(ConnectionError):
            send_command("status", path)
        ask = Ask(path, "stop")
        loop_answers(sock, 1)
        assert ask.result() == "ok stop"
        assert "a client's request failed" in caplog.text
    finally:
        sock.close()


def test_an_unexpected_error_in_the_thread_drops_its_clients_and_stop_still_works(sock, path, caplog):
    real = sock._expire
    raised = threading.Event()

    def broken():
        if not raised.is_set():
            raised.set()
            raise OSError("something no one foresaw")
        real()

    sock._expire = broken  # type: ignore[method-assign]
    wait_for(raised.is_set, "the error")
    ask = Ask(path, "stop")
    loop_answers(sock, 1)
    assert ask.result() == "ok stop"
    assert "unexpected error" in caplog.text


def test_a_removed_socket_file_is_bound_again(sock, path, wall):
    os.unlink(path)
    wall.t += 1.1  # the thread looks at the path every second
    wait_for(lambda: os.path.exists(path), "the socket bound again")
    ask = Ask(path, "stop")
    loop_answers(sock, 1)
    assert ask.result() == "ok stop"


# -- the JSON form, and subscriptions ------------------------------------------------------------------------------


def ask_raw(path: str, data: bytes) -> str:
    """Send `data` as it is, read the one answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_reply(s)


def test_a_json_request_gets_a_json_answer_with_its_id(sock, path):
    ask = Ask(path, '{"v": 1, "cmd": "start", "profile": "wave", "intensity_pct": 80, "id": 42}')
    (request,) = loop_answers(sock, 1, reply=lambda r: protocol.ok(r.verb, "starting wave at 80 %"))
    assert request.verb == "start" and request.command.args == {"profile": "wave", "intensity_pct": 80}
    assert json.loads(ask.result()) == {"v": 1, "id": 42, "ok": True, "cmd": "start", "text": "starting wave at 80 %"}


@pytest.mark.parametrize(
    "data, code",
    [
        (b'{"v": 1, "cmd": "status", "x": "' + b"y" * 2000 + b'"}\n', "too-long"),
        (b'{"v": 1, "cmd": "stat\n', "bad-request"),
        (b'{"v": 1, "cmd": "dance"}\n', "unknown-command"),
        (b'{"v": 1, "cmd": "start", "intensity_pct": 1000}\n', "out-of-range"),
        (b'{"v": 9, "cmd": "stop"}\n', "unsupported-version"),
        (b'{"v": 1, "cmd": "stop", "why": "because"}\n', "bad-request"),
        (b"{\xff\xfe\n", "bad-request"),
        (b'{"v": 1, "cmd": "status"}' + b"\0" * 10 + b"\n", "bad-request"),
    ],
)
def test_what_is_not_a_request_is_answered_by_the_thread_and_never_reaches_the_loop(sock, path, data, code):
    reply = json.loads(ask_raw(path, data))
    assert reply["ok"] is False and reply["error"] == code and reply["v"] == 1
    assert sock.pending() == 0 and sock.drain() == []  # the loop never sees it


def test_json_answers_for_a_full_queue_and_the_stop_that_goes_first(path, wall):
    sock = ControlSocket(path, wall=wall, max_queued=1)
    try:
        start = silent(path)
        start.sendall(b'{"v": 1, "cmd": "start", "id": "s"}\n')
        wait_for(lambda: sock.pending() == 1, "the start queued")
        assert json.loads(ask_raw(path, b'{"v": 1, "cmd": "status"}\n'))["error"] == "busy"
        stop = Ask(path, '{"v": 1, "cmd": "stop"}')
        assert json.loads(read_reply(start)) == {
            "v": 1, "id": "s", "ok": False, "cmd": "start", "error": "refused",
            "text": "refused: a stop went first; nothing was done",
        }  # fmt: skip
        loop_answers(sock, 1)
        assert json.loads(stop.result())["ok"] is True
    finally:
        sock.close()


def _subscribe(path: str, hz: float = 2.0) -> tuple[socket.socket, dict]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(json.dumps({"v": 1, "cmd": "subscribe", "hz": hz}).encode() + b"\n")
    s.settimeout(5.0)
    return s, json.loads(_line(s))


def _line(s: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def test_a_subscriber_gets_the_latest_status_at_its_own_pace(sock, path, wall):
    s, ack = _subscribe(path, hz=2.0)
    try:
        assert ack == {"v": 1, "id": None, "ok": True, "cmd": "subscribe", "text": "subscribed: the status 2 times a "
                       "second", "hz": 2.0}  # fmt: skip
        wait_for(lambda: sock.subscribed == 1, "the subscription")
        sock.publish(1, {"state": "idle", "n": 1})
        wall.t += 0.5
        assert json.loads(_line(s)) == {"v": 1, "type": "status", "seq": 1, "status": {"state": "idle", "n": 1}}
        for n in (2, 3, 4):  # three snapshots between two frames: the subscriber gets the latest
            sock.publish(n, {"state": "running", "n": n})
        wall.t += 0.5
        assert json.loads(_line(s))["seq"] == 4
    finally:
        s.close()
    wait_for(lambda: sock.subscribed == 0, "the subscriber gone once it closed")


def test_a_subscriber_that_never_reads_holds_nothing_up_and_is_let_go(sock, path, wall):
    """Its frames pile up in the kernel until it is full; the thread then skips frames, answers others meanwhile,
    and lets the subscriber go once it has taken nothing for SUBSCRIBER_STALL_S."""
    s, _ = _subscribe(path, hz=10.0)
    try:
        wait_for(lambda: sock.subscribed == 1, "the subscription")
        sock.publish(1, {"big": "x" * 4_000_000})  # more than the socket's buffers hold
        wall.t += 0.2
        ask = Ask(path, "status")
        loop_answers(sock, 1)
        assert ask.result() == "ok status"  # the others are served meanwhile
        assert sock.subscribed == 1
        wall.t += sock.subscriber_stall_s + 1
        wait_for(lambda: sock.subscribed == 0, "the stalled subscriber let go")
    finally:
        s.close()


def test_subscribers_beyond_the_limit_are_told_busy(path, wall):
    sock = ControlSocket(path, wall=wall, max_subscribers=2)
    subs = []
    try:
        subs = [_subscribe(path)[0] for _ in range(2)]
        third, reply = _subscribe(path)
        third.close()
        assert reply["ok"] is False and reply["error"] == "busy" and "2 subscribers" in reply["text"]
    finally:
        for s in subs:
            s.close()
        sock.close()


def test_a_subscriber_that_talks_instead_of_listening_is_let_go(sock, path):
    s, _ = _subscribe(path)
    try:
        wait_for(lambda: sock.subscribed == 1, "the subscription")
        s.sendall(b"x" * 10_000)
        wait_for(lambda: sock.subscribed == 0, "the chatty subscriber let go")
    finally:
        s.close()


def test_a_client_that_never_reads_a_long_answer_loses_it(sock, path, wall):
    s = silent(path)
    s.sendall(b'{"v": 1, "cmd": "history"}\n')
    loop_answers(sock, 1, reply=lambda r: protocol.ok("history", "a lot", sessions=["x" * 1000] * 5000))
    s.settimeout(5.0)
    assert s.recv(1, socket.MSG_PEEK) == b"{"  # the answer on its way (and stuck: the client reads no further)
    wall.t += 2.5  # REPLY_SEND_S
    wait_for(lambda: sock.clients() == 0, "the unread answer given up")
    s.close()


def test_the_client_side_speaks_json(sock, path):
    from legsleeve.app.control import Subscription, request

    done = {}

    def ask():
        done["reply"] = request("start", path, profile="wave", minutes=12.5)

    import threading

    t = threading.Thread(target=ask)
    t.start()
    (r,) = loop_answers(sock, 1, reply=lambda r: protocol.ok("start", "starting wave for 12.5 min"))
    t.join(10)
    assert r.command.args == {"profile": "wave", "minutes": 12.5}
    assert done["reply"]["text"] == "starting wave for 12.5 min" and done["reply"]["v"] == 1
    sock.publish(7, {"state": "idle"})
    with Subscription(path, hz=10) as sub:
        assert sub.ack["ok"]
        frame = next(f for f in sub.frames(quiet_s=5.0) if f is not None)
        assert frame["seq"] == 7 and frame["status"] == {"state": "idle"}


# -- the preparer: what a request needs from disk, read outside the loop and the I/O thread -------------------------


def test_the_preparer_hands_the_loop_what_it_read_or_answers_itself(sock, path):
    def prepare(command):
        if command.args.get("profile") == "bad":
            raise protocol.ProtocolError("refused", "refused: bad.yaml:3: cycle[0].hold_s: must be > 0 s (got -3)")
        return f"read {command.args.get('profile')}"

    sock.prepare_with(prepare, ("start", "hello"))
    assert Ask(path, "start bad").result() == "refused: bad.yaml:3: cycle[0].hold_s: must be > 0 s (got -3)"
    assert sock.pending() == 0  # never reached the loop
    good = Ask(path, "start wave")
    (request,) = loop_answers(sock, 1)
    assert request.prepared == "read wave" and good.result() == "ok start wave"
    status = Ask(path, "status")  # not a verb it prepares: straight to the loop
    (request,) = loop_answers(sock, 1)
    assert request.prepared is None and status.result() == "ok status"


def test_a_slow_preparer_holds_up_no_stop_and_the_stop_refuses_the_start_it_was_reading(sock, path):
    """A start whose file takes long to read (a slow SD card): a stop that comes meanwhile goes straight to the
    loop, and the start never reaches it (stop wins, SAFE-12)."""
    reading, go_on = threading.Event(), threading.Event()

    def prepare(command):
        reading.set()
        go_on.wait(10.0)
        return "a profile"

    sock.prepare_with(prepare, ("start",))
    start = Ask(path, "start wave")
    wait_for(reading.is_set, "the preparer reading the start's profile")
    stop = Ask(path, "stop")
    (taken,) = loop_answers(sock, 1)
    assert taken.verb == "stop" and stop.result() == "ok stop"
    assert start.result() == "refused: a stop came at the same time; nothing was started"
    go_on.set()
    wait_for(lambda: sock._in_prep is None, "the preparer done")
    assert sock.pending() == 0 and sock.drain() == []


def test_a_request_still_being_prepared_at_its_deadline_is_withdrawn(sock, path, wall):
    reading, go_on = threading.Event(), threading.Event()

    def prepare(command):
        reading.set()
        go_on.wait(10.0)
        return "a scan"

    sock.prepare_with(prepare, ("hello",))
    hello = Ask(path, "hello")
    wait_for(reading.is_set, "the preparer on it")
    wall.t += 3.1
    assert hello.result() == "error: the service did not take the command within 3 s: nothing was done"
    go_on.set()
    wait_for(lambda: sock._in_prep is None, "the preparer done")
    assert sock.pending() == 0 and sock.drain() == []


def test_stop_and_subscribe_are_never_prepared(sock):
    with pytest.raises(ValueError):
        sock.prepare_with(lambda command: None, ("start", "stop"))
