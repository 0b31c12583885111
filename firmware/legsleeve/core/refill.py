"""The venous refill of a limb, measured on its own sleeve: when may it be compressed again?

Standard library only; the controller feeds it and asks it. After a compression empties the leg's veins, arterial
inflow refills them over tens of seconds (Kendall reports 20-60 s; air plethysmography calls the time to 90 % of
the venous volume VFT90). A sleeve held closed at a low pressure sees the limb swell as they refill: its pressure
rises a few mmHg, quickly at first, then levels off. Kendall's SCD 700 ("Vascular Refill Detection") measures that
rise per leg and compresses again once it has levelled off.

Two things besides the veins move a held sleeve's pressure, and the measure allows for both (docs/refill.md):
- the sleeve's own slow loss through its seams and fittings, a fixed fraction of its pressure each second.
  `SleeveLoss` measures that fraction once, before the limb's first compression (the sleeve held at the refill
  level over veins at rest), and the measure adds the air lost back (λ·∫P dt). Left for the fit to find, as a free
  drift, it trades off against the curve's bend, and the fit cannot tell T90 to better than 10-40 % when T90 comes;
- the air rewarming after the vent (Morris 2002): the gas cools as it expands out of the bladder and regains
  pressure as it rewarms against the skin, with the sleeve's time constant θ (`rewarm_s`). How much it regains
  grows with the fall (adiabatic cooling is proportional to it, to first order): B = κ·D, D the fall still
  unrecovered when the sleeve closes (each mmHg fallen, faded by exp(−age/θ)), κ the sleeve's fraction. Told apart
  from a refill only by its time constant, B is poorly known from one hold of a leg refilling in under ~6θ (a
  30 s leg: ±12 % on T90 at T90). So κ is learned over the session (`RewarmLearner`) from the holds that do tell
  it - legs refilling slowly, holds running long - and every fit leans on it as a prior.

Method: from the moment the limb's sleeve is held closed (after SETTLE_S), the pressure it was closed at is the
anchor (the mean over ANCHOR_S), and its rise since, averaged into BIN_S bins, is fitted by least squares to
y(s) = A·(1 − exp(−s/τ)) + B·(1 − exp(−s/θ)), s from the anchor, A, B >= 0: the refill still to come, and the
rewarming, both nothing at the anchor. A, B are exact for each τ; τ is searched on a grid and by golden section.
Exponential curves keep their shape when their start moves, so τ is the veins' own from the release too: the limb
has refilled at T90 = τ·ln 10 after its release. The rest ends there once the estimate is trusted: the rise stands
clear of the fit's own scatter, τ is not at the top of the grid, and T90 has held within STABLE of itself over the
last refits. Bounds: never before `min_s`, always by `max_s` (then the refill is "not detected" unless trusted).

Limits (docs/refill.md): θ must be known within about 20 % (a θ too long takes refill for rewarming); the limbs'
sleeves are taken to be alike (κ is pooled over them); the leg moving adds to or takes from the rise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

LN10 = math.log(10.0)
SETTLE_S = 0.5  # the valves just closed: the air between hose tee and bladder evens out
ANCHOR_S = 0.5  # the pressure the sleeve was closed at: its mean over this (~25 readings)
BIN_S = 1.0  # readings averaged into bins this long (a minute is 60 points to fit)
REFIT_S = 1.0  # the curve is fitted again this often
MIN_SPAN_S = 4.0  # no verdict from less data than this
STABLE = 0.1  # T90 trusted once its last STABLE_FITS estimates agree within this fraction
STABLE_FITS = 4
MIN_RISE_MMHG = 0.3  # a rise smaller than this is not a refill (an MPRLS resolves ~0.08 mmHg)
RISE_SIGMAS = 6.0  # ...nor one within this many times the fit's scatter
TAU_STEP = 1.25  # the grid of τ: from max(1 s, θ) up by this factor
TAU_MAX_S = 260.0  # a rise still going at this time constant has no plateau to speak of
GOLDEN_STEPS = 12  # the golden section narrows the 1.25^2 bracket to under 0.1 %
REWARM_S = 5.0  # the rewarming's time constant when none is given, s (docs/refill.md: measure your sleeve's)

# Learning the rewarming: a hold tells κ when it saw most of its refill and a vent worth the name
LEARN_MIN_DROP_MMHG = 5.0
LEARN_MIN_BINS = 10
LEARN_HOLDS = 6  # the prior pools the last this many holds' estimates

LOSS_SETTLE_S = 10.0  # SleeveLoss: the veins under a sleeve just filled to the refill level settle (a few seconds)
LOSS_MIN_SPAN_S = 5.0  # ...and no loss is told from less than this after it


@dataclass(frozen=True)
class RefillFit:
    """The refill curve as last fitted: time constant τ (s), the refill's rise still to come after the anchor A
    (mmHg), the rewarming's B (mmHg), the scatter about the fit (mmHg), and whether τ ended on the grid's top."""

    tau_s: float
    rise_mmhg: float
    rewarm_mmhg: float
    scatter_mmhg: float
    at_top: bool = False

    @property
    def refill_s(self) -> float:
        """T90: from the release to 90 % of the plateau."""
        return self.tau_s * LN10

    @property
    def trusted(self) -> bool:
        return self.rise_mmhg >= max(MIN_RISE_MMHG, RISE_SIGMAS * self.scatter_mmhg) and not self.at_top


@dataclass(frozen=True)
class Rewarming:
    """What is known of the sleeves' rewarming: κ, the fraction of a fall a closed sleeve regains (mmHg per mmHg),
    with its variance; and the variance of one bin's mean about the fit (mmHg²), which weighs it against the data."""

    fraction: float
    variance: float
    bin_variance: float


