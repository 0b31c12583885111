"""The web page's settings: `web.yaml` in the config directory (where it listens, how long a login lasts, where the
session logs are) and the password's hash in `web-password` beside it.

web.yaml is read with the same loader as every other config file (`legsleeve.config.yamlconf`: unknown keys
refused, every error with file, line and key). It is optional: without it the page listens on 127.0.0.1:8080 only,
and asks for a password there too (`auth: none` lets every account on the machine in without one, localhost only).
The password is never stored: `web-password` holds one line, its scrypt hash (hashlib's, the standard library's
binding of OpenSSL) with its salt and cost. It lives in a file of its own, not in web.yaml, so that
`legsleeve web-password` never rewrites the user's commented YAML, and so that the hash can be readable by the web
process alone (mode 0640, group legsleeve-web) while web.yaml stays an ordinary config file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from legsleeve.config.yamlconf import Problems, Section, load_document
from legsleeve.errors import ConfigError

WEB_FILE = "web.yaml"
AUTH_CHOICES = ("password", "none")
PASSWORD_FILE = "web-password"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
DEFAULT_SESSIONS_DIR = "/var/lib/legsleeve/sessions"  # the service's StateDirectory (systemd/legsleeve.service)
SESSION_HOURS_DEFAULT, SESSION_HOURS_MAX = 12.0, 24.0 * 30
PASSWORD_MIN_CHARS = 8
# scrypt's cost: N=2^14, r=8 takes 16 MiB and ~50 ms on a PC; several tenths of a second on a Pi Zero 2 W, once a
# login. Stored with the hash, so a later change of these leaves older hashes valid.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_LEN = 2**14, 8, 1, 32
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*")  # a DNS name, lower-case


@dataclass(frozen=True)
class WebConfig:
    """What web.yaml says, or its defaults. `path` is the file (it may not exist); `listen_line` its line of
    `listen` (0 without one), for the refusal to start that names it."""

    path: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    session_hours: float = SESSION_HOURS_DEFAULT
    sessions_dir: Path = Path(DEFAULT_SESSIONS_DIR)
    listen_line: int = 0
    allowed_hosts: tuple[str, ...] | None = None  # host names the page answers to; None: default_allowed_hosts()
    auth: str = "password"  # "none": no password, every account on this machine trusted (localhost only)
    auth_line: int = 0

    @property
    def lan_open(self) -> bool:
        return not is_loopback(self.host)

    @property
    def password_path(self) -> Path:
        return self.path.parent / PASSWORD_FILE


def is_loopback(host: str) -> bool:
    """Whether listening on `host` keeps the page on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any address, so it counts as open


def default_allowed_hosts() -> tuple[str, ...]:
    """The names the page answers to without `allowed_hosts`: this machine's host name and its mDNS name
    (`sleeve`, `sleeve.local`). `localhost` and literal addresses are accepted anyway (see `host_allowed`)."""
    name = socket.gethostname().strip().lower().rstrip(".")
    short = name.split(".", 1)[0]
    return tuple(dict.fromkeys(n for n in (name, short, f"{short}.local") if n))


