"""The service (`legsleeve serve`) on the simulated rig: idle until told; the button and the control socket; alarms
latched until a person resets them; a restart comes back idle; an internal error sounds the alarm. Time is the
simulated rig's virtual clock; the loop's own wall time per tick is measured where the test is that it never waits
on a client."""

from __future__ import annotations

import shutil
import socket
import statistics
import time

import pytest

from legsleeve.app.cli import main
from legsleeve.app.service import Service
from legsleeve.app.sessionlog import read_log
from legsleeve.hw.backends import open_sim
from legsleeve.safety.trip import Priority
from legsleeve.sim.faults import FaultSpec
from tests.app.control_clients import Ask, Recorded, SocketCalls, Ticks, flood, queued, served, silent, wait_for
from tests.helpers import CONFIG_DIR, PROFILES

TICK_S = 0.02  # the session's tick on the shipped config (50 Hz)


def _service(cfg, faults=(), control=None, tmp_path=None):
    rig = open_sim(cfg, seed=3, faults=faults)
    svc = Service(rig, CONFIG_DIR, control=control, log_dir=tmp_path)
    svc.load_profiles()
    return rig, svc


def _safe(rig):
    assert rig.pump.duty == 0 and all(z.action.value == "vent" for z in rig.zones)


def test_starts_idle_and_does_nothing_until_told(cfg):
    rig, svc = _service(cfg)
    try:
        svc.serve(until_s=60.0)
        assert svc.status.state == "idle" and svc.status.sessions == 0 and svc.status.selected == "gentle"
        pump = rig.world.pin_factory.pin(cfg.pump.pin.name)
        assert [s.state for s in pump.states] == [0.0]  # never ran
        _safe(rig)
    finally:
        rig.close()


def test_a_short_press_runs_a_session_and_a_press_during_it_stops_it(cfg, tmp_path):
    rig, svc = _service(
        cfg, faults=[FaultSpec("button", None, 2.0), FaultSpec("button", None, 40.0)], tmp_path=tmp_path
    )
    try:
        svc.serve(until_s=80.0)
        # the stop lands in the self-test or in the session, as the threads fall: either way it stopped (SAFE-12)
        stopped_in_session = svc.status.sessions == 1 and svc.status.last == "stopped"
        stopped_in_selftest = svc.status.sessions == 0 and "no session was started" in svc.status.last
        assert svc.status.state == "idle" and (stopped_in_session or stopped_in_selftest), svc.status
        assert svc.status.state == "idle"  # the press that stopped it did not start another
        logs = list(tmp_path.glob("*-gentle.csv"))
        assert len(logs) == 1 and ",stopped," in logs[0].read_text()
        _safe(rig)
    finally:
        rig.close()


def test_a_long_press_selects_the_next_profile_and_beeps_its_place(cfg):
    rig, svc = _service(cfg, faults=[FaultSpec("button-hold", None, 2.0)])
    try:
        names = [p.name for p in svc.profiles]
        svc.serve(until_s=10.0)
        expected = names[(names.index("gentle") + 1) % len(names)]
        assert svc.status.selected == expected and svc.status.sessions == 0
        buzzer = rig.world.pin_factory.pin(cfg.controls.buzzer.pin.name)
        assert sum(1 for s in buzzer.states if s.state) == names.index(expected) + 1
    finally:
        rig.close()


def test_a_trip_latches_the_alarm_until_reset(cfg):
    rig, svc = _service(cfg, faults=[FaultSpec("button", None, 1.0), FaultSpec("sensor-dead", "calf", 30.0)])
    try:
        svc.serve(until_s=120.0)
        assert svc.status.state == "alarm" and "SAFE-9 calf" in svc.status.alarm
        now = rig.clock.now()
        assert svc.command("start", now).startswith("refused: an alarm is latched")
        assert svc.command("reset", now) == "reset: idle"
        assert svc.status.state == "idle"
        _safe(rig)
    finally:
        rig.close()


def test_a_long_press_resets_an_alarm_a_short_one_silences_it(cfg):
    rig, svc = _service(cfg, faults=[FaultSpec("button", None, 1.0), FaultSpec("estop", None, 25.0)])
    try:
        svc.serve(until_s=60.0)
        assert svc.status.state == "alarm"
        assert svc.command("reset", rig.clock.now()) == "refused: the E-stop is still pressed"
        rig.world.connect_panel()  # the E-stop released: its contact closes again
        rig.world.inject_now(FaultSpec("button-hold", None, 0.0))
        svc.serve(until_s=rig.clock.now() + 5.0)
        assert svc.status.state == "idle"
    finally:
        rig.close()