class RewarmLearner:
    """κ over a session: the precision-weighted mean of what the last LEARN_HOLDS holds told (`RefillMeasure
    .rewarming`). Pooled over every limb: the sleeves are taken to be alike (the same bladders and air)."""

    def __init__(self) -> None:
        self._seen: list[Rewarming] = []

    def add(self, estimate: Rewarming) -> None:
        """One hold's estimate; one that cannot be weighed (no finite, positive variance) is not kept."""
        if math.isfinite(estimate.fraction) and math.isfinite(estimate.variance) and estimate.variance > 0.0:
            self._seen = [*self._seen[-(LEARN_HOLDS - 1) :], estimate]

    @property
    def holds(self) -> int:
        """How many holds the prior pools."""
        return len(self._seen)

    @property
    def prior(self) -> Rewarming | None:
        """The pooled κ with its variance, or None before any hold told it."""
        if not self._seen:
            return None
        weights = [1.0 / e.variance for e in self._seen]
        total = math.fsum(weights)
        fraction = math.fsum(w * e.fraction for w, e in zip(weights, self._seen, strict=True)) / total
        bin_variance = math.fsum(e.bin_variance for e in self._seen) / len(self._seen)
        return Rewarming(fraction, 1.0 / total, bin_variance)


class RefillMeasure:
    """One limb's refill since its release at `release_s`: fed the limb's mean pressure each tick, through its
    vent (`vent`) and then held closed (`add`).

    `loss_per_s`: the sleeve's own loss, a fraction of its pressure each second (`SleeveLoss`; 0: none).
    `rewarm_s`: the rewarming's time constant θ, s (0: the fit leaves the rewarming out).
    `learner`: κ as the session's holds tell it, asked at each refit (None, or nothing told yet: the fit finds B
    from this hold alone)."""

    def __init__(
        self,
        release_s: float,
        *,
        min_s: float,
        max_s: float,
        loss_per_s: float = 0.0,
        rewarm_s: float = REWARM_S,
        learner: RewarmLearner | None = None,
    ):
        self.release_s = release_s
        self.min_s = min_s
        self.max_s = max_s
        self.loss_per_s = loss_per_s
        self.rewarm_s = rewarm_s
        self.learner = learner
        self._hold_s: float | None = None  # when the sleeve was first held closed
        self._vent_mmhg = math.nan  # the last reading of the vent
        self._vent_s = math.nan
        self._fallen_mmhg = 0.0  # each mmHg fallen in the vent, faded by exp(-age/θ)
        self.drop_mmhg = math.nan  # ...as it stands at the anchor: D, what κ scales into B
        self._last_s = math.nan
        self._lost_mmhg = 0.0  # what the sleeve's own loss took since the settle, put back
        self._anchor: list[float] = []
        self._anchor_mmhg = math.nan
        self._anchor_s = math.nan  # since release
        self._bins: list[tuple[float, float]] = []  # (mid-time since the anchor, mmHg above the anchor)
        self._bin: list[float] = []
        self._bin_start = math.nan
        self._next_fit_s = math.nan
        self.fit: RefillFit | None = None
        self._t90s: list[float] = []
        self.ended_s: float | None = None
        self.detected = False  # ended on a trusted T90, not on the bound
        self.rewarm_holds = 0  # how many holds' κ the last fit leaned on

    def vent(self, t_s: float, mmhg: float) -> None:
        """One reading of the limb's sleeve (the mean of its zones) while it is let down to the refill level."""
        if self._hold_s is not None or not math.isfinite(mmhg):
            return
        if self._vent_s == self._vent_s and self.rewarm_s > 0.0:  # not NaN
            fade = math.exp(-(t_s - self._vent_s) / self.rewarm_s)
            self._fallen_mmhg = self._fallen_mmhg * fade + (self._vent_mmhg - mmhg)
        self._vent_s, self._vent_mmhg = t_s, mmhg

    def add(self, t_s: float, mmhg: float) -> None:
        """One reading of the held sleeve (the mean of its zones), at `t_s`. Readings go on being added after the
        verdict, for `rewarming`, until the hold ends."""
        if self._hold_s is None:
            self._hold_s = t_s
        if t_s < self._hold_s + SETTLE_S or not math.isfinite(mmhg):
            return
        if self._last_s == self._last_s:  # not NaN: the loss since the last reading, at this pressure
            self._lost_mmhg += self.loss_per_s * mmhg * (t_s - self._last_s)
        self._last_s = t_s
        y = mmhg + self._lost_mmhg
        if self._anchor_mmhg != self._anchor_mmhg:  # NaN: still taking the anchor
            if t_s < self._hold_s + SETTLE_S + ANCHOR_S:
                self._anchor.append(y)
                return
            self._anchor_mmhg = math.fsum(self._anchor) / len(self._anchor)
            anchor_t = self._hold_s + SETTLE_S + 0.5 * ANCHOR_S
            self._anchor_s = anchor_t - self.release_s
            age = anchor_t - self._vent_s
            self.drop_mmhg = self._fallen_mmhg * math.exp(-age / self.rewarm_s) if age == age and self.rewarm_s else 0.0
        if not self._bin:
            self._bin_start = t_s
        self._bin.append(y)
        if t_s - self._bin_start >= BIN_S:
            mid = 0.5 * (self._bin_start + t_s) - self.release_s - self._anchor_s
            self._bins.append((mid, math.fsum(self._bin) / len(self._bin) - self._anchor_mmhg))
            self._bin = []
            if self.ended_s is None and not t_s < self._next_fit_s:
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

    def rewarming(self) -> Rewarming | None:
        """What this hold, as far as it went, tells of κ on its own (the prior left out): from a fit of all of it,
        B over D with B's variance; None when it cannot tell (no vent worth the name, no rise, too short)."""
        bins = self._bins
        drop = self.drop_mmhg
        if self.rewarm_s <= 0.0 or not drop >= LEARN_MIN_DROP_MMHG or len(bins) < LEARN_MIN_BINS:
            return None
        fit = fit_refill(bins, self.rewarm_s)
        if fit is None or not fit.trusted:
            return None
        variance = _rewarm_variance(bins, fit, self.rewarm_s)
        if not (math.isfinite(variance) and variance > 0.0):
            return None
        return Rewarming(fit.rewarm_mmhg / drop, variance / drop**2, fit.scatter_mmhg**2)

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
        prior = self.learner.prior if self.learner is not None else None
        if prior is None or self.rewarm_s <= 0.0 or not self.drop_mmhg > 0.0:
            fit = fit_refill(bins, self.rewarm_s)
        else:
            # the prior as a pseudo-observation of B: B0 = κ·D, worth bin variance / its own variance
            weight = prior.bin_variance / (prior.variance * self.drop_mmhg**2)
            fit = fit_refill(bins, self.rewarm_s, prior_mmhg=prior.fraction * self.drop_mmhg, prior_weight=weight)
            assert self.learner is not None
            self.rewarm_holds = self.learner.holds
        self.fit = fit
        if fit is not None and fit.trusted:
            self._t90s.append(fit.refill_s)
        else:
            self._t90s.clear()