def host_name(header: str) -> str | None:
    """The name or address in a `Host` header (`sleeve.local:8080` -> `sleeve.local`, `[::1]:8080` -> `::1`),
    lower-case, without a final dot; None when it is not one."""
    header = header.strip().lower()
    if header.startswith("["):
        name, sep, rest = header[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return name or None
    name, sep, port = header.partition(":")
    if sep and not port.isdigit():
        return None
    name = name[:-1] if name.endswith(".") else name
    return name if name and _HOST_NAME.fullmatch(name) else None


def host_allowed(header: str | None, cfg: WebConfig, names: tuple[str, ...]) -> bool:
    """Whether a request's `Host` is one the page answers to (DNS rebinding, docs/web.md "Security"): `localhost`,
    a name in `names` (web.yaml's allowed_hosts, or the defaults), or a literal address - any address when the page
    is open to the LAN (a site cannot rebind an address: a browser sends the one it was given), a loopback one only
    when it is on localhost."""
    name = host_name(header or "")
    if name is None:
        return False
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return name == "localhost" or name in names
    return cfg.lan_open or ip.is_loopback


def parse_listen(text: str, *, allow_any_port: bool = False) -> tuple[str, int]:
    """`HOST:PORT` (`127.0.0.1:8080`, `0.0.0.0:8080`, `[::]:8080`) -> (host, port). Raises ValueError. Port 0 (any
    free port, for tests) only with `allow_any_port` (the command line's --listen)."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"must be HOST:PORT, such as 127.0.0.1:8080 (got {text!r})")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"the port must be a number (got {port_text!r})") from None
    low = 0 if allow_any_port else 1
    if not low <= port <= 65535:
        raise ValueError(f"the port must be from {low} to 65535 (got {port})")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"no host in {text!r}")
    return host, port


def load_web_config(config_dir: Path) -> WebConfig:
    """`<config_dir>/web.yaml`, checked; its defaults when the file does not exist. Raises ConfigError."""
    path = Path(config_dir) / WEB_FILE
    if not path.exists():
        return WebConfig(path)
    doc = load_document(path)
    problems = Problems()
    top = Section(doc, path, "", problems)
    host, port, line = DEFAULT_HOST, DEFAULT_PORT, 0
    listen = top.string("listen", None)
    if listen is not None:
        line = top.line_of("listen")
        try:
            host, port = parse_listen(listen)
        except ValueError as exc:
            top.error("listen", str(exc))
    hours = top.number("session_hours", SESSION_HOURS_DEFAULT, above=0.0, maximum=SESSION_HOURS_MAX, unit="h")
    sessions = top.string("sessions_dir", DEFAULT_SESSIONS_DIR)
    auth = top.string("auth", "password", choices=AUTH_CHOICES) or "password"
    auth_line = top.line_of("auth") if top.has("auth") else 0
    allowed: tuple[str, ...] | None = None
    if top.raw("allowed_hosts", None) is not None:  # (read even when absent: a misspelling gets its "did you mean")
        names = []
        for _, item, where, item_line in top.items("allowed_hosts"):
            name = host_name(item) if isinstance(item, str) and ":" not in item else None
            if name is None:
                problems.error(
                    path, item_line, where, f"must be a host name such as sleeve.local, no port (got {item!r})"
                )
            elif _is_address(name):
                problems.error(
                    path, item_line, where, f"{name} is an address: addresses are always accepted, list names"
                )
            else:
                names.append(name)
        allowed = tuple(names)
    top.finish()
    problems.raise_if_any()
    return WebConfig(
        path,
        host,
        port,
        float(hours if hours is not None else SESSION_HOURS_DEFAULT),
        Path(sessions or DEFAULT_SESSIONS_DIR),
        line,
        allowed,
        auth,
        auth_line,
    )


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


# -- the password ----------------------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    """The line stored in `web-password`: `scrypt$N$r$p$SALT$HASH` (base64). Never the password itself."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_LEN)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a `hash_password` line (compared in constant time); False for a malformed one."""
    try:
        kind, n, r, p, salt, digest = stored.strip().split("$")
        if kind != "scrypt":
            return False
        want = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt, validate=True),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(want),
            maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def read_password_hash(cfg: WebConfig) -> str | None:
    """The stored hash, or None when no password is set (no file, or an empty one). Raises ConfigError when the file
    is there but cannot be read or is not a hash (a hand-written password, say)."""
    path = cfg.password_path
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    if not text:
        return None
    if not text.startswith("scrypt$") or text.count("$") != 5:
        raise ConfigError([f"{path}:1: not a password hash: set the password with `sudo legsleeve web-password`"])
    return text


def write_password_hash(cfg: WebConfig, password: str, *, group: str = "legsleeve-web") -> Path:
    """Hash `password` and store it in `web-password`, atomically, mode 0640: readable by its owner and by `group`
    (the web service's, where the system has it). Raises ValueError for a password too short."""
    if len(password) < PASSWORD_MIN_CHARS:
        raise ValueError(f"the password must have at least {PASSWORD_MIN_CHARS} characters")
    path = cfg.password_path
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, (hash_password(password) + "\n").encode())
        os.fsync(fd)
        _give_to_group(fd, group)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def _give_to_group(fd: int, group: str) -> None:
    """chgrp to `group` and mode 0640 when this process may (root, at install); else the file stays 0600, its
    owner's (a developer's own config directory)."""
    import grp

    try:
        gid = grp.getgrnam(group).gr_gid
        os.fchown(fd, -1, gid)
    except (KeyError, PermissionError):
        return
    os.fchmod(fd, 0o640)
