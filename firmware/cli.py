"""The `legsleeve` command line: parse arguments, open the rig, hand over, and turn outcomes into exit codes.

Exit codes: 0 success, 2 bad usage or config (nothing actuated), 3 safety trip or sensor fault, 1 internal error.
Whatever happens after a rig is open - an exception, SIGINT, SIGTERM - the rig is driven to the safe state before
anything is reported (SAFE-1).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Iterator, Sequence

from legsleeve import __version__
from legsleeve.config import HardwareConfig, default_config_dir, load_hardware
from legsleeve.errors import ConfigError, HardwareError, SensorFault

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_TRIP = 0, 1, 2, 3

log = logging.getLogger("legsleeve")


class Interrupted(BaseException):
    """A signal asked us to stop. BaseException, so no `except Exception` on the way swallows it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def _on_signal(signum, frame) -> None:  # noqa: ARG001
    raise Interrupted(signum)


# -- shared plumbing ---------------------------------------------------------------------------------------------


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, metavar="DIR",
                   help="config directory holding hardware.yaml and profiles/ (default: $LEGSLEEVE_CONFIG, "
                        "./config, then /etc/legsleeve)")


def _add_sim(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sim", action="store_true", help="act on the simulated rig instead of the sleeve's hardware")
    p.add_argument("--seed", type=int, default=0, help="random seed of the simulated rig (sensor noise, offsets)")


def _config(args) -> HardwareConfig:
    cfg = load_hardware(args.config or default_config_dir())
    for warning in cfg.warnings:
        log.warning("%s", warning)
    return cfg


@contextlib.contextmanager
def open_rig(cfg: HardwareConfig, args, *, faults=(), with_sensors: bool = True) -> Iterator:
    """Open the sleeve or the simulated rig; on the way out, whatever the reason, drive it safe and release it."""
    from legsleeve import backends

    rig = (backends.open_sim(cfg, seed=args.seed, faults=faults, with_sensors=with_sensors) if args.sim
           else backends.open_pi(cfg, with_sensors=with_sensors))
    try:
        yield rig
    finally:
        rig.close()


# -- commands ----------------------------------------------------------------------------------------------------


def cmd_check_config(args) -> int:
    cfg = _config(args)
    print(f"{cfg.path}: OK - {len(cfg.zones)} zones ({', '.join(cfg.zone_names)}), "
          f"max {cfg.limits.max_mmhg:g} mmHg, tick {cfg.tick_hz:g} Hz"
          + (f", {len(cfg.warnings)} warning(s)" if cfg.warnings else ""))
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


def cmd_sensors(args) -> int:
    cfg = _config(args)
    with open_rig(cfg, args) as rig:
        baselines = rig.zero_sensors()
        print("zero (vented, absolute hPa): " + "  ".join(f"{n} {hpa:.2f}" for n, hpa in baselines.items()))
        names = [s.name for s in rig.sensors.all]
        print("t_s     " + "".join(f"{n:>10}" for n in names) + "   (gauge mmHg)")
        for _ in range(args.samples):
            r = rig.read()
            cells = [*r.zones, *([r.manifold] if r.manifold else [])]
            print(f"{r.t_s:6.2f}  " + "".join(f"{c.mmhg:10.2f}" if c.ok else f"{'FAULT':>10}" for c in cells))
            for name, c in zip(names, cells):
                if not c.ok:
                    print(f"        {name}: {c.fault}", file=sys.stderr)
            rig.clock.sleep(args.interval_s)
    return EXIT_OK


# -- entry point -------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="legsleeve",
        description="Firmware for a do-it-yourself sequential air-compression leg sleeve. Not a medical device.",
        epilog="Exit codes: 0 success, 1 internal error, 2 bad usage or config, 3 safety trip.",
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
    p.add_argument("--samples", type=int, default=10, help="how many readings to print (default 10)")
    p.add_argument("--interval-s", type=float, default=0.2, help="seconds between readings (default 0.2)")
    p.set_defaults(func=cmd_sensors)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on bad usage, before anything is opened
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return args.func(args)
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
    except Interrupted as exc:
        print(f"stopped by {exc}; the sleeve was vented", file=sys.stderr)
        return 128 + exc.signum
    except Exception:  # noqa: BLE001 - the rig is already safe (open_rig's finally); say what broke
        log.exception("internal error")
        return EXIT_INTERNAL
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