def fit_refill(
    points: list[tuple[float, float]],
    rewarm_s: float = REWARM_S,
    *,
    prior_mmhg: float = 0.0,
    prior_weight: float = 0.0,
) -> RefillFit | None:
    """Least squares of y = A·(1 − exp(−s/τ)) + B·(1 − exp(−s/θ)), A, B >= 0 (θ = `rewarm_s`; 0: no B), to points
    (s, y): s from the anchor, y above it, mmHg; with `prior_weight` > 0, B is also drawn to `prior_mmhg` as by that
    many points. The best τ of a grid from max(1 s, θ) (a refill faster than the rewarming cannot be told from it),
    then a golden-section search in log τ between its neighbours; None when the points cannot tell. About 40 fits of
    A and B, each one pass over the points: ~1 ms here for a minute of them."""
    ss = [s for s, _ in points]
    ys = [y for _, y in points]
    syy = math.fsum(y * y for y in ys)
    if rewarm_s > 0.0:
        ws = [1.0 - math.exp(-s / rewarm_s) for s in ss]
    else:
        ws = [0.0] * len(ss)
        prior_weight = 0.0
    # the prior is one more "point" of the B column: weight·(B - B0)² added to the squared error
    sww = math.fsum(w * w for w in ws) + prior_weight
    swy = math.fsum(w * y for w, y in zip(ws, ys, strict=True)) + prior_weight * prior_mmhg
    syy += prior_weight * prior_mmhg**2
    tau_lo = max(1.0, rewarm_s)
    grid = [math.log(tau_lo) + k * math.log(TAU_STEP) for k in range(int(math.log(TAU_MAX_S / tau_lo, TAU_STEP)) + 1)]

    def sse(log_tau: float) -> float:
        return _fit_at(math.exp(log_tau), ss, ys, ws, syy, sww, swy)[0]

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
    if errors[k] < min(fa, fb):  # the grid point itself (an end of the grid) is better
        tau = math.exp(grid[k])
    err, rise, rewarm = _fit_at(tau, ss, ys, ws, syy, sww, swy)
    if prior_weight > 0.0:
        err -= prior_weight * (rewarm - prior_mmhg) ** 2  # the scatter is the points' own
    free = 2 if rewarm > 0.0 else 1
    scatter = math.sqrt(max(err, 0.0) / max(len(ss) - free - 1, 1))
    return RefillFit(tau, rise, rewarm, scatter, at_top=k == len(grid) - 1)