def _taken_at_the_next_tick(sock: Recorded, ticks: Ticks, line: str) -> float:
    """The loop took `line` at the first tick after it arrived (no tick completed in between; the same tick when it
    arrived before that tick's drain); returns the lag in virtual seconds. A tick here is any of the loop's: idle, a
    sweep of the zero's wait, the runner's."""
    received_s, taken_s = sock.when(line)
    assert received_s <= taken_s and taken_s in ticks.virtual
    assert not [t for t in ticks.virtual if received_s < t < taken_s], (received_s, taken_s)
    return taken_s - received_s


def _first_row(log_path, state: str) -> float:
    return next(float(r["t_s"]) for r in read_log(log_path) if r["state"] == state)


def test_control_socket_start_status_stop(cfg, tmp_path):
    """`legsleeve start wave`, then `status` and `stop` during the session: the loop answers each at its next tick,
    and the stop ends the session at that tick (SAFE-12)."""
    rig, sock, ticks, svc = served(cfg, tmp_path)
    asks: dict[str, Ask] = {}

    def during_the_session():  # in the loop's thread: both queued before the loop goes on, so one drain takes both
        if "stop" not in asks and list(tmp_path.glob("*.csv")):  # the session's log exists: the self-test passed
            asks["status"], asks["stop"] = queued(sock, "status", "stop")

    ticks.hook = during_the_session
    try:
        (start,) = queued(sock, "start wave")
        svc.serve(until_s=90.0)
        assert start.result() == "starting wave"
        status = asks["status"].result()
        # what runs (not the button's selection), its cycle, step, time and every zone's pressure
        assert status.startswith("running wave, cycle 1, fill "), status
        assert " elapsed, about " in status and " left; ankle " in status and " mmHg; " in status
        assert "selected for the button: gentle; sessions 0" in status
        assert asks["stop"].result() == "stopping: venting"
        assert svc.status.state == "idle" and svc.status.sessions == 1 and svc.status.last == "stopped"
        _taken_at_the_next_tick(sock, ticks, "stop")
        _, taken_s = sock.when("stop")
        (log_path,) = tmp_path.glob("*-wave.csv")
        assert _first_row(log_path, "stopped") == pytest.approx(taken_s, abs=TICK_S)  # and acted on at that tick
        _safe(rig)
    finally:
        sock.close()
        rig.close()


STOP_AT_S = 40.0  # virtual: the button starts gentle at 2 s, its self-test ends near 11.5 s; 40 s is mid-session


def _session_stopped_from_the_socket(cfg, tmp_path, stop_at_s=STOP_AT_S):
    """gentle from the button at 2 s; at `stop_at_s` (virtual) `legsleeve stop` from a terminal."""
    rig, sock, ticks, svc = served(cfg, tmp_path, faults=[FaultSpec("button", None, 2.0)], client_deadline_s=600)
    asks: list[Ask] = []

    def stop_mid_session():  # the loop does not wait for it: the client is a thread of its own
        if not asks and rig.clock.now() >= stop_at_s:
            asks.append(Ask(sock.path, "stop"))

    ticks.hook = stop_mid_session
    return rig, sock, ticks, svc, asks


def _check_stopped_at_the_next_tick(sock, ticks, svc, asks, tmp_path) -> float:
    assert asks[0].result() == "stopping: venting"
    assert svc.status.sessions == 1 and svc.status.last == "stopped" and svc.status.state == "idle"
    lag_s = _taken_at_the_next_tick(sock, ticks, "stop")
    _, taken_s = sock.when("stop")
    (log_path,) = tmp_path.glob("*-gentle.csv")
    assert _first_row(log_path, "stopped") == pytest.approx(taken_s, abs=TICK_S)  # that tick's row says stopped
    return lag_s


