"""The web page's application, request by request (tests/web/client.py: straight into the WSGI app, a fake service
behind it): who may do what, CSRF, stop without a login, the profile editor's errors at their line, the settings
and the password file, and the refusal to start open to the LAN without a password."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

pytest.importorskip("bottle", reason="the web extra: pip install -e '.[web]'")

from legsleeve.app.cli import main
from legsleeve.errors import ConfigError
from legsleeve.web import settings
from legsleeve.web.app import WebContext, make_app
from legsleeve.web.auth import GLOBAL_TRIES, GLOBAL_WINDOW_S, GUESS_DELAY_MAX_S, GUESSES_FREE, MAX_SESSIONS
from legsleeve.web.editor import Editor
from legsleeve.web.settings import WebConfig, hash_password, load_web_config, verify_password
from tests.web.client import Client, FakeService, config_copy

PASSWORD = "correct horse battery"
# one scrypt hash for the module: each costs ~50 ms (16 MiB), and the tests need the check, not the cost
HASH = hash_password(PASSWORD)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def build(tmp_path: Path, *, lan: bool = True, password: bool = True, host: str | None = None):
    config_dir = config_copy(tmp_path)
    service = FakeService()
    clock = Clock()
    cfg = WebConfig(
        config_dir / "web.yaml",
        host="0.0.0.0" if lan else "127.0.0.1",
        sessions_dir=tmp_path / "logs",
        auth="password" if password else "none",  # as legsleeve web's checks allow: no password only with auth: none
    )
    ctx = WebContext(
        config=cfg,
        password_hash=HASH if password else None,
        live=service,
        ask=service.ask,
        editor=Editor(config_dir),
        sessions_dir=tmp_path / "logs",
        clock=clock,
    )
    client = Client(make_app(ctx), host=host or ("192.168.1.20:8080" if lan else "127.0.0.1:8080"))
    return client, service, ctx, clock


def logged_in(client: Client) -> Client:
    client.open_session()
    r = client.post("/api/login", {"password": PASSWORD})
    assert r.status == 200, r.body
    client.csrf = r.json()["csrf"]
    return client


# -- who may do what -----------------------------------------------------------------------------------------------


def test_with_the_lan_open_everything_but_the_shell_stop_and_login_needs_a_login(tmp_path):
    client, service, _, _ = build(tmp_path)
    assert client.get("/").status == 200 and b"STOP" in client.get("/").body  # the shell: no data in it
    assert client.get("/static/app.js").status == 200
    assert client.get("/static/style.css").status == 200
    session = client.open_session()
    assert session["password_needed"] and not session["logged_in"]
    for path in ("/api/status", "/api/hello", "/api/history", "/api/profiles", "/api/profiles/gentle",
                 "/api/plot/20261125-100000-gentle.csv"):  # fmt: skip
        r = client.get(path)
        assert r.status == 401 and r.json()["error"] == "login", path
    for path in ("/api/start", "/api/reset", "/api/silence", "/api/profiles/gentle/check",
                 "/api/profiles/gentle/preview", "/api/profiles/gentle", "/api/logout"):  # fmt: skip
        r = client.post(path, {"text": "x"})  # with the anonymous session's own CSRF token: still no
        assert r.status == 401, path
    assert service.asked == []  # nothing reached the service


def test_stop_needs_no_login_no_token_and_no_cookie(tmp_path):
    client, service, _, _ = build(tmp_path)
    r = client.post("/api/stop", token=False)
    assert r.status == 200 and r.json()["ok"]
    # the page's plain form (no script): a small page with the service's words, and a way back
    r = client.request("POST", "/api/stop", b"", headers={"Accept": "text/html"},
                       content_type="application/x-www-form-urlencoded", token=False)  # fmt: skip
    assert r.status == 200 and (r.header("Content-Type") or "").startswith("text/html")
    assert b"stop: done" in r.body and b'href="/"' in r.body and b"NOT CONFIRMED" not in r.body
    # anything sent along is ignored: stop takes no parameters, so a forged stop can only stop
    client.post("/api/stop", {"cmd": "start", "profile": "wave"}, token=False)
    assert service.asked == [("stop", {})] * 3


def test_stop_says_so_when_the_service_is_down(tmp_path):
    client, service, _, _ = build(tmp_path)
    service.answers["stop"] = {"ok": False, "error": "no-service", "text": "the service is not running"}
    r = client.post("/api/stop", token=False)
    assert r.status == 503 and "not running" in r.json()["text"]


def test_the_plain_form_says_stop_not_confirmed_when_the_service_did_not_confirm(tmp_path):
    """Not a 303 back to the page as if all were well: 503, the service's words, and what to do instead."""
    client, service, _, _ = build(tmp_path)
    service.answers["stop"] = {"ok": False, "error": "no-service", "text": "the service is <not> running"}
    r = client.request("POST", "/api/stop", b"", headers={"Accept": "text/html"},
                       content_type="application/x-www-form-urlencoded", token=False)  # fmt: skip
    page = r.body.decode()
    assert r.status == 503 and r.header("Location") is None
    assert "STOP NOT CONFIRMED \u2013 use the sleeve&#x27;s button or E-stop" in page
    assert "the service is &lt;not&gt; running" in page  # its words, escaped


