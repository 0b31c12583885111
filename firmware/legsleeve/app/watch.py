"""`legsleeve watch`: the running service, live, in a terminal - each zone's pressure as a bar with its target, the
step, the cycle, the time left, the pump and any alarm with what to check - from the control protocol's subscription
(docs/control-protocol.md). It only reads: nothing it does can reach the sleeve's loop but its one subscription.

On a terminal the view is redrawn in place a few times a second; piped, it prints one line per frame. When the
service goes quiet or away it says so and waits for it to come back; Ctrl-C ends it (exit 0).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any, TextIO

from legsleeve.app.snapshot import mmss
from legsleeve.app.snapshot import text as status_text

HOME_CLEAR = "\x1b[H\x1b[2J"
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
RED, BOLD, DIM, RESET = "\x1b[31m", "\x1b[1m", "\x1b[2m", "\x1b[0m"
EIGHTHS = " ▏▎▍▌▋▊▉"  # a bar's last cell, in eighths
QUIET_S = 0.5  # how long the view waits for a frame before it looks at Ctrl-C and the clock again
SILENT_S = 3.0  # no frame for this long: the view says the service is silent
RETRY_S = 1.0  # the service gone: ask again this often


def bar(mmhg: float | None, target: float | None, top_mmhg: float, width: int, *, unicode: bool = True) -> str:
    """`mmhg` as a bar `width` cells wide for 0..`top_mmhg`, with `|` where the target is."""
    cells = [" "] * width
    if mmhg is not None and mmhg > 0:
        eighths = min(int(round(mmhg / top_mmhg * width * 8)), width * 8)
        full, part = divmod(eighths, 8)
        for i in range(full):
            cells[i] = "█" if unicode else "#"
        if part and full < width:
            cells[full] = EIGHTHS[part] if unicode else "#"
    if target is not None and target > 0:
        i = min(int(target / top_mmhg * width), width - 1)
        cells[i] = "|"
    return "".join(cells)


def render(status: dict[str, Any], *, top_mmhg: float, width: int, color: bool, unicode: bool) -> list[str]:
    """The view of one status (as the protocol's `status` gives it), in lines no wider than `width`."""
    c = (lambda code, s: f"{code}{s}{RESET}") if color else (lambda code, s: s)
    state = status["state"]
    head = f"legsleeve: {state}"
    if status["profile"]:
        head += f" {status['profile']}"
        if status["intensity_pct"] not in (None, 100):
            head += f" at {status['intensity_pct']:g} %"
    when = []
    if status["cycle"] is not None:
        when.append(f"cycle {status['cycle']}" + (f"/{status['cycles']}" if status["cycles"] else ""))
    if status["elapsed_s"] is not None:
        when.append(f"{mmss(status['elapsed_s'])} elapsed")
    if status["remaining_s"] is not None:
        when.append(f"about {mmss(status['remaining_s'])} left")
    lines = [c(BOLD, head) + ("   " + "   ".join(when) if when else "")]
    lines.append(f"step: {status['step']}" if status["step"] else f"selected for the button: {status['selected']}")
    lines.append("")
    names = max([4, *(len(z["name"]) for z in status["zones"])])
    bar_w = max(width - names - 22, 10)
    for z in status["zones"]:
        mmhg = f"{z['mmhg']:5.1f}" if z["mmhg"] is not None else "    -"
        target = f"/{z['target_mmhg']:<4.0f}" if z["target_mmhg"] is not None else "     "
        lines.append(
            f"{z['name']:<{names}} {mmhg}{target} {z['valve']:<4} "
            + bar(z["mmhg"], z["target_mmhg"], top_mmhg, bar_w, unicode=unicode)
        )
    pump = status["pump_duty"]
    manifold = f"   manifold {status['manifold_mmhg']:.1f} mmHg" if status["manifold_mmhg"] is not None else ""
    lines.append(f"{'pump':<{names}} {pump * 100:5.0f} %" + manifold)
    if all(z["mmhg"] is None for z in status["zones"]):
        lines.append(c(DIM, "(pressures are measured while a session runs)"))
    alarm = status["alarm"]
    lines.append("")
    if alarm is not None:
        where = " ".join(x for x in (alarm["rule"], alarm["zone"]) if x)
        lines.append(c(RED + BOLD, f"ALARM ({alarm['priority']}) {where}: {alarm['message']}".replace(": :", ":")))
        if alarm["hint"]:
            lines.append(c(RED, f"  check: {alarm['hint']}"))
        lines.append("  " + ("buzzer silenced; " if alarm["silenced"] else "") + "legsleeve reset once checked")
    else:
        lines.append(f"last: {status['last']}")
    return [_clip(line, width) for line in lines]


def _clip(line: str, width: int) -> str:
    """At most `width` visible characters (escape sequences do not count)."""
    visible, out, i = 0, [], 0
    while i < len(line):
        if line[i] == "\x1b":
            j = line.find("m", i)
            out.append(line[i : j + 1])
            i = j + 1
            continue
        if visible >= width:
            break
        out.append(line[i])
        visible += 1
        i += 1
    return "".join(out) + (RESET if "\x1b[" in line else "")


def watch(
    path: str,
    out: TextIO,
    *,
    hz: float = 4.0,
    stop: Callable[[], bool],
    gone: Callable[[], bool] = lambda: False,
    wall: Callable[[], float] = time.monotonic,
) -> int:
    """Show the service at `path` on `out` until `stop()` (Ctrl-C) or `gone()` (the reader went away); returns the
    frames shown. Waits for a service that is not there yet or went away, saying so."""
    from legsleeve.app.control import Subscription, request

    tty = out.isatty()
    unicode = (getattr(out, "encoding", "") or "").lower().replace("-", "") in ("utf8", "utf")
    top_mmhg = 150.0
    shown = 0
    said = ""
    if tty:
        out.write(HIDE_CURSOR)
    try:
        while not stop() and not gone():
            try:
                top_mmhg = float(request("hello", path, timeout_s=2.0).get("max_mmhg", top_mmhg))
                sub = Subscription(path, hz=hz, timeout_s=2.0)
            except OSError as exc:
                said = _say(out, tty, f"legsleeve watch: no service at {path} ({exc}); waiting for it", said)
                _wait(RETRY_S, stop, wall)
                continue
            if not sub.ack.get("ok"):
                said = _say(out, tty, f"legsleeve watch: {sub.ack.get('text')}; asking again", said)
                _wait(RETRY_S, stop, wall)
                continue
            last = wall()
            with sub:
                try:
                    for frame in sub.frames(quiet_s=QUIET_S):
                        if stop() or gone():
                            break
                        if frame is None:
                            if wall() - last > SILENT_S:
                                said = _say(out, tty, f"legsleeve watch: no news for {wall() - last:.0f} s", said)
                            continue
                        last = wall()
                        said = ""
                        _show(out, tty, frame["status"], top_mmhg, unicode)
                        shown += 1
                except OSError:
                    pass
            if not stop() and not gone():
                said = _say(out, tty, "legsleeve watch: the service closed the connection; waiting for it", said)
                _wait(RETRY_S, stop, wall)
    finally:
        if tty:
            out.write(SHOW_CURSOR + "\n")
        out.flush()
    return shown


def _show(out: TextIO, tty: bool, status: dict[str, Any], top_mmhg: float, unicode: bool) -> None:
    if tty:
        size = shutil.get_terminal_size((80, 24))
        lines = render(status, top_mmhg=top_mmhg, width=size.columns, color=True, unicode=unicode)
        out.write(HOME_CLEAR + "\n".join(lines[: size.lines - 1]))
    else:
        out.write(status_text(status) + "\n")
    out.flush()


def _say(out: TextIO, tty: bool, words: str, said: str) -> str:
    """A word about the connection, unless it is what was said last."""
    if words != said:
        out.write((HOME_CLEAR if tty else "") + words + "\n")
        out.flush()
    return words


def _wait(seconds: float, stop: Callable[[], bool], wall: Callable[[], float]) -> None:
    end = wall() + seconds
    while not stop() and wall() < end:
        time.sleep(min(0.1, max(end - wall(), 0.0)))