def _fit_at(
    tau: float, ss: list[float], ys: list[float], ws: list[float], syy: float, sww: float, swy: float
) -> tuple[float, float, float]:
    """(squared error, A, B) of the best A >= 0 and B >= 0 for this τ. One pass over the points (this runs ~40 times a
    refit, inside the control tick): the sums of x·x, x·y and x·w, with x = 1 − exp(−s/τ)."""
    sxx = sxy = sxw = 0.0
    for s, y, w in zip(ss, ys, ws, strict=True):
        x = 1.0 - math.exp(-s / tau)
        sxx += x * x
        sxy += x * y
        sxw += x * w
    if sxx <= 1e-12:
        return math.inf, 0.0, 0.0
    det = sxx * sww - sxw * sxw
    if det > 1e-12 * sxx * sww:
        a = (sxy * sww - swy * sxw) / det
        b = (swy * sxx - sxy * sxw) / det
        if a >= 0.0 and b >= 0.0:
            return syy - a * sxy - b * swy, a, b
    # Both are rises: where the best pair is not, the best has one of them at nothing (near τ = θ the two curves
    # are nearly one, and unbounded they would cancel in huge amounts).
    a = max(sxy / sxx, 0.0)
    best = (syy - a * sxy, a, 0.0)
    if sww > 0.0:
        b = max(swy / sww, 0.0)
        if syy - b * swy < best[0]:
            best = (syy - b * swy, 0.0, b)
    return best


