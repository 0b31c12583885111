"""The web page's HTTP side: a Bottle application (WSGI) that serves the page and its JSON API, and turns each action
into one request of the control protocol. It decides nothing about the sleeve: the service judges every start as it
judges `legsleeve start` (the same request, the same checks), and the page shows its answer.

Who may do what (docs/web.md, "Security"):
- `POST /api/stop` - anyone who can reach the page, logged in or not, with or without a token: stop only makes the
  sleeve safer. It takes no parameters, so a forged one can do nothing else.
- the page's shell (`/`, `/static/...`) and `/api/session`, `/api/login` - anyone (the shell holds no data).
- everything else - a logged-in session (with `auth: none` in web.yaml, allowed on localhost only, every visitor
  counts as logged in); and every other POST also needs the session's CSRF token in `X-CSRF-Token`, a JSON
  body (which a cross-site form cannot send), and no foreign `Origin`.
- a request naming a host other than an address (a loopback one with the page on localhost only), `localhost` or a
  name in web.yaml's `allowed_hosts` is refused, except stop (DNS rebinding: a site whose name resolves to the Pi
  would otherwise be same-origin with the page).
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import logging
import math
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bottle

from legsleeve.web.auth import Session, Sessions, client_key
from legsleeve.web.editor import Editor, Problem, check_name
from legsleeve.web.live import Live
from legsleeve.web.settings import WebConfig, default_allowed_hosts, host_allowed

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "legsleeve_session"
MAX_BODY = 256 * 1024  # bytes of a request body (a profile's text is at most 64 kB, escaped in JSON)
LOG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.csv")  # a session log's file name, nothing else (fullmatch)
PLOT_CACHE = 8  # session plots kept in memory (a PNG is ~100 kB)
START_FIELDS = ("profile", "intensity_pct", "minutes")
SECURITY_HEADERS = {
    # the page's own scripts and styles only; images from itself and the previews' data: URLs
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

Ask = Callable[..., dict[str, Any]]  # ask(cmd, **fields) -> the service's answer


@dataclass
class WebContext:
    """Everything the application needs, built by `legsleeve web` (or a test): the settings, the sessions, the
    service's status (`live`), a way to ask the service one thing (`ask`), the profile editor, and the clock."""

    config: WebConfig
    password_hash: str | None
    live: Live | Any
    ask: Ask
    editor: Editor
    sessions_dir: Path
    clock: Callable[[], float] = time.monotonic
    verify: Callable[[str, str], bool] | None = None
    sessions: Sessions = field(init=False)
    _plots: OrderedDict[tuple[str, float, int], bytes] = field(default_factory=OrderedDict)
    _plot_lock: threading.Lock = field(default_factory=threading.Lock)
    # One plot or preview at a time, and a second one is answered "busy" at once rather than queued: waiting, it would
    # hold one of waitress's few workers, and enough of them would leave a stop waiting behind drawings.
    _heavy: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(1))

    def __post_init__(self) -> None:
        self.sessions = Sessions(self.config.session_hours * 3600.0, password_needed=self.password_hash is not None)


def _json(status: int, body: dict[str, Any]) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(
        json.dumps(body), status, {"Content-Type": "application/json", "Cache-Control": "no-store"}
    )


def deny(status: int, error: str, text: str) -> bottle.HTTPResponse:
    return _json(status, {"ok": False, "error": error, "text": text})


def header(name: str) -> str | None:
    """A request header as WSGI hands it over (latin-1 text), not through Bottle's `get_header`, which decodes it
    again as UTF-8 and raises on bytes that are not (a 500 for a header such as `X-CSRF-Token: \\xe9`)."""
    value = bottle.request.environ.get("HTTP_" + name.upper().replace("-", "_"))
    return value if isinstance(value, str) else None


