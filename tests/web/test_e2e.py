"""The web page end to end: `legsleeve serve --sim` (its virtual clock paced to the wall clock by RealTimePacer, so
the session runs as a person would see it) and `legsleeve web` open to the LAN with a password, on an ephemeral
port; then tests/web/e2e/e2e.mjs drives Debian's Chromium through playwright-core (the steps are listed there), and
takes a phone-sized screenshot: into the test's temporary directory, so a run leaves the checkout as it was; into
docs/web.png, the README's, only with LEGSLEEVE_UPDATE_SCREENSHOT=1 (to retake it after the page changed).

Skipped, saying why, when Chromium, node or the npm packages are missing - unless LEGSLEEVE_REQUIRE_E2E=1 (.ci/run
sets it, and installs them), where the same absence fails: in CI this test runs.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import CONFIG_DIR, ROOT

E2E_DIR = Path(__file__).resolve().parent / "e2e"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
README_SCREENSHOT = ROOT / "docs" / "web.png"  # written only with LEGSLEEVE_UPDATE_SCREENSHOT=1
PASSWORD = "sleeve-e2e-password"
START_S = 30.0  # deadline for each process to come up
E2E_S = 300.0  # deadline for the browser's part (the session itself is ~30 s of real time)


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (apt-get install -y nodejs)"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed (apt-get install -y chromium)"
    if not (E2E_DIR / "node_modules" / "playwright-core").is_dir():
        return f"playwright-core is not installed: npm ci --prefix {E2E_DIR}"
    try:
        import bottle  # noqa: F401
        import waitress  # noqa: F401
    except ImportError:
        return "the web extra is not installed: pip install -e '.[web]'"
    return None


@pytest.fixture
def e2e_tools():
    why = _missing()
    if why is not None:
        if os.environ.get("LEGSLEEVE_REQUIRE_E2E") == "1":
            pytest.fail(f"LEGSLEEVE_REQUIRE_E2E=1 and the web page's end-to-end test cannot run: {why}")
        pytest.skip(f"the web page's end-to-end test needs it: {why}")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    here = str(ROOT / "firmware")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("LEGSLEEVE_CONTROL", None)
    env["MPLBACKEND"] = "Agg"
    return env


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "legsleeve", *args],
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
        env=_env(),
        start_new_session=True,  # its own process group: ended as a whole, never by name
    )


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stdout:
        proc.stdout.close()


def _wait_for_service(sock: Path, serve: subprocess.Popen, log: Path) -> None:
    from legsleeve.app.control import request

    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        assert serve.poll() is None, f"serve --sim exited {serve.returncode}: {log.read_text()[-2000:]}"
        try:
            if request("status", str(sock), timeout_s=1.0).get("ok"):
                return
        except OSError:
            pass
        time.sleep(0.1)  # polling with a deadline: the process is coming up
    pytest.fail(f"serve --sim did not answer within {START_S:g} s: {log.read_text()[-2000:]}")


def _listening_url(web: subprocess.Popen, log: Path) -> str:
    """The port `legsleeve web` says it listens on (its first line on stdout)."""
    assert web.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(web.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if not sel.select(timeout=max(deadline - time.monotonic(), 0.01)):
            continue
        line = web.stdout.readline().decode()
        if not line:
            break
        if "listening on http://" in line:
            port = line.split("listening on http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
            return f"http://127.0.0.1:{port}/"
    pytest.fail(f"legsleeve web did not start (exit {web.poll()}): {log.read_text()[-2000:]}")


def _stat(path: Path) -> tuple[int, int] | None:
    """A file's modification time and size, or None when it is absent."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


def screenshot_path(tmp_path: Path) -> Path:
    """Where the run's screenshot goes: the test's own directory, or the README's docs/web.png when asked for."""
    if os.environ.get("LEGSLEEVE_UPDATE_SCREENSHOT") == "1":
        return README_SCREENSHOT
    return tmp_path / "web.png"


def test_the_screenshot_goes_to_docs_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.delenv("LEGSLEEVE_UPDATE_SCREENSHOT", raising=False)
    assert screenshot_path(tmp_path) == tmp_path / "web.png"
    monkeypatch.setenv("LEGSLEEVE_UPDATE_SCREENSHOT", "0")
    assert screenshot_path(tmp_path) == tmp_path / "web.png"
    monkeypatch.setenv("LEGSLEEVE_UPDATE_SCREENSHOT", "1")
    assert screenshot_path(tmp_path) == README_SCREENSHOT


def test_the_web_page_end_to_end_in_chromium(e2e_tools, tmp_path):
    shot = screenshot_path(tmp_path)
    readme_before = _stat(README_SCREENSHOT)
    # a short directory for the socket (a Unix socket's path has at most 107 bytes)
    run = Path(tempfile.mkdtemp(prefix="ls-e2e-", dir="/tmp"))
    try:
        config = tmp_path / "config"
        shutil.copytree(CONFIG_DIR, config, ignore=shutil.ignore_patterns("web-password"))
        (config / "web.yaml").write_text("# the LAN open: a password is required\nlisten: 0.0.0.0:8080\n")
        gentle = (config / "profiles/gentle.yaml").read_text()
        setpw = subprocess.run(
            [sys.executable, "-m", "legsleeve", "web-password", "--config", str(config), "--stdin"],
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            env=_env(),
            timeout=60,
        )
        assert setpw.returncode == 0, setpw.stderr
        assert PASSWORD not in (config / "web-password").read_text()
        sock, logs = run / "control.sock", tmp_path / "sessions"
        serve_log, web_log = tmp_path / "serve.log", tmp_path / "web.log"
        serve = _spawn(
            ["serve", "--sim", "--config", str(config), "--socket", str(sock), "--log-dir", str(logs)], serve_log
        )
        web = None
        try:
            _wait_for_service(sock, serve, serve_log)
            web = _spawn(
                ["web", "--config", str(config), "--socket", str(sock), "--listen", "0.0.0.0:0",
                 "--sessions-dir", str(logs)],
                web_log,
            )  # fmt: skip
            url = _listening_url(web, web_log)
            fail_shot = tmp_path / "failed.png"
            proc = subprocess.run(
                ["node", str(E2E_DIR / "e2e.mjs")],
                cwd=E2E_DIR,
                env={
                    **os.environ,
                    "LEGSLEEVE_URL": url,
                    "LEGSLEEVE_PASSWORD": PASSWORD,
                    "LEGSLEEVE_SCREENSHOT": str(shot),
                    "LEGSLEEVE_FAIL_SHOT": str(fail_shot),
                    "CHROMIUM": CHROMIUM,
                },  # fmt: skip
                capture_output=True,
                text=True,
                timeout=E2E_S,
            )
            print(proc.stdout)
            assert proc.returncode == 0, (
                f"{proc.stdout}\n{proc.stderr}\n(the page when it failed: {fail_shot})\n"
                f"web: {web_log.read_text()[-1500:]}\nserve: {serve_log.read_text()[-1500:]}"
            )
            assert "e2e: ok" in proc.stdout
        finally:
            if web is not None:
                _end(web)
            _end(serve)
        # what the page did, as the service recorded it; and the mistake never reached the profile the service reads
        assert (config / "profiles/gentle.yaml").read_text() == gentle
        history = (logs / "history.jsonl").read_text().splitlines()
        assert len(history) == 1 and '"outcome": "stopped"' in history[0].replace('":"', '": "')
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if shot != README_SCREENSHOT:
            assert _stat(README_SCREENSHOT) == readme_before, "the run must leave docs/web.png as it was"
    finally:
        shutil.rmtree(run, ignore_errors=True)
