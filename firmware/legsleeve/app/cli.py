"""The `legsleeve` command line: parse arguments, open the rig, hand over, and turn outcomes into exit codes.

Exit codes (README.md's table): 0 success, 1 internal error, 2 bad usage or config (nothing actuated), 3 safety trip,
sensor fault or an alarm latched, 4 stopped by a person during the self-test, 5 refused by the service (nothing was
done), 6 the service is not running or did not answer; 128 + N after signal N. Whatever happens after a rig is open -
an exception, SIGINT, SIGTERM - the rig is driven to the safe state before anything is reported (SAFE-1).

The module imports little at the top, so that the signal handlers are in place before the half second it takes to
load the hardware layer: a Ctrl-C then is a quiet exit, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from legsleeve import __version__
from legsleeve.app.console import Interrupted, PipeSafe, SignalStop, reader_gone
from legsleeve.errors import ConfigError, HardwareError, SensorFault

# `--help` and bad usage load nothing but argparse (issue 15): the config layer loads YAML, and the self-test the
# hardware layer (gpiozero and the drivers), so each is imported by the commands that use it.
if TYPE_CHECKING:
    from legsleeve.config.model import HardwareConfig
    from legsleeve.hw.rig import Rig
    from legsleeve.sim.faults import FaultSpec

DEFAULT_PROFILE = "gentle"

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_TRIP, EXIT_STOPPED, EXIT_REFUSED, EXIT_NO_SERVICE = 0, 1, 2, 3, 4, 5, 6

log = logging.getLogger("legsleeve")

__all__ = ["Interrupted", "main"]


# -- shared plumbing ---------------------------------------------------------------------------------------------


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="DIR",
        help="config directory holding hardware.yaml and profiles/ (default: $LEGSLEEVE_CONFIG, "
        "./config, then /etc/legsleeve)",
    )


def _add_sim(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sim", action="store_true", help="act on the simulated rig instead of the sleeve's hardware")
    p.add_argument("--seed", type=int, default=0, help="random seed of the simulated rig (sensor noise, offsets)")


def _config_dir(args) -> Path:
    from legsleeve.config.hardware import default_config_dir

    return args.config or default_config_dir()


def _config(args) -> HardwareConfig:
    from legsleeve.config.hardware import load_hardware

    cfg = load_hardware(_config_dir(args))
    for warning in cfg.warnings:
        log.warning("%s", warning)
    return cfg


@contextlib.contextmanager
def open_rig(
    cfg: HardwareConfig, args, *, faults=(), with_sensors: bool = True, serving: bool = False
) -> Iterator[Rig]:
    """Open the sleeve or the simulated rig; on the way out, whatever the reason, drive it safe and release it.

    On the sleeve, a command other than `serve` itself (`serving`) first asks whether the service holds the
    hardware, and if so refuses before it touches a pin: two processes on one sleeve would fight over its valves."""
    from legsleeve.hw import backends

    if not args.sim and not serving:
        from legsleeve.app.control import control_socket_path, serving_pid

        pid = serving_pid(getattr(args, "socket", None) or control_socket_path())
        if pid is not None:
            raise HardwareError(
                f"the legsleeve service (pid {pid}) holds the sleeve; nothing was actuated. For bring-up, stop it "
                "first: sudo systemctl stop legsleeve (it vents on the way out), then run this again"
            )

    args.rig_opened = True  # from here on, a signal's message says the sleeve was vented
    if args.sim:
        rig = backends.open_sim(cfg, seed=args.seed, faults=faults, with_sensors=with_sensors)
    else:
        try:
            rig = backends.open_pi(cfg, with_sensors=with_sensors)
        except HardwareError as exc:  # on a PC, say how to get the simulated rig for this very command
            import platform

            if platform.machine() in ("aarch64", "armv7l", "armv6l"):  # a Pi (the virtual Pi showed the hint there)
                raise
            raise HardwareError(f"{exc} On a PC: {_sim_hint(args)}") from exc
    try:
        yield rig
    finally:
        rig.close()


def _sim_hint(args) -> str:
    """How to run this command on the simulated rig: `run` has `simulate`, the others `--sim`."""
    if getattr(args, "command", "") == "run":
        return "`legsleeve simulate` runs the same session on the simulated rig."
    return "add --sim to act on the simulated rig."


def default_log_dir() -> Path:
    """Where session logs go: $STATE_DIRECTORY/sessions under systemd (/var/lib/legsleeve/sessions), else
    ./sessions."""
    import os

    state = os.environ.get("STATE_DIRECTORY")
    return Path(state) / "sessions" if state else Path("sessions")


# -- commands ----------------------------------------------------------------------------------------------------


def cmd_check_config(args) -> int:
    """Every file checked, then every profile's session planned on the model: all that would trip, refused."""
    from legsleeve.app.validate import describe, plan_session
    from legsleeve.config.profiles import load_all

    cfg = _config(args)
    print(
        f"{cfg.path}: OK - {len(cfg.zones)} zones ({', '.join(cfg.zone_names)}), "
        f"max {cfg.limits.max_mmhg:g} mmHg, tick {cfg.tick_hz:g} Hz"
        + (f", {len(cfg.warnings)} warning(s)" if cfg.warnings else "")
    )
    profiles, problems = load_all(_config_dir(args), cfg)
    for p in profiles:
        plan = plan_session(cfg, p, sim=planning_model(cfg))
        verdict = "OK" if plan.ok else f"WOULD TRIP ({len(plan.findings)} finding(s) below)"
        print(f"{p.path}: {verdict} - {len(p.steps)} steps a cycle")
        print("\n".join(describe(plan, cfg)))
        problems += [str(f) for f in plan.findings]
    print_limits(cfg)
    if problems:
        raise ConfigError(problems)
    return EXIT_OK


