"""The control socket: the service's local socket, served by a thread of its own so that the loop never waits on a
client; and the client side (`legsleeve start|stop|status|...`, `watch`, a web process).

The loop never waits on a client, and never makes a socket call. The I/O thread accepts, checks who is asking
(SO_PEERCRED), reads one request per connection under a deadline, checks it against the protocol
(`legsleeve.app.protocol`: what is not a request is answered here and never reaches the loop), and hands each
request over in a bounded queue. The loop takes what is waiting once a tick (`drain`, which never blocks), answers
from its own state (`answer`: plain data), and now and then `publish`es a status snapshot; the thread encodes the
answers and the snapshots and sends them, never blocking on a client: a client that does not read loses what it was
sent (an answer after `REPLY_SEND_S`, a subscription's frames are skipped and the subscriber is let go after
`SUBSCRIBER_STALL_S` without progress). An error answer always means that nothing was done.

A request that needs files read before the loop can answer it (the service's `start` loads its profile from disk,
`hello` scans the profiles directory) is handed, once checked, to a second thread of the socket's own, the preparer
(`prepare_with`): it runs the service's `prepare` on the request outside the loop and outside the I/O thread, so a
slow SD card holds up neither a tick nor a stop, and queues the request for the loop with what it read (`prepared`),
or answers it when that failed (nothing was done). A stop that comes in meanwhile refuses every start still being
prepared: stop wins, as it does within one tick (SAFE-12).

`ControlSocket` also holds the single-instance lock: a second `serve` refuses before it touches anything.
"""

from __future__ import annotations

import fcntl
import grp
import json
import logging
import os
import pwd
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from legsleeve.app import protocol
from legsleeve.app.protocol import Command, ProtocolError
from legsleeve.core.clock import Clock, MonotonicClock
from legsleeve.errors import SleeveError

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/run/legsleeve/control.sock"
MAX_LINE = protocol.MAX_LINE  # bytes a request may have
MAX_CLIENTS = 16  # connections still sending their request; a newcomer beyond that lets the oldest one go
CLIENT_DEADLINE_S = 1.0  # wall time a client has to send its request
MAX_QUEUED = 32  # requests waiting for the loop; beyond that "busy", except a stop, which always gets in
REPLY_DEADLINE_S = 3.0  # wall time the loop has to take a request (it drains every tick), under the client's 5 s
REPLY_SEND_S = 2.0  # wall time an answer may take to leave (a client that does not read it loses it)
MAX_SUBSCRIBERS = 8  # subscriptions at once; beyond that "busy"
SUBSCRIBER_STALL_S = 10.0  # a subscriber that takes nothing of a frame for this long is let go
SUBSCRIBER_INPUT = 4096  # bytes a subscriber may send after its request (ignored); beyond that it is let go
BUSY_RETRY_S = 0.05  # how soon the client asks again after a "busy"


def control_socket_path() -> str:
    return os.environ.get("LEGSLEEVE_CONTROL", DEFAULT_SOCKET)


class AlreadyServing(SleeveError, RuntimeError):
    """Another `legsleeve serve` holds the control socket's lock: this one must not touch the sleeve."""


def _groups_of(uid: int, gid: int) -> list[int]:
    return os.getgrouplist(pwd.getpwuid(uid).pw_name, gid)


@dataclass(frozen=True)
class PeerPolicy:
    """Who may command the sleeve over the control socket: root, the service's own user, and members of the
    `legsleeve` group (by the peer's primary group or its supplementary groups). The socket file's mode says the
    same; this check holds even when that mode or the directory's is wrong."""

    own_uid: int
    group_gid: int | None  # the `legsleeve` group, when the system has one
    groups_of: Callable[[int, int], list[int]] = _groups_of  # (uid, primary gid) -> every group of that user

    @classmethod
    def default(cls) -> PeerPolicy:
        try:
            gid: int | None = grp.getgrnam("legsleeve").gr_gid
        except KeyError:
            gid = None
        return cls(os.geteuid(), gid)

    def allows(self, uid: int, gid: int) -> bool:
        if uid in (0, self.own_uid):
            return True
        if self.group_gid is None:
            return False
        if gid == self.group_gid:
            return True
        try:
            return self.group_gid in self.groups_of(uid, gid)
        except (KeyError, OSError):  # a uid with no passwd entry is nobody we know
            return False


