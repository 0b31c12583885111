"""Safety limits as numbers: the hard ceilings in code (SAFE-3) and the thresholds a build may tighten.

The ceilings are constants: a config value beyond one is an error, never clamped silently. `Limits` holds the
thresholds the supervisor enforces; its defaults suit the reference build, and `config/hardware.yaml` may only
tighten them within the ceilings. Standard library only: the control core and the safety rules read these.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- Hard ceilings (SAFE-3). Config values beyond these are errors, never clamped silently. ---------------
ABS_MAX_MMHG = 150.0  # no config nor relief valve goes higher; tourniquets act above 200 mmHg (safety-requirements §B3)
# The mechanical relief valve is set this far above limits.max_mmhg (hardware/BOM.md). Far enough that the
# over-pressure trip acts first and the valve never opens in normal work: while a zone fills, the manifold runs above
# it (to 96 mmHg for the reference's 80 mmHg fills, simulated), and SAFE-4's pump check needs its 10 mmHg of rise above
# where the manifold rests to find a pump running when told off (behind a valve at max + 10 a stuck-on pump in the
# pulse profile's hold was found in 3.2 s, not 0.4). Near enough that sensors lying alike, which nothing else bounds,
# cannot squeeze far past the limit: 108 mmHg on the leg behind 110, 133 behind the old fixed 150 (tests/sim).
RELIEF_ABOVE_MAX_MMHG = 20.0


def relief_mmhg(max_mmhg: float) -> float:
    """The relief valve's setting, gauge mmHg, for a build allowed `max_mmhg`: never above ABS_MAX_MMHG."""
    return min(max_mmhg + RELIEF_ABOVE_MAX_MMHG, ABS_MAX_MMHG)


MAX_DEBOUNCE_S = 0.1  # SAFE-4: over-pressure must trip within 100 ms of persisting
MAX_VENT_TIMEOUT_S = 30.0  # SAFE-8: a sleeve that has not vented by then has a stuck valve
MAX_FILL_TIMEOUT_S = 120.0  # SAFE-5: even a thigh chamber on a weak pump fills in well under two minutes
MAX_SENSOR_DEADLINE_S = 0.05  # one MPRLS conversion is ~5 ms; 50 ms is already ten of them
MAX_STALE_S = 0.5  # SAFE-9: a pressure older than this is not a pressure
MIN_TICK_HZ, MAX_TICK_HZ = 10, 200
VENTED_MMHG = 5.0  # SAFE-8: "vented" means below this (docs/safety-requirements.md)
MAX_ZONES_PER_LIMB = 8  # ankle to thigh: clinical sleeves have 3 to 8 chambers
MAX_ZONES = 16  # two limbs of eight (a TCA9548A has eight channels: more sensors need a second one)
REVERSE_GRADIENT_MMHG = 10.0  # SAFE-10: a reversal of up to 10 mmHg is reported harmless (safety-requirements §B3)
MAX_REVERSE_GRADIENT_S = 1.0  # SAFE-10: beyond it for more than 1 s trips
MAX_SESSION_MIN = 120.0  # SAFE-10: no session, however configured, runs longer
MAX_ABOVE_VENOUS_S = 300.0  # SAFE-10: no zone stays squeezed above venous pressure for longer
MAX_SILENCE_S = 120.0  # an alarm silenced by a person sounds again after at most this
MAX_PLAUSIBILITY_TOL_MMHG = 10.0  # SAFE-15: two sensors on the same air disagreeing by more are not both right
MAX_PLAUSIBILITY_STEP_MMHG = 15.0  # SAFE-15: at most this much rise, unconfirmed, between two checks of a fill
MAX_SENSOR_NOISE_MMHG = 0.5  # SAFE-7: a sensor noisier than this cannot tell a slow leak from a sound hold
NO_MANIFOLD_MAX_MMHG = 60.0  # SAFE-15: a build with no sensor to confirm its zone sensors by goes no higher

# Plausible ambient pressure for the zero taken at start: sea-level storms (~950 hPa) down to ~3,000 m
# altitude (~700 hPa) and up to the highest recorded sea-level pressure (~1,084 hPa), with some margin.
AMBIENT_MIN_HPA, AMBIENT_MAX_HPA = 650.0, 1100.0


@dataclass(frozen=True)
class Limits:
    """Safety thresholds. Each default is argued for in config/hardware.yaml and docs/config-reference.md."""

    max_mmhg: float = 90.0
    trip_margin_mmhg: float = 10.0
    overpressure_debounce_s: float = 0.1
    vent_timeout_s: float = 15.0
    fill_timeout_s: float = 40.0
    min_fill_rate_mmhg_s: float = 1.0
    fill_rate_window_s: float = 3.0
    sensor_stale_s: float = 0.2
    sensor_stuck_s: float = 1.0
    max_zero_spread_mmhg: float = 25.0
    occlusion_rate_mmhg_s: float = 60.0
    leak_rate_mmhg_s: float = 1.0
    leak_window_s: float = 2.0
    max_topups: int = 3
    topup_window_s: float = 10.0
    max_drop_mmhg: float = 8.0
    vent_check_s: float = 3.0
    reverse_gradient_mmhg: float = REVERSE_GRADIENT_MMHG
    reverse_gradient_s: float = MAX_REVERSE_GRADIENT_S
    venous_safe_mmhg: float = 20.0
    max_above_venous_s: float = 120.0
    session_max_min: float = 60.0
    pump_off_rise_mmhg: float = 10.0
    plausibility_tol_mmhg: float = 5.0
    plausibility_step_mmhg: float = 10.0
    # The sensor noise (one reading's standard deviation) a rate judged over a short span allows for: the reference
    # MPRLS's ~0.08 mmHg (safety-requirements §B2); calibration measures the build's own.
    sensor_noise_mmhg: float = 0.08
    # SAFE-7 on a calibrated build: a held zone may also lose no more than 0.5 mmHg/s plus this much per mmHg of its
    # pressure (0: not measured, leak_rate_mmhg_s alone). Calibration sets it from the worst zone's loss.
    leak_rate_per_mmhg_s: float = 0.0
    # The slowest zone's vent time constant (SAFE-8's quick look expects a quarter of the loss it gives): the reference
    # thigh's ~2.9 s; calibration measures the build's own.
    vent_tau_s: float = 2.9
    alarm_silence_s: float = MAX_SILENCE_S