def test_the_pages_script_warns_when_a_stop_is_not_confirmed():
    """The script's stop: a failed fetch (no network, the page down) or a refusal shows the same warning, and keeps
    it on the screen (no timer clears it)."""
    from legsleeve.web.app import NOT_CONFIRMED, STATIC

    js = (STATIC / "app.js").read_text()
    handler = js[js.index('$("stop-form").addEventListener') :]
    handler = handler[: handler.index("\n});") + 4]
    assert NOT_CONFIRMED.replace("\u2013", "\\u2013") in js
    assert "catch (e)" in handler and "NOT_CONFIRMED" in handler and "!res.ok" in handler


def test_login_gives_a_new_session_in_an_httponly_samesite_strict_cookie(tmp_path):
    client, _, _, _ = build(tmp_path)
    client.open_session()
    before = dict(client.cookies)
    assert client.post("/api/login", {"password": "wrong one"}).status == 401
    r = client.post("/api/login", {"password": PASSWORD})
    assert r.status == 200
    cookie = r.header("Set-Cookie") or ""
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/" in cookie
    assert client.cookies != before  # a new token: a session fixed before the login is worth nothing after it
    client.csrf = r.json()["csrf"]
    assert client.get("/api/status").status == 200
    stale = Client(client.app, client.host)
    stale.cookies = before
    assert stale.get("/api/status").status == 401


def test_login_itself_needs_the_sessions_csrf_token(tmp_path):
    client, _, _, _ = build(tmp_path)
    client.open_session()
    assert client.post("/api/login", {"password": PASSWORD}, token=False).status == 403


def test_password_guessing_is_braked(tmp_path):
    client, _, _, clock = build(tmp_path)
    client.open_session()
    for _ in range(GUESSES_FREE):
        assert client.post("/api/login", {"password": "guess"}).status == 401
    r = client.post("/api/login", {"password": PASSWORD})
    assert r.status == 429 and "try again" in r.json()["text"]
    clock.t += 10
    assert client.post("/api/login", {"password": PASSWORD}).status == 200


def test_the_brake_is_per_client_and_backs_off_but_never_locks_the_owner_out(tmp_path):
    client, _, _, clock = build(tmp_path)
    attacker = Client(client.app, client.host, remote="192.168.1.66")
    attacker.open_session()
    for _ in range(GUESSES_FREE):
        assert attacker.post("/api/login", {"password": "guess"}).status == 401
    waits = []
    for _ in range(12):  # each wrong try doubles the attacker's wait, up to a ceiling
        r = attacker.post("/api/login", {"password": "guess"})
        assert r.status == 429
        waits.append(int(r.json()["text"].split("try again in ")[1].split()[0]))
        clock.t += waits[-1]
        attacker.open_session()  # an anonymous session lasts an hour: a new one, as the page would fetch
        assert attacker.post("/api/login", {"password": "guess"}).status == 401
    assert waits[:3] == [5, 10, 20] and max(waits) == GUESS_DELAY_MAX_S
    # the owner, at another address, is not held up by the attacker at all
    owner = Client(client.app, client.host, remote="192.168.1.20")
    owner.open_session()
    assert owner.post("/api/login", {"password": "typo"}).status == 401
    assert owner.post("/api/login", {"password": PASSWORD}).status == 200
    # one IPv6 host holds a whole /64: it counts as one client
    v6 = [Client(client.app, client.host, remote=f"2001:db8::{i:x}") for i in range(1, GUESSES_FREE + 2)]
    for c in v6:
        c.open_session()
    assert [c.post("/api/login", {"password": "guess"}).status for c in v6] == [401] * GUESSES_FREE + [429]


