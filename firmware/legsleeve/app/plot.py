"""Plot a session log: per-zone pressure with its target, valve states, pump duty, steps, and what happened (a trip,
a stop, an injected fault).

Needs matplotlib (`pip install 'legsleeve[plot]'`); nothing on the sleeve's control path imports this module.

A log holds one row per tick: an hour at 50 Hz is 180,000 rows. They are read one at a time into packed arrays of
the few columns drawn (never a dict per row: that took 537 MB for an hour), and each pressure is drawn as its
envelope, the lowest and highest reading of each of `BUCKETS` slices of the time window (wider than the figure has
pixels, so every peak stays visible). Targets are drawn from their changes, valves as the spans they were open.
"""

from __future__ import annotations

import csv
import math
import textwrap
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUCKETS = 2000  # slices of the time window a pressure is drawn in, as its low and high
MAX_STEP_LABELS = 40  # more steps than this in the window: cycles are labelled instead
WRAP_CHARS = 150  # the trip message's line length, at its font size across the figure's width
IMAGE_SUFFIXES = (".png", ".svg", ".pdf")


def require_matplotlib() -> None:
    """Fail early - before anything is actuated - when a plot was asked for and cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'legsleeve[plot]'") from exc


def image_path(path: Path | str) -> Path:
    """Where a plot asked for as `path` is written: as given when it ends in .png, .svg or .pdf, else with .png added
    (`--plot out/plan` writes `out/plan.png`, and says so)."""
    path = Path(path)
    return path if path.suffix.lower() in IMAGE_SUFFIXES else path.with_name(path.name + ".png")


@dataclass(frozen=True)
class Marker:
    """Something that happened at `t_s` (s from the session's start), drawn as a vertical line with its label."""

    t_s: float
    label: str
    kind: str = "fault"  # "fault" (an injection), "stop" or "trip"


@dataclass
class LogData:
    """The columns of a session log that a plot draws, for a time window; times in s from the log's first row."""

    path: Path
    zones: list[str]
    t_from_s: float
    t_to_s: float
    t: array = field(default_factory=lambda: array("d"))
    mmhg: dict[str, array] = field(default_factory=dict)
    duty: array = field(default_factory=lambda: array("d"))
    targets: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # changes: (t, mmHg or NaN)
    open_spans: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # "<zone>_inlet": (start, end)
    steps: list[tuple[float, str]] = field(default_factory=list)  # (t, state) at each change, in the window
    cycles: list[tuple[float, int]] = field(default_factory=list)  # (t, completed cycles) at each change
    faults: list[tuple[float, str]] = field(default_factory=list)  # (t, text) each time the fault column says anew
    stopped_s: float | None = None
    end_s: float = 0.0  # the log's last row
    rows: int = 0

    @property
    def empty(self) -> bool:
        return len(self.t) == 0

    @property
    def trip(self) -> tuple[float, str] | None:
        """The trip: the first thing the fault column said, and when."""
        return self.faults[0] if self.faults else None


def _cell(text: str) -> float:
    return float(text) if text else math.nan


def read_columns(path: Path | str, *, t_from_s: float = 0.0, t_to_s: float | None = None) -> LogData:
    """Read a session log a row at a time, keeping what a plot draws of the rows from `t_from_s` to `t_to_s`
    (s from its first row). Raises ValueError naming the file (and line) when it is not a session log."""
    path = Path(path)
    end = math.inf if t_to_s is None else t_to_s
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        head = next(reader, None)
        if head is None or head[:3] != ["t_s", "state", "pump_duty"] or "fault" not in head:
            raise ValueError(f"{path}: not a legsleeve session log (its header is not t_s,state,pump_duty,...)")
        col = {name: i for i, name in enumerate(head)}
        zones = [
            c[: -len("_mmhg")]
            for c in head
            if c.endswith("_mmhg") and not c.endswith("_target_mmhg") and c != "manifold_mmhg"
        ]
        data = LogData(path, zones, t_from_s, end)
        for z in zones:
            data.mmhg[z] = array("d")
            data.targets[z] = []
        p_cols = [(data.mmhg[z], col[f"{z}_mmhg"]) for z in zones]
        target_cols = [(data.targets[z], col[f"{z}_target_mmhg"]) for z in zones]
        valve_cols = [(f"{z}_{v}", col[f"{z}_{v}"]) for z in zones for v in ("inlet", "exhaust")]
        for name, _ in valve_cols:
            data.open_spans[name] = []
        opened: dict[str, float | None] = {name: None for name, _ in valve_cols}
        i_t, i_state, i_duty, i_cycle, i_fault = col["t_s"], col["state"], col["pump_duty"], col["cycle"], col["fault"]
        t0: float | None = None
        last_target: list[str | None] = [None] * len(zones)
        state, cycle = "", -1
        t_rel = 0.0
        for line_no, row in enumerate(reader, start=2):
            if len(row) != len(head):
                raise ValueError(f"{path}:{line_no}: {len(row)} cells where the header has {len(head)}")
            try:
                t_abs = float(row[i_t])
            except ValueError:
                raise ValueError(f"{path}:{line_no}: t_s: not a number ({row[i_t]!r})") from None
            if t0 is None:
                t0 = t_abs
            t_rel = t_abs - t0
            data.rows += 1
            for name, i in valve_cols:  # spans across the whole log, clipped to the window below
                is_open = row[i] == "1"
                if is_open and opened[name] is None:
                    opened[name] = t_rel
                elif not is_open and opened[name] is not None:
                    data.open_spans[name].append((opened[name], t_rel))  # type: ignore[arg-type]
                    opened[name] = None
            if row[i_state] != state:
                state = row[i_state]
                data.steps.append((t_rel, state))
                if state.startswith("stopped") and data.stopped_s is None:
                    data.stopped_s = t_rel
            if row[i_fault] and (not data.faults or data.faults[-1][1] != row[i_fault]):
                data.faults.append((t_rel, row[i_fault]))  # the trip, then "cannot vent" if that follows
            if row[i_cycle] and int(row[i_cycle]) != cycle:
                cycle = int(row[i_cycle])
                data.cycles.append((t_rel, cycle))
            for k, (changes, i) in enumerate(target_cols):
                if row[i] != last_target[k]:
                    last_target[k] = row[i]
                    changes.append((t_rel, _cell(row[i])))
            if t_rel < t_from_s or t_rel > end:
                continue
            data.t.append(t_rel)
            data.duty.append(_cell(row[i_duty]))
            for values, i in p_cols:
                values.append(_cell(row[i]))
        data.end_s = t_rel
    for name, start in opened.items():
        if start is not None:
            data.open_spans[name].append((start, data.end_s))
    if data.t_to_s == math.inf:
        data.t_to_s = data.end_s
    return data


def _envelope(np: Any, t: Any, y: Any, buckets: int) -> tuple[Any, Any]:
    """(t, y) drawn as each slice's low and high: every peak kept, at most 2 x `buckets` points."""
    n = len(t)
    if n <= 2 * buckets:
        return t, y
    size = math.ceil(n / buckets)
    m = n // size
    head_t = t[: m * size].reshape(m, size)
    head_y = y[: m * size].reshape(m, size)
    lo, hi = np.fmin.reduce(head_y, axis=1), np.fmax.reduce(head_y, axis=1)
    tt = np.empty(2 * m)
    yy = np.empty(2 * m)
    tt[0::2], tt[1::2] = head_t[:, 0], head_t[:, size // 2]
    yy[0::2], yy[1::2] = lo, hi
    if m * size < n:  # the last, shorter slice as it is
        tt, yy = np.concatenate([tt, t[m * size :]]), np.concatenate([yy, y[m * size :]])
    return tt, yy


def _in_window(changes: Sequence[tuple[float, Any]], t0: float, t1: float) -> list[tuple[float, Any]]:
    """The changes inside [t0, t1], with the value under way at t0 first."""
    before = [c for c in changes if c[0] <= t0]
    inside = [c for c in changes if t0 < c[0] <= t1]
    return ([(t0, before[-1][1])] if before else []) + inside


def draw_log(data: LogData, *, title: str = "", markers: Sequence[Marker] = ()) -> Any:
    """The figure of a session log (matplotlib's Figure; `plot_log` saves it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if data.empty:
        raise ValueError(
            f"{data.path}: no rows from {data.t_from_s:g} s to {data.t_to_s:.1f} s: the log runs from 0 to "
            f"{data.end_s:.1f} s after the session's start"
        )
    zones = data.zones
    t = np.frombuffer(data.t, dtype=float)
    t0, t1 = float(t[0]), float(t[-1])
    n = len(zones)
    fig, grid = plt.subplots(
        n + 1,
        1,
        sharex=True,
        figsize=(11, 1.9 * (n + 1) + 1.2),
        gridspec_kw={"height_ratios": [3] * n + [1.4]},
        squeeze=False,
    )
    axes: list[Any] = list(grid[:, 0])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    zone_color = {z: colors[i % len(colors)] for i, z in enumerate(zones)}
    events = list(markers)
    if data.stopped_s is not None and t0 <= data.stopped_s <= t1:
        events.append(Marker(data.stopped_s, "stopped", "stop"))
    for k, (t_fault, words) in enumerate(data.faults):
        if t0 <= t_fault <= t1:
            events.append(Marker(t_fault, "trip" if k == 0 else words.split(":")[0] + ": " + _gist(words), "trip"))
    style = {"fault": ("tab:purple", ":"), "stop": ("tab:blue", "-."), "trip": ("red", "-")}
    for ax, zone in zip(axes, reversed(zones), strict=False):  # thigh on top, ankle at the bottom: as worn
        p = np.frombuffer(data.mmhg[zone], dtype=float)
        te, pe = _envelope(np, t, p, BUCKETS)
        ax.plot(te, pe, color=zone_color[zone], lw=1.0)
        targets = _in_window(data.targets[zone], t0, t1)
        if targets:
            tt = [c[0] for c in targets] + [t1]
            tv = [c[1] for c in targets] + [targets[-1][1]]
            ax.plot(tt, tv, color="black", lw=0.8, ls="--", drawstyle="steps-post")
        finite = p[np.isfinite(p)]
        top = max(float(finite.max()) if finite.size else 0.0, 5.0)
        for valve, y, color in (("inlet", top * 1.06, "tab:green"), ("exhaust", -top * 0.08, "tab:gray")):
            spans = [
                (max(a, t0), min(b, t1) - max(a, t0))
                for a, b in data.open_spans[f"{zone}_{valve}"]
                if b > t0 and a < t1
            ]
            if spans:
                ax.broken_barh(spans, (y, top * 0.04), color=color)
        ax.set_ylim(-top * 0.12, top * 1.15)
        ax.set_ylabel(f"{zone}\nmmHg")
        ax.grid(alpha=0.3)
    duty = np.frombuffer(data.duty, dtype=float)
    td, dd = _envelope(np, t, duty, BUCKETS)
    axes[-1].fill_between(td, dd, step="post", color="tab:orange", alpha=0.6)
    axes[-1].set_ylim(0, 1.05)
    axes[-1].set_ylabel("pump\nduty")
    axes[-1].set_xlabel("time from the session's start (s)")
    axes[-1].grid(alpha=0.3)
    axes[-1].set_xlim(t0, t1)
    near_s = (t1 - t0) / 100.0  # markers closer than this share one label, so their words do not overprint
    for ev in events:
        color, ls = style.get(ev.kind, style["fault"])
        for ax in axes:
            ax.axvline(ev.t_s, color=color, lw=1.3, ls=ls)
    for cluster in _clusters(sorted(events, key=lambda e: e.t_s), near_s):
        color = style.get(cluster[0].kind, style["fault"])[0]
        axes[0].text(
            cluster[0].t_s,
            0.98,
            " " + " / ".join(ev.label for ev in cluster),
            transform=axes[0].get_xaxis_transform(),
            fontsize=7,
            color=color,
            rotation=90,
            va="top",
        )
    _label_steps(axes[0], data, t0, t1)
    # The legend below the plots, the title and any trip message above them, wrapped: they never meet.
    handles: list[Any] = [Line2D([], [], color=zone_color[z], lw=1.5, label=z) for z in zones]
    handles += [
        Line2D([], [], color="black", lw=0.8, ls="--", label="target"),
        Patch(color="tab:green", label="inlet open"),
        Patch(color="tab:gray", label="exhaust open"),
        Patch(color="tab:orange", alpha=0.6, label="pump duty"),
    ]
    handles += [
        Line2D([], [], color=style[k][0], ls=style[k][1], label=k)
        for k in ("fault", "stop", "trip")
        if any(ev.kind == k for ev in events)
    ]
    legend = fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 8),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 0),
    )
    fig_h = fig.get_figheight()
    line_h = 9 * 1.3 / 72 / fig_h  # one line of the header's 9-point text, as a fraction of the figure's height
    y = 1.0 - 0.06 / fig_h
    if title:
        fig.text(0.01, y, title, ha="left", va="top", fontsize=9)
        y -= line_h
    if data.trip is not None:
        trip = textwrap.wrap(f"TRIP at {data.trip[0]:.1f} s: {data.trip[1]}", WRAP_CHARS)
        fig.text(0.01, y, "\n".join(trip), ha="left", va="top", fontsize=9, color="red")
        y -= line_h * len(trip)
    fig.tight_layout(rect=(0, legend.get_window_extent().height / fig.dpi / fig_h + 0.1 / fig_h, 1, y - 0.05 / fig_h))
    return fig


def _gist(words: str, most: int = 40) -> str:
    """The start of a fault's message after its rule, for a marker's label."""
    rest = words.split(":", 1)[-1].strip()
    return rest if len(rest) <= most else rest[: most - 1] + "…"


def _clusters(events: list[Marker], near_s: float) -> list[list[Marker]]:
    out: list[list[Marker]] = []
    for ev in events:
        if out and ev.t_s - out[-1][-1].t_s <= near_s:
            out[-1].append(ev)
        else:
            out.append([ev])
    return out


def _label_steps(ax: Any, data: LogData, t0: float, t1: float) -> None:
    """The steps in the window, named along the top (or, when there are too many, the cycles)."""
    steps = [(t, s) for t, s in _in_window(data.steps, t0, t1) if s != "tripped" and not s.startswith("stopped")]
    if len(steps) <= MAX_STEP_LABELS:
        labels = steps
    else:
        labels = [(t, f"cycle {c + 1}") for t, c in data.cycles if t0 <= t <= t1]
        if len(labels) > MAX_STEP_LABELS:
            return
    for t, text in labels:
        ax.axvline(t, color="black", lw=0.4, alpha=0.25)
        ax.text(t, 0.98, f" {text}", transform=ax.get_xaxis_transform(), fontsize=6, va="top", rotation=90, alpha=0.7)


def plot_log(
    log_path: Path | str,
    png_path: Path | str,
    *,
    title: str = "",
    markers: Sequence[Marker] = (),
    t_from_s: float = 0.0,
    t_to_s: float | None = None,
) -> Path:
    """Draw the session log at `log_path` (the rows from `t_from_s` to `t_to_s`, s from its first row) into an image;
    returns where it was written (see `image_path`)."""
    import matplotlib.pyplot as plt

    data = read_columns(log_path, t_from_s=t_from_s, t_to_s=t_to_s)
    fig = draw_log(data, title=title, markers=markers)
    out = image_path(png_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot_calibration(result, png_path: Path) -> Path:
    """The characterisation as recorded (each zone, and the manifold where there is a sensor) with the twin's replay
    of it over it: how well the twin describes this sleeve, at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rec = result.recording
    cal = result.calibration
    names = rec.zone_names
    t0 = rec.t_apply_s[0]
    fig, axes = plt.subplots(len(names), 1, sharex=True, figsize=(11, 1.9 * len(names)))
    for i, (ax, name) in enumerate(zip(axes, names, strict=False)):
        t = [ts[i] - t0 for ts in rec.zone_t_s]
        ax.plot(t, [p[i] for p in rec.zone_mmhg], lw=1.0, label=f"{name}: measured")
        ax.plot(t, [p[i] for p in result.replay_mmhg], lw=1.0, ls="--", color="black", label="twin")
        ax.set_ylabel("mmHg")
        ax.legend(loc="upper right", fontsize=8, title=f"RMS {cal.twin_rms_mmhg.get(name, float('nan')):.2f} mmHg")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("s")
    fig.suptitle(f"legsleeve calibrate {cal.date}: the recording and the twin's replay")
    fig.tight_layout()
    out = image_path(png_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
