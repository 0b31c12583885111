"""The control protocol, version 1: what a client may ask of the service over its local socket, checked before the
loop ever sees it. Pure: no socket, no clock, no state; the socket (`legsleeve.app.control`) and the service
(`legsleeve.app.service`) use it, and so may any other process (a web page's) that speaks to the sleeve.

One request per line, in one of two forms:

- JSON (programs): a UTF-8 JSON object on one line, `{"v": 1, "cmd": "start", "profile": "wave", "id": 7}`. The answer
  is one JSON object on one line: `{"v": 1, "id": 7, "ok": true, "cmd": "start", "text": "starting wave", ...}` or
  `{"v": 1, "id": 7, "ok": false, "error": "unknown-profile", "text": "error: no profile 'x' (...)"}`. After
  `subscribe` the connection stays open and carries one `{"v": 1, "type": "status", "seq": N, "status": {...}}` line
  at a time.
- text (a person with `socat`): `start [PROFILE]`, `stop`, `status`, `reset`, `silence`, `history`, `hello`; the answer
  is the JSON answer's `text`.

docs/control-protocol.md is the reference: every command, field, unit and error code.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

VERSION = 1
MAX_LINE = 1024  # bytes a request may have, its newline included

INTENSITY_MIN_PCT, INTENSITY_MAX_PCT = 50.0, 150.0  # the service refuses beyond limits.max_mmhg within these too
MINUTES_MAX = 24 * 60.0  # the service refuses beyond limits.session_max_min
HZ_MIN, HZ_MAX, HZ_DEFAULT = 0.5, 10.0, 4.0  # a subscription's rate
HISTORY_MAX = 100  # sessions the service keeps and `history` returns at most

# command -> its fields (name -> checker); `v`, `cmd` and `id` are every request's
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # used with fullmatch: `$` would let "name\n" through

# The error codes, and what the command line's exit code makes of each (README's table).
ERRORS = {
    "bad-request": "not a request of this protocol (invalid JSON, a field missing, unknown or of the wrong type)",
    "unsupported-version": "a protocol version this service does not speak",
    "unknown-command": "no such command",
    "too-long": f"a request longer than {MAX_LINE} bytes",
    "timeout": "no complete request within the client's deadline",
    "busy": "too many clients, subscribers or waiting requests: try again",
    "not-allowed": "the peer may not control the sleeve (root, the service's user, group legsleeve)",
    "unknown-profile": "no profile of that name",
    "out-of-range": "a value beyond what the sleeve's limits allow",
    "refused": "the service's state does not allow it (an alarm latched, a session running, ...)",
    "not-taken": "the service's loop did not take the request in time",
    "internal": "the service could not answer",
}


class ProtocolError(ValueError):
    """A request refused before the loop saw it: `code` (one of ERRORS) and the words for a person."""

    def __init__(self, code: str, text: str, request_id: Any = None):
        self.code, self.text, self.request_id = code, text, request_id
        super().__init__(text)


@dataclass(frozen=True)
class Command:
    """A checked request: its command, arguments, the client's `id` (echoed in the answer), and its form."""

    cmd: str
    args: dict[str, Any]
    request_id: Any = None
    json: bool = True

    def __str__(self) -> str:
        words = [self.cmd, *(f"{k}={v}" for k, v in sorted(self.args.items()))]
        return " ".join(words)


def _number(name: str, low: float, high: float, *, integer: bool = False):
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProtocolError("bad-request", f"error: {name} must be a number")
        if integer and not isinstance(value, int):
            raise ProtocolError("bad-request", f"error: {name} must be a whole number")
        if not math.isfinite(value) or not low <= value <= high:
            raise ProtocolError("out-of-range", f"error: {name} must be from {low:g} to {high:g} (got {value!r})")
        return value

    return check


def _profile_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ProtocolError("bad-request", "error: profile must be a profile's name (letters, digits, _ . -)")
    return value


COMMANDS: dict[str, dict[str, Any]] = {
    "hello": {},
    "status": {},
    "start": {
        "profile": _profile_name,
        "intensity_pct": _number("intensity_pct", INTENSITY_MIN_PCT, INTENSITY_MAX_PCT),
        "minutes": _number("minutes", 0.1, MINUTES_MAX),
    },
    "stop": {},
    "reset": {},
    "silence": {},
    "history": {"limit": _number("limit", 1, HISTORY_MAX, integer=True)},
    "subscribe": {"hz": _number("hz", HZ_MIN, HZ_MAX)},
}
TEXT_ARG = {"start": "profile"}  # the one word a text command may carry


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse(line: str) -> Command:
    """A request line (without its newline) checked against the protocol. Raises ProtocolError."""
    text = line.strip()
    if text.startswith("{"):
        return _parse_json(text)
    return parse_text(text)


