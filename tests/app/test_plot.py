"""Plots of session logs: a swatch of its own colour for every zone, a trip message wrapped clear of the legend, a
path without a suffix written as .png and said so, the steps and what happened marked, and an hour's log drawn in
well under 150 MB (it took 537 MB)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from legsleeve.app.cli import main
from legsleeve.app.sessionlog import header
from tests.helpers import CONFIG_DIR, ROOT

pytest.importorskip("matplotlib")

from legsleeve.app.plot import Marker, draw_log, image_path, plot_log, read_columns

ZONES = ("ankle", "calf", "knee", "thigh")
LONG_TRIP = (
    "SAFE-8 calf: cannot vent calf: it stays at 43.2 mmHg with its exhaust open, 15.0 s after the vent began, and "
    "every other zone has emptied; the exhaust valve is stuck closed or its outlet is blocked, or an inlet stuck "
    "open feeds it from the manifold - release the sleeve by hand first"
)


def write_log(path, seconds: float, *, tick_s: float = 0.02, trip_at_s: float | None = None, fault: str = LONG_TRIP):
    """A synthetic session log in the sleeve's format: 60 s cycles, each zone filled in turn to its target, held,
    then everything vented; a trip (and from then on the safe state) at `trip_at_s`."""
    targets = (45.0, 40.0, 35.0, 30.0)
    with open(path, "w", encoding="utf-8") as f:
        f.write(",".join(header(ZONES, True)) + "\n")
        n = int(seconds / tick_s)
        for k in range(n):
            t = k * tick_s
            c, tc = divmod(t, 60.0)
            tripped = trip_at_s is not None and t >= trip_at_s
            cells = []
            filling = min(int(tc // 8), 4) if tc < 32 else None
            for i, target in enumerate(targets):
                started = i * 8.0
                if tripped or tc < started or tc >= 45.0:
                    p = target * math.exp(-max(tc - 45.0, 0.0)) if tc >= 45.0 and not tripped else 0.3
                    action = "0,1,"
                else:
                    p = min(target, (tc - started) * 7.0)
                    action = ("1,0," if filling == i else "0,0,") + f"{target:.2f}"
                cells.append(f"{p:.2f},{action}")
            step = f"fill {ZONES[filling]}" if filling is not None and filling < 4 else "hold 13s"
            state = "tripped" if tripped else step
            duty = "0.000" if tripped or filling is None or filling > 3 else "1.000"
            fault_cell = f'"{fault}"' if tripped else ""
            f.write(f"{100.0 + t:.3f},{state},{duty}," + ",".join(cells) + f",40.00,{int(c)},{fault_cell}\n")
    return path


@pytest.fixture
def tripped_log(tmp_path):
    return write_log(tmp_path / "trip.csv", 200.0, trip_at_s=130.0)


def test_every_zone_has_a_swatch_of_its_own_colour_in_the_legend(tripped_log):
    """The legend showed one swatch colour for every zone (the top plot's)."""
    fig = draw_log(read_columns(tripped_log), title="t")
    (legend,) = fig.legends
    by_label = {t.get_text(): h for t, h in zip(legend.get_texts(), legend.legend_handles, strict=True)}
    swatches = {z: by_label[z].get_color() for z in ZONES}
    assert len(set(swatches.values())) == len(ZONES)
    for ax in fig.axes[: len(ZONES)]:  # thigh on top: each plot's pressure line in its zone's colour
        zone = ax.get_ylabel().split("\n")[0]
        assert ax.get_lines()[0].get_color() == swatches[zone]


def test_a_long_trip_message_is_wrapped_clear_of_the_legend_and_inside_the_figure(tripped_log):
    """A long trip message ran under the legend and off the figure."""
    fig = draw_log(read_columns(tripped_log), title="legsleeve simulate: gradient")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    trip = next(t for t in fig.texts if t.get_text().startswith("TRIP at 130.0 s"))
    assert trip.get_text().count("\n") >= 1  # wrapped
    assert "release the sleeve by hand first" in trip.get_text().replace("\n", " ")
    box, leg = trip.get_window_extent(renderer), legend.get_window_extent(renderer)
    width, height = fig.bbox.width, fig.bbox.height
    assert 0 <= box.x0 and box.x1 <= width and 0 <= box.y0 and box.y1 <= height
    assert not box.overlaps(leg)
    for ax in fig.axes:  # and neither runs into the plots
        assert not box.overlaps(ax.get_window_extent(renderer)) and not leg.overlaps(ax.get_window_extent(renderer))


def test_markers_steps_and_the_trip_are_drawn(tripped_log):
    fig = draw_log(read_columns(tripped_log, t_to_s=150.0), markers=[Marker(70.0, "leak:calf@70")])
    top = fig.axes[0]
    words = [t.get_text() for t in top.texts]
    assert " leak:calf@70" in words and " trip" in words
    assert " fill ankle" in words and " hold 13s" in words  # the steps of the window, named
    assert any(line.get_xdata()[0] == 70.0 for line in top.get_lines())


def test_a_window_draws_only_its_rows_and_the_state_at_its_start(tripped_log):
    data = read_columns(tripped_log, t_from_s=70.0, t_to_s=100.0)
    assert data.t[0] == pytest.approx(70.0) and data.t[-1] == pytest.approx(100.0)
    assert data.trip == pytest.approx((130.0, LONG_TRIP))  # the whole log's, for the title
    fig = draw_log(data)
    assert fig.axes[-1].get_xlim() == pytest.approx((70.0, 100.0))


def test_a_plot_path_without_a_suffix_gets_png_and_says_so(tmp_path, tripped_log, capsys):
    """`--plot out/plan` wrote out/plan.png but printed out/plan."""
    assert image_path(tmp_path / "plan") == tmp_path / "plan.png"
    assert image_path(tmp_path / "plan.v2") == tmp_path / "plan.v2.png"
    assert image_path(tmp_path / "plan.svg") == tmp_path / "plan.svg"
    written = plot_log(tripped_log, tmp_path / "out" / "plan")
    assert written == tmp_path / "out" / "plan.png" and written.read_bytes()[:4] == b"\x89PNG"
    code = main(["profile", "show", "wave", "--config", str(CONFIG_DIR), "--plot", str(tmp_path / "wave")])
    out = capsys.readouterr().out
    assert code == 0 and f"plot: {tmp_path / 'wave.png'}\n" in out and (tmp_path / "wave.png").exists()


def test_the_envelope_keeps_every_peak():
    import numpy as np

    from legsleeve.app.plot import _envelope

    t = np.arange(180_000) * 0.02
    y = np.zeros_like(t)
    y[123_457] = 88.0  # one tick's spike in an hour
    y[99_999] = -3.0
    te, ye = _envelope(np, t, y, 2000)
    assert len(te) <= 4002 and ye.max() == 88.0 and ye.min() == -3.0
    assert np.all(np.diff(te) >= 0)


PEAK_RSS = """
import re, sys
from legsleeve.app.plot import plot_log
plot_log(sys.argv[1], sys.argv[2], title="an hour")
with open("/proc/self/status") as f:  # this program's own peak (a child's rusage counts its parent's before exec)
    print(re.search(r"VmHWM:\\s+(\\d+) kB", f.read()).group(1))
"""


def peak_rss_mb(script: str, *argv) -> float:
    """Run `script` in a fresh interpreter; its peak resident memory, as it reads it at its end (MB)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'firmware'}:{ROOT}"}
    proc = subprocess.run([sys.executable, "-c", script, *map(str, argv)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split()[-1]) / 1024


def test_an_hours_log_is_drawn_in_under_150_mb(tmp_path):
    """A 60-minute `--plot` peaked at 553 MB of resident memory (537 MB for the plot alone): a dict per row."""
    log = write_log(tmp_path / "hour.csv", 3600.0)
    png = tmp_path / "hour.png"
    peak_mb = peak_rss_mb(PEAK_RSS, log, png)
    assert png.stat().st_size > 10_000
    assert peak_mb < 150, f"{peak_mb:.0f} MB"


# -- legsleeve plot LOG.csv ------------------------------------------------------------------------------------------


def test_plot_draws_a_log_beside_itself_or_where_asked(tripped_log, tmp_path, capsys):
    code = main(["plot", str(tripped_log)])
    out = capsys.readouterr().out
    assert code == 0 and out == f"plot: {tmp_path / 'trip.png'}\n" and (tmp_path / "trip.png").stat().st_size > 10_000
    code = main(["plot", str(tripped_log), "--from", "1:00", "--to", "150", "--out", str(tmp_path / "w" / "x")])
    assert code == 0 and capsys.readouterr().out == f"plot: {tmp_path / 'w' / 'x.png'}\n"


@pytest.mark.parametrize(
    "argv, words",
    [
        (["nope.csv"], "nope.csv: no such session log"),
        ([str(CONFIG_DIR / "hardware.yaml")], "hardware.yaml: not a legsleeve session log"),
        (["LOG", "--from", "500"], "no rows from 500 s to 200.0 s: the log runs from 0 to 200.0 s"),
        (["LOG", "--from", "20", "--to", "10"], "--to 10: must come after --from 20"),
    ],
)
def test_plot_refuses_what_it_cannot_draw_with_exit_2(tripped_log, capsys, argv, words):
    argv = [str(tripped_log) if a == "LOG" else a for a in argv]
    code = main(["plot", *argv])
    err = capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err


def test_plot_refuses_a_time_that_is_not_one(tripped_log, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["plot", str(tripped_log), "--from", "1:xx"])
    assert exit_.value.code == 2 and "a time in seconds or M:SS" in capsys.readouterr().err


def test_the_step_under_way_at_the_windows_start_is_named(tripped_log):
    fig = draw_log(read_columns(tripped_log, t_from_s=10.0, t_to_s=20.0))
    assert " fill calf" in [t.get_text() for t in fig.axes[0].texts]  # began at 8 s, before the window


def test_a_cannot_vent_after_the_trip_is_marked_too(tmp_path):
    log = write_log(tmp_path / "two.csv", 200.0, trip_at_s=130.0, fault="SAFE-7 calf: lost 18 mmHg while held")
    text = log.read_text().splitlines()
    changed = [
        line.replace('"SAFE-7 calf: lost 18 mmHg while held"', '"SAFE-8 calf: cannot vent calf: stays at 30 mmHg"')
        if float(line.split(",")[0]) >= 250.0
        else line
        for line in text[1:]
    ]
    log.write_text("\n".join([text[0], *changed]) + "\n")
    data = read_columns(log)
    assert [round(t) for t, _ in data.faults] == [130, 150] and data.trip[1].startswith("SAFE-7")
    words = [t.get_text() for t in draw_log(data).axes[0].texts]
    assert " trip" in words and " SAFE-8 calf: cannot vent calf: stays at 30 mmHg" in words


PEAK_RSS_CLI = """
import re, sys
from legsleeve.app.cli import main
code = main(["plot", sys.argv[1], "--out", sys.argv[2]])
with open("/proc/self/status") as f:
    print(code, re.search(r"VmHWM:\\s+(\\d+) kB", f.read()).group(1))
"""


def test_legsleeve_plot_draws_an_hours_log_in_under_150_mb(tmp_path, capsys):
    log = write_log(tmp_path / "hour.csv", 3600.0, trip_at_s=3500.0)
    png = tmp_path / "hour.png"
    peak_mb = peak_rss_mb(PEAK_RSS_CLI, log, png)
    assert png.stat().st_size > 10_000
    assert peak_mb < 150, f"{peak_mb:.0f} MB"
    with capsys.disabled():
        print(f"\nlegsleeve plot, a 60-minute log (180,000 rows): peak RSS {peak_mb:.0f} MB")