def test_the_global_ceiling_holds_many_addresses_back_for_one_window_at_most(tmp_path):
    client, _, _, clock = build(tmp_path)
    for i in range(GLOBAL_TRIES):
        c = Client(client.app, client.host, remote=f"10.0.{i // 200}.{i % 200 + 1}")
        c.open_session()
        assert c.post("/api/login", {"password": "guess"}).status == 401
    owner = Client(client.app, client.host, remote="192.168.1.20")
    owner.open_session()
    r = owner.post("/api/login", {"password": PASSWORD})
    assert r.status == 429 and int(r.json()["text"].split("try again in ")[1].split()[0]) <= GLOBAL_WINDOW_S
    clock.t += GLOBAL_WINDOW_S
    assert owner.post("/api/login", {"password": PASSWORD}).status == 200


def test_a_try_is_counted_before_its_password_is_checked(tmp_path):
    """Concurrent guesses: the slot is claimed under the lock before verifying, so a guess arriving while another is
    being checked (scrypt takes a while) is braked as if the first had already failed."""
    client, _, ctx, _ = build(tmp_path)
    client.open_session()
    for _ in range(GUESSES_FREE - 1):
        assert client.post("/api/login", {"password": "guess"}).status == 401
    during: list[int] = []
    other = Client(client.app, client.host)
    other.open_session()

    def verify(password: str, stored: str) -> bool:
        if password == "last free guess":  # a second request comes in while this one is being checked
            during.append(other.post("/api/login", {"password": "concurrent guess"}).status)
        return False

    ctx.verify = verify
    assert client.post("/api/login", {"password": "last free guess"}).status == 401
    assert during == [429]


def test_anonymous_visitors_never_push_out_a_logged_in_session(tmp_path):
    """A flood of `GET /api/session` keeps nothing on the server: the logged-in session stays."""
    client, _, ctx, _ = build(tmp_path)
    logged_in(client)
    for _ in range(4 * MAX_SESSIONS):
        assert Client(client.app, client.host).get("/api/session").status == 200
    assert client.get("/api/status").status == 200
    assert ctx.sessions.stored() == 1
    # an anonymous session's token still works for its login (its CSRF token is derived, not stored) ...
    late = Client(client.app, client.host)
    late.open_session()
    assert late.post("/api/login", {"password": PASSWORD}).status == 200
    # ... and a made-up or tampered token is worth nothing
    forged = Client(client.app, client.host)
    forged.cookies = {"legsleeve_session": "a.1000." + "A" * 43}
    forged.csrf = "made-up"
    assert forged.post("/api/login", {"password": PASSWORD}).status == 403


def test_an_anonymous_session_expires(tmp_path):
    from legsleeve.web.auth import ANON_TTL_S

    client, _, _, clock = build(tmp_path)
    client.open_session()
    clock.t += ANON_TTL_S + 1
    assert client.post("/api/login", {"password": PASSWORD}).status == 403
    # a token made up to be issued in the future (so never to expire) is no session at all
    forged = Client(client.app, client.host)
    forged.cookies = {"legsleeve_session": f"a.{int(clock.t) + 10**9}." + "A" * 43}
    assert forged.open_session()["csrf"] != ""
    assert forged.cookies["legsleeve_session"].split(".")[1] == str(int(clock.t))  # a fresh one was issued


def test_a_login_expires(tmp_path):
    client, _, ctx, clock = build(tmp_path)
    logged_in(client)
    clock.t += ctx.config.session_hours * 3600 + 1
    assert client.get("/api/status").status == 401


