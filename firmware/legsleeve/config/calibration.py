"""`calibration.yaml`: what `legsleeve calibrate` measured on this build, and the limits and the twin made from it.

The file is written by `legsleeve.app.calibrate` and read here, validated like hardware.yaml (file, line, key). Where
it exists, `load_hardware` replaces the build-dependent rate, time and vent thresholds with ones derived from the
measured figures (`derive_limits`, each with its stated margin, never looser than the code's ceilings) and records
where each limit in force came from; `twin_spec` gives the simulation parameters fitted to the same recording.
Without it, the reference limits of hardware.yaml stand.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from legsleeve.config.model import SimSpec, SimZoneSpec
from legsleeve.config.yamlconf import Problems, Section, load_document
from legsleeve.core.limits import (
    MAX_FILL_TIMEOUT_S,
    MAX_SENSOR_NOISE_MMHG,
    MAX_VENT_TIMEOUT_S,
    NOISE_MARGIN,
    VENTED_MMHG,
    Limits,
)

FILENAME = "calibration.yaml"
FORMAT = 1

# -- margins: how far each derived limit stands from what the build was measured to do ---------------------------
FILL_TIMEOUT_FACTOR, FILL_TIMEOUT_PLUS_S, FILL_TIMEOUT_FLOOR_S = 2.0, 5.0, 10.0
MIN_FILL_RATE_FACTOR = 0.5  # of the slowest fill rate at minimum duty, at the top pressure
MIN_FILL_RATE_FLOOR, MIN_FILL_RATE_CEILING = 0.3, 5.0  # mmHg/s: below the floor a stalled fill looks alive
VENT_TIMEOUT_FACTOR, VENT_TIMEOUT_PLUS_S, VENT_TIMEOUT_FLOOR_S = 1.5, 2.0, 5.0
VENT_CHECK_FACTOR, VENT_CHECK_FLOOR_S, VENT_CHECK_CEILING_S = 0.7, 1.0, 10.0  # x the slowest vent time constant
OCCLUSION_FACTOR, OCCLUSION_FLOOR, OCCLUSION_CEILING = 2.5, 20.0, 200.0  # x the fastest rate a bladder moves at
LEAK_RATE_FACTOR, LEAK_RATE_PLUS, LEAK_RATE_CEILING = 3.0, 0.5, 2.0  # mmHg/s: 3x the worst hold loss, + 0.5
NOISE_FLOOR = 0.03  # mmHg; the noisiest sensor's standard deviation x NOISE_MARGIN, no less


@dataclass(frozen=True)
class ZoneFigures:
    """One zone as calibrate measured it (pressures gauge mmHg, rates mmHg/s, times s)."""

    name: str
    fill_rate_mmhg_s: tuple[tuple[float, float], ...]  # (pressure, rate) at full duty
    min_duty_fill_rate_mmhg_s: tuple[tuple[float, float], ...]  # (pressure, rate) at pump.min_duty
    hold_loss_mmhg_s: tuple[tuple[float, float], ...]  # (pressure, loss) held with both valves closed
    vent_tau_s: float  # time constant of its vent through the exhaust
    crosstalk_mmhg: float  # the most any other zone rose while this one filled
    noise_mmhg: float  # its sensor's standard deviation at rest
    selftest_fill_s: float  # from vented to the self-test's fill pressure, as the self-test does it

    def rate_at(self, table: tuple[tuple[float, float], ...], mmhg: float) -> float:
        """A rate from a (pressure, rate) table: the straight line through all its points (a fill slows steadily as
        the pressure rises), at `mmhg`; never below a twentieth of the slowest rate measured."""
        if not table:
            return math.nan
        floor = min(r for _, r in table) / 20.0
        if len(table) == 1:
            return table[0][1]
        n = len(table)
        mp = sum(p for p, _ in table) / n
        mr = sum(r for _, r in table) / n
        sxx = sum((p - mp) ** 2 for p, _ in table)
        slope = sum((p - mp) * (r - mr) for p, r in table) / sxx if sxx > 0 else 0.0
        return max(mr + slope * (mmhg - mp), floor)

    def fill_time_s(self, to_mmhg: float, taper_mmhg: float = 4.0) -> float:
        """Predicted time to fill from vented to `to_mmhg`: full duty, then minimum duty over the last few mmHg."""
        t = 0.0
        step = 0.5
        p = 0.0
        while p < to_mmhg - 1e-9:
            dp = min(step, to_mmhg - p)
            table = self.min_duty_fill_rate_mmhg_s if p >= to_mmhg - taper_mmhg else self.fill_rate_mmhg_s
            rate = self.rate_at(table, p + dp / 2)
            if rate <= 0.0:
                return math.inf
            t += dp / rate
            p += dp
        return t

    def vent_time_s(self, from_mmhg: float) -> float:
        """Predicted time to vent from `from_mmhg` to below 5 mmHg."""
        return self.vent_tau_s * math.log(max(from_mmhg, VENTED_MMHG) / VENTED_MMHG)


@dataclass(frozen=True)
class Calibration:
    """What calibration.yaml holds: when and by what it was measured, the figures, the twin and its fit."""

    path: Path
    date: str
    firmware_version: str
    zone_names: tuple[str, ...]
    manifold_sensor: bool
    min_duty: float
    levels_mmhg: tuple[float, ...]
    zones: tuple[ZoneFigures, ...]
    pump_deadhead_mmhg: float | None  # fitted where a manifold sensor sees the pump's back pressure
    twin: SimSpec
    twin_rms_mmhg: dict[str, float]

    def zone(self, name: str) -> ZoneFigures:
        return self.zones[self.zone_names.index(name)]


# -- derived limits ---------------------------------------------------------------------------------------------


def derive_limits(limits: Limits, cal: Calibration) -> tuple[Limits, dict[str, str]]:
    """The limits in force on a calibrated build, and for each derived one where it came from (in words)."""
    top = limits.max_mmhg
    sources: dict[str, str] = {}
    new: dict[str, float] = {}

    def slowest(values: dict[str, float]) -> tuple[str, float]:
        """The zone with the largest figure, and that figure."""
        name = max(values, key=lambda n: values[n])
        return name, values[name]

    fills = {z.name: z.fill_time_s(top) for z in cal.zones}
    name, t_fill = slowest(fills)
    new["fill_timeout_s"] = _clamp(
        FILL_TIMEOUT_FACTOR * t_fill + FILL_TIMEOUT_PLUS_S, FILL_TIMEOUT_FLOOR_S, MAX_FILL_TIMEOUT_S
    )
    sources["fill_timeout_s"] = (
        f"{name} fills 0->{top:g} mmHg in {t_fill:.1f} s: x{FILL_TIMEOUT_FACTOR:g} + {FILL_TIMEOUT_PLUS_S:g} s"
    )

    slow_rates = {z.name: z.rate_at(z.min_duty_fill_rate_mmhg_s, top) for z in cal.zones}
    name = min(slow_rates, key=lambda n: slow_rates[n])
    new["min_fill_rate_mmhg_s"] = _clamp(
        MIN_FILL_RATE_FACTOR * slow_rates[name], MIN_FILL_RATE_FLOOR, MIN_FILL_RATE_CEILING
    )
    sources["min_fill_rate_mmhg_s"] = (
        f"{name} fills at {slow_rates[name]:.1f} mmHg/s at {top:g} mmHg on minimum duty: x{MIN_FILL_RATE_FACTOR:g}"
    )

    vents = {z.name: z.vent_time_s(top) for z in cal.zones}
    name, t_vent = slowest(vents)
    new["vent_timeout_s"] = _clamp(
        VENT_TIMEOUT_FACTOR * t_vent + VENT_TIMEOUT_PLUS_S, VENT_TIMEOUT_FLOOR_S, MAX_VENT_TIMEOUT_S
    )
    sources["vent_timeout_s"] = (
        f"{name} vents {top:g}->5 mmHg in {t_vent:.1f} s: x{VENT_TIMEOUT_FACTOR:g} + {VENT_TIMEOUT_PLUS_S:g} s"
    )
    taus = {z.name: z.vent_tau_s for z in cal.zones}
    name, tau = slowest(taus)
    new["vent_check_s"] = _clamp(VENT_CHECK_FACTOR * tau, VENT_CHECK_FLOOR_S, VENT_CHECK_CEILING_S)
    sources["vent_check_s"] = f"{name}'s vent time constant {tau:.2f} s: x{VENT_CHECK_FACTOR:g}"
    new["vent_tau_s"] = _clamp(tau, 0.1, MAX_VENT_TIMEOUT_S)
    sources["vent_tau_s"] = f"{name}'s vent time constant, measured"

    # the fastest a sound bladder moves: filling at full duty from empty, or venting from the top
    fastest = {z.name: max(z.rate_at(z.fill_rate_mmhg_s, 0.0), top / z.vent_tau_s) for z in cal.zones}
    name = max(fastest, key=lambda n: fastest[n])
    new["occlusion_rate_mmhg_s"] = _clamp(OCCLUSION_FACTOR * fastest[name], OCCLUSION_FLOOR, OCCLUSION_CEILING)
    sources["occlusion_rate_mmhg_s"] = (
        f"{name} moves at up to {fastest[name]:.0f} mmHg/s (fill from empty, vent from {top:g}): x{OCCLUSION_FACTOR:g}"
    )

    losses = {z.name: max((loss for _, loss in z.hold_loss_mmhg_s), default=0.0) for z in cal.zones}
    name, loss = slowest(losses)
    new["leak_rate_mmhg_s"] = min(LEAK_RATE_FACTOR * max(loss, 0.0) + LEAK_RATE_PLUS, LEAK_RATE_CEILING)
    sources["leak_rate_mmhg_s"] = (
        f"{name} loses {loss:.2f} mmHg/s held: x{LEAK_RATE_FACTOR:g} + {LEAK_RATE_PLUS:g} "
        f"(at most {LEAK_RATE_CEILING:g})"
    )

    # a sound zone loses in proportion to its pressure: the worst loss per mmHg held, x3 (the floor is SAFE-7's)
    fractions = {z.name: max((loss / p for p, loss in z.hold_loss_mmhg_s if p > 0), default=0.0) for z in cal.zones}
    name = max(fractions, key=lambda n: fractions[n])
    new["leak_rate_per_mmhg_s"] = min(max(LEAK_RATE_FACTOR * fractions[name], 1e-4), 0.1)
    sources["leak_rate_per_mmhg_s"] = (
        f"{name} loses {fractions[name] * 100:.2f} % of its pressure a second held: x{LEAK_RATE_FACTOR:g}, "
        "above a 0.5 mmHg/s floor"
    )

    noises = {z.name: z.noise_mmhg for z in cal.zones}
    name, noise = slowest(noises)
    new["sensor_noise_mmhg"] = _clamp(NOISE_MARGIN * noise, NOISE_FLOOR, MAX_SENSOR_NOISE_MMHG)
    sources["sensor_noise_mmhg"] = f"{name}'s sensor: {noise:.2f} mmHg at rest, x{NOISE_MARGIN:g}"

    rounded = {key: float(f"{value:.3g}") for key, value in new.items()}  # what the figures can say
    return dataclasses.replace(limits, **rounded), sources  # type: ignore[arg-type]  # every key a float limit


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


# -- the file ---------------------------------------------------------------------------------------------------


def calibration_path(config_dir: Path | str) -> Path:
    return Path(config_dir) / FILENAME


def load_calibration(
    config_dir: Path | str, zone_names: Sequence[str], *, manifold_sensor: bool, min_duty: float, base: SimSpec
) -> Calibration | None:
    """Read `<config_dir>/calibration.yaml` if there is one; None if not. Raises ConfigError listing every problem,
    and when it was measured on another build (other zones, manifold sensor or minimum duty than hardware.yaml)."""
    path = calibration_path(config_dir)
    if not path.is_file():
        return None
    doc = load_document(path)
    problems = Problems()
    top = Section(doc, path, "", problems)
    fmt = top.integer("format", minimum=FORMAT, maximum=FORMAT)
    date = top.string("date")
    version = top.string("firmware_version")
    names: list[str] = []
    build = top.section("build")
    manifold = min_duty_measured = None
    if build is not None:
        raw_names = build.raw("zones")
        if isinstance(raw_names, list) and all(isinstance(n, str) for n in raw_names):
            names = list(raw_names)
            if tuple(names) != tuple(zone_names):
                build.error(
                    "zones",
                    f"calibrated zones {', '.join(names)} are not hardware.yaml's {', '.join(zone_names)}: "
                    "run `legsleeve calibrate` again",
                )
        else:
            build.error("zones", "must be a list of zone names")
        manifold = build.boolean("manifold_sensor")
        if manifold is not None and manifold != manifold_sensor:
            build.error("manifold_sensor", "differs from hardware.yaml: run `legsleeve calibrate` again")
        min_duty_measured = build.number("min_duty", minimum=0.0, maximum=1.0)
        if min_duty_measured is not None and abs(min_duty_measured - min_duty) > 1e-9:
            build.error(
                "min_duty",
                f"measured at pump.min_duty {min_duty_measured:g}, hardware.yaml now says {min_duty:g}: "
                "run `legsleeve calibrate` again",
            )
        build.finish()
    levels = _pairs_list(top, "levels_mmhg")
    pump = top.section("pump")
    deadhead = None
    if pump is not None:
        deadhead = pump.number("deadhead_mmhg", None, above=0.0, maximum=1000.0, unit="mmHg")
        pump.finish()
    zones_sec = top.section("zones")
    figures: list[ZoneFigures] = []
    if zones_sec is not None:
        for name in zone_names:
            zsec = zones_sec.section(name)
            if zsec is None:
                continue
            fig = _read_zone(name, zsec)
            zsec.finish()
            if fig is not None:
                figures.append(fig)
        zones_sec.finish()
    twin_sec = top.section("twin")
    twin = None
    rms: dict[str, float] = {}
    if twin_sec is not None:
        twin = _read_twin(twin_sec, zone_names, base)
        rms_sec = twin_sec.section("rms_mmhg")
        if rms_sec is not None:
            for name in zone_names:
                value = rms_sec.number(name, minimum=0.0, maximum=1000.0, unit="mmHg")
                if value is not None:
                    rms[name] = value
            rms_sec.finish()
        twin_sec.finish()
    top.finish()
    problems.raise_if_any()
    assert fmt is not None and date is not None and version is not None and twin is not None
    assert manifold is not None and min_duty_measured is not None and levels is not None
    return Calibration(
        path=path,
        date=date,
        firmware_version=version,
        zone_names=tuple(names),
        manifold_sensor=manifold,
        min_duty=min_duty_measured,
        levels_mmhg=tuple(levels),
        zones=tuple(figures),
        pump_deadhead_mmhg=deadhead,
        twin=twin,
        twin_rms_mmhg=rms,
    )


def _pairs_list(sec: Section, key: str) -> list[float] | None:
    raw = sec.raw(key)
    if not isinstance(raw, list) or not raw or not all(_is_number(v) for v in raw):
        sec.error(key, "must be a list of numbers")
        return None
    return [float(v) for v in raw]


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def _table(sec: Section, key: str, *, minimum: float) -> tuple[tuple[float, float], ...] | None:
    """A {pressure: value} mapping as sorted (pressure, value) pairs."""
    raw = sec.raw(key)
    if not isinstance(raw, dict) or not raw:
        sec.error(key, "must map pressures (mmHg) to values")
        return None
    pairs = []
    for p, v in raw.items():
        if not _is_number(p) or not _is_number(v) or float(v) < minimum:
            sec.error(key, f"{p!r}: {v!r} must be a pressure and a number >= {minimum:g}")
            return None
        pairs.append((float(p), float(v)))
    return tuple(sorted(pairs))


def _read_zone(name: str, sec: Section) -> ZoneFigures | None:
    fill = _table(sec, "fill_rate_mmhg_s", minimum=0.0)
    slow = _table(sec, "min_duty_fill_rate_mmhg_s", minimum=0.0)
    loss = _table(sec, "hold_loss_mmhg_s", minimum=-1000.0)
    tau = sec.number("vent_tau_s", above=0.0, maximum=1000.0, unit="s")
    crosstalk = sec.number("crosstalk_mmhg", minimum=-1000.0, maximum=1000.0, unit="mmHg")
    noise = sec.number("noise_mmhg", minimum=0.0, maximum=100.0, unit="mmHg")
    selftest = sec.number("selftest_fill_s", above=0.0, maximum=1000.0, unit="s")
    values = (fill, slow, loss, tau, crosstalk, noise, selftest)
    if any(v is None for v in values):
        return None
    assert fill is not None and slow is not None and loss is not None
    assert tau is not None and crosstalk is not None and noise is not None and selftest is not None
    return ZoneFigures(name, fill, slow, loss, tau, crosstalk, noise, selftest)


_TWIN_KEYS = ("pump_free_flow_lpm", "pump_deadhead_mmhg", "inlet_lpm_per_mmhg", "exhaust_lpm_per_mmhg")
_TWIN_ZONE_KEYS = (
    "volume_l",
    "compliance_l_per_mmhg",
    "leak_lpm_per_mmhg",
    "inlet_lpm_per_mmhg",
    "exhaust_lpm_per_mmhg",
)


def _read_twin(sec: Section, zone_names: Sequence[str], base: SimSpec) -> SimSpec | None:
    """The twin: hardware.yaml's simulation section with what calibrate fitted in its place."""
    values = {key: sec.number(key, above=0.0, maximum=1000.0) for key in _TWIN_KEYS}
    zones_sec = sec.section("zones")
    zones: dict[str, SimZoneSpec] = {}
    if zones_sec is not None:
        for name in zone_names:
            zsec = zones_sec.section(name)
            if zsec is None:
                continue
            z = {key: zsec.number(key, minimum=0.0, maximum=1000.0) for key in _TWIN_ZONE_KEYS}
            zsec.finish()
            if all(v is not None for v in z.values()):
                zones[name] = SimZoneSpec(**z)  # type: ignore[arg-type]
        zones_sec.finish()
    if any(v is None for v in values.values()) or len(zones) != len(zone_names):
        return None
    return dataclasses.replace(base, **values, zones=zones)  # type: ignore[arg-type]


