"""A WSGI test client for the web page's application, with a cookie jar: requests go straight into the app (no
socket, no server), and a fake service stands in for the control socket."""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

from legsleeve.web.live import Latest
from tests.helpers import CONFIG_DIR

IDLE = {
    "state": "idle",
    "profile": None,
    "selected": "gentle",
    "zones": [{"name": "ankle", "mmhg": None, "target_mmhg": None, "valve": "vent"}],
    "alarm": None,
}


@dataclass
class FakeService:
    """The service as the page sees it: `asked` records each (cmd, fields) sent; `answers` says what it answers."""

    asked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ask(self, cmd: str, **fields: Any) -> dict[str, Any]:
        self.asked.append((cmd, fields))
        return self.answers.get(cmd, {"ok": True, "cmd": cmd, "text": f"{cmd}: done"})

    def latest(self) -> Latest:
        return Latest(IDLE, 0.1, "ok", "")

    def hello(self, *, refresh: bool = False) -> dict[str, Any]:
        return {"ok": True, "profiles": [], "max_mmhg": 90}


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def headers_named(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


class Client:
    def __init__(self, app: Any, host: str = "127.0.0.1:8080", remote: str = "127.0.0.1"):
        self.app = app
        self.host = host
        self.remote = remote  # the client's address (REMOTE_ADDR), as waitress sets it
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
        token: bool = True,
    ) -> Response:
        raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        environ: dict[str, Any] = {}
        setup_testing_defaults(environ)
        path, _, query = path.partition("?")
        environ.update(
            {
                "REQUEST_METHOD": method,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "HTTP_HOST": self.host,
                "REMOTE_ADDR": self.remote,
                "HTTP_ACCEPT": "application/json",
                "wsgi.input": io.BytesIO(raw),
                "CONTENT_LENGTH": str(len(raw)),
            }
        )
        if method != "GET":
            environ["CONTENT_TYPE"] = content_type
            if token and self.csrf:
                environ["HTTP_X_CSRF_TOKEN"] = self.csrf
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for k, v in (headers or {}).items():
            environ["CONTENT_LENGTH" if k.lower() == "content-length" else "HTTP_" + k.upper().replace("-", "_")] = v
        got: dict[str, Any] = {}

        def start_response(status: str, hdrs: list[tuple[str, str]], exc_info: Any = None) -> None:
            got["status"], got["headers"] = int(status.split()[0]), hdrs

        out = b"".join(self.app(environ, start_response))
        res = Response(got["status"], got["headers"], out)
        for line in res.headers_named("Set-Cookie"):
            c = SimpleCookie()
            c.load(line)
            for k, morsel in c.items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(k, None)
                else:
                    self.cookies[k] = morsel.value
        return res

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.request("POST", path, {} if body is None else body, **kw)

    def open_session(self) -> dict[str, Any]:
        data = self.get("/api/session").json()
        self.csrf = data["csrf"]
        return data


def config_copy(tmp_path: Path) -> Path:
    """The shipped config in a temporary directory (the editor writes into its profiles/)."""
    dst = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, dst, ignore=shutil.ignore_patterns("web-password"))
    return dst
