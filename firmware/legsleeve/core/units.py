"""Pressure unit conversions. Every interface speaks gauge mmHg; hPa and psi exist only at the sensor."""

MMHG_PER_HPA = 0.750062
HPA_PER_PSI = 68.947572932  # the factor adafruit_mprls uses
MMHG_PER_PSI = HPA_PER_PSI * MMHG_PER_HPA


def hpa_to_mmhg(hpa: float) -> float:
    return hpa * MMHG_PER_HPA


def mmhg_to_hpa(mmhg: float) -> float:
    return mmhg / MMHG_PER_HPA
