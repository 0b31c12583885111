"""The control protocol end to end: the service on the simulated rig, its loop on the rig's virtual clock, clients in
threads of their own speaking JSON over the real socket. What a status says in each state, a start's intensity and
minutes, the session history (kept across restarts), subscriptions that stream while the loop's ticks stay where they
were, and hostile clients that change nothing the loop does."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from legsleeve.app import protocol
from legsleeve.app.control import Subscription, request
from legsleeve.app.service import HISTORY_FILE
from legsleeve.app.sessionlog import read_log
from legsleeve.config.profiles import load_profile
from legsleeve.sim.faults import FaultSpec
from tests.app.control_clients import Ask, SocketCalls, flood, queued, served, silent, wait_for
from tests.helpers import CONFIG_DIR

ZONES = ["ankle", "calf", "knee", "thigh"]


def J(cmd: str, **fields) -> str:
    return json.dumps({"v": 1, "cmd": cmd, **fields})


def answers(*asks: Ask) -> list[dict]:
    return [json.loads(a.result()) for a in asks]


def test_hello_names_the_protocol_the_zones_the_profiles_and_the_limits(cfg, tmp_path):
    rig, sock, ticks, svc = served(cfg, tmp_path)
    try:
        (hello,) = queued(sock, J("hello"))
        svc.serve(until_s=0.5)
        (h,) = answers(hello)
        assert h["ok"] and h["protocol"] == 1 and h["zones"] == ZONES and h["selected"] == "gentle"
        most = {p["name"]: p["intensity_max_pct"] for p in h["profiles"]}
        assert most["pulse"] == 112  # pulse's 80 mmHg at the ankle, limits.max_mmhg 90: 112.5 % at most
        assert most["wave"] == 150  # 45 mmHg: the protocol's own bound comes first
        assert h["max_mmhg"] == 90 and h["session_max_min"] == 60
        assert set(h["commands"]) == set(protocol.COMMANDS)
    finally:
        sock.close()
        rig.close()


def test_status_in_json_idle_then_in_a_session(cfg, tmp_path):
    """Idle: no pressures (nothing is measured), every valve venting. In the session: what runs, the step, cycle,
    times, each zone's pressure, target and valve, the pump."""
    rig, sock, ticks, svc = served(cfg, tmp_path)
    asks: dict[str, Ask] = {}

    def in_the_session():
        if "during" not in asks and rig.clock.now() > 30.0 and rig.pump.duty > 0:
            (asks["during"],) = queued(sock, J("status", id="d"))
            svc.stopping = True

    try:
        (idle,) = queued(sock, J("status"))
        svc.serve(until_s=0.5)
        s = answers(idle)[0]["status"]
        assert s["state"] == "idle" and s["profile"] is None and s["selected"] == "gentle" and s["alarm"] is None
        assert [z["name"] for z in s["zones"]] == ZONES and all(z["mmhg"] is None for z in s["zones"])
        assert all(z["valve"] == "vent" for z in s["zones"]) and s["pump_duty"] == 0
        ticks.hook = in_the_session
        queued(sock, J("start", profile="wave", minutes=10))
        svc.serve(until_s=120.0)
        (d,) = answers(asks["during"])
        s = d["status"]
        assert d["id"] == "d" and s["state"] == "running" and s["profile"] == "wave" and s["intensity_pct"] == 100
        assert s["step"].startswith("fill ") and s["cycle"] >= 1 and s["cycles"] is None
        assert 15.0 < s["elapsed_s"] < 25.0 and 500.0 < s["remaining_s"] <= 600.0  # of the 10 minutes asked
        filling = [z for z in s["zones"] if z["valve"] == "fill"]
        assert filling and all(z["target_mmhg"] > z["mmhg"] > 0 for z in filling) and s["pump_duty"] > 0
        assert all(z["mmhg"] is not None for z in s["zones"])
    finally:
        sock.close()
        rig.close()


def _target_rows(log_path, zone: str) -> list[float]:
    return sorted({float(r[f"{zone}_target_mmhg"]) for r in read_log(log_path) if r[f"{zone}_target_mmhg"]})


