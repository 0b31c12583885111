"""The pneumatic model of the sleeve: pump, check valve, manifold, relief valve, valves, bladders and leaks.

State is gauge pressure (mmHg) per node. Air is counted as volume at ambient pressure, so a node of volume V(P)
at absolute pressure Pa + P holds (Pa + P)·V(P)/Pa litres of free air. With a bladder V = V0 + C·P the node's
pressure moves as

    dP/dt = Pa · Q_in / (V0 + C·(Pa + 2P))        (Q_in: net inflow, free-air L/s)

Every flow is linear in the pressures (a valve or leak is a conductance in L/min per mmHg; the pump's flow falls
linearly from free flow at 0 to nothing at dead-head), so each node, with its neighbours held for one short
substep, follows an exponential towards its equilibrium. The model integrates exactly that, node by node
(exponential Euler): unconditionally stable, so a stiff manifold behind a wide-open relief valve needs no tiny
steps.

The model is lazy: `advance_to` integrates up to a time with the inputs last given by `set_inputs`; the world
calls it whenever a pressure is looked at and whenever the actuators change, so what the pins say during an
interval is what the air feels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from legsleeve.config.model import SimSpec, SimZoneSpec
from legsleeve.core.units import MMHG_PER_HPA

MAX_SUBSTEP_S = 0.005
HOSE_VOLUME_L = 0.004  # the tube between valve block, sensor tee and bladder port
OPEN_PORT_LPM_PER_MMHG = 0.6  # a pulled-off hose: wider than any valve
LEAK_FAULT_LPM_PER_MMHG = 0.03  # a pin-hole in a bladder: loses several mmHg/s at 45 mmHg


@dataclass
class ZoneFaults:
    leak: bool = False
    blocked: bool = False  # hose kinked between the sensor tee and the bladder
    disconnected: bool = False  # hose pulled off the bladder
    inlet_stuck_open: bool = False
    exhaust_stuck_closed: bool = False


@dataclass
class PumpFaults:
    dead: bool = False
    stuck_on: bool = False


@dataclass
class _Zone:
    spec: SimZoneSpec
    hose_mmhg: float = 0.0  # what the sensor and valves see
    bladder_mmhg: float = 0.0  # the chamber on the leg
    faults: ZoneFaults = field(default_factory=ZoneFaults)

    @property
    def split(self) -> bool:
        return self.faults.blocked or self.faults.disconnected


class Pneumatics:
    """The air side of the rig. Reads actuators through callbacks; exposes pressures in gauge mmHg."""

    def __init__(self, spec: SimSpec, zone_names: Sequence[str], *, pump_stall_duty: float, start_s: float = 0.0):
        self.spec = spec
        self.names = list(zone_names)
        self.zones = [_Zone(spec.zones[name]) for name in self.names]
        self.manifold_mmhg = 0.0
        self.pump = PumpFaults()
        self._stall = pump_stall_duty
        self._t = start_s
        # actuator inputs, held until set_inputs() changes them
        self._duty = 0.0
        self._inlets: tuple[bool, ...] = (False,) * len(self.names)
        self._exhausts: tuple[bool, ...] = (True,) * len(self.names)
        self._pa = spec.ambient_hpa * MMHG_PER_HPA  # ambient, mmHg absolute
        # conductances in L/s per mmHg: each zone's valves (a zone may have its own)
        self._g_in = [_lps(z.spec.inlet_lpm_per_mmhg, spec.inlet_lpm_per_mmhg) for z in self.zones]
        self._g_ex = [_lps(z.spec.exhaust_lpm_per_mmhg, spec.exhaust_lpm_per_mmhg) for z in self.zones]
        self._g_relief = spec.relief_lpm_per_mmhg / 60.0
        self._q_free = spec.pump_free_flow_lpm / 60.0

    def set_inputs(self, pump_duty: float, inlets_open: Sequence[bool], exhausts_open: Sequence[bool]) -> None:
        """What the actuators do from the current model time on (call `advance_to` up to the change first)."""
        self._duty = pump_duty
        self._inlets = tuple(inlets_open)
        self._exhausts = tuple(exhausts_open)

    # -- queries -------------------------------------------------------------------------------------------
    @property
    def now_s(self) -> float:
        return self._t

    def zone_mmhg(self, index: int) -> float:
        """Pressure where the zone's sensor sits (the hose tee)."""
        return self.zones[index].hose_mmhg

    def bladder_mmhg(self, index: int) -> float:
        """Pressure on the leg."""
        return self.zones[index].bladder_mmhg

    def index(self, name: str) -> int:
        return self.names.index(name)

    def pump_flow_lps(self, duty: float, manifold_mmhg: float) -> float:
        """Free-air flow the pump delivers into the manifold at this duty and back pressure (check valve)."""
        if self.pump.dead:
            return 0.0
        if self.pump.stuck_on:
            duty = 1.0
        if duty < self._stall:
            return 0.0  # a small diaphragm pump stalls at low duty (safety-requirements §B1)
        return max(0.0, self._q_free * duty * (1.0 - manifold_mmhg / self.spec.pump_deadhead_mmhg))

    # -- integration -------------------------------------------------------------------------------------
    def advance_to(self, t_s: float) -> None:
        remaining = t_s - self._t
        while remaining > 1e-12:
            dt = min(remaining, MAX_SUBSTEP_S)
            self._step(dt)
            remaining -= dt
        self._t = t_s

    def _capacitance(self, volume_l: float, compliance: float, p: float) -> float:
        """d(free air)/dP in L per mmHg, times Pa: the denominator of dP/dt."""
        return (volume_l + compliance * (self._pa + 2.0 * max(p, 0.0))) / self._pa

    def _step(self, dt: float) -> None:
        duty = self._duty
        inlets = [open_ or z.faults.inlet_stuck_open for open_, z in zip(self._inlets, self.zones, strict=False)]
        pm = self.manifold_mmhg

        # Manifold: pump in (a + b·pm form), inlets out towards each open zone, relief above its setting.
        q0 = self.pump_flow_lps(duty, 0.0)
        slope = q0 / self.spec.pump_deadhead_mmhg if q0 > 0.0 else 0.0  # pump flow falls by this per mmHg
        g_total = slope
        drive = q0
        for open_, z, g_in in zip(inlets, self.zones, self._g_in, strict=False):
            if open_:
                g_total += g_in
                drive += g_in * z.hose_mmhg
        if pm > self.spec.relief_mmhg:
            g_total += self._g_relief
            drive += self._g_relief * self.spec.relief_mmhg
        cap_m = self.spec.manifold_volume_l / self._pa
        # The pump's linear fall reaches zero flow at dead-head, so the manifold settles there at most: the
        # check valve's no-backflow needs no separate branch.
        pm_new = _relax(pm, drive, g_total, cap_m, dt)
        pm_mid = 0.5 * (pm + pm_new)
        self.manifold_mmhg = pm_new

        # Zones, each against the manifold's mean pressure over the substep.
        for i, z in enumerate(self.zones):
            ex_open = self._exhausts[i] and not z.faults.exhaust_stuck_closed
            g = 0.0
            drive = 0.0
            if inlets[i]:
                g += self._g_in[i]
                drive += self._g_in[i] * pm_mid
            if ex_open:
                g += self._g_ex[i]
            leak = z.spec.leak_lpm_per_mmhg / 60.0
            if z.faults.leak:
                leak += LEAK_FAULT_LPM_PER_MMHG / 60.0
            if z.split:
                # The hose tee is its own small node; the bladder beyond the fault goes its own way.
                if z.faults.disconnected:
                    g += OPEN_PORT_LPM_PER_MMHG / 60.0
                cap_h = HOSE_VOLUME_L / self._pa
                z.hose_mmhg = _relax(z.hose_mmhg, drive, g, cap_h, dt)
                g_b = leak + (OPEN_PORT_LPM_PER_MMHG / 60.0 if z.faults.disconnected else 0.0)
                cap_b = self._capacitance(z.spec.volume_l, z.spec.compliance_l_per_mmhg, z.bladder_mmhg)
                z.bladder_mmhg = _relax(z.bladder_mmhg, 0.0, g_b, cap_b, dt)
            else:
                g += leak
                cap = self._capacitance(z.spec.volume_l + HOSE_VOLUME_L, z.spec.compliance_l_per_mmhg, z.hose_mmhg)
                z.hose_mmhg = _relax(z.hose_mmhg, drive, g, cap, dt)
                z.bladder_mmhg = z.hose_mmhg

    # -- faults ------------------------------------------------------------------------------------------
    def set_zone_fault(self, index: int, name: str) -> None:
        z = self.zones[index]
        if name in ("blocked", "disconnected") and not z.split:
            z.bladder_mmhg = z.hose_mmhg  # the two nodes part at the same pressure
        setattr(z.faults, name.replace("-", "_"), True)

    def set_pump_fault(self, name: str) -> None:
        if name == "pump-dead":
            self.pump.dead = True
        elif name == "pump-stuck-on":
            self.pump.stuck_on = True
        else:
            raise ValueError(name)


def _lps(zone_lpm_per_mmhg: float | None, build_lpm_per_mmhg: float) -> float:
    """A valve's conductance in L/s per mmHg: the zone's own, else the build's."""
    return (build_lpm_per_mmhg if zone_lpm_per_mmhg is None else zone_lpm_per_mmhg) / 60.0


def _relax(p: float, drive: float, g: float, cap: float, dt: float) -> float:
    """Exact solution over dt of cap·dP/dt = drive − g·P (a node with linear in- and outflows)."""
    if g <= 0.0:
        return p + drive * dt / cap
    p_eq = drive / g
    return p_eq + (p - p_eq) * math.exp(-g * dt / cap)