def test_silent_clients_change_no_tick_and_stop_still_gets_through(cfg, tmp_path, capsys):
    """50 clients connect and say nothing for the whole run. (a) Every tick up to the stop falls at the same virtual
    time as in a run without them, and the loop's wall time per tick stays far under the 0.2 s a silent client used
    to cost; (b) `legsleeve stop` is answered meanwhile, and the session stops at the next tick."""
    base = tmp_path / "base"
    rig, sock, ticks, svc, asks = _session_stopped_from_the_socket(cfg, base)
    try:
        svc.serve(until_s=STOP_AT_S + 20)
        _check_stopped_at_the_next_tick(sock, ticks, svc, asks, base)
        baseline = [t for t in ticks.virtual if t < STOP_AT_S]
    finally:
        sock.close()
        rig.close()

    crowd = tmp_path / "crowd"
    rig, sock, ticks, svc, asks = _session_stopped_from_the_socket(cfg, crowd)
    hanging = [silent(sock.path) for _ in range(50)]
    try:
        wait_for(lambda: sock.clients() == sock.max_clients, "the silent clients accepted")  # 16: the rest told busy
        svc.serve(until_s=STOP_AT_S + 20)
        lag_s = _check_stopped_at_the_next_tick(sock, ticks, svc, asks, crowd)  # the stop's newcomer let the oldest go
        assert [t for t in ticks.virtual if t < STOP_AT_S] == baseline  # (a): not one tick moved
        per_tick = ticks.wall_per_tick_s()
        assert max(per_tick) < 0.1, max(per_tick)
        wait_for(lambda: sock.clients() == sock.max_clients - 1, "the stop's connection closed")
        assert sock.clients() == sock.max_clients - 1  # the others still hang, their deadline far off
        with capsys.disabled():
            print(
                f"\n50 silent clients: {len(baseline)} ticks to {STOP_AT_S:g} s identical to the run without them; "
                f"loop wall time per tick median {statistics.median(per_tick) * 1e3:.2f} ms, "
                f"max {max(per_tick) * 1e3:.1f} ms; stop taken {lag_s * 1e3:.0f} ms (virtual) after it arrived, "
                f"answered in {asks[0].round_trip_s * 1e3:.0f} ms (wall)"
            )
    finally:
        for s in hanging:
            s.close()
        sock.close()
        rig.close()


FLOOD = [
    (b"status\n", False),  # ask and hang up, again and again
    (b"status\n", True),  # ask, read, again
    (b"status\n" * 500, True),  # line after line on one connection
    (b"x" * 4000, True),  # a line far too long
    (b"", False),  # connect and hang up
]


def test_a_flood_of_clients_does_not_starve_stop(cfg, tmp_path, capsys):
    """(c) Another process floods the socket (ten threads: asking and hanging up, asking line after line, lines too
    long, connecting and dropping). The loop's thread makes not one socket call meanwhile, the session's ticks stay
    on time, `legsleeve stop` gets through, and the session stops at the next tick. (The loop's wall time per tick
    is bounded loosely here: the flood itself takes CPU from it, on a small machine running other tests.)"""
    rig, sock, ticks, svc, asks = _session_stopped_from_the_socket(cfg, tmp_path, stop_at_s=20.0)
    flooding = flood(sock.path, FLOOD, copies=2)
    try:
        wait_for(lambda: sock.pending() > 0, "the flood reaching the queue")
        t0 = time.perf_counter()
        with SocketCalls() as loop_thread:
            svc.serve(until_s=30.0)
        wall_s = time.perf_counter() - t0
        assert loop_thread.calls == []  # the loop never waited on a client: it never even touched one
        lag_s = _check_stopped_at_the_next_tick(sock, ticks, svc, asks, tmp_path)
        _, stopped_s = sock.when("stop")
        session = [b - a for a, b in zip(ticks.virtual, ticks.virtual[1:], strict=False) if 12.0 < a and b <= stopped_s]
        assert len(session) > 300 and max(session) == pytest.approx(TICK_S)  # every session tick on time
        per_tick = ticks.wall_per_tick_s()
        answered = len(sock.taken)
        assert answered >= 10  # the loop did hear the flood (niced, it gets little CPU on a busy machine)
        assert statistics.median(per_tick) < 0.005 and max(per_tick) < 0.5, max(per_tick)
        with capsys.disabled():
            print(
                f"\nflood: {answered} requests answered by the loop in {wall_s:.1f} s (wall), no socket call from its "
                f"thread; loop wall time per tick (profiled) median {statistics.median(per_tick) * 1e3:.2f} ms, "
                f"max {max(per_tick) * 1e3:.1f} ms; stop taken {lag_s * 1e3:.0f} ms (virtual) after it arrived, "
                f"answered in {asks[0].round_trip_s * 1e3:.0f} ms (wall)"
            )
    finally:
        flooding.kill()
        flooding.wait()
        sock.close()
        rig.close()