@pytest.mark.parametrize("intensity_pct", [60, 112])
def test_intensity_scales_every_target_and_the_trip_levels_with_them(cfg, tmp_path, intensity_pct):
    rig, sock, ticks, svc = served(cfg, tmp_path)
    try:
        (start,) = queued(sock, J("start", profile="wave", intensity_pct=intensity_pct))
        ticks.hook = lambda: setattr(svc, "stopping", rig.clock.now() > 45.0)
        svc.serve(until_s=200.0)
        (a,) = answers(start)
        assert a["ok"] and a["text"] == f"starting wave at {intensity_pct} %"
        (log_path,) = tmp_path.glob("*-wave.csv")
        wave = load_profile(CONFIG_DIR, "wave", cfg)
        f = intensity_pct / 100
        assert _target_rows(log_path, "ankle") == pytest.approx([wave.targets_mmhg[0] * f])
        assert not any(r["fault"] for r in read_log(log_path))  # no trip: the trip levels rose with the targets
    finally:
        sock.close()
        rig.close()


def test_intensity_past_the_limits_and_minutes_past_the_session_limit_are_refused(cfg, tmp_path):
    rig, sock, ticks, svc = served(cfg, tmp_path)
    try:
        asks = queued(
            sock,
            J("start", profile="pulse", intensity_pct=113),
            J("start", profile="gentle", minutes=61),
            J("start", profile="shiatsu"),
        )
        svc.serve(until_s=1.0)
        over, long, unknown = answers(*asks)
        assert over["error"] == "out-of-range" and "at most 112 %" in over["text"] and "max_mmhg (90" in over["text"]
        assert long["error"] == "out-of-range" and "session_max_min (60 min)" in long["text"]
        assert unknown["error"] == "unknown-profile"
        assert svc.status.state == "idle" and not list(tmp_path.glob("*.csv"))  # nothing was started
        assert [s.state for s in rig.world.pin_factory.pin(cfg.pump.pin.name).states] == [0.0]
    finally:
        sock.close()
        rig.close()


def _config_copy(tmp_path) -> Path:
    """The shipped config in a directory of the test's own, whose profiles the test edits."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config, ignore=shutil.ignore_patterns("web-password"))
    return config


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_profile_edited_on_disk_is_what_the_next_start_runs_without_a_restart(cfg, tmp_path, monkeypatch):
    """A profile saved (by the web page, or by hand) while the service runs: the next `start` reads its file, and the
    session runs the new targets; a file that no longer loads is refused with the loader's file:line: key: message,
    and nothing moves. All without restarting the service, and no file is read in the loop's thread."""
    from legsleeve.app import service as service_module

    readers: list[str] = []

    def load_profile_noting_the_thread(*args, **kw):
        readers.append(threading.current_thread().name)
        return load_profile(*args, **kw)

    monkeypatch.setattr(service_module, "load_profile", load_profile_noting_the_thread)
    config = _config_copy(tmp_path)
    wave = config / "profiles" / "wave.yaml"
    rig, sock, ticks, svc = served(cfg, tmp_path, config_dir=config)
    try:
        svc.serve(until_s=0.5)  # up and idle, with the profiles as they were when it started
        assert next(p for p in svc.profiles if p.name == "wave").targets_mmhg == (45.0, 42.0, 38.0, 35.0)
        shipped = wave.read_text()
        wave.write_text(
            shipped.replace("default_mmhg: 45", "default_mmhg: 30").replace(
                "zones: {calf: 42, knee: 38, thigh: 35}", "zones: {calf: 28, knee: 26, thigh: 24}"
            )
        )
        (start,) = queued(sock, J("start", profile="wave", minutes=0.5))
        svc.serve(until_s=150.0)
        (a,) = answers(start)
        assert a["ok"] and a["text"] == "starting wave for 0.5 min"
        (log_path,) = tmp_path.glob("*-wave.csv")
        edited = [_target_rows(log_path, zone) for zone in ZONES]
        assert edited == [[30.0], [28.0], [26.0], [24.0]], edited  # the file as edited, not as the service started
        assert svc.status.state == "idle" and svc.status.sessions == 1

        # a mistake in the file: refused at its line, by the loader's own words, and nothing started
        wave.write_text(shipped.replace("hold_s: 3", "hold_s: -3"))
        line = _line_of(wave, "hold_s: -3")
        pump_states = len(rig.world.pin_factory.pin(cfg.pump.pin.name).states)
        (bad, bad_text) = queued(sock, J("start", profile="wave"), "start wave")
        svc.serve(until_s=rig.clock.now() + 1.0)
        (b,) = answers(bad)
        assert not b["ok"] and b["error"] == "refused", b
        assert f"{wave}:{line}: cycle[0].hold_s: must be > 0 s (got -3)" in b["text"], b["text"]
        assert bad_text.result() == b["text"]  # the text form says the same
        assert svc.status.state == "idle" and svc.status.sessions == 1 and len(list(tmp_path.glob("*.csv"))) == 1
        assert len(rig.world.pin_factory.pin(cfg.pump.pin.name).states) == pump_states  # the pump never moved

        # gone altogether: unknown
        wave.unlink()
        (gone,) = queued(sock, J("start", profile="wave"))
        svc.serve(until_s=rig.clock.now() + 1.0)
        (g,) = answers(gone)
        assert g["error"] == "unknown-profile" and "no profile 'wave'" in g["text"]
        assert readers and set(readers) == {"control-prepare"}, readers  # the socket's preparer, never the loop
    finally:
        sock.close()
        rig.close()