def parse_text(text: str) -> Command:
    words = text.split()
    if not words:
        raise ProtocolError("bad-request", "error: empty command")
    cmd, rest = words[0], words[1:]
    if cmd not in COMMANDS:
        raise ProtocolError("unknown-command", f"error: unknown command {cmd!r} ({', '.join(text_commands())})")
    if cmd == "subscribe":
        raise ProtocolError("bad-request", 'error: subscribe is JSON only: {"v": 1, "cmd": "subscribe", "hz": 4}')
    arg = TEXT_ARG.get(cmd)
    if len(rest) > (1 if arg else 0):
        raise ProtocolError("bad-request", f"error: too many words for {cmd} ({' '.join(text_commands())})")
    args = {arg: COMMANDS[cmd][arg](rest[0])} if arg and rest else {}
    return Command(cmd, args, None, json=False)


def text_commands() -> list[str]:
    return [f"{c} [PROFILE]" if c in TEXT_ARG else c for c in COMMANDS if c != "subscribe"]


def _parse_json(text: str) -> Command:
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("bad-request", f"error: not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad-request", "error: a request is a JSON object")
    request_id = obj.get("id")
    if request_id is not None and not (
        (isinstance(request_id, str) and len(request_id) <= 64)
        or (isinstance(request_id, int) and not isinstance(request_id, bool) and abs(request_id) < 2**53)
    ):
        raise ProtocolError("bad-request", "error: id must be a string of at most 64 characters or an integer")
    v = obj.get("v")
    if v is None:
        raise ProtocolError("bad-request", f'error: "v" (the protocol version, {VERSION}) is missing', request_id)
    if v != VERSION or isinstance(v, bool):
        raise ProtocolError("unsupported-version", f"error: this service speaks version {VERSION}", request_id)
    cmd = obj.get("cmd")
    if not isinstance(cmd, str):
        raise ProtocolError("bad-request", 'error: "cmd" is missing or not a string', request_id)
    fields = COMMANDS.get(cmd)
    if fields is None:
        raise ProtocolError(
            "unknown-command", f"error: unknown command {cmd[:32]!r} ({', '.join(COMMANDS)})", request_id
        )
    args = {}
    for key, value in obj.items():
        if key in ("v", "cmd", "id"):
            continue
        check = fields.get(key)
        if check is None:
            known = ", ".join(fields) or "none"
            raise ProtocolError(
                "bad-request", f"error: {cmd} has no field {key[:32]!r} (its fields: {known})", request_id
            )
        try:
            args[key] = check(value)
        except ProtocolError as exc:
            raise ProtocolError(exc.code, exc.text, request_id) from None
    return Command(cmd, args, request_id, json=True)


def ok(cmd: str, text: str, **payload: Any) -> dict[str, Any]:
    """A successful answer: `text` for a person, the rest for a program."""
    return {"ok": True, "cmd": cmd, "text": text, **payload}


def error(code: str, text: str, cmd: str | None = None) -> dict[str, Any]:
    """An answer saying nothing was done, and why: `code` (one of ERRORS) for a program, `text` for a person."""
    assert code in ERRORS, code
    return {"ok": False, "cmd": cmd, "error": code, "text": text}


def encode(reply: dict[str, Any], command: Command | None) -> bytes:
    """One answer as it goes on the wire: the JSON line for a JSON request (with `v` and the request's `id`), the text
    line for a text one."""
    if command is not None and not command.json:
        return (str(reply.get("text", "")).replace("\n", " ") + "\n").encode()
    body = {"v": VERSION, "id": command.request_id if command is not None else None, **reply}
    return (json.dumps(body, allow_nan=False, separators=(",", ":")) + "\n").encode()


def encode_error(exc: ProtocolError, raw: str) -> bytes:
    """A ProtocolError's answer, in the form the request came in (JSON when it looked like JSON)."""
    as_json = raw.lstrip().startswith("{")
    reply = error(exc.code, exc.text)
    return encode(reply, Command("", {}, exc.request_id, json=as_json))


def frame(seq: int, status: dict[str, Any]) -> bytes:
    """One line of a subscription: the status as `status` answers it, numbered."""
    return (json.dumps({"v": VERSION, "type": "status", "seq": seq, "status": status}, allow_nan=False) + "\n").encode()