def test_the_socket_call_check_would_see_a_loop_that_reads_a_client(tmp_path):
    """The check above can fail: a loop that reads its clients itself, as the control socket once did, is seen."""
    a, b = socket.socketpair()
    try:
        b.send(b"status\n")
        with SocketCalls() as loop_thread:
            a.recv(100)
        assert loop_thread.calls == ["socket.recv"]
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("order", [("start wave", "stop"), ("stop", "start wave")])
def test_a_start_and_a_stop_in_the_same_drain_start_nothing(cfg, tmp_path, order):
    """(d) Stop wins, whichever came first."""
    rig, sock, ticks, svc = served(cfg, tmp_path)
    try:
        asks = dict(zip(order, queued(sock, *order), strict=True))
        svc.serve(until_s=5.0)
        assert asks["start wave"].result() == "refused: a stop came at the same time; nothing was started"
        assert asks["stop"].result() == "nothing running"
        assert svc.status.state == "idle" and svc.status.sessions == 0 and svc.status.last == "started idle"
        assert [s.state for s in rig.world.pin_factory.pin(cfg.pump.pin.name).states] == [0.0]  # never ran
        assert not list(tmp_path.glob("*.csv"))
    finally:
        sock.close()
        rig.close()


@pytest.mark.parametrize("phase", ["zero", "valve check"])
def test_stop_from_the_socket_during_the_self_test(cfg, tmp_path, phase):
    """(e) `legsleeve stop` during the self-test (while the zero is taken, or while a zone fills in the valve check):
    taken at the next tick, the self-test stopped, no session started, the sleeve vented, and status says so."""
    rig, sock, ticks, svc = served(cfg, tmp_path)
    asks: list[Ask] = []

    def in_the_self_test():
        if asks or svc.status.state != "running" or (phase == "valve check" and rig.pump.duty == 0):
            return
        asks.extend(queued(sock, "stop"))

    ticks.hook = in_the_self_test
    try:
        queued(sock, "start wave")
        svc.serve(until_s=40.0)
        assert asks[0].result() == "stopping: venting"
        _taken_at_the_next_tick(sock, ticks, "stop")  # the next sweep of the zero's wait, or the next tick
        assert svc.status.state == "idle" and svc.status.sessions == 0
        assert "no session was started" in svc.status.last
        assert not list(tmp_path.glob("*.csv"))  # the session's log is opened only once the self-test passed
        pump = [s.state for s in rig.world.pin_factory.pin(cfg.pump.pin.name).states]
        assert pump == [0.0] if phase == "zero" else pump[-1] == 0.0
        _safe(rig)
        ticks.hook = None
        (status,) = queued(sock, "status")
        svc.serve(until_s=rig.clock.now() + 1.0)
        assert status.result().startswith(
            "idle; selected for the button: gentle; sessions 0; last: stopped from the control socket"
        )
        assert "no session was started" in status.result()
    finally:
        sock.close()
        rig.close()


def test_status_during_the_self_test_answers_promptly(cfg, tmp_path, capsys):
    """(f) `legsleeve status` while the self-test runs: answered at the loop's next sweep, in milliseconds of wall
    time (it used to wait out the client's 5 s timeout)."""
    rig, sock, ticks, svc = served(cfg, tmp_path)
    asks: dict[str, Ask] = {}

    def in_the_self_test():  # in the loop's thread, at the end of each tick
        if "status" not in asks:
            if svc.status.state == "running":
                (asks["status"],) = queued(sock, "status")
        elif "stop" not in asks and any(line == "status" for line, _, _ in sock.taken):
            # answered at this tick: hold the loop until the client has it (the I/O thread alone sends it), then
            # end the test with a stop, still in the self-test
            wait_for(lambda: asks["status"].done, "the answer delivered")
            (asks["stop"],) = queued(sock, "stop")

    ticks.hook = in_the_self_test
    try:
        queued(sock, "start wave")
        svc.serve(until_s=40.0)
        ask = asks["status"]
        assert ask.result().startswith("self-test before wave, zero, ") or ask.result().startswith(
            "self-test before wave, valve check: "
        )
        _taken_at_the_next_tick(sock, ticks, "status")
        assert ask.round_trip_s is not None and ask.round_trip_s < 1.0
        assert asks["stop"].result() == "stopping: venting" and svc.status.sessions == 0  # still in the self-test
        with capsys.disabled():
            print(f"\nstatus during the self-test: answered in {ask.round_trip_s * 1e3:.0f} ms (wall)")
    finally:
        sock.close()
        rig.close()