def test_hello_scans_the_profiles_directory_afresh(cfg, tmp_path):
    """A profile added since the service started is listed (and the button may select it), one removed is not, and
    one that does not load is named in `problems` with its line."""
    config = _config_copy(tmp_path)
    profiles = config / "profiles"
    rig, sock, ticks, svc = served(cfg, tmp_path, config_dir=config)
    try:
        svc.serve(until_s=0.5)
        mine = (profiles / "gentle.yaml").read_text().replace("name: gentle", "name: mine")
        (profiles / "mine.yaml").write_text(mine)
        (profiles / "pulse.yaml").unlink()
        (profiles / "wave.yaml").write_text((profiles / "wave.yaml").read_text().replace("hold_s: 3", "hold_s: -3"))
        (hello,) = queued(sock, J("hello"))
        svc.serve(until_s=1.0)
        (h,) = answers(hello)
        names = [p["name"] for p in h["profiles"]]
        assert "mine" in names and "pulse" not in names and "wave" not in names, names
        line = _line_of(profiles / "wave.yaml", "hold_s: -3")
        assert h["problems"] == [f"{profiles / 'wave.yaml'}:{line}: cycle[0].hold_s: must be > 0 s (got -3)"]
        assert [p.name for p in svc.profiles] == names  # the button's list too
    finally:
        sock.close()
        rig.close()


def test_two_starts_in_one_tick_start_one_session(cfg, tmp_path):
    rig, sock, ticks, svc = served(cfg, tmp_path)
    try:
        first, second = queued(sock, J("start", profile="wave"), J("start", profile="gentle"))

        def stop_once_it_runs():  # in the loop's thread: the first tick of the session's self-test
            if svc.status.state == "running" and not svc.stopping:
                svc.respond(protocol.parse("stop"), rig.clock.now())
                svc.stopping = True

        ticks.hook = stop_once_it_runs
        svc.serve(until_s=5.0)
        assert answers(first)[0]["text"] == "starting wave"
        assert answers(second)[0] == {
            "v": 1, "id": None, "ok": False, "cmd": "start", "error": "refused",
            "text": "refused: a session of wave is about to start",
        }  # fmt: skip
        assert svc.status.running == "wave"
    finally:
        sock.close()
        rig.close()


def test_minutes_set_the_sessions_length(cfg, tmp_path):
    rig, sock, ticks, svc = served(cfg, tmp_path)
    try:
        (start,) = queued(sock, J("start", profile="gradient", minutes=2))
        svc.serve(until_s=400.0)
        assert answers(start)[0]["text"] == "starting gradient for 2 min"
        (h,) = svc.history
        assert h["outcome"] == "complete" and h["minutes"] == 2 and 120.0 <= h["duration_s"] < 200.0
        assert h["cycles"] == 2  # 63 s cycles: the one under way at 2 min finishes
    finally:
        sock.close()
        rig.close()