# -- CSRF ----------------------------------------------------------------------------------------------------------


def test_state_changing_requests_are_refused_without_the_csrf_token(tmp_path):
    client, service, _, _ = build(tmp_path)
    logged_in(client)
    good = client.csrf
    for path in ("/api/start", "/api/reset", "/api/silence", "/api/profiles/gentle/check", "/api/profiles/gentle"):
        assert client.post(path, {"text": "x"}, token=False).status == 403, path
        client.csrf = "not-the-token"
        assert client.post(path, {"text": "x"}).status == 403, path
        client.csrf = good
    # another site's page, even with the token (which it could not read anyway)
    r = client.post("/api/start", {"profile": "wave"}, headers={"Origin": "http://evil.example"})
    assert r.status == 403
    # a form post (text/plain, urlencoded): what a cross-site form can send, refused
    r = client.post("/api/start", b"profile=wave", content_type="text/plain")
    assert r.status == 415
    assert service.asked == []
    r = client.post("/api/start", {"profile": "wave", "intensity_pct": 80}, headers={"Origin": f"http://{client.host}"})
    assert r.status == 200 and service.asked == [("start", {"profile": "wave", "intensity_pct": 80})]


def test_start_forwards_only_the_protocols_fields_and_the_service_judges(tmp_path):
    client, service, _, _ = build(tmp_path)
    logged_in(client)
    r = client.post("/api/start", {"profile": "wave", "intensity": 80})  # misspelt: must not start at 100 %
    assert r.status == 400 and "intensity" in r.json()["text"] and service.asked == []
    service.answers["start"] = {"ok": False, "error": "out-of-range", "text": "refused: at most 120 %"}
    r = client.post("/api/start", {"profile": "wave", "intensity_pct": 150, "minutes": None})
    assert r.json() == service.answers["start"]  # the service's answer, shown as it is
    assert service.asked == [("start", {"profile": "wave", "intensity_pct": 150})]


def test_on_localhost_no_password_is_asked_but_the_token_still_is(tmp_path):
    client, service, _, _ = build(tmp_path, lan=False, password=False)
    session = client.open_session()
    assert not session["password_needed"] and session["logged_in"]
    assert client.get("/api/status").json()["status"]["state"] == "idle"
    assert client.post("/api/start", {"profile": "wave"}, token=False).status == 403
    assert client.post("/api/start", {"profile": "wave"}).status == 200


def test_on_localhost_another_host_name_is_refused(tmp_path):
    """DNS rebinding: a site whose name resolves to 127.0.0.1 would be same-origin with the page."""
    client, _, _, _ = build(tmp_path, lan=False, password=False, host="evil.example:8080")
    assert client.get("/api/session").status == 403
    assert client.get("/").status == 403
    for host in ("localhost:8080", "[::1]:8080", "127.0.0.1"):
        assert Client(client.app, host).get("/api/session").status == 200, host


def test_every_answer_carries_the_security_headers(tmp_path):
    client, _, _, _ = build(tmp_path)
    for r in (client.get("/"), client.get("/api/status"), client.post("/api/stop", token=False)):
        assert "frame-ancestors 'none'" in (r.header("Content-Security-Policy") or "")
        assert r.header("X-Content-Type-Options") == "nosniff"


# -- history and plots ---------------------------------------------------------------------------------------------


def test_history_links_each_sessions_plot_and_refuses_other_paths(tmp_path, monkeypatch):
    client, service, _, _ = build(tmp_path)
    logged_in(client)
    service.answers["history"] = {"ok": True, "sessions": [{"log": "a.csv"}, {"log": None}, {"log": "../x.csv"}]}
    sessions = client.get("/api/history").json()["sessions"]
    assert [s["plot"] for s in sessions] == ["/api/plot/a.csv", None, None]
    assert client.get("/api/plot/..%2Fhardware.csv").status == 404
    assert client.get("/api/plot/missing.csv").status == 404


