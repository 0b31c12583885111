"""Who is using the web page: login sessions, their CSRF tokens, and a brake on password guessing. Pure: no HTTP,
no clock of its own (the caller hands in the time), so the rules are tested without a server.

Every visitor gets a session (a random token in an HttpOnly, SameSite=Strict cookie) with a CSRF token of its own;
the page sends that token back in a header with every request that changes anything. A session is logged in after
the right password (a new token then: a session fixed before the login is worth nothing after it). With the page on
localhost only, no password exists and every session counts as logged in; the CSRF token is still required (a
web site open in the Pi's own browser could otherwise post to 127.0.0.1).
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

MAX_SESSIONS = 64  # beyond that the least recently used is forgotten (a flood cannot grow the process)
ANON_TTL_S = 3600.0  # a session that never logged in
GUESSES_FREE = 5  # wrong passwords before the brake: then one try per GUESS_DELAY_S, for everyone
GUESS_DELAY_S = 5.0


@dataclass
class Session:
    token: str
    csrf: str
    logged_in: bool
    expires_s: float


@dataclass
class Sessions:
    """The sessions of one web process (kept in memory: a restart logs everyone out, which is fine for a sleeve's
    page). `login_s` is how long a login lasts; `password_needed` false means the page is on localhost only."""

    login_s: float
    password_needed: bool
    _by_token: OrderedDict[str, Session] = field(default_factory=OrderedDict)
    _wrong: int = 0
    _next_try_s: float = 0.0

    def get(self, token: str | None, now_s: float) -> Session | None:
        s = self._by_token.get(token or "")
        if s is None:
            return None
        if now_s >= s.expires_s:
            del self._by_token[s.token]
            return None
        self._by_token.move_to_end(s.token)
        return s

    def new(self, now_s: float, *, logged_in: bool = False) -> Session:
        logged_in = logged_in or not self.password_needed
        s = Session(
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(32),
            logged_in,
            now_s + (self.login_s if logged_in else ANON_TTL_S),
        )
        self._by_token[s.token] = s
        while len(self._by_token) > MAX_SESSIONS:
            self._by_token.popitem(last=False)
        return s

    def end(self, token: str | None) -> None:
        self._by_token.pop(token or "", None)

    def csrf_ok(self, session: Session | None, sent: str | None) -> bool:
        # bytes, not str: compare_digest refuses a str with non-ASCII characters (a TypeError, a 500)
        return session is not None and bool(sent) and hmac.compare_digest(session.csrf.encode(), str(sent).encode())

    def may_try(self, now_s: float) -> float:
        """0 when a password may be tried now, else the seconds to wait (the brake on guessing)."""
        return max(0.0, self._next_try_s - now_s)

    def tried(self, right: bool, now_s: float) -> None:
        if right:
            self._wrong = 0
            return
        self._wrong += 1
        if self._wrong >= GUESSES_FREE:
            self._next_try_s = now_s + GUESS_DELAY_S

    def login(self, old: Session | None, now_s: float) -> Session:
        """A logged-in session in place of `old` (a new token and a new CSRF token)."""
        if old is not None:
            self.end(old.token)
        return self.new(now_s, logged_in=True)
