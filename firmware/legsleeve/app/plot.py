"""Plot a session log: per-zone pressure with its target, pump duty, valve states, and the trip if there was one.

Needs matplotlib (`pip install 'legsleeve[plot]'`); nothing on the sleeve's control path imports this module.
"""

from __future__ import annotations

from pathlib import Path

from legsleeve.app.sessionlog import read_log


def require_matplotlib() -> None:
    """Fail early - before anything is actuated - when a plot was asked for and cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'legsleeve[plot]'") from exc


def _f(cell: str) -> float:
    return float(cell) if cell not in ("", None) else float("nan")


def plot_log(log_path: Path, png_path: Path, *, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(log_path)
    if not rows:
        raise ValueError(f"{log_path}: no rows to plot")
    zones = [
        c[: -len("_mmhg")]
        for c in rows[0]
        if c.endswith("_mmhg") and not c.endswith("_target_mmhg") and c != "manifold_mmhg"
    ]
    t = [_f(r["t_s"]) for r in rows]
    t0 = t[0]
    t = [x - t0 for x in t]
    fig, axes = plt.subplots(
        len(zones) + 1,
        1,
        sharex=True,
        figsize=(11, 1.9 * (len(zones) + 1)),
        gridspec_kw={"height_ratios": [3] * len(zones) + [1.4]},
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    trip_t = next((x for x, r in zip(t, rows, strict=False) if r["fault"]), None)
    for ax, zone, color in zip(
        axes, reversed(zones), colors, strict=False
    ):  # thigh on top, ankle at the bottom: as worn
        p = [_f(r[f"{zone}_mmhg"]) for r in rows]
        target = [_f(r[f"{zone}_target_mmhg"]) for r in rows]
        ax.plot(t, p, color=color, lw=1.2, label=f"{zone} mmHg")
        ax.plot(t, target, color="black", lw=0.8, ls="--", label="target")
        top = max([v for v in p if v == v] + [5.0])
        inlet = [top * 1.08 if r[f"{zone}_inlet"] == "1" else float("nan") for r in rows]
        exhaust = [-top * 0.06 if r[f"{zone}_exhaust"] == "1" else float("nan") for r in rows]
        ax.plot(t, inlet, color="tab:green", lw=3, solid_capstyle="butt", label="inlet open")
        ax.plot(t, exhaust, color="tab:gray", lw=3, solid_capstyle="butt", label="exhaust open")
        ax.set_ylabel(f"{zone}\nmmHg")
        ax.grid(alpha=0.3)
        if trip_t is not None:
            ax.axvline(trip_t, color="red", lw=1.5)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, ["zone mmHg", *labels[1:]], loc="upper right", fontsize=8, ncol=4, frameon=False)
    duty = [_f(r["pump_duty"]) for r in rows]
    axes[-1].fill_between(t, duty, step="post", color="tab:orange", alpha=0.6)
    axes[-1].set_ylim(0, 1.05)
    axes[-1].set_ylabel("pump\nduty")
    axes[-1].set_xlabel("time (s)")
    axes[-1].grid(alpha=0.3)
    if trip_t is not None:
        axes[-1].axvline(trip_t, color="red", lw=1.5)
        fault = next(r["fault"] for r in rows if r["fault"])
        fig.suptitle(f"{title}  TRIP at {trip_t:.1f} s: {fault}", color="red", fontsize=9, x=0.01, ha="left")
    elif title:
        fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
    return png_path


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
    png_path = Path(png_path)
    if png_path.suffix.lower() != ".png":
        png_path = png_path.with_suffix(png_path.suffix + ".png") if png_path.suffix else png_path.with_suffix(".png")
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
    return png_path