def test_an_exception_in_serve_drives_safe_then_sounds_the_high_alarm_and_goes_on_up(cfg, tmp_path):
    """SAFE-1: an internal error mid-session (here: the liveness ping raises, with the pump running) vents the
    sleeve first; then the service sounds the high alarm (buzzer, LED) and says why in systemd's status before the
    error leaves `serve`."""
    rig = open_sim(cfg, seed=3)
    ticks = Ticks(rig.clock)
    svc = Service(rig, CONFIG_DIR, notifier=ticks, log_dir=tmp_path)
    svc.load_profiles()
    events: list[str] = []
    drive_safe, raise_alarm = rig.drive_safe, svc.annunciator.raise_alarm

    def noted_drive_safe():
        events.append("safe")
        return drive_safe()

    def noted_alarm(now_s, priority, message):
        events.append(f"alarm {priority.name}")
        raise_alarm(now_s, priority, message)

    def bug_with_the_pump_on():
        if rig.pump.duty > 0 and rig.clock.now() > 15.0:  # in the session, filling
            raise RuntimeError("a bug")

    rig.drive_safe = noted_drive_safe  # type: ignore[method-assign]
    svc.annunciator.raise_alarm = noted_alarm  # type: ignore[method-assign]
    ticks.hook = bug_with_the_pump_on
    try:
        svc.command("start wave", 0.0)
        with pytest.raises(RuntimeError, match="a bug"):
            svc.serve(until_s=60.0)
        assert "alarm HIGH" in events and "safe" in events[: events.index("alarm HIGH")]
        assert events[events.index("alarm HIGH") - 1] == "safe"  # the service's own drive_safe, just before
        assert svc.status.state == "alarm" and svc.annunciator.priority == Priority.HIGH
        assert ticks.statuses[-1] == (
            "ALARM: internal error, the service stops: RuntimeError: a bug; the sleeve was vented"
        )
        buzzer = rig.world.pin_factory.pin(cfg.controls.buzzer.pin.name)
        led = rig.world.pin_factory.pin(cfg.controls.led.pin.name)
        assert sum(1 for s in buzzer.states if s.state) >= 5  # a burst of the high pattern: five beeps
        assert led.states[-1].state or any(s.state for s in led.states[-4:])
        _safe(rig)
    finally:
        rig.close()


def test_serve_exits_1_after_an_internal_error(cfg, tmp_path, monkeypatch, caplog):
    """The same from the command line: `legsleeve serve` exits 1 (systemd restarts it, idle), the traceback logged."""

    def broken(self, now):
        raise RuntimeError("a bug in the idle loop")

    monkeypatch.setattr(Service, "_idle_tick", broken)
    monkeypatch.setattr("legsleeve.app.service.FATAL_ALARM_S", 0.1)  # serve --sim runs at the pace of the wall clock
    code = main(
        [
            "serve",
            "--sim",
            "--config",
            str(CONFIG_DIR),
            "--socket",
            str(tmp_path / "control.sock"),
            "--log-dir",
            str(tmp_path),
        ]
    )
    assert code == 1 and "internal error" in caplog.text and "RuntimeError: a bug in the idle loop" in caplog.text
    assert not (tmp_path / "control.sock").exists()  # closed on the way out


def test_control_commands_refuse_nonsense(cfg):
    rig, svc = _service(cfg)
    try:
        assert svc.command("start shiatsu", 0.0).startswith("error: no profile 'shiatsu'")
        assert svc.command("dance", 0.0).startswith("error: unknown command")
        assert svc.command("stop", 0.0) == "nothing running"
        assert svc.command("reset", 0.0) == "nothing to reset"
    finally:
        rig.close()


def test_cli_control_without_a_service_says_so(tmp_path, capsys):
    code = main(["status", "--socket", str(tmp_path / "none.sock")])
    assert code == 6 and "the service is not running" in capsys.readouterr().err


def test_a_restart_comes_back_idle_whatever_was_running(cfg):
    """No session outlives its process: a new service on the same sleeve starts idle and vented, and its pump has
    never run until someone asks."""
    rig, svc = _service(cfg)
    try:
        svc.serve(until_s=30.0)
        assert svc.status.state == "idle" and svc.status.sessions == 0 and svc.status.last == "started idle"
        assert [s.state for s in rig.world.pin_factory.pin(cfg.pump.pin.name).states] == [0.0]
        _safe(rig)
    finally:
        rig.close()