@dataclass(eq=False)
class Request:
    """One checked request from one client. `reply` (plain data, see `legsleeve.app.protocol.ok`/`error`) is set
    once: by the loop, or by the I/O thread when it refuses."""

    line: str  # as it came (a JSON object, or a text command)
    command: Command
    received_s: float  # on the control socket's clock (the rig's, in tests)
    reply: dict[str, Any] | None = None
    prepared: Any = None  # what the preparer read for the loop (a profile loaded from its file), see prepare_with
    withdrawn: bool = False  # answered before the preparer was done: it must not reach the loop (under the lock)

    @property
    def verb(self) -> str:
        return self.command.cmd


@dataclass(eq=False)
class _Client:
    sock: socket.socket
    deadline: float  # wall time: for its request, then for the loop to take it, then for the answer to leave
    buf: bytes = b""
    request: Request | None = None
    out: bytes = b""  # what is still to be sent
    raw: str = ""


@dataclass(eq=False)
class _Subscriber:
    sock: socket.socket
    period_s: float
    next_s: float  # wall time of its next frame
    progress_s: float  # wall time it last took bytes (or subscribed)
    out: bytes = b""
    sent_seq: int = -1  # the last snapshot it was sent
    junk: int = 0  # bytes it sent after its request


class ControlSocket:
    """The local control socket (see the module's docstring).

    Opening it takes the single-instance lock (`control.lock` beside the socket) before anything else, and starts
    the I/O thread. `allow(uid, gid)` says which peers may speak (default: `PeerPolicy.default().allows`); `clock`
    stamps requests (`received_s`); `wall` times the deadlines. Both are injected by tests.
    """

    def __init__(
        self,
        path: str,
        *,
        allow: Callable[[int, int], bool] | None = None,
        clock: Clock | None = None,
        wall: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
        client_deadline_s: float = CLIENT_DEADLINE_S,
        max_queued: int = MAX_QUEUED,
        reply_deadline_s: float = REPLY_DEADLINE_S,
        max_subscribers: int = MAX_SUBSCRIBERS,
        subscriber_stall_s: float = SUBSCRIBER_STALL_S,
    ):
        self.path = path
        self._allow = allow or PeerPolicy.default().allows
        self._clock = clock or MonotonicClock()
        self._wall = wall
        self.max_clients, self.client_deadline_s = max_clients, client_deadline_s
        self.max_queued, self.reply_deadline_s = max_queued, reply_deadline_s
        self.max_subscribers, self.subscriber_stall_s = max_subscribers, subscriber_stall_s
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _take_lock(Path(path).with_suffix(".lock"), path)  # before the stale socket is touched
        self._queue: deque[Request] = deque()  # waiting for the loop; guarded by _lock
        self._lock = threading.Lock()
        self._readers: dict[int, _Client] = {}  # still sending their request, oldest first (I/O thread only)
        self._waiting: dict[int, _Client] = {}  # their request handed over, waiting for the answer (I/O thread only)
        self._writers: dict[int, _Client] = {}  # their answer on its way out, then closed (I/O thread only)
        self._subscribers: dict[int, _Subscriber] = {}  # (I/O thread only)
        self.subscribed = 0  # how many subscribers there are: the loop reads it to know whether to publish
        self._latest: tuple[int, dict[str, Any]] | None = None  # the loop's last snapshot (one reference: atomic)
        self._frame: tuple[int, bytes] = (-1, b"")  # the latest snapshot, encoded once for every subscriber
        self._closed = False
        self._prepare: Callable[[Command], Any] | None = None  # see prepare_with
        self._prepared_verbs: frozenset[str] = frozenset()
        self._preparing: deque[Request] = deque()  # waiting for the preparer; guarded by _lock
        self._in_prep: Request | None = None  # the one the preparer is on (under _lock)
        self._prep_wake = threading.Condition(self._lock)
        self._preparer: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._inode = 0
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            self._listen()
        except BaseException:
            self._release()
            raise
        self._thread = threading.Thread(target=self._run, name="control-socket", daemon=True)
        self._thread.start()

    def prepare_with(self, prepare: Callable[[Command], Any], verbs: tuple[str, ...]) -> None:
        """Run `prepare(command)` on every request of `verbs` before the loop sees it, in the preparer thread (never
        the loop's, never the I/O thread's: it may read files). What it returns is the request's `prepared`; a
        ProtocolError it raises is the request's answer, and the loop never sees the request. A `stop` refuses the
        starts still being prepared. Call once, before clients come."""
        if "stop" in verbs or "subscribe" in verbs:
            raise ValueError("stop and subscribe never wait for the preparer")
        self._prepare, self._prepared_verbs = prepare, frozenset(verbs)
        if self._preparer is None:
            self._preparer = threading.Thread(target=self._prepare_loop, name="control-prepare", daemon=True)
            self._preparer.start()

    # -- the loop's side: never waits, never touches a socket ------------------------------------------------------
    def drain(self) -> list[Request]:
        """Every request waiting, oldest first. Never blocks: if the I/O thread holds the queue at this instant,
        the requests are taken at the next tick."""
        if not self._lock.acquire(blocking=False):
            return []
        try:
            taken = list(self._queue)
            self._queue.clear()
        finally:
            self._lock.release()
        return taken

    def answer(self, request: Request, reply: dict[str, Any]) -> None:
        """The loop's answer to a request it drained (plain data; the I/O thread encodes and sends it)."""
        request.reply = reply

    def publish(self, seq: int, status: dict[str, Any]) -> None:
        """The loop's latest status snapshot, numbered (`seq` grows): subscribers get it at their own pace. The
        snapshot must not change after this (the I/O thread encodes it). One assignment: nothing waits."""
        self._latest = (seq, status)

    def pending(self) -> int:
        """How many requests wait for the loop."""
        with self._lock:
            return len(self._queue)

    def clients(self) -> int:
        """How many connections are open: sending their request, waiting for or receiving their answer."""
        return len(self._readers) + len(self._waiting) + len(self._writers)

    def close(self) -> None:
        """Stop the thread, close every connection, unlink the socket and release the lock. Twice is once."""
        if self._closed:
            return
        self._closed = True
        self._wake()
        with self._prep_wake:
            self._prep_wake.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        if self._preparer is not None and self._preparer is not threading.current_thread():
            self._preparer.join(timeout=2.0)  # a daemon: one stuck in a read does not hold the process up
        for conn in [*self._readers.values(), *self._waiting.values(), *self._writers.values()]:
            conn.sock.close()
        for sub in self._subscribers.values():
            sub.sock.close()
        self._readers.clear()
        self._waiting.clear()
        self._writers.clear()
        self._subscribers.clear()
        self.subscribed = 0
        self._release()

    def _release(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            try:
                if os.stat(self.path).st_ino == self._inode:  # ours: we hold the lock, nobody else bound there
                    os.unlink(self.path)
            except FileNotFoundError:
                pass
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()
        os.close(self._lock_fd)  # the lock goes with it; the lock file stays (unlinking it would race)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # full (the thread will wake anyway) or closed
            pass

    # -- the I/O thread ------------------------------------------------------------------------------------------
    def _listen(self) -> None:
        """Bind the socket afresh. Only the lock's holder gets here, so a file at the path is a stale one. The socket
        is bound at a name beside the path, made private and listening, and only then renamed onto the path: a client
        never finds the path bound yet not listening (it would be refused), nor open to all for a moment."""
        fresh = self.path + ".new"
        try:
            os.unlink(fresh)  # left by a run that died between its bind and its rename
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            listener.bind(fresh)
            os.chmod(fresh, 0o660)  # the service's user and group only
            listener.listen(64)
            listener.setblocking(False)
            os.replace(fresh, self.path)  # atomic: the stale file, if any, goes as the live one arrives
        except BaseException:
            listener.close()
            try:
                os.unlink(fresh)
            except FileNotFoundError:
                pass
            raise
        self._listener, self._inode = listener, os.stat(self.path).st_ino
        self._sel.register(listener, selectors.EVENT_READ)
        self._checked_path = self._wall()

    def _run(self) -> None:
        backoff = 0.1
        while not self._closed:
            try:
                self._turn()
                backoff = 0.1
            except Exception:  # nothing here may end the thread: `stop` must keep working
                if self._closed:
                    return
                log.exception("control socket: unexpected error; its clients are dropped, the listener kept")
                time.sleep(backoff)  # this thread's, never the loop's; a lasting fault logs ever more slowly
                backoff = min(backoff * 2, 5.0)
                self._drop_all()

    def _drop_all(self) -> None:
        """After an error nobody foresaw: every connection goes (without an answer: a request already queued stays,
        so a stop still acts); the listener and the connections waiting in its backlog stay."""
        for conn in [*self._readers.values(), *self._waiting.values(), *self._writers.values()]:
            try:
                self._forget(conn)
            except Exception:
                log.exception("control socket: dropping a client")
        for sub in list(self._subscribers.values()):
            try:
                self._unsubscribe(sub)
            except Exception:
                log.exception("control socket: dropping a subscriber")
        self._readers.clear()
        self._waiting.clear()
        self._writers.clear()
        self._subscribers.clear()
        self.subscribed = 0

    def _relisten(self) -> None:
        try:
            if self._listener is not None:
                self._sel.unregister(self._listener)
                self._listener.close()
                self._listener = None
            self._listen()
        except Exception:  # the next turn tries again
            log.exception("control socket: cannot listen on %s", self.path)

    def _turn(self) -> None:
        if self._listener is None:
            self._relisten()
        now = self._wall()
        timeout = 0.01 if self._waiting or self._writers or any(s.out for s in self._subscribers.values()) else 0.5
        if self._readers:
            timeout = min(timeout, max(0.0, min(c.deadline for c in self._readers.values()) - now))
        if self._subscribers:
            timeout = min(timeout, max(0.0, min(s.next_s for s in self._subscribers.values()) - now))
        for key, _ in self._sel.select(timeout):
            if key.fileobj is self._wake_r:
                try:
                    self._wake_r.recv(64)
                except BlockingIOError:
                    pass
            elif key.fileobj is self._listener:
                self._accept()
            elif (client := self._readers.get(key.fd)) is not None:
                self._guarded(client, self._read)
            elif (sub := self._subscribers.get(key.fd)) is not None:
                self._subscriber_input(sub)
        self._send_answers()
        self._flush_writers()
        self._feed_subscribers()
        self._expire()
        self._check_path()

    def _guarded(self, client: _Client, step: Callable[[_Client], None]) -> None:
        """One client's trouble is that client's: log it, drop it, serve the others."""
        try:
            step(client)
        except Exception:
            log.exception("control socket: a client's request failed; dropped")
            self._forget(client)

    def _accept(self) -> None:
        for _ in range(64):  # the listen queue's length; then the clients already in get their turn
            assert self._listener is not None
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            client = _Client(sock, self._wall() + self.client_deadline_s)
            self._guarded(client, self._admit)

    def _admit(self, client: _Client) -> None:
        sock = client.sock
        pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if not self._allow(uid, gid):
            log.warning("control socket: refused pid %d (uid %d, gid %d)", pid, uid, gid)
            self._refuse(
                client,
                "not-allowed",
                f"refused: uid {uid} may not control the sleeve (root, the service's user, group legsleeve)",
            )
            return
        if len(self._readers) >= self.max_clients:
            oldest = next(iter(self._readers.values()))
            self._refuse(oldest, "busy", f"busy: {self.max_clients} clients are connecting at once; try again")
        self._readers[sock.fileno()] = client
        self._sel.register(sock, selectors.EVENT_READ)
        self._read(client)  # the request is usually there already

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(MAX_LINE + 1 - len(client.buf))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._forget(client)
            return
        client.buf += data
        line, newline, _ = client.buf.partition(b"\n")
        if newline or (not data and line.strip()):  # a line, or a last line closed by the client's shutdown
            self._submit(client, line.decode(errors="replace").strip())
        elif not data:
            self._forget(client)  # gone without a word
        elif len(client.buf) > MAX_LINE:
            self._refuse(client, "too-long", f"error: a request is one line of at most {MAX_LINE} bytes")

    def _submit(self, client: _Client, line: str) -> None:
        client.raw = line
        try:
            command = protocol.parse(line)
        except ProtocolError as exc:  # not a request: answered here, never seen by the loop
            self._say(client, protocol.encode_error(exc, line))
            return
        if command.cmd == "subscribe":
            self._subscribe(client, command)
            return
        self._sel.unregister(client.sock)
        del self._readers[client.sock.fileno()]
        request = Request(line, command, self._clock.now())
        client.request, client.deadline = request, self._wall() + self.reply_deadline_s
        self._waiting[client.sock.fileno()] = client
        with self._lock:
            if request.verb == "stop":
                self._stop_preparing_starts()
            if request.verb in self._prepared_verbs:
                if len(self._preparing) >= self.max_queued:
                    request.reply = protocol.error(
                        "busy", f"busy: {self.max_queued} requests are waiting for the service; try again", request.verb
                    )
                    return
                self._preparing.append(request)
                self._prep_wake.notify()
                return
            if len(self._queue) >= self.max_queued:
                # Full. A stop still gets in (SAFE-12), in place of the newest request that is not a stop.
                victim = None
                if request.verb == "stop":
                    victim = next((r for r in reversed(self._queue) if r.verb != "stop"), None)
                if victim is None:
                    request.reply = (
                        protocol.ok("stop", "stop: already asked; the loop acts on it at its next tick")
                        if request.verb == "stop"
                        else protocol.error(
                            "busy", f"busy: {self.max_queued} requests are waiting for the service; try again"
                        )
                    )
                    return
                self._queue.remove(victim)
                # not "busy": no asking again
                victim.reply = protocol.error("refused", "refused: a stop went first; nothing was done", victim.verb)
            self._queue.append(request)

    def _stop_preparing_starts(self) -> None:
        """A stop came: every start still with the preparer is refused, and never reaches the loop (SAFE-12: stop
        wins over a start that came before it was acted on). Under the lock."""
        for r in [*self._preparing, *([self._in_prep] if self._in_prep is not None else [])]:
            if r.verb == "start" and not r.withdrawn:
                r.withdrawn = True
                r.reply = protocol.error(
                    "refused", "refused: a stop came at the same time; nothing was started", "start"
                )
        self._preparing = deque(r for r in self._preparing if not r.withdrawn)

    def _prepare_loop(self) -> None:
        """The preparer thread: one request at a time, from `_preparing` to the loop's queue (or answered)."""
        while True:
            with self._prep_wake:
                while not self._preparing and not self._closed:
                    self._prep_wake.wait()
                if self._closed:
                    return
                request = self._in_prep = self._preparing.popleft()
            assert self._prepare is not None
            failure: dict[str, Any] | None = None
            prepared: Any = None
            try:
                prepared = self._prepare(request.command)  # the lock is not held: the loop's drain never waits on it
            except ProtocolError as exc:
                failure = protocol.error(exc.code, exc.text, request.verb)
            except Exception:  # a bug: this request fails, the thread goes on
                log.exception("control socket: preparing %r failed", request.line)
                failure = protocol.error(
                    "internal", "error: the service could not prepare it; nothing was done", request.verb
                )
            with self._lock:
                self._in_prep = None
                if request.withdrawn:  # answered meanwhile (a stop, its deadline): the loop must not see it
                    continue
                if failure is not None:
                    request.reply = failure
                elif len(self._queue) >= self.max_queued:
                    request.reply = protocol.error(
                        "busy", f"busy: {self.max_queued} requests are waiting for the service; try again", request.verb
                    )
                else:
                    request.prepared = prepared
                    self._queue.append(request)

    def _send_answers(self) -> None:
        for client in list(self._waiting.values()):
            assert client.request is not None
            if client.request.reply is not None:
                self._say(client, self._encoded(client.request))

    def _encoded(self, request: Request) -> bytes:
        assert request.reply is not None
        try:
            return protocol.encode(request.reply, request.command)
        except (TypeError, ValueError):  # an answer that is not plain data: a bug, but no reason to go silent
            log.exception("control socket: cannot encode the answer to %r", request.line)
            return protocol.encode(
                protocol.error("internal", "error: the service could not encode its answer", request.verb),
                request.command,
            )

    def _expire(self) -> None:
        now = self._wall()
        for client in [c for c in self._readers.values() if now >= c.deadline]:
            self._refuse(
                client,
                "timeout",
                f"error: no request within {self.client_deadline_s:g} s ({', '.join(protocol.text_commands())})",
            )
        for client in [c for c in self._waiting.values() if now >= c.deadline]:
            assert client.request is not None
            with self._lock:
                request = client.request
                queued = request in self._queue or request in self._preparing or request is self._in_prep
                if queued:  # the loop will never see it
                    request.withdrawn = True
                    if request in self._queue:
                        self._queue.remove(request)
                    elif request in self._preparing:
                        self._preparing.remove(request)
            text = (
                f"error: the service did not take the command within {self.reply_deadline_s:g} s: nothing was done"
                if queued
                else "error: the service took the command but did not answer"
            )
            self._say(
                client, protocol.encode(protocol.error("not-taken", text, client.request.verb), client.request.command)
            )
        for client in [c for c in self._writers.values() if now >= c.deadline]:
            self._forget(client)  # it did not read its answer: it loses the rest

    def _check_path(self) -> None:
        """Someone removed or replaced the socket file: bind it again (we hold the lock, the path is ours)."""
        now = self._wall()
        if now - self._checked_path < 1.0:
            return
        self._checked_path = now
        try:
            same = os.stat(self.path).st_ino == self._inode
        except FileNotFoundError:
            same = False
        if not same:
            log.warning("control socket %s was removed or replaced: listening afresh", self.path)
            self._relisten()

    def _refuse(self, client: _Client, code: str, text: str) -> None:
        """Refuse a client before its request reached the loop, in the form it spoke (JSON if it began with `{`)."""
        raw = client.raw or client.buf[:1].decode(errors="replace")
        self._say(client, protocol.encode_error(ProtocolError(code, text), raw))

    def _say(self, client: _Client, data: bytes) -> None:
        """The answer to the client, then the connection ends. Never waits: what the client does not take within
        REPLY_SEND_S it loses."""
        fd = client.sock.fileno()
        if self._readers.pop(fd, None) is not None:
            self._sel.unregister(client.sock)
        self._waiting.pop(fd, None)
        client.out, client.deadline = data, self._wall() + REPLY_SEND_S
        self._writers[fd] = client
        self._flush(client)

    def _flush_writers(self) -> None:
        for client in list(self._writers.values()):
            self._flush(client)

    def _flush(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # gone: nothing more to say
            self._forget(client)
            return
        client.out = client.out[sent:]
        if not client.out:
            self._forget(client)

    def _forget(self, client: _Client) -> None:
        """Close a client. A request of its still in the queue stays there: a stop acts even if its client went."""
        fd = client.sock.fileno()
        if fd >= 0:
            if self._readers.pop(fd, None) is not None:
                self._sel.unregister(client.sock)
            self._waiting.pop(fd, None)
            self._writers.pop(fd, None)
        client.sock.close()

    # -- subscriptions ---------------------------------------------------------------------------------------------
    def _subscribe(self, client: _Client, command: Command) -> None:
        fd = client.sock.fileno()
        if len(self._subscribers) >= self.max_subscribers:
            self._say(
                client,
                protocol.encode(
                    protocol.error("busy", f"busy: {self.max_subscribers} subscribers already; try again", "subscribe"),
                    command,
                ),
            )
            return
        del self._readers[fd]  # stays registered for reading: its close is how it leaves
        hz = float(command.args.get("hz", protocol.HZ_DEFAULT))
        now = self._wall()
        ack = protocol.encode(protocol.ok("subscribe", f"subscribed: the status {hz:g} times a second", hz=hz), command)
        sub = _Subscriber(client.sock, 1.0 / hz, now, now, out=ack)
        self._subscribers[fd] = sub
        self.subscribed = len(self._subscribers)
        self._send_frame(sub)

    def _subscriber_input(self, sub: _Subscriber) -> None:
        try:
            data = sub.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        sub.junk += len(data)
        if not data or sub.junk > SUBSCRIBER_INPUT:  # closed, or talking where it should listen
            self._unsubscribe(sub)

    def _feed_subscribers(self) -> None:
        now = self._wall()
        latest = self._latest
        for sub in list(self._subscribers.values()):
            if sub.out:  # the last frame is still on its way: send on, and skip frames meanwhile
                self._send_frame(sub)
                if sub.out and now - sub.progress_s > self.subscriber_stall_s:
                    log.info("control socket: a subscriber took nothing for %g s: let go", self.subscriber_stall_s)
                    self._unsubscribe(sub)
                    continue
            if now < sub.next_s:
                continue
            sub.next_s = max(sub.next_s + sub.period_s, now)
            if sub.out or latest is None or latest[0] == sub.sent_seq:
                continue  # still sending, or nothing new from the loop
            seq, status = latest
            sub.out, sub.sent_seq = self._frame_bytes(seq, status), seq
            self._send_frame(sub)

    def _frame_bytes(self, seq: int, status: dict[str, Any]) -> bytes:
        if self._frame[0] != seq:
            try:
                encoded = protocol.frame(seq, status)
            except (TypeError, ValueError):
                log.exception("control socket: cannot encode a status")
                encoded = b""
            self._frame = (seq, encoded)
        return self._frame[1]

    def _send_frame(self, sub: _Subscriber) -> None:
        if not sub.out:
            return
        try:
            sent = sub.sock.send(sub.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._unsubscribe(sub)
            return
        if sent:
            sub.progress_s = self._wall()
        sub.out = sub.out[sent:]

    def _unsubscribe(self, sub: _Subscriber) -> None:
        fd = sub.sock.fileno()
        if fd >= 0 and self._subscribers.pop(fd, None) is not None:
            self._sel.unregister(sub.sock)
        sub.sock.close()
        self.subscribed = len(self._subscribers)


def _take_lock(lock_path: Path, socket_path: str) -> int:
    """The single-instance lock: an flock held for the life of the service. Raises AlreadyServing."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660)
    except PermissionError:  # not the service's user: a read-only descriptor can still test the lock
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise AlreadyServing(
            f"another `legsleeve serve` (pid {holder}) holds {lock_path} and serves {socket_path}: "
            "stop it first (systemctl stop legsleeve)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # for the next one's message
    except OSError:
        pass  # read-only: the lock holds all the same
    return fd


def serving_pid(socket_path: str | None = None) -> int | None:
    """The pid of the `legsleeve serve` holding the single-instance lock beside `socket_path`, or None when none
    does (or this user cannot tell: then the GPIO library's "busy" is the answer). Never takes the lock."""
    lock_path = Path(socket_path or control_socket_path()).with_suffix(".lock")
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # no lock file (no service since boot), or not ours to read
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(holder) if holder.isdigit() else -1
    finally:
        os.close(fd)  # closing releases a shared lock taken here
    return None


# -- the client side ---------------------------------------------------------------------------------------------


def send_command(command: str, path: str | None = None, timeout_s: float = 5.0) -> str:
    """A text command (`status`, `start wave`): one line out, one line back. See `request`."""
    return _retrying(lambda t: _ask(command + "\n", path or control_socket_path(), t), timeout_s, _text_busy)


def request(cmd: str, path: str | None = None, timeout_s: float = 5.0, **args: Any) -> dict[str, Any]:
    """A JSON request (`request("start", profile="wave", intensity_pct=80)`), its answer as a dict.

    While the service is busy - a "busy" answer, or its listen queue full under a flood of other clients - it asks
    again until `timeout_s` has passed (then the last answer, or TimeoutError). Raises OSError (FileNotFoundError,
    ConnectionRefusedError: no service; PermissionError: not in the group) and ConnectionError (closed without an
    answer)."""
    line = json.dumps({"v": protocol.VERSION, "cmd": cmd, **args}) + "\n"
    raw = _retrying(lambda t: _ask(line, path or control_socket_path(), t), timeout_s, _json_busy)
    try:
        reply = json.loads(raw)
    except ValueError:
        raise ConnectionError(f"the service's answer is not JSON: {raw[:80]!r}") from None
    if not isinstance(reply, dict):
        raise ConnectionError(f"the service's answer is not a JSON object: {raw[:80]!r}")
    return reply


def _text_busy(reply: str) -> bool:
    return reply.startswith("busy")


def _json_busy(reply: str) -> bool:
    return '"error":"busy"' in reply


def _retrying(ask: Callable[[float], str], timeout_s: float, busy: Callable[[str], bool]) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            reply: str | None = ask(max(deadline - time.monotonic(), 0.1))
        except BlockingIOError:  # the listen queue stayed full for as long as we could wait
            reply = None
        if reply is not None and not busy(reply):
            return reply
        if time.monotonic() + BUSY_RETRY_S >= deadline:
            if reply is None:
                raise TimeoutError(f"the control socket's listen queue stayed full for {timeout_s:g} s")
            return reply
        time.sleep(BUSY_RETRY_S)


def _connected(path: str, timeout_s: float) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        # A blocking connect waits in the kernel for room in a full listen queue, for as long as SO_SNDTIMEO says;
        # with a Python timeout it would fail at once with EAGAIN (the caller then asks again).
        if not _connect_timeout(s, timeout_s):
            s.settimeout(timeout_s)
        s.connect(path)
        s.settimeout(timeout_s)
    except BaseException:
        s.close()
        raise
    return s


def _ask(line: str, path: str, timeout_s: float) -> str:
    with _connected(path, timeout_s) as s:
        try:
            s.sendall(line.encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before we spoke (a refusal, "busy"): the answer is there to read
        reply = read_reply(s)
    if not reply:
        raise ConnectionError("the service closed the connection without an answer")
    return reply


def read_reply(s: socket.socket) -> str:
    """The service's one-line answer on a connected client socket (within its timeout); "" if it closed first."""
    reply = b""
    while b"\n" not in reply:
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    return reply.decode(errors="replace").strip()


def _connect_timeout(s: socket.socket, timeout_s: float) -> bool:
    """SO_SNDTIMEO (a struct timeval: two longs, or two 64-bit fields where a 32-bit system has a 64-bit time_t)."""
    whole, part = divmod(timeout_s, 1.0)
    for layout in ("ll", "qq"):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack(layout, int(whole), int(part * 1e6)))
            return True
        except OSError:
            continue
    return False


class Subscription:
    """A subscription to the service's status (`watch`, a web process): `frames()` yields each status as the
    service sends it (a dict, as `status` answers it, with its `seq`), or None when `quiet_s` passed without one.
    Close it (or leave its `with`) to end it."""

    def __init__(self, path: str | None = None, hz: float = protocol.HZ_DEFAULT, timeout_s: float = 5.0):
        self.sock = _connected(path or control_socket_path(), timeout_s)
        self._buf = b""
        try:
            self.sock.sendall((json.dumps({"v": protocol.VERSION, "cmd": "subscribe", "hz": hz}) + "\n").encode())
            ack = self._line(timeout_s)
        except BaseException:
            self.sock.close()
            raise
        if ack is None:
            self.sock.close()
            raise ConnectionError("the service closed the connection without an answer")
        self.ack: dict[str, Any] = ack  # ok, or why not (then the connection is closed)
        if not ack.get("ok"):
            self.sock.close()

    def _line(self, timeout_s: float) -> dict[str, Any] | None:
        """The next line as JSON; None when the service closed; TimeoutError when none came within `timeout_s`."""
        self.sock.settimeout(timeout_s)
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        obj = json.loads(line)
        if not isinstance(obj, dict):
            raise ConnectionError("the service sent something that is not a JSON object")
        return obj

    def frames(self, quiet_s: float = 1.0) -> Iterator[dict[str, Any] | None]:
        """Each frame's `seq` and `status`, as they come: `{"seq": N, "status": {...}}`; None after `quiet_s` without
        one (the caller may show that the service is silent). Ends when the service closes the connection."""
        while True:
            try:
                obj = self._line(quiet_s)
            except TimeoutError:
                yield None
                continue
            if obj is None:
                return
            if obj.get("type") == "status":
                yield obj

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