def test_a_plot_without_matplotlib_says_what_to_install(tmp_path, monkeypatch):
    import legsleeve.app.plot as plot

    client, _, ctx, _ = build(tmp_path)
    logged_in(client)
    ctx.sessions_dir.mkdir()
    (ctx.sessions_dir / "a.csv").write_text("t_s\n0\n")

    def missing() -> None:
        raise ImportError("plotting needs matplotlib: pip install 'legsleeve[plot]'")

    monkeypatch.setattr(plot, "require_matplotlib", missing)
    r = client.get("/api/plot/a.csv")
    assert r.status == 501 and "legsleeve[plot]" in r.json()["text"]


# -- the profile editor --------------------------------------------------------------------------------------------


def _gentle_with_a_mistake(config_dir: Path) -> tuple[str, int]:
    text = (config_dir / "profiles/gentle.yaml").read_text()
    lines = text.splitlines()
    line = next(i for i, s in enumerate(lines, 1) if s.strip() == "hold_s: 8")
    lines[line - 1] = lines[line - 1].replace("hold_s: 8", "hold_s: -3")
    return "\n".join(lines) + "\n", line


def test_a_bad_profile_shows_its_error_at_its_line_and_is_not_saved(tmp_path):
    client, _, ctx, _ = build(tmp_path)
    logged_in(client)
    path = ctx.editor.path_of("gentle")
    before = path.read_text()
    text, line = _gentle_with_a_mistake(path.parent.parent)
    r = client.post("/api/profiles/gentle/check", {"text": text}).json()
    assert not r["ok"]
    (problem,) = r["problems"]
    assert problem["line"] == line
    assert problem["text"].startswith(f"{path}:{line}: cycle[0].hold_s: ")  # file:line: key: message
    r = client.post("/api/profiles/gentle", {"text": text}).json()
    assert not r["ok"] and r["problems"][0]["line"] == line
    assert path.read_text() == before  # the service never sees it
    r = client.post("/api/profiles/gentle/preview", {"text": text}).json()
    assert not r["ok"] and "plan" not in r


def test_a_good_profile_is_saved_whole_and_readable_by_the_service(tmp_path):
    client, _, ctx, _ = build(tmp_path)
    logged_in(client)
    path = ctx.editor.path_of("gentle")
    text = path.read_text().replace("hold_s: 8", "hold_s: 9")
    r = client.post("/api/profiles/gentle", {"text": text}).json()
    assert r["ok"] and "the next start of gentle runs this version" in r["text"] and "restart" not in r["text"]
    assert path.read_text() == text
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []  # no temporary left
    # a new profile: its name must be its file's
    new = text.replace("name: gentle", "name: mine")
    assert client.post("/api/profiles/mine", {"text": new}).json()["ok"]
    assert "mine" in client.get("/api/profiles").json()["profiles"]
    wrong = client.post("/api/profiles/other", {"text": new}).json()
    assert not wrong["ok"] and "must match the file name" in wrong["problems"][0]["text"]
    assert client.post("/api/profiles/..%2Fhardware", {"text": new}).status in (400, 404)
    assert client.post("/api/profiles/Bad.Name", {"text": new}).status == 400


def test_a_drawing_under_way_answers_busy_and_never_holds_up_a_stop(tmp_path):
    """One plot or preview at a time; a second is told "busy" at once instead of holding one of waitress's workers, so
    a stop always finds one free."""
    client, service, ctx, _ = build(tmp_path)
    logged_in(client)
    ctx.sessions_dir.mkdir()
    (ctx.sessions_dir / "a.csv").write_text("t_s\n0\n")
    assert ctx._heavy.acquire(blocking=False)  # a drawing under way
    try:
        r = client.post("/api/profiles/gentle/preview", {"text": ctx.editor.read("gentle")})
        assert r.status == 503 and r.json()["error"] == "busy"
        assert client.get("/api/plot/a.csv").status == 503
        assert client.post("/api/stop", token=False).status == 200 and service.asked == [("stop", {})]
    finally:
        ctx._heavy.release()