def print_limits(cfg: HardwareConfig, out=None) -> None:
    """The limits in force and where each came from: hardware.yaml, or the calibration's measured figures."""
    import dataclasses

    out = out or sys.stdout
    cal = cfg.calibration
    sources = dict(cfg.limit_sources)
    if cal is None:
        print(
            "limits in force: hardware.yaml's (the reference build's); run `legsleeve calibrate` to fit the rate, "
            "time and vent limits to this build",
            file=out,
        )
    else:
        print(
            f"limits in force: {len(sources)} derived from {cal.path.name} (measured {cal.date}, firmware "
            f"{cal.firmware_version}), the rest from hardware.yaml",
            file=out,
        )
    for f in dataclasses.fields(cfg.limits):
        value = getattr(cfg.limits, f.name)
        if f.name in sources:
            configured = getattr(cfg.configured_limits, f.name)
            print(
                f"  {f.name:<24} {value:>8.3g}  calibration: {sources[f.name]} (hardware.yaml: {configured:g})",
                file=out,
            )
        else:
            print(f"  {f.name:<24} {value:>8.3g}  hardware.yaml", file=out)


def planning_model(cfg: HardwareConfig):
    """The sleeve a session is planned on: the twin calibration fitted to it, else hardware.yaml's model."""
    return cfg.calibration.twin if cfg.calibration is not None else cfg.simulation


def _twin(cfg: HardwareConfig, args) -> HardwareConfig:
    """With --twin: the config whose simulated sleeve is the twin calibration fitted (refused without one)."""
    if not getattr(args, "twin", False):
        return cfg
    from legsleeve.app.preview import twin_config

    return twin_config(cfg)


def _profile(args, cfg: HardwareConfig):
    from legsleeve.config.profiles import load_profile

    return load_profile(_config_dir(args), args.profile, cfg)


