"""The venous refill of a limb, measured on its own sleeve: when may it be compressed again?

Standard library only; the controller feeds it and asks it. After a compression empties the leg's veins, arterial
inflow refills them over tens of seconds (Kendall reports 20-60 s; air plethysmography calls the time to 90 % of
the venous volume VFT90). A sleeve held closed at a low pressure sees the limb swell as they refill: its pressure
rises a few mmHg, quickly at first, then levels off. Kendall's SCD 700 ("Vascular Refill Detection") measures that
rise per leg and compresses again once it has levelled off.

Method: the mean pressure of the limb's held zones, averaged into BIN_S bins from SETTLE_S after the hold began,
is fitted to a refill curve from the release, y(t) = c + A·(1 − exp(−t/τ)) + b·t, by least squares over τ (c, A
and the sleeve's own slow loss b <= 0 solved exactly for each). The limb has refilled at T90 = τ·ln 10 after its
release, the time it takes to reach 90 % of its plateau. The rest ends there once the estimate is trusted: the
rise stands clear of the fit's own scatter, τ is not at the end of the grid, and T90 has held within STABLE of
itself over the last refits. Bounds: never before `min_s`, always by `max_s` (then the refill is "not detected"
unless trusted).

Limits, stated in docs/refill.md: the rise is small (a couple of mmHg), so a leak in the held sleeve, the leg
moving, or the air in the bladder warming against the skin after the vent (Morris 2002) all add to or take from it;
the fit skips the first SETTLE_S of the hold and assumes a single exponential.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LN10 = math.log(10.0)
BIN_S = 1.0  # readings averaged into bins this long (a minute is 60 points to fit)
SETTLE_S = 2.0  # the first seconds of the hold are left out: the valves just closed, the air is still settling
REFIT_S = 1.0  # the curve is fitted again this often
MIN_SPAN_S = 4.0  # no verdict from less data than this
STABLE = 0.1  # T90 trusted once its last STABLE_FITS estimates agree within this fraction
STABLE_FITS = 4
MIN_RISE_MMHG = 0.3  # a rise smaller than this is not a refill (an MPRLS resolves ~0.08 mmHg)
RISE_SIGMAS = 6.0  # ...nor one within this many times the fit's scatter
TAU_GRID_S = tuple(1.25**k for k in range(26))  # 1 s to ~260 s, refined between neighbours
GOLDEN_STEPS = 12  # the golden section narrows the 1.25^2 bracket to under 0.1 %


@dataclass(frozen=True)
class RefillFit:
    """The refill curve as last fitted: time constant τ, rise A (mmHg), scatter about the fit (mmHg)."""

    tau_s: float
    rise_mmhg: float
    scatter_mmhg: float

    @property
    def refill_s(self) -> float:
        """T90: from the release to 90 % of the plateau."""
        return self.tau_s * LN10

    @property
    def trusted(self) -> bool:
        return (
            self.rise_mmhg >= max(MIN_RISE_MMHG, RISE_SIGMAS * self.scatter_mmhg)
            and TAU_GRID_S[0] < self.tau_s < TAU_GRID_S[-1]
        )


class RefillMeasure:
    """One limb's refill since its release at `release_s`: fed the held sleeve's mean pressure each tick."""

    def __init__(self, release_s: float, *, min_s: float, max_s: float):
        self.release_s = release_s
        self.min_s = min_s
        self.max_s = max_s
        self._hold_s: float | None = None  # when the sleeve was first held closed
        self._bins: list[tuple[float, float]] = []  # (mid-time since release, mean mmHg)
        self._bin: list[float] = []
        self._bin_start = math.nan
        self._next_fit_s = math.nan
        self.fit: RefillFit | None = None
        self._t90s: list[float] = []
        self.ended_s: float | None = None
        self.detected = False  # ended on a trusted T90, not on the bound

    def add(self, t_s: float, mmhg: float) -> None:
        """One reading of the held sleeve (the mean of its zones), at `t_s`."""
        if self._hold_s is None:
            self._hold_s = t_s
        if t_s < self._hold_s + SETTLE_S or not math.isfinite(mmhg):
            return
        if not self._bin:
            self._bin_start = t_s
        self._bin.append(mmhg)
        if t_s - self._bin_start >= BIN_S:
            mid = 0.5 * (self._bin_start + t_s) - self.release_s
            self._bins.append((mid, math.fsum(self._bin) / len(self._bin)))
            self._bin = []
            if not t_s < self._next_fit_s:
                self._next_fit_s = t_s + REFIT_S
                self._refit()

    def interrupt(self) -> None:
        """The hold was broken (a zone left it): what was seen so far stands, nothing more is added."""
        self._hold_s = math.inf

    def done(self, now_s: float) -> bool:
        """Whether the limb may be compressed again: refilled (trusted T90 reached), or at the upper bound."""
        if self.ended_s is not None:
            return True
        since = now_s - self.release_s
        if since < self.min_s:
            return False
        if since >= self.max_s:
            self.ended_s = now_s
            self.detected = self._stable() and self.fit is not None and since >= self.fit.refill_s
            return True
        if self._stable() and self.fit is not None and since >= self.fit.refill_s:
            self.ended_s = now_s
            self.detected = True
            return True
        return False

    @property
    def refill_s(self) -> float | None:
        """The measured refill time (T90 from the release), when trusted."""
        return self.fit.refill_s if self.fit is not None and self._stable() else None

    def _stable(self) -> bool:
        t = self._t90s[-STABLE_FITS:]
        fit = self.fit
        return (
            fit is not None
            and fit.trusted
            and len(t) == STABLE_FITS
            and max(t) <= (1.0 + STABLE) * min(t)
            and self._bins[-1][0] - self._bins[0][0] >= MIN_SPAN_S
        )

    def _refit(self) -> None:
        bins = self._bins
        if len(bins) < 4:
            return
        fit = fit_refill(bins)
        self.fit = fit
        if fit is not None and fit.trusted:
            self._t90s.append(fit.refill_s)
        else:
            self._t90s.clear()


def fit_refill(points: list[tuple[float, float]]) -> RefillFit | None:
    """Least squares of y = c + A·(1 − exp(−t/τ)) + b·t (b <= 0): the best τ of a coarse grid, then a golden-section
    search in log τ between its neighbours (the squared error is smooth there); None when the points cannot tell.
    About 40 fits of c, A and b, each a pass over the points: about 2 ms here once a second."""
    ts = [t for t, _ in points]
    ys = [y for _, y in points]
    n = len(points)
    my = math.fsum(ys) / n
    syy = math.fsum((y - my) ** 2 for y in ys)

    def sse(log_tau: float) -> float:
        return _fit_at(math.exp(log_tau), ts, ys, my, syy)[0]

    grid = [math.log(t) for t in TAU_GRID_S]
    errors = [sse(x) for x in grid]
    k = min(range(len(grid)), key=errors.__getitem__)
    if not math.isfinite(errors[k]):
        return None
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = sse(a), sse(b)
    for _ in range(GOLDEN_STEPS):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = sse(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = sse(b)
    tau = math.exp(a if fa <= fb else b)
    err, rise = _fit_at(tau, ts, ys, my, syy)
    if errors[k] < err:  # the grid point itself (an end of the grid) is better
        tau = TAU_GRID_S[k]
        err, rise = _fit_at(tau, ts, ys, my, syy)
    scatter = math.sqrt(max(err, 0.0) / max(n - 3, 1))
    return RefillFit(tau, rise, scatter)


def _fit_at(tau: float, ts: list[float], ys: list[float], my: float, syy: float) -> tuple[float, float]:
    """(squared error, A) of the best c, A and drift b <= 0 for this τ: y = c + A·(1 − exp(−t/τ)) + b·t. The drift
    is the held sleeve's own slow loss (its seams and fittings: calibration's hold loss), which would otherwise
    bend the plateau down and read as an early one; it only ever loses, so a rising drift is left out."""
    n = len(ts)
    xs = [1.0 - math.exp(-t / tau) for t in ts]
    mx = sum(xs) / n
    mt = sum(ts) / n
    dx = [x - mx for x in xs]
    dt = [t - mt for t in ts]
    dy = [y - my for y in ys]
    sxx = sum(x * x for x in dx)
    if sxx <= 1e-12:
        return math.inf, 0.0
    sxy = sum(x * y for x, y in zip(dx, dy, strict=True))
    stt = sum(t * t for t in dt)
    sxt = sum(x * t for x, t in zip(dx, dt, strict=True))
    sty = sum(t * y for t, y in zip(dt, dy, strict=True))
    det = sxx * stt - sxt * sxt
    if det > 1e-9 * sxx * stt:
        a = (sxy * stt - sty * sxt) / det
        b = (sty * sxx - sxy * sxt) / det
        if b <= 0.0:
            return syy - a * sxy - b * sty, a
    a = sxy / sxx
    return syy - a * sxy, a