def test_the_preview_is_profile_shows_plan(tmp_path):
    client, _, ctx, _ = build(tmp_path)
    logged_in(client)
    text = ctx.editor.read("gentle")
    r = client.post("/api/profiles/gentle/preview", {"text": text}).json()
    assert r["ok"], r
    plan = r["plan"]
    assert plan["trip"] is None and plan["steps"][0]["t_s"] == 0.0
    assert any(s["step"].startswith("fill") for s in plan["steps"])
    assert "hardware.yaml" in plan["model"]  # no calibration.yaml in the copy
    assert plan["plot"] is None or plan["plot"].startswith("data:image/png;base64,")


# -- settings, password, refusal to start ---------------------------------------------------------------------------


def test_web_yaml_is_checked_with_file_line_and_key(tmp_path):
    (tmp_path / "web.yaml").write_text("listen: 0.0.0.0:8080\nsesion_hours: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_web_config(tmp_path)
    assert exc.value.problems == [
        f"{tmp_path / 'web.yaml'}:2: sesion_hours: unknown key (did you mean 'session_hours'?)"
    ]
    (tmp_path / "web.yaml").write_text("listen: sleeve.local\n")
    with pytest.raises(ConfigError, match=r"web.yaml:1: listen: must be HOST:PORT"):
        load_web_config(tmp_path)
    (tmp_path / "web.yaml").unlink()
    assert not load_web_config(tmp_path).lan_open  # no file: localhost only


def test_the_shipped_web_yaml_keeps_the_page_on_the_pi():
    from tests.helpers import CONFIG_DIR

    cfg = load_web_config(CONFIG_DIR)
    assert (cfg.host, cfg.port, cfg.lan_open) == ("127.0.0.1", 8080, False)


def test_the_password_is_stored_hashed_never_in_plain_text(tmp_path, capsys, monkeypatch):
    (tmp_path / "web.yaml").write_text("listen: 0.0.0.0:8080\n")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(PASSWORD + "\n"))
    assert main(["web-password", "--config", str(tmp_path), "--stdin"]) == 0
    stored = (tmp_path / "web-password").read_text()
    assert PASSWORD not in stored and PASSWORD.encode().hex() not in stored
    assert stored.startswith("scrypt$") and stored.count("$") == 5
    assert verify_password(PASSWORD, stored) and not verify_password(PASSWORD + "x", stored)
    assert stat.S_IMODE(os.stat(tmp_path / "web-password").st_mode) in (0o600, 0o640)  # never world-readable
    assert str(tmp_path / "web-password") in capsys.readouterr().out
    # two hashes of one password differ (a salt of their own)
    assert hash_password(PASSWORD) != hash_password(PASSWORD)


def test_a_short_password_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("short\n"))
    assert main(["web-password", "--config", str(tmp_path), "--stdin"]) == 2
    assert not (tmp_path / "web-password").exists()
    assert "at least 8 characters" in capsys.readouterr().err