def calibration_document(cal: Calibration) -> dict:
    """calibration.yaml's content as plain data (the writer adds the comments)."""

    def table(pairs: tuple[tuple[float, float], ...], digits: int = 3) -> dict:
        return {round(p, 1): round(v, digits) for p, v in pairs}

    twin = cal.twin
    return {
        "format": FORMAT,
        "date": cal.date,
        "firmware_version": cal.firmware_version,
        "build": {"zones": list(cal.zone_names), "manifold_sensor": cal.manifold_sensor, "min_duty": cal.min_duty},
        "levels_mmhg": [round(v, 1) for v in cal.levels_mmhg],
        "pump": {"deadhead_mmhg": None if cal.pump_deadhead_mmhg is None else round(cal.pump_deadhead_mmhg, 1)},
        "zones": {
            z.name: {
                "fill_rate_mmhg_s": table(z.fill_rate_mmhg_s, 2),
                "min_duty_fill_rate_mmhg_s": table(z.min_duty_fill_rate_mmhg_s, 2),
                "hold_loss_mmhg_s": table(z.hold_loss_mmhg_s, 4),
                "vent_tau_s": round(z.vent_tau_s, 3),
                "crosstalk_mmhg": round(z.crosstalk_mmhg, 2),
                "noise_mmhg": round(z.noise_mmhg, 4),
                "selftest_fill_s": round(z.selftest_fill_s, 3),
            }
            for z in cal.zones
        },
        "twin": {
            **{key: _sig(getattr(twin, key)) for key in _TWIN_KEYS},
            "zones": {
                name: {key: _sig(_zone_value(twin, name, key)) for key in _TWIN_ZONE_KEYS} for name in cal.zone_names
            },
            "rms_mmhg": {name: round(v, 3) for name, v in cal.twin_rms_mmhg.items()},
        },
    }


def _zone_value(spec: SimSpec, name: str, key: str) -> float:
    value = getattr(spec.zones[name], key)
    return float(getattr(spec, key) if value is None else value)


def _sig(value: float) -> float:
    return float(f"{value:.4g}")
