"""The figures of docs/web.md's stack choice: import time and RSS of candidate web stacks, each in a fresh
interpreter (the best of 9), then the peak RSS (VmHWM) after serving 200 requests of a small JSON route on an
ephemeral port. Not a test: run it on the machine to measure (a Pi), in a venv with the candidates installed:

    python3 -m venv /tmp/stacks && /tmp/stacks/bin/pip install bottle flask waitress
    /tmp/stacks/bin/python tests/web/stacks.py
"""

import statistics
import subprocess
import sys
import time
import urllib.request

CANDIDATES = {
    "python alone": ("pass", None),
    "stdlib wsgiref + ThreadingMixIn": ("import wsgiref.simple_server, socketserver, http.cookies", "stdlib"),
    "bottle 0.13 (on stdlib wsgiref, threaded)": ("import bottle, wsgiref.simple_server, socketserver", "bottle"),
    "bottle 0.13 + waitress 3.0": ("import bottle, waitress", "bottle-waitress"),
    "flask 3.1 + waitress 3.0": ("import flask, waitress", "flask-waitress"),
}
PROBE = r"""
import time, sys
t0 = time.perf_counter()
{imp}
dt = time.perf_counter() - t0
rss = [l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]
print(dt, rss)
"""
SERVE = {
    "stdlib": """
import json, socketserver, wsgiref.simple_server as ws
class S(socketserver.ThreadingMixIn, ws.WSGIServer): daemon_threads = True
class Q(ws.WSGIRequestHandler):
    def log_message(self, *a): pass
def app(env, sr):
    sr("200 OK", [("Content-Type", "application/json")]); return [json.dumps({"ok": True}).encode()]
srv = ws.make_server("127.0.0.1", 0, app, server_class=S, handler_class=Q)
""",
    "bottle": """
import bottle, socketserver, wsgiref.simple_server as ws
app = bottle.Bottle()
@app.get("/")
def index(): return {"ok": True}
class S(socketserver.ThreadingMixIn, ws.WSGIServer): daemon_threads = True
class Q(ws.WSGIRequestHandler):
    def log_message(self, *a): pass
srv = ws.make_server("127.0.0.1", 0, app, server_class=S, handler_class=Q)
""",
    "bottle-waitress": """
import bottle, waitress
app = bottle.Bottle()
@app.get("/")
def index(): return {"ok": True}
srv = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
srv.server_port = srv.effective_port
""",
    "flask-waitress": """
import flask, waitress
app = flask.Flask("x")
@app.get("/")
def index(): return {"ok": True}
srv = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
srv.server_port = srv.effective_port
""",
}
TAIL = """
import sys, threading
print(srv.server_port, flush=True)
run = getattr(srv, "serve_forever", None) or srv.run
threading.Thread(target=run, daemon=True).start()
sys.stdin.readline()
print([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1], flush=True)
"""


def main() -> None:
    for name, (imp, srvkey) in CANDIDATES.items():
        times, rss = [], []
        for _ in range(9):
            probe = [sys.executable, "-c", PROBE.format(imp=imp)]
            out = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.split()
            times.append(float(out[0]))
            rss.append(int(out[1]))
        best, median = min(times) * 1000, statistics.median(times) * 1000
        line = f"{name:<44} import {best:6.1f} ms (median {median:6.1f})  RSS {min(rss) / 1024:5.1f} MiB"
        if srvkey:
            server = [sys.executable, "-c", SERVE[srvkey] + TAIL]
            p = subprocess.Popen(server, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert p.stdin is not None and p.stdout is not None
            port = int(p.stdout.readline())
            t0 = time.perf_counter()
            for _ in range(200):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/").read()
            per = (time.perf_counter() - t0) / 200
            p.stdin.write("\n")
            p.stdin.flush()
            hwm = int(p.stdout.readline())
            p.wait()
            line += f"  serving: peak RSS {hwm / 1024:5.1f} MiB, {per * 1000:.2f} ms/request"
        print(line)


if __name__ == "__main__":
    main()