def test_history_remembers_each_session_and_survives_a_restart(cfg, tmp_path):
    rig, sock, ticks, svc = served(cfg, tmp_path, faults=[FaultSpec("sensor-dead", "calf", 220.0)])  # the third trips
    try:
        stops: list[Ask] = []

        def stop_the_second():
            if svc.status.sessions == 1 and svc.status.state == "running" and rig.clock.now() > 150 and not stops:
                stops.extend(queued(sock, "stop"))

        ticks.hook = stop_the_second
        queued(sock, J("start", profile="gradient", minutes=1))
        svc.serve(until_s=110.0)
        queued(sock, J("start", profile="wave", intensity_pct=80))
        svc.serve(until_s=190.0)
        queued(sock, J("start", profile="gradient"))
        svc.serve(until_s=260.0)
        (h,) = queued(sock, J("history", limit=2))
        svc.serve(until_s=261.0)
    finally:
        sock.close()
        rig.close()
    sessions = answers(h)[0]["sessions"]
    assert [e["profile"] for e in sessions] == ["gradient", "wave"]  # newest first, two of three
    tripped, stopped = sessions
    assert (
        tripped["outcome"] == "tripped" and tripped["alarm"]["rule"] == "SAFE-9" and tripped["alarm"]["zone"] == "calf"
    )
    assert stopped["outcome"] == "stopped" and stopped["intensity_pct"] == 80 and stopped["log"].endswith("-wave.csv")
    assert (tmp_path / stopped["log"]).exists()
    lines = (tmp_path / HISTORY_FILE).read_text().splitlines()
    assert [json.loads(x)["outcome"] for x in lines] == ["complete", "stopped", "tripped"]
    # a new service on the same log directory knows them
    rig2, sock2, _, svc2 = served(cfg, tmp_path)
    try:
        (again,) = queued(sock2, "history")
        svc2.serve(until_s=0.5)
        assert again.result() == "3 of 3 session(s), newest first"
        assert [e["outcome"] for e in svc2.history] == ["complete", "stopped", "tripped"]
    finally:
        sock2.close()
        rig2.close()


def test_a_history_file_that_is_damaged_loses_only_its_bad_lines(cfg, tmp_path):
    good = {"started": "2026-11-25T10:00:00", "profile": "wave", "outcome": "complete"}
    (tmp_path / HISTORY_FILE).write_text(f'{json.dumps(good)}\nnot json\n[1, 2]\n{{"half": \n')
    rig, sock, ticks, svc = served(cfg, tmp_path)
    try:
        svc.serve(until_s=0.2)
        assert svc.history == [good]
    finally:
        sock.close()
        rig.close()


class Watcher:
    """A subscriber in a thread of its own: every frame it is sent."""

    def __init__(self, path: str, hz: float = 10.0):
        self.frames: list[dict] = []
        self.sub = Subscription(path, hz=hz)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self.sub.frames(quiet_s=0.5):
                if frame is not None:
                    self.frames.append(frame)
        except OSError:
            pass

    def close(self) -> None:
        self.sub.close()
        self._thread.join(5)