def test_open_to_the_lan_without_a_password_it_refuses_to_start(tmp_path, capsys):
    (tmp_path / "web.yaml").write_text("# the page\nlisten: 0.0.0.0:8080\n")
    assert main(["web", "--config", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'web.yaml'}:2: listen: 0.0.0.0:8080 opens the page to the network" in err
    assert "web-password" in err and "legsleeve web-password" in err
    assert main(["web", "--config", str(tmp_path), "--listen", "192.168.1.5:0"]) == 2
    assert "--listen: 192.168.1.5:0 opens the page" in capsys.readouterr().err


def test_without_a_password_it_refuses_to_start_on_localhost_too_unless_auth_none(tmp_path, capsys):
    """Every account on the Pi can reach 127.0.0.1: with no password, any of them (not only the group legsleeve, which
    the control socket admits) could run the sleeve. So a password is the default; `auth: none` is an explicit
    choice, and only for a page on this machine."""
    from legsleeve.web.server import plan

    assert main(["web", "--config", str(tmp_path)]) == 2  # no web.yaml at all: 127.0.0.1:8080, auth: password
    err = capsys.readouterr().err
    assert f"{tmp_path / 'web.yaml'}: auth (default: password): the page needs a password, on this machine too" in err
    assert "sudo legsleeve web-password" in err and "auth: none" in err
    (tmp_path / "web.yaml").write_text("listen: 127.0.0.1:8080\n# trust every local account\nauth: none\n")
    checked = plan(tmp_path)
    assert checked.password_hash is None and checked.config.auth == "none"
    assert main(["web", "--config", str(tmp_path), "--listen", "0.0.0.0:0"]) == 2
    err = capsys.readouterr().err
    web = tmp_path / "web.yaml"
    assert f"{web}:3: auth: none (no password) is for a page on this machine only, but --listen" in err
    (tmp_path / "web.yaml").write_text("auth: nobody\n")
    assert main(["web", "--config", str(tmp_path)]) == 2
    assert "web.yaml:1: auth: must be one of password, none (got 'nobody')" in capsys.readouterr().err
    # with a password set, auth: password (the default) starts on localhost
    (tmp_path / "web.yaml").write_text("listen: 127.0.0.1:8080\n")
    (tmp_path / "web-password").write_text(HASH + "\n")
    assert plan(tmp_path).password_hash == HASH


def test_a_hand_written_password_file_is_refused(tmp_path, capsys):
    (tmp_path / "web-password").write_text("hunter2hunter2\n")
    assert main(["web", "--config", str(tmp_path), "--listen", "0.0.0.0:0"]) == 2
    assert "web-password:1: not a password hash" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "lan"),
    [("127.0.0.1", False), ("127.0.1.1", False), ("::1", False), ("localhost", False), ("0.0.0.0", True),
     ("::", True), ("192.168.1.5", True), ("sleeve.local", True)],
)  # fmt: skip
def test_what_counts_as_open_to_the_lan(host, lan):
    assert settings.is_loopback(host) is not lan


def test_live_says_the_service_is_down_and_why(tmp_path):
    """With no service, the page is told so (and the stop's answer says what to do instead), not left waiting."""
    import time

    from legsleeve.web.live import Live

    live = Live(str(tmp_path / "no.sock")).start()
    try:
        deadline = time.monotonic() + 5.0
        while live.latest().error == "connecting to the service" and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the thread's first attempt, with a deadline
        latest = live.latest()
        assert latest.service == "down" and latest.status is None
        assert f"no control socket at {tmp_path / 'no.sock'}" in latest.error
        assert live.hello() is None
    finally:
        live.close()


# -- malformed input: refused with a 4xx, never a 500 ----------------------------------------------------------------


def test_names_with_a_trailing_newline_are_refused(tmp_path):
    """`re.match` with `$` matches before a final newline: a profile `gentle\\n` or a log `a.csv\\n` must not pass."""
    client, service, ctx, _ = build(tmp_path)
    logged_in(client)
    text = ctx.editor.read("gentle")
    assert client.post("/api/profiles/gentle\n", {"text": text}).status == 400
    assert client.post("/api/profiles/gentle\n/check", {"text": text}).status == 400
    assert client.get("/api/profiles/gentle\n").status == 400
    assert client.get("/api/plot/a.csv\n").status == 404
    service.answers["history"] = {"ok": True, "sessions": [{"log": "a.csv\n"}]}
    assert client.get("/api/history").json()["sessions"][0]["plot"] is None
    assert sorted(p.name for p in ctx.editor.path_of("gentle").parent.iterdir() if "\n" in p.name) == []


def test_a_non_ascii_csrf_token_and_deeply_nested_json_are_bad_requests(tmp_path):
    client, service, _, _ = build(tmp_path)
    logged_in(client)
    assert client.post("/api/start", {}, headers={"X-CSRF-Token": "\u00e9"}).status == 403
    assert client.post("/api/login", {}, headers={"X-CSRF-Token": "\u00e9"}).status == 403
    deep = b"[" * 100_000 + b"]" * 100_000
    r = client.post("/api/start", deep)
    assert r.status == 400 and r.json()["error"] == "bad-request"
    assert client.post("/api/profiles/gentle/check", b'{"text": ' + deep + b"}").status == 400
    assert service.asked == []


def test_a_body_announced_too_large_is_refused_before_the_login(tmp_path):
    from legsleeve.web.app import MAX_BODY

    client, service, _, _ = build(tmp_path)
    for path in ("/api/login", "/api/start", "/api/stop"):
        r = client.request("POST", path, b"{}", headers={"Content-Length": str(MAX_BODY + 1)})
        assert r.status == 413 and r.json()["error"] == "too-large", path
    assert client.request("POST", "/api/stop", b"", headers={"Content-Length": "x"}).status == 400
    assert service.asked == []


