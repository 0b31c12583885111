"""The service (`legsleeve serve`) on the simulated rig: idle until told; the button and the control socket; alarms
latched until a person resets them; a restart comes back idle. Time is the simulated rig's virtual clock."""

from __future__ import annotations

import threading

from legsleeve.app.cli import main
from legsleeve.app.service import ControlSocket, Service, send_command
from legsleeve.hw.backends import open_sim
from legsleeve.sim.faults import FaultSpec
from tests.helpers import CONFIG_DIR


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
        assert svc.status.state == "idle" and svc.status.sessions == 0 and svc.status.profile == "gentle"
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
        assert svc.status.profile == expected and svc.status.sessions == 0
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


def test_control_socket_start_status_stop(cfg, tmp_path):
    sock = ControlSocket(str(tmp_path / "control.sock"))
    rig, svc = _service(cfg, control=sock)
    replies = {}
    try:
        # a client in another thread, as `legsleeve start` from a terminal would be; the service polls the socket
        # from its own loop on the virtual clock, so the client simply waits for its answer
        def client():
            replies["start"] = send_command("start wave", sock.path)
            # the session begins at the service's next loop: ask until it says so (each answer is a round trip)
            for _ in range(500):
                replies["status"] = send_command("status", sock.path)
                if replies["status"].startswith("running"):
                    break
            replies["stop"] = send_command("stop", sock.path)

        t = threading.Thread(target=client)
        t.start()
        svc.serve(until_s=90.0)
        t.join(timeout=30)
        assert replies["start"] == "starting wave"
        assert replies["status"].startswith("running wave; profile gentle")
        assert replies["stop"] == "stopping: venting"
        # the stop lands in the self-test or in the session, as the threads fall: either way it stopped (SAFE-12)
        stopped_in_session = svc.status.sessions == 1 and svc.status.last == "stopped"
        stopped_in_selftest = svc.status.sessions == 0 and "no session was started" in svc.status.last
        assert svc.status.state == "idle" and (stopped_in_session or stopped_in_selftest), svc.status
    finally:
        sock.close()
        rig.close()


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
    assert code == 1 and "the service is not running" in capsys.readouterr().err


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