def test_a_subscription_streams_the_session(cfg, tmp_path):
    """Frames numbered in order, showing the session go by: self-test, fill, the pressures rising, the stop, the vent,
    idle. The loop publishes only while someone subscribes. (Once a virtual second the loop waits for the subscriber
    to have had the latest frame, so that the frames sample the whole session however fast it simulates.)"""
    rig, sock, ticks, svc = served(cfg, tmp_path)
    stop: list[Ask] = []
    try:
        svc.serve(until_s=0.3)
        assert svc._published == 0  # nobody listening: nothing published
        watcher = Watcher(sock.path, hz=10.0)
        wait_for(lambda: sock.subscribed == 1, "the subscription")

        def each_tick():
            seq = svc._published
            if seq % 10 == 0 and seq:
                wait_for(lambda: watcher.frames and watcher.frames[-1]["seq"] >= seq, f"frame {seq}")
            if not stop and rig.clock.now() > 22.0:
                stop.extend(queued(sock, "stop"))

        ticks.hook = each_tick
        queued(sock, J("start", profile="wave"))
        svc.serve(until_s=35.0)
        watcher.close()
    finally:
        sock.close()
        rig.close()
    seqs = [f["seq"] for f in watcher.frames]
    states = [f["status"]["state"] for f in watcher.frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and len(seqs) >= 20
    assert states.index("selftest") < states.index("running") < states.index("stopping") < len(states) - 1
    assert states[-1] == "idle"
    ankle = [f["status"]["zones"][0]["mmhg"] for f in watcher.frames if f["status"]["state"] == "running"]
    assert max(ankle) > 20.0  # the pressures moved
    stopping = [f["status"] for f in watcher.frames if f["status"]["state"] == "stopping"]
    assert all(z["valve"] == "vent" for s in stopping[1:] for z in s["zones"])


FLOOD_JSON = [
    (b'{"v": 1, "cmd": "status"}\n', False),
    (b'{"v": 1, "cmd": "history", "limit": 100}\n', False),  # the longest answer, never read
    (b'{"v": 1, "cmd": "subscribe", "hz": 10}\n', False),  # subscribe and never read
    (b'{"v": 1, "cmd": "dance"}\n', True),
    (b'{"v": 1, "cmd": ' + b"[" * 5000 + b"\n", True),  # too long, and nested
    (b"\xff" * 2000, True),
    (b'{"v": 1, "cmd": "start", "intensity_pct": 1e999}\n', True),
]


def test_hostile_clients_and_stalled_subscribers_change_no_tick_and_stop_gets_through(cfg, tmp_path, capsys):
    """Subscribers that never read (three held open here all along, more from the flood), a flood of bad, unknown,
    oversized and nested requests and of requests whose answers are never read: the loop's thread makes not one socket
    call, every tick to the stop falls at the same virtual time as without them, and the stop ends the session at the
    tick that takes it."""

    def run(crowd: bool):
        d = tmp_path / ("crowd" if crowd else "alone")
        rig, sock, ticks, svc = served(cfg, d, client_deadline_s=600)
        asks: list[Ask] = []
        ticks.hook = lambda: (not asks and rig.clock.now() >= 30.0) and asks.append(Ask(sock.path, J("stop")))
        held, flooding = [], None
        try:
            queued(sock, J("start", profile="wave"))
            if crowd:
                held = [Subscription(sock.path, hz=10).sock for _ in range(3)]  # subscribed, never reading
                held += [silent(sock.path) for _ in range(5)]
                flooding = flood(sock.path, FLOOD_JSON)
                wait_for(lambda: sock.subscribed >= 3, "the subscribers")
            with SocketCalls() as loop_thread:
                svc.serve(until_s=45.0)
            assert loop_thread.calls == []
            assert json.loads(asks[0].result())["text"] == "stopping: venting"
            assert svc.status.last == "stopped" and svc.status.state == "idle"
            _, taken_s = sock.when(J("stop"))
            return [t for t in ticks.virtual if t < 30.0], taken_s, sock
        finally:
            if flooding is not None:
                flooding.kill()
                flooding.wait()
            for s in held:
                s.close()
            sock.close()
            rig.close()

    alone, taken_alone, _ = run(False)
    crowd, taken_crowd, sock = run(True)
    assert crowd == alone  # not one tick moved
    with capsys.disabled():
        print(f"\nhostile clients: {len(crowd)} ticks to 30 s identical; {len(sock.taken)} requests reached the loop")


def test_the_json_cli_commands(cfg, tmp_path, capsys):
    """`legsleeve start wave --intensity 80 --minutes 5`, `status --json`, `history` against a live service (its loop
    in a thread at the wall clock's pace)."""
    from legsleeve.app.cli import main
    from legsleeve.core.clock import RealTimePacer

    rig, sock, ticks, svc = served(cfg, tmp_path)
    RealTimePacer(rig.clock)
    loop = threading.Thread(target=svc.serve, daemon=True)
    loop.start()

    def cli(*argv):
        code = main([*argv, "--socket", sock.path])
        out, err = capsys.readouterr()
        return code, out + err

    try:
        code, out = cli("start", "pulse", "--intensity", "120")
        assert code == 2 and "at most 112 %" in out  # past limits.max_mmhg
        assert cli("start", "wave", "--intensity", "80", "--minutes", "5") == (0, "starting wave at 80 % for 5 min\n")
        wait_for(lambda: svc._tracker is not None, "the session")
        code, out = cli("status", "--json")
        reply = json.loads(out)
        assert code == 0 and reply["status"]["profile"] == "wave" and reply["status"]["intensity_pct"] == 80
        code, out = cli("start", "gentle")
        assert code == 5 and out.startswith("refused: a session of wave is running")
        assert cli("stop") == (0, "stopping: venting\n")
        wait_for(lambda: svc.status.state == "idle" and svc.history, "the session's end")
        code, out = cli("history")
        assert code == 0 and " wave at 80 % " in out and "stopped" in out
    finally:
        request("stop", sock.path)  # a session left by a failed assertion ends before the rig closes
        svc.stopping = True
        loop.join(60)
        sock.close()
        rig.close()


def test_request_and_subscription_without_a_service_say_so(tmp_path):
    with pytest.raises(FileNotFoundError):
        request("status", str(tmp_path / "none.sock"))
    with pytest.raises(FileNotFoundError):
        Subscription(str(tmp_path / "none.sock"))