def make_app(ctx: WebContext) -> bottle.Bottle:
    app = bottle.Bottle(autojson=True)
    bottle.BaseRequest.MEMFILE_MAX = MAX_BODY
    req, res = bottle.request, bottle.response

    # -- every request -----------------------------------------------------------------------------------------
    @app.hook("before_request")
    def _body_limit() -> None:
        """A body announced larger than MAX_BODY is refused before anything reads it (waitress refuses it too, with
        its max_request_body_size: web/server.py), logged in or not."""
        try:
            length = int(req.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise deny(400, "bad-request", "Content-Length is not a number") from None
        if length > MAX_BODY:
            raise deny(413, "too-large", f"a request's body has at most {MAX_BODY} bytes")

    names = ctx.config.allowed_hosts if ctx.config.allowed_hosts is not None else default_allowed_hosts()

    @app.hook("before_request")
    def _host_check() -> None:
        """DNS rebinding: a site whose name resolves to the Pi would otherwise be same-origin with the page. Only
        stop is exempt: it only makes the sleeve safer, and must work whatever name the page was reached by."""
        if req.path == "/api/stop" or host_allowed(header("Host"), ctx.config, names):
            return
        where = "a loopback address" if not ctx.config.lan_open else "an address"
        raise deny(
            403,
            "wrong-host",
            f"this page answers to {where}, localhost or a name in allowed_hosts ({', '.join(names) or 'none'}), "
            f"not to {header('Host')!r}: add the name to allowed_hosts in {ctx.config.path}",
        )

    @app.hook("after_request")
    def _headers() -> None:
        for k, v in SECURITY_HEADERS.items():
            res.set_header(k, v)

    def session() -> Session | None:
        return ctx.sessions.get(req.get_cookie(COOKIE), ctx.clock())

    def set_cookie(s: Session) -> None:
        res.set_cookie(
            COOKIE, s.token, httponly=True, samesite="strict", path="/", max_age=int(s.expires_s - ctx.clock())
        )

    def logged_in() -> Session:
        s = session()
        if s is None or not s.logged_in:
            raise deny(401, "login", "log in first")
        return s

    def same_origin() -> None:
        origin = header("Origin")
        if origin and origin != "null" and origin.split("://", 1)[-1] != header("Host"):
            raise deny(403, "csrf", "refused: a request from another site")

    def writing() -> tuple[Session, dict[str, Any]]:
        """A state-changing request: logged in, same origin, the session's CSRF token, a JSON object body."""
        s = logged_in()
        same_origin()
        if not ctx.sessions.csrf_ok(s, header("X-CSRF-Token")):
            raise deny(403, "csrf", "refused: the page's token is missing or stale (reload the page)")
        return s, body()

    def body() -> dict[str, Any]:
        if req.content_type.split(";")[0].strip() != "application/json":
            raise deny(415, "bad-request", "a JSON body is expected")
        try:
            data = json.loads(req.body.read(MAX_BODY + 1) or b"{}")
        except (ValueError, RecursionError):  # RecursionError: arrays nested deeper than the interpreter recurses
            raise deny(400, "bad-request", "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise deny(400, "bad-request", "the body must be a JSON object")
        return data

    # -- the shell -----------------------------------------------------------------------------------------------
    @app.get("/")
    def index() -> Any:
        return bottle.static_file("index.html", root=str(STATIC), mimetype="text/html", charset="utf-8")

    @app.get("/favicon.ico")
    def favicon() -> Any:
        return bottle.HTTPResponse(status=204)

    @app.get("/static/<name:re:[a-z0-9_-]+\\.(?:js|css|svg)>")
    def static(name: str) -> Any:
        return bottle.static_file(name, root=str(STATIC))

    # -- stop: never behind a login ------------------------------------------------------------------------------
    @app.post("/api/stop")
    def stop() -> Any:
        reply = ctx.ask("stop")
        if "application/json" not in (header("Accept") or ""):  # the page's form, without its script
            return stop_page(reply)
        return _json(200 if reply.get("ok") else 503, reply)

    # -- sessions ------------------------------------------------------------------------------------------------
    @app.get("/api/session")
    def get_session() -> Any:
        s = session()
        if s is None:
            s = ctx.sessions.new(ctx.clock())
            set_cookie(s)
        return {
            "ok": True,
            "password_needed": ctx.sessions.password_needed,
            "logged_in": s.logged_in,
            "csrf": s.csrf,
            "lan_open": ctx.config.lan_open,
        }

    @app.post("/api/login")
    def login() -> Any:
        s = session()
        same_origin()
        if not ctx.sessions.csrf_ok(s, header("X-CSRF-Token")):
            raise deny(403, "csrf", "refused: the page's token is missing or stale (reload the page)")
        data = body()
        if ctx.password_hash is None:
            return {"ok": True, "csrf": s.csrf if s else "", "text": "no password is needed here"}
        client = client_key(req.environ.get("REMOTE_ADDR"))
        wait = ctx.sessions.claim_try(client, ctx.clock())  # the try is counted before the password is checked
        if wait > 0:
            raise deny(429, "wait", f"too many wrong passwords: try again in {math.ceil(wait)} s")
        from legsleeve.web.settings import verify_password

        right = (ctx.verify or verify_password)(str(data.get("password", "")), ctx.password_hash)
        ctx.sessions.tried(client, right)
        if not right:
            raise deny(401, "login", "wrong password")
        new = ctx.sessions.login(s, ctx.clock())
        set_cookie(new)
        return {"ok": True, "csrf": new.csrf, "text": "logged in"}

    @app.post("/api/logout")
    def logout() -> Any:
        s, _ = writing()
        ctx.sessions.end(s.token)
        res.delete_cookie(COOKIE, path="/")
        return {"ok": True, "text": "logged out"}

    # -- the sleeve ----------------------------------------------------------------------------------------------
    @app.get("/api/status")
    def status() -> Any:
        logged_in()
        latest = ctx.live.latest()
        res.set_header("Cache-Control", "no-store")
        return {
            "ok": True,
            "status": latest.status,
            "age_s": latest.age_s,
            "service": latest.service,
            "error": latest.error,
        }

    @app.get("/api/hello")
    def hello() -> Any:
        logged_in()
        answer = ctx.live.hello(refresh=req.query.get("refresh") == "1")
        if answer is None:
            raise deny(503, "no-service", ctx.live.latest().error or "the service does not answer")
        return answer

    @app.post("/api/start")
    def start() -> Any:
        _, data = writing()
        unknown = sorted(set(data) - set(START_FIELDS))
        if unknown:  # as the protocol does: a misspelt field must not start a session at 100 %
            raise deny(400, "bad-request", f"start has no field {unknown[0]!r} (its fields: {', '.join(START_FIELDS)})")
        return service_answer(ctx.ask("start", **{k: v for k, v in data.items() if v is not None}))

    @app.post("/api/reset")
    def reset() -> Any:
        writing()
        return service_answer(ctx.ask("reset"))

    @app.post("/api/silence")
    def silence() -> Any:
        writing()
        return service_answer(ctx.ask("silence"))

    @app.get("/api/history")
    def history() -> Any:
        logged_in()
        answer = ctx.ask("history", limit=20)
        if answer.get("ok"):
            for entry in answer.get("sessions", []):
                name = entry.get("log")
                entry["plot"] = f"/api/plot/{name}" if isinstance(name, str) and LOG_NAME.fullmatch(name) else None
        return service_answer(answer)

    @app.get("/api/plot/<name>")
    def plot(name: str) -> Any:
        logged_in()
        if not LOG_NAME.fullmatch(name):
            raise deny(404, "not-found", "no such session log")
        path = ctx.sessions_dir / name
        try:
            st = path.stat()
        except OSError:
            raise deny(404, "not-found", f"no session log {name} in {ctx.sessions_dir}") from None
        png = draw_plot(ctx, path, (name, st.st_mtime, st.st_size))
        return bottle.HTTPResponse(png, 200, {"Content-Type": "image/png", "Cache-Control": "private, max-age=60"})

    # -- the profile editor --------------------------------------------------------------------------------------
    @app.get("/api/profiles")
    def profiles() -> Any:
        logged_in()
        return {"ok": True, "profiles": ctx.editor.names(), "dir": str(ctx.editor.path_of("x").parent)}

    @app.get("/api/profiles/<name>")
    def profile_text(name: str) -> Any:
        logged_in()
        path = editor_path(ctx, name)
        try:
            return {"ok": True, "name": name, "path": str(path), "text": path.read_text(encoding="utf-8")}
        except FileNotFoundError:
            raise deny(404, "not-found", f"no profile {name}") from None

    @app.post("/api/profiles/<name>/check")
    def profile_check(name: str) -> Any:
        _, data = writing()
        editor_path(ctx, name)
        _, problems = ctx.editor.check(name, text_of(data))
        return problems_answer(problems, "it loads: no problem found")

    @app.post("/api/profiles/<name>/preview")
    def profile_preview(name: str) -> Any:
        _, data = writing()
        editor_path(ctx, name)
        text = text_of(data)
        with heavy(ctx), tempfile.TemporaryDirectory(prefix="legsleeve-preview-") as tmp:
            log_path = Path(tmp) / "plan.csv"
            plan, problems = ctx.editor.preview(name, text, log_path)
            if plan is None:
                return problems_answer(problems, "")
            image, why = plot_png(log_path, f"planned cycle: {name}")
        plan["plot"] = "data:image/png;base64," + base64.b64encode(image).decode() if image else None
        plan["plot_error"] = why
        return {"ok": True, "problems": [], "plan": plan, "text": f"one cycle: {plan['duration_s']:.0f} s"}

    @app.post("/api/profiles/<name>")
    def profile_save(name: str) -> Any:
        _, data = writing()
        editor_path(ctx, name)
        path, problems = ctx.editor.save(name, text_of(data))
        if path is None:
            return problems_answer(problems, "")
        return {
            "ok": True,
            "problems": [],
            "path": str(path),
            "text": f"saved {path}: the next start of {name} runs this version",
        }

    return app


NOT_CONFIRMED = "STOP NOT CONFIRMED \u2013 use the sleeve's button or E-stop"


def stop_page(reply: dict[str, Any]) -> bottle.HTTPResponse:
    """The plain form's answer to a stop (the page without its script): a small page with the service's words, 200
    when the service confirmed the stop, else 503 and NOT_CONFIRMED - never a silent redirect to the page."""
    ok = bool(reply.get("ok"))
    said = html.escape(str(reply.get("text") or ("stopped" if ok else "no answer")))
    head = "Stop sent" if ok else html.escape(NOT_CONFIRMED)
    body = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        'content="width=device-width, initial-scale=1"><title>legsleeve: stop</title>'
        '<link rel="stylesheet" href="/static/style.css"></head>\n'
        f'<body><main><section class="card"><h1 class="{"" if ok else "error"}">{head}</h1>'
        f"<p>The service said: {said}</p>"
        '<p><a href="/">Back to the page</a></p></section></main></body></html>\n'
    )
    return bottle.HTTPResponse(
        body, 200 if ok else 503, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
    )


def service_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """The service's answer as the page gets it: `ok`, `error` (its code), `text` for a person, the rest as sent."""
    return answer


def problems_answer(problems: list[Problem], ok_text: str) -> dict[str, Any]:
    return {
        "ok": not problems,
        "problems": [{"line": p.line, "text": p.text} for p in problems],
        "text": ok_text if not problems else f"{len(problems)} problem(s)",
    }


def text_of(data: dict[str, Any]) -> str:
    text = data.get("text")
    if not isinstance(text, str):
        raise deny(400, "bad-request", "the profile's text is missing")
    return text


def editor_path(ctx: WebContext, name: str) -> Path:
    try:
        check_name(name)
    except ValueError as exc:
        raise deny(400, "bad-name", str(exc)) from None
    return ctx.editor.path_of(name)


def plot_png(log_path: Path, title: str) -> tuple[bytes | None, str | None]:
    """A session log drawn by `legsleeve plot`'s code, as PNG bytes; (None, why) without matplotlib (the plot extra
    may well be missing on a Pi: the page says so and shows the rest)."""
    from legsleeve.app.plot import plot_log, require_matplotlib

    try:
        require_matplotlib()
    except ImportError as exc:
        return None, str(exc)
    with tempfile.TemporaryDirectory(prefix="legsleeve-plot-") as tmp:
        out = plot_log(log_path, Path(tmp) / "plot.png", title=title)
        return out.read_bytes(), None


@contextlib.contextmanager
def heavy(ctx: WebContext) -> Iterator[None]:
    """Hold the one slot for a drawing or a planned cycle, or answer 503 "busy" at once (see `WebContext._heavy`)."""
    if not ctx._heavy.acquire(blocking=False):
        raise deny(503, "busy", "busy drawing another plot or preview: try again in a few seconds")
    try:
        yield
    finally:
        ctx._heavy.release()


def draw_plot(ctx: WebContext, path: Path, key: tuple[str, float, int]) -> bytes:
    """A session's plot, drawn once per version of its log, one at a time (each takes tens of MB on a Pi)."""
    with ctx._plot_lock:
        if key in ctx._plots:
            ctx._plots.move_to_end(key)
            return ctx._plots[key]
    with heavy(ctx):
        try:
            png, why = plot_png(path, path.name)
        except (ValueError, UnicodeDecodeError) as exc:  # not a session log, or an empty one
            raise deny(422, "not-a-log", str(exc)) from None
    if png is None:
        raise deny(501, "no-plot", f"{why} (the rest of the history is here; `legsleeve plot` draws it on a PC)")
    with ctx._plot_lock:
        ctx._plots[key] = png
        while len(ctx._plots) > PLOT_CACHE:
            ctx._plots.popitem(last=False)
    return png