def _status(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


SELFTEST_PREFIX = "selftest+"  # --fault NAME@selftest+T: T counts from the simulator's start, the self-test's


@dataclass(frozen=True)
class Injection:
    """A `--fault` as given: its spec (`at_s` as written) and what it counts from. `NAME@T` counts from the session's
    start - t = 0 of the progress lines, of the plot and of the summary; `NAME@selftest+T` from the simulator's start,
    so that it can land in the self-test."""

    spec: FaultSpec
    text: str
    from_selftest: bool

    def clock_s(self, session_start_s: float) -> float:
        """When it fires on the simulator's clock."""
        return self.spec.at_s if self.from_selftest else session_start_s + self.spec.at_s

    def session_s(self, session_start_s: float) -> float:
        """When it fires, from the session's start (negative: in the self-test)."""
        return self.clock_s(session_start_s) - session_start_s


def fault_names_help() -> str:
    """Every --fault name with what it does (`legsleeve simulate --fault list`)."""
    from legsleeve.sim.faults import PANEL_EVENTS, PUMP_FAULTS, SENSOR_ERRORS, SENSOR_FAULTS, ZONE_FAULTS

    lines = [
        "--fault NAME[:ZONE]@SECONDS[=VALUE]: SECONDS from the session's start (after the self-test), or",
        "@selftest+SECONDS from the simulator's start (the self-test's). Names:",
    ]
    for title, table, zone in (
        ("a zone's air path", ZONE_FAULTS, ":ZONE"),
        ("a sensor", SENSOR_FAULTS, ":ZONE or :manifold"),
        ("a sensor answering with the wrong pressure (=VALUE)", SENSOR_ERRORS, ":ZONE or :manifold"),
        ("the pump", PUMP_FAULTS, ""),
        ("a person at the panel", PANEL_EVENTS, ""),
    ):
        lines.append(f"  {title}:")
        lines += [f"    {name + zone:<36} {what}" for name, what in table.items()]
    return "\n".join(lines)


def _injections(args, cfg: HardwareConfig, plan) -> list[Injection]:
    """Each --fault parsed and checked against the zones and the planned session: one that would come after the
    session's planned end would never fire, so it is refused (exit 2), before anything moves."""
    from legsleeve.sim.faults import EVENT_NAMES, parse_fault

    out, problems = [], []
    for text in args.fault:
        head, at, when = text.strip().partition("@")
        from_selftest = when.startswith(SELFTEST_PREFIX)
        spec_text = f"{head}@{when[len(SELFTEST_PREFIX) :]}" if from_selftest else text
        try:
            spec = parse_fault(spec_text, cfg.zone_names, has_manifold_sensor=cfg.has_manifold_sensor)
        except ValueError as exc:
            problems.append(f"--fault: {exc}")
            continue
        end_s = plan.session_s
        if not from_selftest and end_s is not None and spec.at_s > end_s:
            problems.append(
                f"--fault {text}: the session is planned to end {end_s:.1f} s from its start: "
                f"a fault at {spec.at_s:g} s would never fire (times count from the session's start)"
            )
            continue
        out.append(Injection(spec, text, from_selftest))
    if problems:
        problems.append(
            f"--fault names: {', '.join(EVENT_NAMES)}; `legsleeve simulate --fault list` says what each does"
        )
        raise ConfigError(problems)
    return out


def _session(args, *, sim: bool) -> int:
    """`run` and `simulate`: everything that can be refused is refused before the rig opens (SAFE-2).

    A SIGINT or SIGTERM during the session stops it as the stop button does: it vents at the next tick, the log
    records the sleeve emptying, the summary and the plot follow, and the exit code is 128 + the signal's number."""
    from legsleeve.app.session import report, run_session
    from legsleeve.sim.faults import FaultSpec

    if sim and "list" in args.fault:
        print(fault_names_help())
        return EXIT_OK
    cfg = _config(args)
    profile = _profile(args, cfg)
    plan = _plan(cfg, profile, args)
    injections: list[Injection] = []
    if sim:
        cfg = _twin(cfg, args)
        injections = _injections(args, cfg, plan)
        _plot_possible(args)
    log_path = args.log or _default_log(profile.name, sim=sim, seed=getattr(args, "seed", 0))
    args.sim = sim
    signals: SignalStop = args.signals
    started: list[float] = []
    with open_rig(cfg, args, faults=[i.spec for i in injections if i.from_selftest]) as rig:

        def on_start(t_s: float) -> None:  # the session's faults count from here
            started.append(t_s)
            for i in injections:
                assert rig.world is not None  # faults are given on the simulated rig only
                if not i.from_selftest:
                    rig.world.schedule(FaultSpec(i.spec.name, i.spec.zone, t_s + i.spec.at_s, i.spec.value))

        with signals.listening():
            result = run_session(
                rig,
                profile,
                cycles=args.cycles,
                minutes=args.minutes,
                log_path=log_path,
                status=_status,
                realtime=getattr(args, "realtime", False),
                poll=signals.poll,
                on_start=on_start,
            )
    report(result, profile)
    o = result.outcome
    start_s = started[0]
    for i in injections:
        if i.clock_s(start_s) > o.end_s:
            print(
                f"fault {i.text} never fired: the session ended {o.duration_s:.1f} s from its start, before it",
                file=sys.stdout,
            )
    if sim and args.plot:
        from legsleeve.app.plot import Marker, plot_log

        markers = [Marker(i.session_s(start_s), i.text) for i in injections if i.clock_s(start_s) <= o.end_s]
        print(f"plot: {plot_log(log_path, args.plot, title=f'legsleeve simulate: {profile.name}', markers=markers)}")
    if signals.signum is not None:
        print(f"stopped by {signals.name}; the sleeve was vented", file=sys.stderr)
        return 128 + signals.signum
    return EXIT_TRIP if o.trip is not None else EXIT_OK


def _plan(cfg: HardwareConfig, profile, args):
    """The whole session planned on the model before the rig opens: what would certainly trip is refused."""
    from legsleeve.app.validate import headline, model_words, plan_session

    plan = plan_session(cfg, profile, cycles=args.cycles, minutes=args.minutes, sim=planning_model(cfg))
    if not plan.ok:
        raise ConfigError([str(f) for f in plan.findings])
    _status(headline(plan, model_words(cfg)))
    return plan


def _plot_possible(args) -> None:
    """A plot asked for must be drawable: refuse now, before anything is actuated, not after the session."""
    if args.plot:
        from legsleeve.app.plot import require_matplotlib

        try:
            require_matplotlib()
        except ImportError as exc:
            raise ConfigError([f"--plot: {exc}"]) from None


def _default_log(profile: str, *, sim: bool, seed: int) -> Path:
    import time as _time

    if sim:
        return Path("out") / f"sim-{profile}-seed{seed}.csv"
    return default_log_dir() / f"{_time.strftime('%Y%m%d-%H%M%S')}-{profile}.csv"  # wall time names the file


def cmd_run(args) -> int:
    return _session(args, sim=False)


def cmd_simulate(args) -> int:
    return _session(args, sim=True)


def cmd_profiles(args) -> int:
    from legsleeve.config.profiles import load_all

    cfg = _config(args)
    profiles, problems = load_all(_config_dir(args), cfg)
    for p in profiles:
        length = f"{p.session_minutes:g} min" if p.session_minutes else f"{p.session_cycles} cycles"
        marker = " (default)" if p.name == DEFAULT_PROFILE else ""
        print(f"{p.name:<10} {length:>8}  {p.description}{marker}")
    if problems:
        raise ConfigError(problems)
    return EXIT_OK


def cmd_profile_show(args) -> int:
    """The planned timeline of one cycle: run it on the simulated rig built from the user's own config (the web
    page's profile editor shows the same preview, `legsleeve.app.preview`)."""
    import tempfile

    from legsleeve.app.preview import preview_cycle

    twin = getattr(args, "twin", False)
    cfg = _twin(_config(args), args)
    profile = _profile(args, cfg)
    _plot_possible(args)
    print(f"{profile.name}: {profile.description}")
    print(
        "targets: "
        + ", ".join(f"{n} {t:g} mmHg" for n, t in zip(profile.zone_names, profile.targets_mmhg, strict=False))
    )
    if profile.ramp_cycles:
        print(f"ramp: the first {profile.ramp_cycles} cycle(s) start at {profile.ramp_start:.0%} of these")
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "plan.csv"
        plan = preview_cycle(cfg, profile, log_path, twin=twin)
        print(f"\nplanned cycle on the simulated rig ({plan.model}):")
        print(f"{'start s':>8}  step")
        for t_s, state in plan.steps:
            print(f"{t_s:8.1f}  {state}")
        print(f"one cycle: {plan.duration_s:.0f} s (ends vented)")
        if plan.trip is not None:
            print(f"the planned cycle TRIPPED on the simulated rig: {plan.trip}", file=sys.stderr)
            return EXIT_TRIP
        if args.plot:
            from legsleeve.app.plot import plot_log

            print(f"plot: {plot_log(log_path, args.plot, title=f'planned cycle: {profile.name}')}")
    return EXIT_OK


def cmd_calibrate(args) -> int:
    """Characterise the build (sleeve off the leg), fit the twin, and write calibration.yaml."""
    from legsleeve.app.calibrate import (
        CalibrationRefused,
        CalibrationTripped,
        calibrate,
        report,
        write_calibration,
    )
    from legsleeve.config.hardware import load_hardware

    cfg = load_hardware(_config_dir(args), calibrated=False)  # measured against hardware.yaml's limits
    for warning in cfg.warnings:
        log.warning("%s", warning)
    _plot_possible(args)
    where = "the simulated rig" if args.sim else "the sleeve"
    print(
        f"calibrating {where}: take the sleeve OFF the leg. Each zone is filled alone up to "
        f"{cfg.limits.max_mmhg - cfg.limits.trip_margin_mmhg:g} mmHg, held and vented (a few minutes).",
        file=sys.stderr,
    )
    with open_rig(cfg, args) as rig:
        try:
            result = calibrate(rig, firmware_version=__version__, status=_status)
        except CalibrationTripped as exc:
            print(f"legsleeve: {exc}", file=sys.stderr)
            return EXIT_TRIP
        except CalibrationRefused as exc:
            print(f"legsleeve: {exc}", file=sys.stderr)
            return EXIT_USAGE
    report(result, sys.stdout)
    path = write_calibration(result.calibration, _config_dir(args) / "calibration.yaml")
    print(f"\nwritten: {path}")
    if args.plot:
        from legsleeve.app.plot import plot_calibration

        print(f"plot: {plot_calibration(result, args.plot)}")
    return EXIT_OK


def cmd_vent(args) -> int:
    cfg = _config(args)
    # No sensors needed to vent: a dead sensor must never stop the sleeve from emptying.
    with open_rig(cfg, args, with_sensors=False) as rig:
        failures = rig.drive_safe()
    if failures:
        print(f"vent: {len(failures)} output(s) could not be set: {failures[0]!r}", file=sys.stderr)
        return EXIT_INTERNAL
    print("vented: pump off, every inlet closed, every exhaust open")
    return EXIT_OK


HEADER_EVERY = 20  # `sensors --follow` repeats its header this often, so the columns stay named on screen


def cmd_sensors(args) -> int:
    """Vent, take the zero, print gauge readings: `--samples N` of them, or with `--follow` until Ctrl-C (or until
    the reader of the output goes away), for bring-up: press a bladder and watch its column."""
    cfg = _config(args)
    signals: SignalStop = args.signals
    with open_rig(cfg, args) as rig:
        if args.sim and args.follow:
            from legsleeve.core.clock import RealTimePacer, VirtualClock

            if isinstance(rig.clock, VirtualClock):  # the simulated rig's clock, at the pace of a person watching
                RealTimePacer(rig.clock)
        baselines = rig.zero_sensors()
        print("zero (vented, absolute hPa): " + "  ".join(f"{n} {hpa:.2f}" for n, hpa in baselines.items()))
        if rig.sensors is None:
            raise HardwareError("the rig was built without sensors")
        names = [s.name for s in rig.sensors.all]
        header = "t_s     " + "".join(f"{n:>10}" for n in names) + "   (gauge mmHg)"
        printed = 0
        with signals.listening():  # with --follow, Ctrl-C is the way out: the sleeve is vented, exit 0
            while args.follow or printed < args.samples:
                if printed % HEADER_EVERY == 0 and (printed == 0 or args.follow):
                    print(header, flush=args.follow)
                r = rig.read()
                cells = [*r.zones, *([r.manifold] if r.manifold else [])]
                print(
                    f"{r.t_s:6.2f}  " + "".join(f"{c.mmhg:10.2f}" if c.ok else f"{'FAULT':>10}" for c in cells),
                    flush=args.follow,
                )
                printed += 1
                for name, c in zip(names, cells, strict=False):
                    if not c.ok:
                        print(f"        {name}: {c.fault}", file=sys.stderr)
                if signals.poll() is not None or reader_gone(sys.stdout):
                    break
                rig.clock.sleep(args.interval_s)
    if signals.signum is not None:
        print(f"sensors: {signals.poll()}, {printed} reading(s); the sleeve was vented", file=sys.stderr)
    return EXIT_OK


def cmd_serve(args) -> int:
    """The systemd service: idle until the button or `legsleeve start`; never resumes a session.

    The control socket's lock is taken before the rig is opened: a second `serve` refuses before it touches a pin
    or the running service's socket."""
    from legsleeve.app.control import AlreadyServing, ControlSocket, control_socket_path
    from legsleeve.app.notify import Notifier
    from legsleeve.app.service import Service

    cfg = _config(args)
    from legsleeve.config.profiles import load_all

    _, problems = load_all(_config_dir(args), cfg)  # refuse bad profiles before anything is actuated
    if problems:
        raise ConfigError(problems)
    try:
        control = ControlSocket(args.socket or control_socket_path())
    except AlreadyServing as exc:
        print(f"serve: {exc}; nothing was actuated", file=sys.stderr)
        return EXIT_INTERNAL
    except PermissionError as exc:
        print(f"serve: cannot open the control socket: {exc}; nothing was actuated", file=sys.stderr)
        return EXIT_INTERNAL
    notifier = Notifier()
    log_dir = args.log_dir or default_log_dir()
    try:
        # without sensors: the service connects them itself, and stays up (vented, with an alarm) when they fail
        with open_rig(cfg, args, with_sensors=False, serving=True) as rig:
            if args.sim:
                from legsleeve.core.clock import RealTimePacer, VirtualClock

                if isinstance(rig.clock, VirtualClock):  # always, on the simulated rig
                    RealTimePacer(rig.clock)
            service = Service(rig, _config_dir(args), notifier=notifier, control=control, log_dir=log_dir)
            service.load_profiles()
            service.serve()
    finally:
        notifier.stopping()
        control.close()
    return EXIT_OK


# What the command line's exit code makes of each error code of the control protocol (README's table).
EXIT_OF_ERROR = {
    "bad-request": EXIT_USAGE,
    "unsupported-version": EXIT_USAGE,
    "unknown-command": EXIT_USAGE,
    "too-long": EXIT_USAGE,
    "unknown-profile": EXIT_USAGE,
    "out-of-range": EXIT_USAGE,
    "refused": EXIT_REFUSED,
    "busy": EXIT_REFUSED,
    "not-allowed": EXIT_REFUSED,
    "timeout": EXIT_NO_SERVICE,
    "not-taken": EXIT_NO_SERVICE,
    "internal": EXIT_INTERNAL,
}


def ask_service(args, cmd: str, **fields):
    """One request to the running service (`legsleeve.app.control.request`): its answer, or None after saying why
    there is none (`args.exit` is then the exit code: 6 no service, 5 not allowed)."""
    from legsleeve.app.control import control_socket_path, request

    path = args.socket or control_socket_path()
    try:
        return request(cmd, path, **fields)
    except (FileNotFoundError, ConnectionRefusedError):
        print(f"the service is not running (no control socket at {path}): systemctl status legsleeve", file=sys.stderr)
        args.exit = EXIT_NO_SERVICE
    except PermissionError as exc:
        print(f"control socket {path}: {exc}: join the group legsleeve (then log in again)", file=sys.stderr)
        args.exit = EXIT_REFUSED
    except OSError as exc:
        print(f"control socket {path}: {exc}", file=sys.stderr)
        args.exit = EXIT_NO_SERVICE
    return None


def cmd_control(args) -> int:
    """`legsleeve start|stop|status|reset|silence|history`: one request to the running service, its answer printed
    (`--json`: as the service sent it). The exit code says what happened: 0 done, 2 a bad request (an unknown
    profile, an intensity past the limits), 3 an alarm is latched (`status`), 5 refused by the service (nothing was
    done), 6 the service is not running or did not answer."""
    fields = {}
    if args.command == "start":
        fields = {k: v for k, v in (("profile", args.profile), ("intensity_pct", args.intensity),
                                    ("minutes", args.minutes)) if v is not None}  # fmt: skip
    if args.command == "history":
        fields = {"limit": args.limit}
    reply = ask_service(args, args.command, **fields)
    if reply is None:
        return args.exit
    if args.json:
        import json

        print(json.dumps(reply, indent=2))
    elif args.command == "status" and reply.get("ok"):
        print(describe_status(reply["status"]))
    elif args.command == "history" and reply.get("ok"):
        print(describe_history(reply["sessions"]))
    else:
        print(reply.get("text", ""))
    if not reply.get("ok"):
        return EXIT_OF_ERROR.get(str(reply.get("error")), EXIT_INTERNAL)
    if args.command == "status" and reply["status"]["alarm"] is not None:
        return EXIT_TRIP
    return EXIT_OK


def cmd_watch(args) -> int:
    """`legsleeve watch`: the running service live (app/watch.py), until Ctrl-C (exit 0) or the reader goes away."""
    from legsleeve.app.control import control_socket_path
    from legsleeve.app.watch import watch

    signals: SignalStop = args.signals
    with signals.listening():  # Ctrl-C is the way out
        watch(
            args.socket or control_socket_path(),
            sys.stdout,
            hz=args.hz,
            stop=lambda: signals.signum is not None,
            gone=lambda: reader_gone(sys.stdout),
        )
    return EXIT_OK


def cmd_web(args) -> int:
    """`legsleeve web`: the web page (legsleeve/web), a client of the running service's control socket. Refuses to
    start (exit 2, naming the file and key) when open to the network without a password, or without its extra."""
    from legsleeve.app.control import control_socket_path
    from legsleeve.web.server import plan, require_web_stack, serve

    config_dir = _config_dir(args)
    checked = plan(config_dir, args.listen, args.sessions_dir)  # ConfigError (exit 2) before anything listens
    require_web_stack()
    try:
        serve(checked, config_dir, args.socket or control_socket_path())
    except Interrupted as exc:  # systemctl stop, Ctrl-C: a clean stop (the sleeve is the service's, untouched)
        print(f"legsleeve web: stopped by {exc}", file=sys.stderr)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        print(f"legsleeve web: cannot listen: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    return EXIT_OK


def cmd_web_password(args) -> int:
    """`legsleeve web-password`: ask for the web page's password twice (or read one line with --stdin) and store its
    scrypt hash in the config directory's web-password (never the password)."""
    from legsleeve.web.settings import PASSWORD_MIN_CHARS, load_web_config, write_password_hash

    web = load_web_config(_config_dir(args))
    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        import getpass

        password = getpass.getpass(f"web page password (at least {PASSWORD_MIN_CHARS} characters): ")
        if getpass.getpass("again: ") != password:
            print("web-password: the two did not match; nothing was changed", file=sys.stderr)
            return EXIT_USAGE
    try:
        path = write_password_hash(web, password)
    except ValueError as exc:
        print(f"web-password: {exc}; nothing was changed", file=sys.stderr)
        return EXIT_USAGE
    except PermissionError as exc:
        print(f"web-password: {exc}: run it with sudo", file=sys.stderr)
        return EXIT_USAGE
    print(f"web-password: its hash is in {path}; restart the page: sudo systemctl restart legsleeve-web")
    return EXIT_OK


def describe_status(status: dict) -> str:
    """`legsleeve status` for a person: the one-line summary, then each zone while a session runs."""
    from legsleeve.app.snapshot import text

    lines = [text(status)]
    if any(z["mmhg"] is not None for z in status["zones"]):
        lines.append(f"  {'zone':<12} {'mmHg':>6} {'target':>7}  valve")
        for z in status["zones"]:
            mmhg = f"{z['mmhg']:6.1f}" if z["mmhg"] is not None else f"{'-':>6}"
            target = f"{z['target_mmhg']:7.1f}" if z["target_mmhg"] is not None else f"{'-':>7}"
            lines.append(f"  {z['name']:<12} {mmhg} {target}  {z['valve']}")
    return "\n".join(lines)


def describe_history(sessions: list) -> str:
    """`legsleeve history`: one line a session, newest first."""
    if not sessions:
        return "no sessions yet"
    lines = []
    for e in sessions:
        length = f"{e['duration_s'] / 60:5.1f} min" if e.get("duration_s") is not None else f"{'-':>9}"
        intensity = f" at {e['intensity_pct']:g} %" if e.get("intensity_pct") not in (None, 100, 100.0) else ""
        lines.append(f"{e['started']}  {e['profile']}{intensity}  {length}  {e['outcome']}: {e.get('text', '')}")
    return "\n".join(lines)


def cmd_plot(args) -> int:
    """`legsleeve plot LOG.csv`: a session log, from the sleeve or the simulator, drawn (the rows from --from to --to,
    seconds from the session's start): each zone with its target and valves, the pump, the steps, a trip with its
    message, a stop. Written beside the log unless --out says where."""
    problems = []
    if not args.log.is_file():
        problems.append(f"{args.log}: no such session log")
    if args.t_to is not None and args.t_to <= args.t_from:
        problems.append(
            f"--to {args.t_to:g}: must come after --from {args.t_from:g} (seconds from the session's start)"
        )
    args.plot = True  # drawable, or refused now (exit 2)
    _plot_possible(args)
    if problems:
        raise ConfigError(problems)
    from legsleeve.app.plot import image_path, plot_log

    out = image_path(args.out or args.log.with_suffix(""))
    window = (
        ""
        if args.t_from == 0 and args.t_to is None
        else f", {args.t_from:g} s to " + (f"{args.t_to:g} s" if args.t_to is not None else "the end")
    )
    try:
        written = plot_log(args.log, out, title=args.title or f"{args.log.name}{window}", t_from_s=args.t_from,
                           t_to_s=args.t_to)  # fmt: skip
    except (ValueError, UnicodeDecodeError) as exc:  # not a session log, or nothing in the window
        raise ConfigError([str(exc)]) from None
    print(f"plot: {written}")
    return EXIT_OK


def _seconds(text: str) -> float:
    """A time from the session's start: seconds (`90`, `90.5`) or minutes and seconds (`1:30`)."""
    try:
        minutes, _, seconds = text.rpartition(":")
        value = (float(minutes) * 60.0 if minutes else 0.0) + float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a time in seconds or M:SS, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def cmd_wiring(args) -> int:
    """The wiring table; with --bom the bill of materials; with --svg/--png the schematic, drawn from the config."""
    from legsleeve.hw import parts, wiring

    cfg = _config(args)
    if args.svg or args.png:
        from legsleeve.hw import schematic

        if args.svg:
            args.svg.write_text(schematic.svg(cfg))
            print(f"schematic: {args.svg}")
        if args.png:
            args.png.write_bytes(schematic.png(cfg))
            print(f"schematic: {args.png}")
        return EXIT_OK
    if args.bom:
        print(parts.markdown(cfg))
        return EXIT_OK
    print(wiring.markdown(cfg) if args.markdown else wiring.text(cfg))
    return EXIT_OK


def cmd_test_valve(args) -> int:
    """Bring-up: fill one zone gently under the full supervisor, hold, vent, and say what every zone did."""
    from legsleeve.app.bringup import check_valve_args, leak_report, run_valve_test

    cfg = _config(args)
    check_valve_args(cfg.zone_names, cfg.limits.max_mmhg, args.zone, args.mmhg, args.hold_s)  # before anything opens
    names = cfg.zone_names

    def row(t_s: float, step: str, readings) -> None:
        cells = "".join(f"{r.mmhg:9.1f}" if r.ok else f"{'FAULT':>9}" for r in readings.zones)
        print(f"{t_s:6.1f} {step:<10} {cells}")

    with open_rig(cfg, args) as rig:
        print("t_s    state      " + "".join(f"{n:>9}" for n in names) + "   (gauge mmHg)")
        result = run_valve_test(rig, args.zone, mmhg=args.mmhg, hold_s=args.hold_s, row=row)
    if result.trip is not None:
        print(f"test-valve {args.zone}: TRIPPED {result.trip} - {result.trip.hint}")
        return EXIT_TRIP
    fill = f"{result.fill_s:.1f} s" if result.fill_s is not None else "an unknown time"
    print(
        f"test-valve {args.zone}: filled to {result.peaks_mmhg[args.zone]:.1f} mmHg in {fill}; every other "
        f"zone stayed below {result.others_peak_mmhg:.1f} mmHg; vented. Compare the peak with a reference gauge on "
        "the zone's hose."
    )
    print(leak_report(result))
    return EXIT_USAGE if result.leaks else EXIT_OK


def cmd_bench(args) -> int:
    from legsleeve.app import bench

    cfg = _config(args)
    if args.hardware:
        figures = bench.hardware(cfg)
    else:
        figures = bench.run_all(cfg, _config_dir(args), minutes=args.minutes)
    print(bench.as_json(figures) if args.json else bench.table(figures))
    return EXIT_OK


# -- entry point -------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="legsleeve",
        description="Firmware for a do-it-yourself sequential air-compression leg sleeve. Not a medical device.",
        epilog="Exit codes: 0 success, 1 internal error, 2 bad usage or config (nothing actuated), 3 safety trip or "
        "alarm latched, 4 stopped by a person during the self-test, 5 refused by the service, 6 the service is not "
        "running; 128+N after signal N (130 Ctrl-C).",
    )
    parser.add_argument("--version", action="version", version=f"legsleeve {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("check-config", help="validate hardware.yaml (and profiles); exit 2 listing every problem")
    _add_config(p)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("vent", help="drive the safe state (pump off, inlets closed, exhausts open) and exit")
    _add_config(p)
    _add_sim(p)
    p.set_defaults(func=cmd_vent)

    p = sub.add_parser("sensors", help="vent, take the zero, and print live gauge readings per zone")
    _add_config(p)
    _add_sim(p)
    many = p.add_mutually_exclusive_group()
    many.add_argument("--samples", type=_positive_int, default=10, help="how many readings to print (default 10)")
    many.add_argument(
        "--follow",
        action="store_true",
        help="print readings until Ctrl-C (bring-up: press a bladder, watch its column)",
    )
    p.add_argument("--interval-s", type=_positive_float, default=0.2, help="seconds between readings (default 0.2)")
    p.set_defaults(func=cmd_sensors)

    for name, func, helptext in (
        ("run", cmd_run, "run a therapy session on the sleeve"),
        ("simulate", cmd_simulate, "run a session on the simulated rig, faster than real time"),
    ):
        p = sub.add_parser(name, help=helptext)
        _add_config(p)
        p.add_argument("--profile", default=DEFAULT_PROFILE, help=f"profile name (default {DEFAULT_PROFILE})")
        length = p.add_mutually_exclusive_group()
        length.add_argument(
            "--minutes", type=_positive_float, help="session length in minutes (the cycle under way finishes)"
        )
        length.add_argument("--cycles", type=_positive_int, help="session length in cycles")
        p.add_argument(
            "--log",
            type=Path,
            help="session log CSV (default: out/ in simulation; "
            "$STATE_DIRECTORY/sessions/ or ./sessions/ on the sleeve)",
        )
        if name == "simulate":
            from legsleeve.sim.faults import EVENT_NAMES  # names only: stdlib, no simulator loaded

            p.add_argument(
                "--fault",
                action="append",
                default=[],
                metavar="SPEC",
                help="inject a fault or a panel event, NAME[:ZONE]@SECONDS[=VALUE] (e.g. leak:calf@60, "
                "sensor-offset:ankle@20=-13, button@3); repeatable. Names: " + ", ".join(EVENT_NAMES),
            )
            p.add_argument("--seed", type=int, default=0, help="random seed (sensor noise and offsets)")
            p.add_argument("--plot", type=Path, metavar="PATH.png", help="plot the session (needs the plot extra)")
            p.add_argument("--realtime", action="store_true", help="run at the pace of real time")
            p.add_argument(
                "--twin", action="store_true", help="simulate the twin `legsleeve calibrate` fitted to your sleeve"
            )
        p.set_defaults(func=func)

    p = sub.add_parser("serve", help="the service: idle until the button or `legsleeve start` (systemd runs this)")
    _add_config(p)
    _add_sim(p)
    p.add_argument("--log-dir", type=Path, help="session logs (default $STATE_DIRECTORY/sessions)")
    p.add_argument("--socket", help="control socket path (default $LEGSLEEVE_CONTROL or /run/legsleeve/control.sock)")
    p.set_defaults(func=cmd_serve)

    for name, helptext in (
        ("start", "start a session on the running service"),
        ("stop", "stop the running session (it vents)"),
        ("status", "what the service is doing (exit 3 with an alarm latched)"),
        ("reset", "clear a latched alarm, once you have checked the sleeve"),
        ("silence", "silence the buzzer of an alarm (at most 120 s; the LED keeps showing it)"),
        ("history", "the sessions the service has run, newest first"),
    ):
        p = sub.add_parser(name, help=helptext)
        if name == "start":
            p.add_argument("profile", nargs="?", help="profile (default: the one selected on the service)")
            p.add_argument(
                "--intensity",
                type=_positive_float,
                metavar="PCT",
                help="percent of the profile's targets (50-150, never past limits.max_mmhg; default 100)",
            )
            p.add_argument(
                "--minutes",
                type=_positive_float,
                help="session length (default: the profile's; the cycle under way finishes)",
            )
        if name == "history":
            p.add_argument("--limit", type=_positive_int, default=20, help="how many sessions (default 20)")
        p.add_argument("--json", action="store_true", help="the service's answer as it sent it (JSON)")
        p.add_argument("--socket", help="control socket path")
        p.set_defaults(func=cmd_control, command=name)

    p = sub.add_parser("plot", help="draw a session log (from the sleeve or the simulator) as an image")
    p.add_argument("log", type=Path, metavar="LOG.csv")
    p.add_argument("--out", type=Path, metavar="PATH.png", help="where (default: beside the log, LOG.png)")
    p.add_argument(
        "--from",
        dest="t_from",
        type=_seconds,
        default=0.0,
        metavar="T",
        help="from T (seconds, or M:SS) after the session's start",
    )
    p.add_argument("--to", dest="t_to", type=_seconds, metavar="T", help="to T (default: the end)")
    p.add_argument("--title", help="the plot's title (default: the log's name)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser(
        "watch", help="the running service live: pressures as bars, step, time left, alarm (Ctrl-C ends)"
    )
    p.add_argument("--hz", type=_hz, default=4.0, help="redraws a second (0.5-10, default 4)")
    p.add_argument("--socket", help="control socket path")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser(
        "web", help="the web page: live pressures, start/stop, history, profile editor (needs the web extra)"
    )
    _add_config(p)
    p.add_argument("--socket", help="control socket path (default $LEGSLEEVE_CONTROL or /run/legsleeve/control.sock)")
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="where to listen (default: web.yaml's listen, else 127.0.0.1:8080; port 0: any free port)",
    )
    p.add_argument(
        "--sessions-dir", type=Path, metavar="DIR", help="the service's session logs (default: web.yaml's sessions_dir)"
    )
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("web-password", help="set the web page's password (stored hashed, in the config directory)")
    _add_config(p)
    p.add_argument("--stdin", action="store_true", help="read the password from one line of stdin (no prompt)")
    p.set_defaults(func=cmd_web_password)

    p = sub.add_parser(
        "calibrate",
        help="bring-up: measure this build (sleeve off the leg), fit its twin, and write calibration.yaml",
    )
    _add_config(p)
    _add_sim(p)
    p.add_argument("--plot", type=Path, metavar="PATH.png", help="plot the recording and the twin's replay")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser(
        "wiring", help="print the GPIO -> device table of your hardware.yaml; its bill of materials; draw its schematic"
    )
    _add_config(p)
    p.add_argument("--markdown", action="store_true", help="as a Markdown table")
    p.add_argument("--bom", action="store_true", help="print the bill of materials for your build (Markdown)")
    p.add_argument("--svg", type=Path, metavar="PATH.svg", help="draw the schematic as SVG (needs the schematic extra)")
    p.add_argument(
        "--png", type=Path, metavar="PATH.png", help="draw the schematic as PNG (needs the schematic and plot extras)"
    )
    p.set_defaults(func=cmd_wiring)

    p = sub.add_parser("test-valve", help="bring-up: fill one zone gently, hold, vent, and report every zone")
    p.add_argument("zone")
    _add_config(p)
    _add_sim(p)
    p.add_argument("--mmhg", type=float, default=20.0, help="pressure to fill to (default 20)")
    p.add_argument(
        "--hold-s",
        type=float,
        default=3.0,
        help="seconds to hold (default 3); 60 makes it the zone's leak test (exit 2 if it leaks)",
    )
    p.set_defaults(func=cmd_test_valve)

    p = sub.add_parser("bench", help="measure the loop against its physical limits (simulated rig by default)")
    _add_config(p)
    p.add_argument("--hardware", action="store_true", help="on the Pi: the real sensors, outputs kept safe")
    p.add_argument(
        "--minutes",
        type=_positive_float,
        default=60.0,
        help="simulated minutes for the simulation-speed figure (default 60)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("profiles", help="list the pressure profiles with their descriptions")
    _add_config(p)
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("profile", help="look at one profile")
    psub = p.add_subparsers(dest="profile_command", metavar="ACTION", required=True)
    show = psub.add_parser("show", help="the planned pressure timeline of one cycle, before anything runs")
    show.add_argument("profile", metavar="NAME")
    _add_config(show)
    show.add_argument("--plot", type=Path, metavar="PATH.png", help="plot the planned cycle")
    show.add_argument(
        "--twin", action="store_true", help="plan on the twin `legsleeve calibrate` fitted to your sleeve"
    )
    show.set_defaults(func=cmd_profile_show)
    return parser


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _hz(text: str) -> float:
    from legsleeve.app.protocol import HZ_MAX, HZ_MIN

    value = _positive_float(text)
    if not HZ_MIN <= value <= HZ_MAX:
        raise argparse.ArgumentTypeError(f"must be from {HZ_MIN:g} to {HZ_MAX:g}, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    signals = SignalStop()
    old_handlers = signals.install()  # first: a Ctrl-C from here on is a quiet exit, never a traceback
    old_streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = PipeSafe(sys.stdout), PipeSafe(sys.stderr)
    try:
        return _main(argv, signals)
    except Interrupted as exc:  # before a command began (parsing, loading): nothing was open
        print(f"stopped by {exc}; nothing was actuated", file=sys.stderr)
        return 128 + exc.signum
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        sys.stdout, sys.stderr = old_streams
        SignalStop.restore(old_handlers)


def _main(argv: Sequence[str] | None, signals: SignalStop) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on bad usage (and 0 for --help), before anything is loaded or opened
    args.signals = signals
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except Interrupted as exc:
        done = "the sleeve was vented" if getattr(args, "rig_opened", False) else "nothing was actuated"
        print(f"stopped by {exc}; {done}", file=sys.stderr)
        return 128 + exc.signum
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"config: {len(exc.problems)} problem(s); nothing was actuated", file=sys.stderr)
        return EXIT_USAGE
    except SensorFault as exc:
        print(f"SAFETY: {exc} (SAFE-9); the sleeve was vented", file=sys.stderr)
        return EXIT_TRIP
    except HardwareError as exc:
        print(f"hardware: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as exc:
        from legsleeve.app.selftest import SelfTestFailed, SelfTestStopped

        if isinstance(exc, SelfTestFailed):
            print(f"SAFETY: {exc}; nothing else was run, the sleeve was vented", file=sys.stderr)
            return EXIT_TRIP
        if isinstance(exc, SelfTestStopped):  # by the button, or by a signal (then 128 + its number)
            print(f"STOPPED: {exc}; the sleeve was vented", file=sys.stderr)
            return 128 + signals.signum if signals.signum is not None else EXIT_STOPPED
        log.exception("internal error")
        return EXIT_INTERNAL