def _rewarm_variance(points: list[tuple[float, float]], fit: RefillFit, rewarm_s: float) -> float:
    """The variance of B as fitted (mmHg²): the scatter's variance times the (B, B) element of the inverse of JᵀJ,
    J the curve's derivatives in τ, A and B at the points. Once a hold, when it ends."""
    tau, a = fit.tau_s, fit.rise_mmhg
    m = [[0.0] * 3 for _ in range(3)]
    for s, _ in points:
        e = math.exp(-s / tau)
        row = (-a * s / (tau * tau) * e, 1.0 - e, 1.0 - math.exp(-s / rewarm_s))
        for i in range(3):
            for j in range(3):
                m[i][j] += row[i] * row[j]
    (p, q, r), (_, u, v), (_, _, w) = m
    det = p * (u * w - v * v) - q * (q * w - v * r) + r * (q * v - u * r)
    if not det > 0.0:
        return math.inf
    return fit.scatter_mmhg**2 * (p * u - q * q) / det


class SleeveLoss:
    """How fast a limb's sleeve, held closed at the refill level, loses pressure by itself: the fraction of its
    pressure each second (its seams, fittings and valve seats). Measured once, before the limb's first compression,
    when its veins are at rest. From LOSS_SETTLE_S after the whole sleeve is held (`hold`; the veins under a freshly
    filled sleeve give a little meanwhile), the held pressure is fitted by least squares to c + b·t + D·exp(−t/θ): the
    loss b, and whatever is left of the air's settling to the skin's warmth after the fill, with the rewarming's own
    time constant θ (`rewarm_s`). The limb is ready `check_s` after the hold began; one that waits longer for its
    first turn goes on being measured."""

    def __init__(self, check_s: float, rewarm_s: float = REWARM_S):
        self.check_s = check_s
        self.rewarm_s = rewarm_s
        self._hold_s: float | None = None
        # the normal equations' sums over (1, t, e), e = exp(-t/θ), and with y: n Σt Σe Σtt Σte Σee Σy Σty Σey
        self._sums = [0.0] * 9

    def hold(self, t_s: float) -> None:
        """The whole sleeve is held closed at `t_s` (the first call counts)."""
        if self._hold_s is None:
            self._hold_s = t_s

    def add(self, t_s: float, mmhg: float) -> None:
        """One reading of the held sleeve (the mean of its zones), at `t_s`."""
        if self._hold_s is None or not math.isfinite(mmhg):
            return
        t = t_s - self._hold_s - LOSS_SETTLE_S
        if t < 0.0:
            return
        e = math.exp(-t / self.rewarm_s) if self.rewarm_s > 0.0 else 0.0
        for k, v in enumerate((1.0, t, e, t * t, t * e, e * e, mmhg, t * mmhg, e * mmhg)):
            self._sums[k] += v

    def done(self, now_s: float) -> bool:
        """Whether the check has run its `check_s`."""
        return self._hold_s is not None and now_s - self._hold_s >= self.check_s

    @property
    def loss_per_s(self) -> float | None:
        """The loss as measured so far: a fraction of the pressure per second; None when the held sleeve was not
        seen for LOSS_MIN_SPAN_S after its settling."""
        n, st, se, stt, ste, see, sy, sty, sey = self._sums
        if n < 3 or n * stt - st * st < n * n * LOSS_MIN_SPAN_S**2 / 12.0:
            return None
        mean = sy / n
        if self.rewarm_s > 0.0:
            slope = _solve3(((n, st, se), (st, stt, ste), (se, ste, see)), (sy, sty, sey))[1]
        else:
            slope = (n * sty - st * sy) / (n * stt - st * st)
        if not (math.isfinite(slope) and mean > 0.0):
            return None
        return max(-slope / mean, 0.0)  # a sleeve that gains by itself is not losing (its inlet: SAFE-8's)


def _solve3(m: Sequence[Sequence[float]], r: Sequence[float]) -> list[float]:
    """The 3 x 3 linear system m·x = r by Cramer's rule (NaNs when it is singular)."""

    def det(a: Sequence[Sequence[float]]) -> float:
        return (
            a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        )

    d = det(m)
    if d == 0.0:
        return [math.nan] * 3
    return [det([[r[i] if j == k else m[i][j] for j in range(3)] for i in range(3)]) / d for k in range(3)]
