"""Who is using the web page: login sessions, their CSRF tokens, and a brake on password guessing. Pure: no HTTP,
no clock of its own (the caller hands in the time), so the rules are tested without a server. Thread-safe: waitress
serves from several threads, and one lock guards the sessions and the brake alike.

Every visitor gets a session (a random token in an HttpOnly, SameSite=Strict cookie) with a CSRF token of its own;
the page sends that token back in a header with every request that changes anything. A session is logged in after
the right password (a new token then: a session fixed before the login is worth nothing after it).

Only logged-in sessions are kept in memory. An anonymous one (before the login) costs the server nothing: its token
is `a.<issued>.<random>` and its CSRF token the HMAC of that with a secret drawn at start (so a restart makes every
anonymous token stale, as it logs everyone out). A flood of anonymous visitors therefore cannot push a logged-in
session out; only logged-in sessions, which took the password, compete for the MAX_SESSIONS places.

With `auth: none` (web.yaml, localhost only) no password exists and every session counts as logged in; the CSRF
token is still required (a web site open in the Pi's own browser could otherwise post to 127.0.0.1).

The brake on guessing (docs/web.md, "Security"): each client (an IPv4 address, an IPv6 /64) has GUESSES_FREE wrong
passwords free, then waits GUESS_DELAY_S before its next try, twice as long after each further wrong one, up to
GUESS_DELAY_MAX_S. Over all clients, at most GLOBAL_TRIES tries per GLOBAL_WINDOW_S (a ceiling against guessing from
many addresses): a client waits for it at most GLOBAL_WINDOW_S, so nobody can lock the owner out for longer. A try's
slot is claimed, under the lock, before its password is checked: concurrent guesses cannot slip through together.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

MAX_SESSIONS = 64  # logged-in sessions kept; beyond that the least recently used logged-in one is forgotten
ANON_TTL_S = 3600.0  # an anonymous session's token (before its login)
GUESSES_FREE = 5  # wrong passwords a client may try before the brake
GUESS_DELAY_S = 5.0  # then the wait before its next try, doubled after each further wrong one ...
GUESS_DELAY_MAX_S = 900.0  # ... up to this
GLOBAL_TRIES, GLOBAL_WINDOW_S = 30, 60.0  # all clients together: at most this many tries in any such window
MAX_CLIENTS = 1024  # clients the brake remembers (the least recently seen is forgotten first)
_ANON = re.compile(r"a\.(\d{1,12})\.[A-Za-z0-9_-]{43}")


@dataclass
class Session:
    token: str
    csrf: str
    logged_in: bool
    expires_s: float


@dataclass
class _Client:
    wrong: int = 0
    next_try_s: float = 0.0


def client_key(address: str | None) -> str:
    """Whom the brake counts: an IPv4 address, or an IPv6 address's /64 (one host may hold a whole /64)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "?"
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


@dataclass
class Sessions:
    """The sessions of one web process (kept in memory: a restart logs everyone out, which is fine for a sleeve's
    page). `login_s` is how long a login lasts; `password_needed` false means `auth: none` (localhost only)."""

    login_s: float
    password_needed: bool
    _by_token: OrderedDict[str, Session] = field(default_factory=OrderedDict)
    _clients: OrderedDict[str, _Client] = field(default_factory=OrderedDict)
    _tries: deque[float] = field(default_factory=deque)
    _secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- sessions ----------------------------------------------------------------------------------------------
    def get(self, token: str | None, now_s: float) -> Session | None:
        token = token or ""
        m = _ANON.fullmatch(token)
        if m is not None:  # anonymous: nothing stored, its CSRF token is derived
            issued = int(m.group(1))
            if not issued <= now_s < issued + ANON_TTL_S:  # expired, or made up (issued later than now)
                return None
            return Session(token, self._csrf_of(token), not self.password_needed, issued + ANON_TTL_S)
        with self._lock:
            s = self._by_token.get(token)
            if s is None:
                return None
            if now_s >= s.expires_s:
                del self._by_token[s.token]
                return None
            self._by_token.move_to_end(s.token)
            return s

    def new(self, now_s: float) -> Session:
        """An anonymous session (nothing is stored: see the module's docstring)."""
        issued = max(0, int(now_s))
        token = f"a.{issued}.{secrets.token_urlsafe(32)}"
        return Session(token, self._csrf_of(token), not self.password_needed, issued + ANON_TTL_S)

    def _csrf_of(self, token: str) -> str:
        mac = hmac.new(self._secret, b"csrf:" + token.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def login(self, old: Session | None, now_s: float) -> Session:
        """A logged-in session in place of `old` (a new token and a new CSRF token), stored."""
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), True, now_s + self.login_s)
        with self._lock:
            if old is not None:
                self._by_token.pop(old.token, None)
            self._by_token[s.token] = s
            while len(self._by_token) > MAX_SESSIONS:
                self._by_token.popitem(last=False)
        return s

    def end(self, token: str | None) -> None:
        with self._lock:
            self._by_token.pop(token or "", None)

    def stored(self) -> int:
        """How many sessions are kept in memory (the logged-in ones)."""
        with self._lock:
            return len(self._by_token)

    def csrf_ok(self, session: Session | None, sent: str | None) -> bool:
        # bytes, not str: compare_digest refuses a str with non-ASCII characters (a TypeError, a 500)
        return session is not None and bool(sent) and hmac.compare_digest(session.csrf.encode(), str(sent).encode())

    # -- the brake on guessing ---------------------------------------------------------------------------------
    def claim_try(self, client: str, now_s: float) -> float:
        """0 when `client` may try a password now, and the try is counted (as a wrong one until `tried` says it was
        right), else the seconds to wait. Claimed under the lock, before the password is checked."""
        with self._lock:
            while self._tries and self._tries[0] <= now_s - GLOBAL_WINDOW_S:
                self._tries.popleft()
            c = self._clients.get(client) or _Client()
            wait = c.next_try_s - now_s
            if len(self._tries) >= GLOBAL_TRIES:
                wait = max(wait, self._tries[0] + GLOBAL_WINDOW_S - now_s)
            if wait > 0:
                return wait
            c.wrong += 1
            if c.wrong >= GUESSES_FREE:
                c.next_try_s = now_s + min(GUESS_DELAY_S * 2.0 ** (c.wrong - GUESSES_FREE), GUESS_DELAY_MAX_S)
            self._clients[client] = c
            self._clients.move_to_end(client)
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
            self._tries.append(now_s)
            return 0.0

    def tried(self, client: str, right: bool) -> None:
        """The claimed try's outcome: a right password clears the client's count and wait."""
        if right:
            with self._lock:
                self._clients.pop(client, None)