def _stopped_mid_fill(cfg, tmp_path, profile: str, *, crowd: bool):
    """`legsleeve start PROFILE`; `legsleeve stop` when the zone with the highest target is halfway to it in its first
    fill (true pressure). With `crowd`, 50 silent clients hang and another process floods the socket all along.
    Returns the virtual tick times up to the stop, the lag from the stop's arrival to the tick that took it, each
    zone's true peak, and how long after the stop was taken every zone was truly below 5 mmHg. (The simulated service
    runs faster than real time: the virtual seconds between asking and arriving are the client's wall time, scaled.)"""
    from legsleeve.config.profiles import load_profile

    plan = load_profile(CONFIG_DIR, profile, cfg)
    top = max(range(len(plan.targets_mmhg)), key=lambda i: plan.targets_mmhg[i])
    rig, sock, ticks, svc = served(cfg, tmp_path, client_deadline_s=600)
    physics = rig.world.physics
    n = len(cfg.zone_names)
    peaks = [0.0] * n
    seen: dict[str, float] = {}
    asks: list[Ask] = []

    def watch():  # in the loop's thread, once a completed tick
        now = rig.clock.now()
        truth = [physics.zone_mmhg(i) for i in range(n)]
        peaks[:] = [max(p, q) for p, q in zip(peaks, truth, strict=True)]
        if not asks and truth[top] >= plan.targets_mmhg[top] / 2:
            seen["asked"] = now
            asks.append(Ask(sock.path, "stop"))
        if "asked" in seen and "vented" not in seen and svc.status.state == "idle" and max(truth) < 5.0:
            seen["vented"] = now
            svc.stopping = True  # seen through: end serve

    ticks.hook = watch
    hanging, flooding = [], None
    try:
        (start,) = queued(sock, f"start {profile}")
        if crowd:
            hanging = [silent(sock.path) for _ in range(50)]
            flooding = flood(sock.path, FLOOD, copies=2)
        svc.serve(until_s=200.0)
        assert start.result() == f"starting {profile}"
        assert asks and asks[0].result() == "stopping: venting"
        assert svc.status.last == "stopped" and svc.status.sessions == 1
        lag_s = _taken_at_the_next_tick(sock, ticks, "stop")
        _, taken_s = sock.when("stop")
        _safe(rig)
        return [t for t in ticks.virtual if t < seen["asked"]], lag_s, peaks, seen["vented"] - taken_s
    finally:
        if flooding is not None:
            flooding.kill()
            flooding.wait()
        for s in hanging:
            s.close()
        sock.close()
        rig.close()


@pytest.mark.slow
@pytest.mark.parametrize("profile", PROFILES)
def test_silent_and_flooding_clients_on_every_profile(cfg, tmp_path, profile, capsys):
    """Every shipped profile, stopped from a terminal mid-fill, first alone, then with 50 silent clients and a flood:
    not one tick moves, the stop is taken at the next tick, and, judged on the simulator's true pressures, no zone
    passes its trip level and the sleeve is vented within the vent time."""
    from legsleeve.config.profiles import load_profile

    alone, _, _, _ = _stopped_mid_fill(cfg, tmp_path / "alone", profile, crowd=False)
    ticks, lag_s, peaks, vented_s = _stopped_mid_fill(cfg, tmp_path / "crowd", profile, crowd=True)
    assert ticks == alone  # the same virtual tick times, every one, up to the stop
    assert lag_s <= TICK_S + 1e-9
    plan = load_profile(CONFIG_DIR, profile, cfg)
    lim = cfg.limits
    levels = [min(lim.max_mmhg, t + lim.trip_margin_mmhg) for t in plan.targets_mmhg]
    assert all(p <= level for p, level in zip(peaks, levels, strict=True)), (peaks, levels)
    assert vented_s <= lim.vent_timeout_s
    with capsys.disabled():
        print(
            f"\n{profile}: 50 silent clients and a flood: {len(ticks)} ticks identical to the run alone; stop taken "
            f"{lag_s * 1e3:.0f} ms (virtual) after it arrived; true peaks "
            + ", ".join(f"{p:.1f}/{level:g}" for p, level in zip(peaks, levels, strict=True))
            + f" mmHg; vented {vented_s:.1f} s after the stop"
        )


