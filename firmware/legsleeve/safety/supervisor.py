"""The safety supervisor (SAFE-14): separate from the controller, sees every reading and every command, and can
only make outputs safer. It runs identically on the sleeve and on the simulated rig, and there is no switch to
turn it off.

Each rule is a small monitor object (one module per rule family in this package), checked every tick on time
handed in by the caller: `check(now_s, readings, applied) -> Trip | None`, where `applied` is what the outputs did
since the last readings. The first trip latches (SAFE-13): from then on every tick's output is the safe state until
an explicit `reset()`, and the trip carries the rule, the zone, the reading and a hint at what to check.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import Protocol

from legsleeve.core.commands import FILL, HOLD, SAFE, Commands
from legsleeve.core.limits import ABS_MAX_MMHG, MAX_SENSOR_NOISE_MMHG, Limits
from legsleeve.core.readings import Reading, Readings, new_reading, new_readings
from legsleeve.safety.estop import EStop
from legsleeve.safety.exposure import ReverseGradient, TimeUnderPressure
from legsleeve.safety.leak import HoldLeak
from legsleeve.safety.occlusion import Occlusion
from legsleeve.safety.overpressure import OverPressure, PumpCheck
from legsleeve.safety.plausibility import Plausibility
from legsleeve.safety.progress import FillProgress
from legsleeve.safety.sensors import SensorHealth
from legsleeve.safety.shared import ManifoldBound, SharedSensor
from legsleeve.safety.trip import Monitor, Trip
from legsleeve.safety.venting import ValveCheck, VentCheck

log = logging.getLogger(__name__)

# On a one-sensor build a zone is read through the manifold, joined to any zone whose inlet is stuck open: what these
# rules see of one zone may be another's, or the sensor's own. Their trips say so.
SHARED_AMBIGUOUS = ("SAFE-5", "SAFE-6", "SAFE-7", "SAFE-8")
SHARED_HINT = (
    "one sensor reads every zone through the manifold, so an inlet stuck open elsewhere, a pump running when told to "
    "stop, or the sensor itself can look the same: check those too"
)


class Build(Protocol):
    """What the supervisor needs to know of a build: its zones and their limbs, its limits, whether it has a
    manifold sensor. `legsleeve.config.model.HardwareConfig` is one."""

    @property
    def zone_names(self) -> tuple[str, ...]: ...

    @property
    def limits(self) -> Limits: ...

    @property
    def has_manifold_sensor(self) -> bool: ...

    @property
    def zone_limbs(self) -> tuple[str, ...]: ...

    @property
    def shared_sensor(self) -> bool: ...


class _Median3:
    """Each sensor's median of its last three good readings: one spike (SAFE-9's business) must not look like a
    rise, an occlusion or the start of a slow fill to the rules that measure rates and windows. A step change
    passes one tick later; a faulted reading stays faulted. Readings older than SPAN_S before the newest are not
    part of it: after a stalled tick the air has moved on, and the median of then and now is neither."""

    SPAN_S = 0.25  # three ticks at 50 Hz span 0.04 s; a slower loop's too

    def __init__(self, n: int):
        self._n = n
        self.reset()

    def reset(self) -> None:
        # each sensor's last two good readings (t_s, mmHg) kept, older first, None where there is none (an older one
        # only beside a newer): with this tick's, the last three
        none: tuple[tuple[float, float] | None, tuple[float, float] | None] = (None, None)
        self._last = [none] * self._n

    def update(self, readings: Readings) -> Readings:
        # (written out, without helpers: this runs for every sensor every tick)
        out: list[Reading] = []
        append = out.append
        span_s = self.SPAN_S
        last = self._last
        zones, m = readings.zones, readings.manifold
        for k, r in enumerate(zones if m is None else (*zones, m)):
            if r.fault is not None:  # not r.ok
                append(r)
                continue
            t_s, mmhg = r.t_s, r.mmhg
            a, b = last[k]
            # too old, from the oldest on (the first one recent enough ends it, as a list would be cut from its head)
            cutoff_s = t_s - span_s
            if a is not None and a[0] < cutoff_s:
                a = None
            if a is None and b is not None and b[0] < cutoff_s:
                b = None
            last[k] = (b, (t_s, mmhg))
            if a is not None and b is not None:  # three
                x, y = a[1], b[1]
                # the middle of three, max(min(x, y), min(max(x, y), mmhg)), with each min and max written out as
                # the builtins decide (the first argument unless the second is less / greater: NaN included)
                lo, hi = (y, x) if y < x else (x, y) if y > x else (x, x)
                mid = mmhg if mmhg < hi else hi
                value = mid if mid > lo else lo
                append(r if value == mmhg else new_reading(value, t_s, None))
            else:
                append(r)
        n = len(zones)
        manifold = out[n] if m is not None else None
        return new_readings(readings.t_s, tuple(out[:n]), manifold, readings.estop_pressed, readings.stop_pressed)


NOISE_CLEARLY_ABOVE = 2.0  # x limits.sensor_noise_mmhg: a noise measured at the zero above this counts


class Supervisor:
    """Runs every monitor on every tick, guards the controller's wish, and latches the first trip."""

    def __init__(
        self,
        build: Build,
        peak_targets_mmhg: Sequence[float],
        *,
        extra_monitors: Sequence[Monitor] = (),
        measured_noise_mmhg: float | None = None,
    ):
        """`peak_targets_mmhg`: the highest target the plan asks of each zone (its trip level builds on it);
        `extra_monitors`: rules of one occasion (the self-test's cross-talk) checked after the standard ones;
        `measured_noise_mmhg`: the noisiest sensor's reading noise at this start's zero. The rules that judge a loss
        clear of the noise (SAFE-7, SAFE-8) take it instead of `limits.sensor_noise_mmhg` where it is more than
        NOISE_CLEARLY_ABOVE times that: a sensor much noisier than configured (an uncalibrated build; one sensor,
        which calibration refuses) would otherwise turn its noise into false leaks. Only then: the zero's second or
        so of readings gives a figure within about +-50 % (0.04-0.12 mmHg for the reference's 0.08, over nine
        sensors and six seeds), and the noisiest of several such figures would loosen every build's rules by chance
        (a leak on two legs was then found 5.3 s after it began, against 4 s). Never past MAX_SENSOR_NOISE_MMHG;
        the self-test refuses a sensor measured above that."""
        lim = build.limits
        self.noise_mmhg = lim.sensor_noise_mmhg
        measured = measured_noise_mmhg
        if measured is not None and math.isfinite(measured) and measured > NOISE_CLEARLY_ABOVE * self.noise_mmhg:
            self.noise_mmhg = min(measured, MAX_SENSOR_NOISE_MMHG)
        names = build.zone_names
        view_names = [*names, *(["manifold"] if build.has_manifold_sensor else [])]
        self.trip_levels_mmhg = [min(lim.max_mmhg, t + lim.trip_margin_mmhg, ABS_MAX_MMHG) for t in peak_targets_mmhg]
        # A one-sensor build: the manifold's sensor reads each zone through its inlet (legsleeve.safety.shared); the
        # sensor rule judges that one sensor, and the other rules the zone readings its peeks give.
        self.shared = (
            SharedSensor(names, self.trip_levels_mmhg, lim.occlusion_rate_mmhg_s, self.noise_mmhg)
            if build.shared_sensor
            else None
        )
        sensor_names = ["manifold"] if self.shared is not None else view_names
        # SAFE-15: with a manifold sensor every zone reading is confirmed against it; without one (or with it the
        # only sensor) there is nothing to confirm against, and the config caps the build's pressures instead
        # (legsleeve.config.hardware).
        self.plausibility = (
            Plausibility(names, tol_mmhg=lim.plausibility_tol_mmhg, step_mmhg=lim.plausibility_step_mmhg)
            if build.has_manifold_sensor and self.shared is None
            else None
        )
        self.over_pressure = OverPressure(
            names,
            self.trip_levels_mmhg,
            lim.overpressure_debounce_s,
            self.plausibility.corrections_mmhg if self.plausibility is not None else None,
        )
        self.vent_check = VentCheck(names, lim.vent_timeout_s)
        self.occlusion = Occlusion(names, lim.occlusion_rate_mmhg_s)
        # Order matters only when two rules see the same tick: the most specific diagnosis speaks first.
        self.monitors: list[Monitor] = [
            EStop(),
            SensorHealth(sensor_names, stale_s=lim.sensor_stale_s, stuck_s=lim.sensor_stuck_s),
            self.occlusion,
            self.over_pressure,
            PumpCheck(lim.pump_off_rise_mmhg),
            *([self.plausibility] if self.plausibility is not None else []),
            ValveCheck(
                names,
                lim.vent_check_s,
                vent_tau_s=lim.vent_tau_s,
                noise_mmhg=self.noise_mmhg,
                venous_mmhg=lim.venous_safe_mmhg,
            ),
            HoldLeak(
                names,
                max_rate_mmhg_s=lim.leak_rate_mmhg_s,
                rate_per_mmhg_s=lim.leak_rate_per_mmhg_s,
                window_s=lim.leak_window_s,
                max_topups=lim.max_topups,
                topup_window_s=lim.topup_window_s,
                max_drop_mmhg=lim.max_drop_mmhg,
                noise_mmhg=self.noise_mmhg,
            ),
            FillProgress(
                names,
                min_rate_mmhg_s=lim.min_fill_rate_mmhg_s,
                window_s=lim.fill_rate_window_s,
                timeout_s=lim.fill_timeout_s,
                judge_checks=self.shared is not None,
            ),
            self.vent_check,
            ReverseGradient(names, lim.reverse_gradient_mmhg, lim.reverse_gradient_s, build.zone_limbs),
            TimeUnderPressure(
                names,
                venous_mmhg=lim.venous_safe_mmhg,
                max_s=lim.max_above_venous_s,
                session_max_s=lim.session_max_min * 60.0,
            ),
            *extra_monitors,
        ]
        if self.shared is not None:
            self.monitors.insert(
                self.monitors.index(self.over_pressure) + 1,
                ManifoldBound(names, self.trip_levels_mmhg, lim.overpressure_debounce_s, self.shared),
            )
        self.n_zones = len(names)
        self._median = _Median3(len(view_names))
        self.tripped: Trip | None = None
        self.cannot_vent: Trip | None = None  # raised after a trip, while the sleeve is meant to be emptying
        self.applied: Commands = SAFE
        self.intent: Commands = SAFE  # what the outputs mean to do: `applied` less a one-sensor build's peeks

    def observe(self, readings: Readings) -> Readings:
        """The zone readings the controller, the log and the summary go by: the sensors' own; on a one-sensor build,
        each zone's last measured pressure (legsleeve.safety.shared)."""
        if self.shared is None:
            return readings
        return self.shared.observe(readings)[1]

    def review(self, now_s: float, readings: Readings, wish: Commands, *, measure: bool = True) -> Commands:
        """Check every rule against these readings and what was applied since; return `wish` made no less safe.
        `measure`: a one-sensor build may peek at its zones (not once a stop was asked for)."""
        raw, known = readings, readings
        if self.shared is not None:
            readings, known = self.shared.observe(raw)  # the zones read this tick; each zone's last reading
        smooth = self._median.update(readings)
        if self.tripped is not None:
            # Latched: safe state, but keep watching the vent (a stuck exhaust is the worst news there is), and a
            # hose that empties at once while its bladder beyond a kink may not (SAFE-6, judged as a vent now).
            if self.cannot_vent is None:
                trusted = self._trusted(smooth)
                watching: tuple[Monitor, ...] = (self.vent_check, self.occlusion)
                for watch in watching:
                    trip = watch.check(now_s, trusted, self.applied)
                    if trip is not None and trip.cannot_vent:
                        self.cannot_vent = trip
                        log.critical("%s - %s", trip, trip.hint)
                        break
            self.applied = self.intent = SAFE
            return SAFE
        if self.shared is None:
            # `_view` for a build with a sensor per zone, written out: this loop runs a dozen rules every tick
            applied = self.applied
            for monitor in self.monitors:
                trip = monitor.check(now_s, readings if monitor.raw else smooth, applied)
                if trip is not None:
                    self.trip(trip)
                    return SAFE
        else:
            for monitor in self.monitors:
                trip = monitor.check(now_s, *self._view(monitor, raw, readings, smooth, known))
                if trip is not None:
                    self.trip(trip)
                    return SAFE
        out = self._guard(known, wish)
        if self.plausibility is not None:
            out = self.plausibility.shape(out)  # a check due: pump off, that zone's inlet alone open (SAFE-15)
        self.intent = out
        if self.shared is not None and measure:
            out = self.shared.shape(now_s, out)  # a peek due, one inlet while pumping, the manifold's ceiling
        self.applied = out
        return out

    def _view(
        self, monitor: Monitor, raw: Readings, readings: Readings, smooth: Readings, known: Readings
    ) -> tuple[Readings, Commands]:
        """What a rule sees. On a one-sensor build: the rules of the one physical sensor and of the pump see the
        sensor as read and the outputs as applied; SAFE-4 the zones read this tick; the reverse gradient each zone's
        last reading; the rules of holds and vents the outputs as meant (a peek is a look, not a fill)."""
        if self.shared is None:
            return (readings if monitor.raw else smooth), self.applied
        if isinstance(monitor, (EStop, SensorHealth, ManifoldBound)):
            return raw, self.applied
        if isinstance(monitor, PumpCheck):
            return smooth, self.applied  # the manifold's median: one spike is SAFE-9's, not a running pump
        if isinstance(monitor, ReverseGradient):
            return known, self.intent
        if isinstance(monitor, (HoldLeak, ValveCheck, VentCheck, TimeUnderPressure)):
            return smooth, self.intent
        return (readings if monitor.raw else smooth), self.applied

    def untrusted(self) -> set[str]:
        """Sensors a SAFE-9 or SAFE-15 trip declared bad: after it, their readings decide nothing."""
        t = self.tripped
        # SensorHealth's and Plausibility's rules, spelled out as in overpressure.pump_runs
        return {t.zone} if t is not None and t.rule in ("SAFE-9", "SAFE-15") and t.zone else set()

    def _trusted(self, readings: Readings) -> Readings:
        bad = self.untrusted()
        if not bad:
            return readings
        zones = tuple(
            Reading(math.nan, r.t_s, "untrusted") if n in bad else r
            for n, r in zip(self.vent_check.names, readings.zones, strict=False)
        )
        return Readings(readings.t_s, zones, readings.manifold, readings.estop_pressed, readings.stop_pressed)

    def _guard(self, readings: Readings, wish: Commands) -> Commands:
        """Never fill a zone that reads above its trip level or has no reading; no pump without a zone to fill."""
        wished = wish.actions(self.n_zones)
        if FILL not in wished:  # nothing to guard: the actions as wished, the pump off
            return Commands(0.0, wished)
        actions = []
        filling = False
        for i, action in enumerate(wished):
            if action is FILL:
                r = readings.zones[i]
                if not r.ok or self.over_pressure.above(i, r):
                    action = HOLD
                else:
                    filling = True
            actions.append(action)
        duty = wish.pump_duty if filling and math.isfinite(wish.pump_duty) else 0.0
        return Commands(min(max(duty, 0.0), 1.0), tuple(actions))

    def trip(self, trip: Trip) -> None:
        """Latch (the first trip wins), log with the hint. The caller applies SAFE at once."""
        if self.tripped is None and self.shared is not None and trip.rule in SHARED_AMBIGUOUS:
            trip = dataclasses.replace(trip, hint=f"{trip.hint}; {SHARED_HINT}")
        if self.tripped is None:
            self.tripped = trip
            self.applied = self.intent = SAFE
            if trip.cannot_vent:
                self.cannot_vent = trip
            log.critical("TRIP %s - %s", trip, trip.hint)

    def reset(self) -> None:
        """The explicit reset SAFE-13 asks for: only a person, after checking the sleeve, should call this.
        Every rule starts over as new: nothing seen before the reset counts after it."""
        for monitor in self.monitors:
            monitor.reset()
        self._median.reset()
        self.tripped = None
        self.cannot_vent = None
        self.applied = SAFE
        self.intent = SAFE
        if self.shared is not None:
            self.shared.reset()
