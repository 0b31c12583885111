"""`legsleeve web`: check the settings, refuse what is unsafe, then serve the page with waitress.

The refusals come before anything listens, each with the file and key to change, and exit 2 (the unit's
`RestartPreventExitStatus=2`: systemd does not restart a web process that will only refuse again):
- no password set (`web-password`), unless web.yaml says `auth: none` (every local account trusted) - which is
  refused in turn when the page is open to the LAN (web.yaml `listen`, or `--listen`);
- web.yaml or web-password unreadable or malformed;
- the `web` extra (Bottle, waitress) not installed.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from legsleeve.errors import ConfigError
from legsleeve.web.settings import WebConfig, load_web_config, parse_listen, read_password_hash

log = logging.getLogger(__name__)

THREADS = 4  # waitress's workers: a few phones polling, a plot being drawn, and a stop that must never wait
# waitress's limits (docs/web.md, "Security"): a body larger than MAX_BODY (web/app.py) is refused with 413 before the
# application runs (waitress's default would spool up to 1 GiB, logged in or not); a connection silent for
# CHANNEL_TIMEOUT_S is closed (checked every CLEANUP_INTERVAL_S; the default 120 s and 30 s let idle connections hold
# the server full for minutes); at most CONNECTION_LIMIT connections in all and PER_CLIENT_CONNECTIONS from one
# address, so one client cannot fill the server and keep a stop from another out (a browser opens about 6).
CHANNEL_TIMEOUT_S = 20
CLEANUP_INTERVAL_S = 5
CONNECTION_LIMIT = 64
PER_CLIENT_CONNECTIONS = 16


class Refused(ConfigError):
    """The web page must not start as configured (see the module's docstring)."""


@dataclass(frozen=True)
class Plan:
    """What `legsleeve web` will serve, once checked."""

    config: WebConfig
    password_hash: str | None
    listen_from: str  # in words: where `listen` came from, for messages


def plan(config_dir: Path, listen: str | None = None, sessions_dir: Path | None = None) -> Plan:
    """web.yaml (and `--listen`, `--sessions-dir` over it) and the password, checked. Raises Refused."""
    try:
        cfg = load_web_config(config_dir)
    except ConfigError as exc:
        raise Refused(exc.problems) from None
    where = f"{cfg.path}:{cfg.listen_line}: listen" if cfg.listen_line else f"{cfg.path}: listen (default)"
    if listen is not None:
        try:
            host, port = parse_listen(listen, allow_any_port=True)
        except ValueError as exc:
            raise Refused([f"--listen: {exc}"]) from None
        cfg, where = replace(cfg, host=host, port=port), "--listen"
    if sessions_dir is not None:
        cfg = replace(cfg, sessions_dir=sessions_dir)
    auth_where = f"{cfg.path}:{cfg.auth_line}: auth" if cfg.auth_line else f"{cfg.path}: auth (default: password)"
    set_one = f"Set one: sudo legsleeve web-password --config {cfg.path.parent}"
    if cfg.auth == "none":
        if cfg.lan_open:
            raise Refused(
                [
                    f"{auth_where}: none (no password) is for a page on this machine only, but {where} "
                    f"({cfg.host}:{cfg.port}) opens it to the network. Remove auth: none and set a password "
                    f"(sudo legsleeve web-password --config {cfg.path.parent}); or listen: 127.0.0.1:{cfg.port}"
                ]
            )
        return Plan(cfg, None, where)
    try:
        password_hash = read_password_hash(cfg)
    except ConfigError as exc:
        raise Refused(exc.problems) from None
    if password_hash is None and cfg.lan_open:
        raise Refused(
            [
                f"{where}: {cfg.host}:{cfg.port} opens the page to the network, but no password is set "
                f"({cfg.password_path} is missing or empty). {set_one}; or keep the page on this machine: "
                f"listen: 127.0.0.1:{cfg.port}"
            ]
        )
    if password_hash is None:
        raise Refused(
            [
                f"{auth_where}: the page needs a password, on this machine too, and none is set "
                f"({cfg.password_path} is missing or empty). {set_one}; or, to let every account on this machine "
                f"control the sleeve through the page without one, put auth: none in {cfg.path} (localhost only)"
            ]
        )
    return Plan(cfg, password_hash, where)


def require_web_stack() -> None:
    try:
        import bottle  # noqa: F401
        import waitress  # noqa: F401
    except ImportError as exc:
        raise Refused(
            [f"the web page needs the web extra ({exc.name} is missing): pip install 'legsleeve[web]' (make install)"]
        ) from None


def serve(checked: Plan, config_dir: Path, socket_path: str, *, out: TextIO = sys.stdout) -> None:
    """Serve until a signal (the command line's handler raises `Interrupted` out of waitress's loop)."""
    from legsleeve.app.control import request
    from legsleeve.web.app import WebContext, make_app
    from legsleeve.web.editor import Editor
    from legsleeve.web.live import Live

    def ask(cmd: str, **fields: Any) -> dict[str, Any]:
        try:
            return request(cmd, socket_path, timeout_s=5.0, **fields)
        except (FileNotFoundError, ConnectionRefusedError):
            return {"ok": False, "cmd": cmd, "error": "no-service",
                    "text": "the service is not running: use the sleeve's button or E-stop"}  # fmt: skip
        except OSError as exc:  # PermissionError (not in the group), a timeout, a closed connection
            return {"ok": False, "cmd": cmd, "error": "no-service", "text": f"control socket: {exc}"}

    live = Live(socket_path).start()
    ctx = WebContext(
        config=checked.config,
        password_hash=checked.password_hash,
        live=live,
        ask=ask,
        editor=Editor(config_dir),
        sessions_dir=checked.config.sessions_dir,
    )
    app = make_app(ctx)
    cfg = checked.config
    server = create_server(app, cfg.host, cfg.port)
    port = getattr(server, "effective_port", cfg.port)
    shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    guard = "password required" if checked.password_hash else "auth: none - no password, every local account trusted"
    print(f"legsleeve web: listening on http://{shown}:{port}/ ({guard}); service: {socket_path}", file=out, flush=True)
    try:
        server.run()
    finally:
        live.close()
        server.close()


def create_server(app: Any, host: str, port: int) -> Any:
    """waitress's server for `app`, with the limits above."""
    import waitress

    from legsleeve.web.app import MAX_BODY

    server: Any = waitress.create_server(
        app,
        host=host,
        port=port,
        threads=THREADS,
        ident="legsleeve",
        max_request_body_size=MAX_BODY,
        channel_timeout=CHANNEL_TIMEOUT_S,
        cleanup_interval=CLEANUP_INTERVAL_S,
        connection_limit=CONNECTION_LIMIT,
    )

    http_channel = server.channel_class  # waitress's HTTPChannel

    def channel(srv: Any, conn: Any, addr: Any, adj: Any, map: Any = None) -> Any:
        """A new connection, unless its address already has PER_CLIENT_CONNECTIONS open: then it is closed at once."""
        peer = _peer(addr)
        open_ = sum(1 for c in list((map or {}).values()) if isinstance(c, http_channel) and _peer(c.addr) == peer)
        if peer and open_ >= PER_CLIENT_CONNECTIONS:
            conn.close()
            return None
        return http_channel(srv, conn, addr, adj, map=map)

    server.channel_class = channel
    return server


def _peer(addr: Any) -> Any:
    return addr[0] if isinstance(addr, tuple) else addr