def test_sensors_that_do_not_answer_keep_the_service_up_vented_and_refuse_a_session(cfg):
    """SAFE-9 at the service: opened without its sensors (as `serve` opens the sleeve), it connects them itself; a
    dead one is an alarm naming it, not a service that will not start; a start after a reset tries again and is
    refused with the same fault, the pump never having run."""
    rig = open_sim(cfg, seed=3, faults=[FaultSpec("sensor-dead", "calf", 0.0)], with_sensors=False)
    svc = Service(rig, CONFIG_DIR)
    svc.load_profiles()
    try:
        svc.serve(until_s=1.0)
        assert svc.status.state == "alarm" and "sensor calf: not found" in svc.status.alarm, svc.status
        assert rig.sensors is None
        now = rig.clock.now()
        assert svc.command("reset", now) == "reset: idle"
        assert svc.command("start", now) == "starting gentle"
        svc.serve(until_s=now + 2.0)
        assert svc.status.state == "alarm" and svc.status.last == "gentle not started: a sensor fault"
        assert "sensor calf: not found" in svc.status.alarm and svc.status.sessions == 0
        pump = rig.world.pin_factory.pin(cfg.pump.pin.name)
        assert [s.state for s in pump.states] == [0.0]  # never ran
        _safe(rig)
    finally:
        rig.close()


def test_sensors_are_connected_when_the_service_starts(cfg):
    rig = open_sim(cfg, seed=3, with_sensors=False)
    svc = Service(rig, CONFIG_DIR)
    svc.load_profiles()
    try:
        svc.serve(until_s=1.0)
        assert svc.status.state == "idle" and rig.sensors is not None
        assert [s.name for s in rig.sensors.all] == [*cfg.zone_names, "manifold"]
    finally:
        rig.close()


def test_a_missing_i2c_bus_is_an_alarm_not_a_restart_loop(cfg):
    """The Pi back end opens the service's rig on an AbsentBus when /dev/i2c-N will not open: the service stays up,
    vented, and its alarm carries the reason (the kernel's and the hint), where a restart loop would hide it."""
    from legsleeve.hw.backends import AbsentBus
    from legsleeve.hw.i2c import DeadlineI2C

    rig = open_sim(cfg, seed=3, with_sensors=False)
    rig.bus = DeadlineI2C(
        AbsentBus("I2C bus 1 (/dev/i2c-1) did not start; is dtparam=i2c_arm=on set?"), rig.clock, 0.02
    )
    svc = Service(rig, CONFIG_DIR)
    svc.load_profiles()
    try:
        svc.serve(until_s=1.0)
        assert svc.status.state == "alarm" and "is dtparam=i2c_arm=on set?" in svc.status.alarm, svc.status
        _safe(rig)
    finally:
        rig.close()


# -- issue 13: what status says, and what the commands' exit codes say ----------------------------------------------


def test_status_says_stopping_from_the_stop_until_the_sleeve_has_vented(cfg, tmp_path):
    """After `legsleeve stop` the status said "running" for the 4 s the sleeve took to vent. Now: "stopping" from
    the stop's own tick (a status in the same drain), while the runner vents, and idle once it has."""
    rig, sock, ticks, svc = served(cfg, tmp_path)
    asks: dict[str, Ask] = {}

    def during_the_session():
        if "stop" not in asks and list(tmp_path.glob("*.csv")) and rig.clock.now() > 20.0:
            asks["stop"], asks["with the stop"] = queued(sock, "stop", "status")
        elif "stop" in asks and "venting" not in asks and any(line == "stop" for line, _, _ in sock.taken):
            (asks["venting"],) = queued(sock, "status")  # the next tick: the runner vents

    ticks.hook = during_the_session
    try:
        queued(sock, "start wave")
        svc.serve(until_s=60.0)
        assert asks["stop"].result() == "stopping: venting"
        for ask in (asks["with the stop"], asks["venting"]):
            assert ask.result().startswith("stopping wave, cycle 1, venting after a stop, "), ask.result()
        ticks.hook = None
        (after,) = queued(sock, "status")
        svc.serve(until_s=rig.clock.now() + 1.0)
        assert after.result().startswith("idle; selected for the button: gentle; sessions 1; last: stopped")
    finally:
        sock.close()
        rig.close()


def test_status_shows_the_alarm_with_its_rule_zone_and_hint(cfg):
    rig, svc = _service(cfg, faults=[FaultSpec("button", None, 1.0), FaultSpec("sensor-dead", "calf", 30.0)])
    try:
        svc.serve(until_s=120.0)
        reply = svc.handle("status", rig.clock.now())
        alarm = reply["status"]["alarm"]
        assert reply["text"].startswith("alarm; ") and "; alarm: SAFE-9 calf: " in reply["text"]
        assert alarm["rule"] == "SAFE-9" and alarm["zone"] == "calf" and alarm["hint"] and not alarm["silenced"]
        assert svc.handle("silence", rig.clock.now())["text"].startswith("buzzer silenced for 120 s")
        assert svc.handle("status", rig.clock.now())["status"]["alarm"]["silenced"]
    finally:
        rig.close()