def test_the_page_says_its_stop_is_a_convenience_and_the_sleeves_button_is_the_safety_stop(tmp_path):
    client, _, _, _ = build(tmp_path)
    page = client.get("/").body.decode()
    bar = " ".join(page[page.index('id="stop-form"') :].split())
    assert "STOP" in bar and "convenience" in bar and "The safety stop is the sleeve's own button or E-stop" in bar


# -- DNS rebinding: the Host header, the LAN open too ----------------------------------------------------------------


def test_with_the_lan_open_a_foreign_host_name_is_refused_but_stop_is_not(tmp_path, monkeypatch):
    """A site whose name the attacker points at the Pi (DNS rebinding) would be same-origin with the page: its
    `Host` is the attacker's name, and only the machine's own names (allowed_hosts) or an address pass."""
    monkeypatch.setattr("socket.gethostname", lambda: "sleeve")
    client, service, _, _ = build(tmp_path, host="attacker.example:8080")
    r = client.get("/api/session")
    assert r.status == 403 and r.json()["error"] == "wrong-host" and "allowed_hosts" in r.json()["text"]
    assert client.get("/").status == 403
    r = client.post("/api/login", {"password": PASSWORD}, headers={"Origin": "http://attacker.example:8080"})
    assert r.status == 403
    # stop is exempt: it only makes the sleeve safer, whatever name the page was reached by
    assert client.post("/api/stop", token=False).status == 200 and service.asked == [("stop", {})]
    for host in ("sleeve:8080", "sleeve.local:8080", "SLEEVE.LOCAL.:8080", "localhost:8080", "192.168.1.20:8080",
                 "[fe80::1]:8080", "127.0.0.1", "10.1.2.3"):  # fmt: skip
        assert Client(client.app, host).get("/api/session").status == 200, host
    for host in ("", "sleeve.local.attacker.example", "sleeve.local:80@x", "[::1]x:80", "sleeve:x", "a b"):
        assert Client(client.app, host).get("/api/session").status == 403, host


def test_allowed_hosts_in_web_yaml_replaces_the_default_names(tmp_path, monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "sleeve")
    (tmp_path / "web.yaml").write_text("listen: 0.0.0.0:8080\nallowed_hosts: [legs.home.arpa, Sleeve.lan]\n")
    cfg = load_web_config(tmp_path)
    assert cfg.allowed_hosts == ("legs.home.arpa", "sleeve.lan")
    client, _, ctx, _ = build(tmp_path / "b")
    ctx.config = cfg
    app = make_app(ctx)
    assert Client(app, "legs.home.arpa:8080").get("/api/session").status == 200
    assert Client(app, "sleeve.local:8080").get("/api/session").status == 403  # not listed any more
    assert Client(app, "192.168.1.20:8080").get("/api/session").status == 200  # addresses always


def test_allowed_hosts_errors_name_file_line_and_key(tmp_path):
    web = tmp_path / "web.yaml"
    web.write_text("listen: 0.0.0.0:8080\nallowed_hosts:\n  - sleeve.local\n  - sleeve.local:8080\n  - 10.0.0.5\n")
    with pytest.raises(ConfigError) as exc:
        load_web_config(tmp_path)
    assert exc.value.problems == [
        f"{web}:4: allowed_hosts[1]: must be a host name such as sleeve.local, no port (got 'sleeve.local:8080')",
        f"{web}:5: allowed_hosts[2]: 10.0.0.5 is an address: addresses are always accepted, list names",
    ]
    web.write_text("allowed_hosts: sleeve.local\n")
    with pytest.raises(ConfigError, match=r"web.yaml:1: allowed_hosts: must be a list"):
        load_web_config(tmp_path)
    web.write_text("alowed_hosts: [x]\n")
    with pytest.raises(ConfigError, match=r"web.yaml:1: alowed_hosts: unknown key \(did you mean 'allowed_hosts'"):
        load_web_config(tmp_path)