def test_the_control_commands_exit_codes_say_what_happened(cfg, tmp_path, capsys):
    """A refused start and an unknown profile exited 1, which README gives to an internal error, and `status` exited 0
    with an alarm latched. Now: 2 an unknown profile (bad usage), 5 refused (nothing was done), 3 status with an alarm
    latched, 6 no service. The service runs its loop in a thread at the pace of the wall clock; `legsleeve` runs here,
    in the test's own thread, as from a terminal."""
    import threading

    from legsleeve.core.clock import RealTimePacer

    rig, sock, ticks, svc = served(cfg, tmp_path)
    RealTimePacer(rig.clock)
    loop = threading.Thread(target=svc.serve, daemon=True)
    loop.start()
    path = sock.path

    def cli(*argv):
        code = main([*argv, "--socket", path])
        out, err = capsys.readouterr()
        return code, out + err

    try:
        code, out = cli("status")
        assert code == 0 and out.startswith("idle; selected for the button: gentle")
        code, out = cli("start", "shiatsu")
        assert code == 2 and out.startswith("error: no profile 'shiatsu'")
        assert cli("stop") == (0, "nothing running\n")
        rig.world.inject_now(FaultSpec("estop", None, 0.0))  # someone presses the E-stop
        wait_for(lambda: svc.status.state == "alarm", "the E-stop's alarm")
        code, out = cli("status")
        assert code == 3 and out.startswith("alarm; ") and "E-stop pressed" in out
        code, out = cli("start", "wave")
        assert code == 5 and out.startswith("refused: an alarm is latched")
        code, out = cli("reset")
        assert code == 5 and out == "refused: the E-stop is still pressed\n"
        assert cli("silence")[0] == 0
    finally:
        svc.stopping = True
        loop.join(10)
        sock.close()
        rig.close()
    code, out = cli("status")
    assert code == 6 and "the service is not running" in out


def test_the_button_runs_its_profile_as_the_file_now_says_and_not_a_file_that_does_not_load(cfg, tmp_path):
    """The button's start reads the selected profile's file as the session begins: a mistake saved since the service
    started refuses it (its file and line said, nothing moved, the history says `not started`); once fixed, the next
    press runs the file as it now is. No restart in between."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config, ignore=shutil.ignore_patterns("web-password"))
    gentle = config / "profiles" / "gentle.yaml"
    shipped = gentle.read_text()
    presses = [FaultSpec("button", None, 2.0), FaultSpec("button", None, 6.0), FaultSpec("button", None, 40.0)]
    rig = open_sim(cfg, seed=3, faults=presses)
    svc = Service(rig, config, log_dir=tmp_path / "logs")
    svc.load_profiles()
    try:
        gentle.write_text(shipped.replace("hold_s: 8", "hold_s: -8"))
        line = next(i for i, text in enumerate(gentle.read_text().splitlines(), 1) if "hold_s: -8" in text)
        svc.serve(until_s=4.0)  # the first press
        assert svc.status.state == "idle" and svc.status.sessions == 0
        assert f"{gentle}:{line}: cycle[0].hold_s: must be > 0 s (got -8)" in svc.status.last, svc.status.last
        pump = rig.world.pin_factory.pin(cfg.pump.pin.name)
        assert [s.state for s in pump.states] == [0.0]  # never ran
        (entry,) = svc.history
        assert entry["outcome"] == "not started" and f"gentle.yaml:{line}:" in entry["text"]

        gentle.write_text(shipped.replace("default_mmhg: 35", "default_mmhg: 33"))
        svc.serve(until_s=60.0)  # the second press starts gentle, the third stops it
        assert svc.status.sessions == 1 and svc.status.last == "stopped", svc.status.last
        (log_path,) = (tmp_path / "logs").glob("*-gentle.csv")
        ankle = {float(r["ankle_target_mmhg"]) for r in read_log(log_path) if r["ankle_target_mmhg"]}
        assert max(ankle) == pytest.approx(33.0 * 0.6)  # the first cycle of the ramp, at 60 % of the new 33 mmHg
        _safe(rig)
    finally:
        rig.close()
